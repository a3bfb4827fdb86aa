// What every memory of the hierarchy has in common (DRAM channel, L3 tile, L2 bank, L1
// buffer): a TLM-2.0 target with real, lazily paged bytes and a PortTimer. Each level is a
// thin subclass that picks its config level and clock domain; this is where the work is.
//
// `Memory` is the target interface itself, addressed with offsets 0..capacity-1 (the
// interconnect translates device addresses). It answers b_transport (data + timing),
// nb_transport_fw (completes at once, same timing), transport_dbg (data, no time) and
// get_direct_mem_ptr (one page per grant, allocated on request, read/write).
// `MemoryTarget` is a Memory with its own `socket` (tlm_target_socket): DRAM channels, L3
// tiles and L2 banks. L1 buffers are Memories without one: all of a tile's buffers sit behind
// one socket of their L1Fanout (models/l1_fanout.h), because a TLM socket per buffer would
// make up most of the platform's elaboration.
// Time: per burst, start = max(arrival, port_free), done = start + latency + N / bandwidth.
#pragma once

#include <cstdint>
#include <string>

#include <systemc>
#include <tlm>

#include "hardware/config.h"
#include "models/paged_storage.h"
#include "models/port_timer.h"
#include "models/sim_time.h"

namespace kpu::model {

/// Counters for the stats report: every timed access, by b_transport or by a mover's DMI
/// path (debug transport is untimed and not counted).
struct MemoryStats {
    uint64_t reads = 0, writes = 0;
    uint64_t bytes_read = 0, bytes_written = 0;
    uint64_t errors = 0;  ///< accesses answered with an error response
};

class Memory : public sc_core::sc_module, public tlm::tlm_fw_transport_if<> {
public:
    /// `kind` names the level in reports ("L2 bank"); `base` is the device address of offset 0
    /// (reports show both); page_bytes and arena as PagedStorage.
    Memory(sc_core::sc_module_name name, const char* kind, const hw::MemoryLevel& level, double clock_hz,
           uint64_t base, uint64_t page_bytes = 0, PageArena* arena = nullptr);

    Memory(const Memory&) = delete;
    Memory& operator=(const Memory&) = delete;

    void b_transport(tlm::tlm_generic_payload& trans, sc_core::sc_time& delay) override;
    tlm::tlm_sync_enum nb_transport_fw(tlm::tlm_generic_payload& trans, tlm::tlm_phase& phase,
                                       sc_core::sc_time& delay) override;
    bool get_direct_mem_ptr(tlm::tlm_generic_payload& trans, tlm::tlm_dmi& dmi) override;
    unsigned int transport_dbg(tlm::tlm_generic_payload& trans) override;

    /// Host pointer to [offset, offset + len) without time, allocating its page; nullptr if
    /// the range is outside the memory or spans two pages. What DMI hands out, for C++ callers.
    uint8_t* direct_pointer(uint64_t offset, uint64_t len);

    /// Device address of a byte of this memory (linear from base; DRAM overrides: interleaved).
    virtual uint64_t device_address(uint64_t offset) const { return base_ + offset; }

    uint64_t capacity() const { return storage_.capacity(); }
    uint64_t base() const { return base_; }
    const PagedStorage& storage() const { return storage_; }
    const PortTimer& timer() const { return timer_; }
    MemoryStats stats() const;
    const char* kind() const { return kind_; }

private:
    /// Sets an error response and reports it when the access is not legal here.
    bool check(tlm::tlm_generic_payload& trans);
    void report(const tlm::tlm_generic_payload& trans, const char* problem);

    const char* kind_;
    uint64_t base_;
    PagedStorage storage_;
    PortTimer timer_;
    TimeBase time_;
    uint64_t errors_ = 0;
};

/// A Memory with its own target socket, bound to itself.
class MemoryTarget : public Memory {
public:
    tlm::tlm_target_socket<> socket;

    MemoryTarget(sc_core::sc_module_name name, const char* kind, const hw::MemoryLevel& level, double clock_hz,
                 uint64_t base, uint64_t page_bytes = 0, PageArena* arena = nullptr)
        : Memory(name, kind, level, clock_hz, base, page_bytes, arena), socket("socket") {
        socket.bind(*this);
    }
};

}  // namespace kpu::model
