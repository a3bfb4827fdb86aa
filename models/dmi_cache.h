// DmiCache: the initiator side of TLM-2.0 DMI for untimed accesses. It remembers the regions
// targets granted, copies through them with memcpy, and falls back to transport_dbg where a
// target grants no DMI. A model owns one per socket and forwards invalidate_direct_mem_ptr.
#pragma once

#include <array>
#include <cstdint>
#include <map>

#include <tlm>

namespace kpu::model {

class DmiCache {
public:
    /// The socket may still be unbound when the cache is made; it is used on first access.
    explicit DmiCache(tlm::tlm_initiator_socket<>& socket) : socket_(socket) {}
    DmiCache(const DmiCache&) = delete;  // last_ points into regions_
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
        const Slot* s = find(addr, false);
        if (!s || bytes == 0 || bytes - 1 > s->end - addr) return nullptr;
        if (room) *room = s->end - addr + 1;
        return s->ptr + (addr - s->start);
    }

    void invalidate(uint64_t start, uint64_t end);

private:
    struct Region {
        uint64_t end;  ///< inclusive, as tlm_dmi
        unsigned char* ptr;
        bool readable, writable;
    };
    /// A granted region as the index keeps it (start > end: empty).
    struct Slot {
        uint64_t start = ~uint64_t(0), end = 0;  ///< end inclusive
        unsigned char* ptr = nullptr;
        bool readable = false, writable = false;
        bool holds(uint64_t addr, bool write) const {
            return addr >= start && addr <= end && (write ? writable : readable);
        }
    };
    using Regions = std::map<uint64_t, Region>;  ///< by start address; granted regions never overlap
    bool access(uint64_t addr, void* data, uint64_t bytes, bool write);
    /// The region holding addr with the right permission, asking the target if none is
    /// cached; nullptr if it grants none. Valid until the next find() or invalidate().
    const Slot* find(uint64_t addr, bool write);
    /// Forgets the granted regions that overlap [start, end]; true if there were any.
    bool erase(uint64_t start, uint64_t end);
    Slot& slot(uint64_t addr) { return index_[(addr >> granule_shift_) & (kSlots - 1)]; }

    tlm::tlm_initiator_socket<>& socket_;
    Regions regions_;
    /// Direct-mapped index in front of regions_, over granules no larger than the smallest
    /// grant so far: a fabric reads its operands row by row from up to a few hundred L1
    /// buffers, and a map walk per row was most of its simulation-thread time.
    static constexpr size_t kSlots = 256;
    std::array<Slot, kSlots> index_{};
    uint32_t granule_shift_ = 63;  ///< none granted yet
};

}  // namespace kpu::model
