// The tile switch's one port onto all of a compute tile's L1 buffers (kpu.tile_t.l1_fanout):
// a TLM-2.0 target that picks the buffer an address falls in and hands it the transaction
// with the address made local to that buffer, restoring it afterwards. It charges no time
// (each buffer keeps its own port timing) and keeps no state.
//
// Why it exists: one TLM target socket per buffer (8192 on t64, 65536 on datacenter) would
// be most of the platform's elaboration time (sockets are several named SystemC objects each,
// plus a multi-socket binding). Buffers stay SC_MODULEs with their own names, timers and
// bytes; only the socket is shared.
//
// Socket: `socket` (target), addressed from the tile's first L1 buffer: buffer b holds
// [b * buffer_bytes, (b + 1) * buffer_bytes). An address past the last buffer gets
// TLM_ADDRESS_ERROR_RESPONSE and a report naming this module (the tile switch never sends
// one: the address map refuses it first).
#pragma once

#include <cstdint>
#include <vector>

#include <systemc>
#include <tlm>

#include "models/memory_target.h"

namespace kpu::model {

class L1Fanout : public sc_core::sc_module, public tlm::tlm_fw_transport_if<> {
public:
    tlm::tlm_target_socket<> socket;

    /// `buffers` in address order, each `buffer_bytes` long; they must outlive the fanout.
    L1Fanout(sc_core::sc_module_name name, std::vector<Memory*> buffers, uint64_t buffer_bytes);

    void b_transport(tlm::tlm_generic_payload& trans, sc_core::sc_time& delay) override;
    tlm::tlm_sync_enum nb_transport_fw(tlm::tlm_generic_payload& trans, tlm::tlm_phase& phase,
                                       sc_core::sc_time& delay) override;
    bool get_direct_mem_ptr(tlm::tlm_generic_payload& trans, tlm::tlm_dmi& dmi) override;
    unsigned int transport_dbg(tlm::tlm_generic_payload& trans) override;

private:
    /// Buffer index of `addr`; buffers_.size() (after a report) when it lies past the last.
    size_t select(const tlm::tlm_generic_payload& trans, const char* what) const;
    /// Calls `call(buffer)` with the address made local to the buffer it selects, then
    /// restores it; false (after a report) when it selects none.
    template <class Call>
    bool forward(tlm::tlm_generic_payload& trans, const char* what, Call call) {
        const size_t b = select(trans, what);
        if (b == buffers_.size()) return false;
        const uint64_t addr = trans.get_address();
        trans.set_address(addr - b * buffer_bytes_);
        call(*buffers_[b]);
        trans.set_address(addr);
        return true;
    }

    std::vector<Memory*> buffers_;
    uint64_t buffer_bytes_;
};

}  // namespace kpu::model
