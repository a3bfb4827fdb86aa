#include "models/l1_fanout.h"

#include <algorithm>
#include <sstream>

namespace kpu::model {

using tlm::tlm_generic_payload;

L1Fanout::L1Fanout(sc_core::sc_module_name name, std::vector<Memory*> buffers, uint64_t buffer_bytes)
    : sc_core::sc_module(name), socket("socket"), buffers_(std::move(buffers)), buffer_bytes_(buffer_bytes) {
    socket.bind(*this);
}

size_t L1Fanout::select(const tlm_generic_payload& trans, const char* what) const {
    const uint64_t b = trans.get_address() / buffer_bytes_;
    if (b < buffers_.size()) return size_t(b);
    std::ostringstream msg;
    msg << name() << ": " << what << " at offset 0x" << std::hex << trans.get_address() << std::dec
        << " lies past the last of " << buffers_.size() << " L1 buffers of " << buffer_bytes_ << " bytes";
    SC_REPORT_WARNING("kpu/memory", msg.str().c_str());
    return buffers_.size();
}

void L1Fanout::b_transport(tlm_generic_payload& trans, sc_core::sc_time& delay) {
    if (trans.get_command() == tlm::TLM_IGNORE_COMMAND) {  // as every Memory answers it
        trans.set_response_status(tlm::TLM_OK_RESPONSE);
        return;
    }
    if (!forward(trans, trans.is_read() ? "read" : "write", [&](Memory& m) { m.b_transport(trans, delay); }))
        trans.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
}

tlm::tlm_sync_enum L1Fanout::nb_transport_fw(tlm_generic_payload& trans, tlm::tlm_phase& phase,
                                             sc_core::sc_time& delay) {
    tlm::tlm_sync_enum status = tlm::TLM_COMPLETED;
    if (!forward(trans, "request", [&](Memory& m) { status = m.nb_transport_fw(trans, phase, delay); })) {
        trans.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
        phase = tlm::BEGIN_RESP;
    }
    return status;
}

bool L1Fanout::get_direct_mem_ptr(tlm_generic_payload& trans, tlm::tlm_dmi& dmi) {
    bool granted = false;
    if (!forward(trans, "DMI request", [&](Memory& m) { granted = m.get_direct_mem_ptr(trans, dmi); })) {
        dmi.set_start_address(buffers_.size() * buffer_bytes_);  // refused: everything past the last buffer
        dmi.set_end_address(~uint64_t(0));
        return false;
    }
    // Back to the fanout's offsets, within the selected buffer (a refusal: all of it).
    const uint64_t base = trans.get_address() / buffer_bytes_ * buffer_bytes_;
    dmi.set_start_address(granted ? dmi.get_start_address() + base : base);
    dmi.set_end_address(granted ? std::min<uint64_t>(dmi.get_end_address(), buffer_bytes_ - 1) + base
                                : base + buffer_bytes_ - 1);
    return granted;
}

unsigned int L1Fanout::transport_dbg(tlm_generic_payload& trans) {
    unsigned int n = 0;
    forward(trans, "debug access", [&](Memory& m) { n = m.transport_dbg(trans); });
    return n;
}

}  // namespace kpu::model
