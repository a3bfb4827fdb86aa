// DmiCache: the initiator side of TLM-2.0 DMI, one per initiator socket. It asks the targets
// for regions once each (DmiRegions keeps them) and serves two kinds of initiator:
// - untimed accesses (a fabric's operand rows, the host's copies): read(), write() and
//   readable_span() copy through the granted regions with memcpy, and fall back to
//   transport_dbg where a target grants no DMI;
// - timed ones (the movers): known() and ask_timed() give the region with the timing path
//   the routers and the memory filled in on the grant (TimingPath), so that the initiator
//   can copy through DMI and book those stages itself.
// The owner forwards invalidate_direct_mem_ptr to invalidate().
#pragma once

#include <cstdint>

#include <tlm>

#include "models/dmi_regions.h"

namespace kpu::model {

class DmiCache {
public:
    /// The socket may still be unbound when the cache is made; it is used on first access.
    /// `max_granule_bytes`: the smallest region the owner expects (DmiRegions).
    explicit DmiCache(tlm::tlm_initiator_socket<>& socket, uint64_t max_granule_bytes = uint64_t(1) << 62)
        : socket_(socket), regions_(max_granule_bytes) {}
    DmiCache(const DmiCache&) = delete;
    DmiCache& operator=(const DmiCache&) = delete;

    /// Untimed copy; false if any byte of the range is not accessible.
    bool read(uint64_t addr, void* dst, uint64_t bytes) { return access(addr, dst, bytes, false); }
    bool write(uint64_t addr, const void* src, uint64_t bytes) {
        return access(addr, const_cast<void*>(src), bytes, true);
    }

    /// Where [addr, addr + bytes) can be read in place: a pointer when one granted region
    /// holds it all, else nullptr (then read() copies it). `room`, when given, gets how many
    /// bytes from addr on the region holds (the pointer stays good for all of them).
    const unsigned char* readable_span(uint64_t addr, uint64_t bytes, uint64_t* room = nullptr) {
        const DmiRegion* r = find(addr, false);
        if (!r || bytes == 0 || bytes > r->hi - addr) return nullptr;
        if (room) *room = r->hi - addr;
        return r->data + (addr - r->lo);
    }

    /// The granted region holding all of [addr, addr + bytes), if one is known (timed or
    /// not: DmiRegion::timed). Valid until the next call of any method.
    const DmiRegion* known(uint64_t addr, uint64_t bytes) { return regions_.find(addr, bytes); }
    /// Asks the target for a region holding all of [addr, addr + bytes) that a timed
    /// initiator may copy through and book itself (DmiRegion::timed: read and write, every
    /// stage of its timing path filled in); nullptr when it grants none such (the initiator
    /// then uses b_transport). Valid until the next call of any method.
    const DmiRegion* ask_timed(uint64_t addr, uint64_t bytes) {
        const DmiRegion* r = grant(addr, bytes, tlm::TLM_READ_COMMAND);
        return r && r->timed() && r->holds(addr, bytes) ? r : nullptr;
    }

    void invalidate(uint64_t start, uint64_t end) { regions_.forget(start, end); }
    void clear() { regions_.clear(); }
    uint64_t grants() const { return grants_; }  ///< regions the targets granted so far

private:
    bool access(uint64_t addr, void* data, uint64_t bytes, bool write);
    /// The region holding addr with the right permission, asking the target if none is
    /// known; nullptr if it grants none.
    const DmiRegion* find(uint64_t addr, bool write) {
        const DmiRegion* r = regions_.find(addr, 1);
        if (r && (write ? r->writable : r->readable)) return r;
        r = grant(addr, 1, write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND);
        return r && (write ? r->writable : r->readable) ? r : nullptr;
    }
    /// Asks the target for the region holding addr (with its timing path) and keeps it;
    /// nullptr when none holds addr.
    const DmiRegion* grant(uint64_t addr, uint64_t bytes, tlm::tlm_command command);

    tlm::tlm_initiator_socket<>& socket_;
    DmiRegions regions_;
    uint64_t grants_ = 0;
};

}  // namespace kpu::model
