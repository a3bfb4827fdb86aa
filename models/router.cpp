#include "models/router.h"

#include <sstream>

namespace kpu::model {

using tlm::tlm_generic_payload;

Router::Router(sc_core::sc_module_name name, const hw::Config& config, const hw::AddressMap& map, uint32_t tile,
               uint32_t extra_ports)
    : sc_core::sc_module(name),
      target_socket("target_socket"),
      initiator_socket("initiator_socket"),
      decoder_(config, map, tile),
      ports_expected_(decoder_.port_count() + extra_ports) {
    target_socket.register_b_transport(this, &Router::b_transport);
    target_socket.register_nb_transport_fw(this, &Router::nb_transport_fw);
    target_socket.register_get_direct_mem_ptr(this, &Router::get_direct_mem_ptr);
    target_socket.register_transport_dbg(this, &Router::transport_dbg);
    initiator_socket.register_nb_transport_bw(this, &Router::nb_transport_bw);
    initiator_socket.register_invalidate_direct_mem_ptr(this, &Router::invalidate_direct_mem_ptr);
}

void Router::end_of_elaboration() {
    if (uint32_t(initiator_socket.size()) != ports_expected_) {
        std::ostringstream msg;
        msg << name() << ": " << initiator_socket.size() << " output ports bound, the address map needs "
            << ports_expected_;
        SC_REPORT_ERROR("kpu/noc", msg.str().c_str());
    }
}

bool Router::route(int id, const tlm_generic_payload& trans, Route& r, uint32_t& port, const char* what) {
    const uint64_t addr = trans.get_address();
    const uint64_t len = trans.get_data_length();
    if (decoder_.route(addr, len, r)) {
        port = r.port == AddressDecoder::kUplink ? uplink_port() : r.port;
        if (port < ports_expected_) return true;
    }
    ++errors_;
    std::ostringstream msg;
    msg << name() << ": address error: " << what << " from " << initiator_names_.at(size_t(id)) << ": "
        << decoder_.map().explain(addr, len);
    SC_REPORT_WARNING("kpu/noc", msg.str().c_str());
    return false;
}

void Router::b_transport(int id, tlm_generic_payload& trans, sc_core::sc_time& delay) {
    ++transactions_;
    Route r;
    uint32_t port = 0;
    if (!route(id, trans, r, port, trans.is_read() ? "read" : "write")) {
        trans.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
        return;
    }
    charge(id, port, trans, delay);
    const uint64_t addr = trans.get_address();
    trans.set_address(addr - r.delta);
    initiator_socket[int(port)]->b_transport(trans, delay);
    trans.set_address(addr);
}

tlm::tlm_sync_enum Router::nb_transport_fw(int id, tlm_generic_payload& trans, tlm::tlm_phase& phase,
                                           sc_core::sc_time& delay) {
    // Every memory completes on BEGIN_REQ, so the router does the same with b_transport's
    // timing rather than keep per-transaction state for a backward path nobody takes.
    if (phase == tlm::BEGIN_REQ) {
        b_transport(id, trans, delay);
        phase = tlm::BEGIN_RESP;
    }
    return tlm::TLM_COMPLETED;
}

bool Router::get_direct_mem_ptr(int id, tlm_generic_payload& trans, tlm::tlm_dmi& dmi) {
    const uint64_t addr = trans.get_address();
    const unsigned int saved_len = trans.get_data_length();
    if (saved_len == 0) trans.set_data_length(1);  // a DMI request names one address
    Route r;
    uint32_t port = 0;
    const bool routed = route(id, trans, r, port, "DMI request");
    trans.set_data_length(saved_len);
    if (!routed) return false;
    add_stages(id, port, trans);
    trans.set_address(addr - r.delta);
    const bool granted = initiator_socket[int(port)]->get_direct_mem_ptr(trans, dmi);
    trans.set_address(addr);
    // Back to device addresses, clipped to this route: a DRAM page spans several
    // interleave blocks of the channel, but only one of them is contiguous in device space.
    uint64_t start = dmi.get_start_address() + r.delta, end = dmi.get_end_address() + r.delta;
    if (dmi.get_end_address() == ~uint64_t(0)) end = ~uint64_t(0);
    if (start < r.lo) {
        if (granted) dmi.set_dmi_ptr(dmi.get_dmi_ptr() + (r.lo - start));
        start = r.lo;
    }
    if (end > r.hi - 1) end = r.hi - 1;
    dmi.set_start_address(start);
    dmi.set_end_address(end);
    return granted;
}

unsigned int Router::transport_dbg(int id, tlm_generic_payload& trans) {
    Route r;
    uint32_t port = 0;
    if (!route(id, trans, r, port, "debug access")) return 0;
    const uint64_t addr = trans.get_address();
    trans.set_address(addr - r.delta);
    const unsigned int n = initiator_socket[int(port)]->transport_dbg(trans);
    trans.set_address(addr);
    return n;
}

tlm::tlm_sync_enum Router::nb_transport_bw(int, tlm_generic_payload&, tlm::tlm_phase&, sc_core::sc_time&) {
    return tlm::TLM_ACCEPTED;  // never called: every forward path completes on BEGIN_REQ
}

void Router::invalidate_direct_mem_ptr(int, sc_dt::uint64, sc_dt::uint64) {
    // Pages never move, so memories never revoke DMI; if one ever does, every initiator
    // drops everything, which is always safe.
    for (unsigned i = 0; i < target_socket.size(); ++i) target_socket[int(i)]->invalidate_direct_mem_ptr(0, ~uint64_t(0));
}

}  // namespace kpu::model
