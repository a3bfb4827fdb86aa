// DmiCache: the initiator side of TLM-2.0 DMI for untimed accesses. It remembers the regions
// targets granted, copies through them with memcpy, and falls back to transport_dbg where a
// target grants no DMI. A model owns one per socket and forwards invalidate_direct_mem_ptr.
#pragma once

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
    /// holds it all, else nullptr (then read() copies it).
    const unsigned char* readable_span(uint64_t addr, uint64_t bytes) {
        const auto it = find(addr, false);
        if (it == regions_.end() || bytes == 0 || bytes - 1 > it->second.end - addr) return nullptr;
        return it->second.ptr + (addr - it->first);
    }

    void invalidate(uint64_t start, uint64_t end);

private:
    struct Region {
        uint64_t end;  ///< inclusive, as tlm_dmi
        unsigned char* ptr;
        bool readable, writable;
    };
    using Regions = std::map<uint64_t, Region>;  ///< by start address; granted regions never overlap
    bool access(uint64_t addr, void* data, uint64_t bytes, bool write);
    /// The region holding addr with the right permission, asking the target if none is cached.
    Regions::const_iterator find(uint64_t addr, bool write);

    tlm::tlm_initiator_socket<>& socket_;
    Regions regions_;
    /// The region the last access used (regions_.end(): none): a tile's rows mostly share one.
    Regions::const_iterator last_ = regions_.end();
};

}  // namespace kpu::model
