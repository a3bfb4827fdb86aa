#include "models/dmi_cache.h"

#include <algorithm>
#include <cstring>

namespace kpu::model {

const DmiCache::Slot* DmiCache::find(uint64_t addr, bool write) {
    Slot& cached = slot(addr);
    if (cached.holds(addr, write)) return &cached;
    auto fill = [&](uint64_t start, const Region& r) -> const Slot* {
        Slot& s = slot(addr);
        s = Slot{start, r.end, r.ptr, r.readable, r.writable};
        return &s;
    };
    auto it = regions_.upper_bound(addr);
    if (it != regions_.begin()) {
        --it;
        if (addr <= it->second.end && (write ? it->second.writable : it->second.readable)) return fill(it->first, it->second);
    }
    tlm::tlm_generic_payload trans;
    tlm::tlm_dmi dmi;
    trans.set_command(write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND);
    trans.set_address(addr);
    if (!socket_->get_direct_mem_ptr(trans, dmi)) return nullptr;
    if (addr < dmi.get_start_address() || addr > dmi.get_end_address()) return nullptr;
    const bool readable = dmi.is_read_allowed(), writable = dmi.is_write_allowed();
    if (!(write ? writable : readable)) return nullptr;
    if (erase(dmi.get_start_address(), dmi.get_end_address())) index_.fill(Slot{});  // a wider grant replaces narrower ones
    // Granules stay no larger than any grant, so a region covers whole granules' worth of slots.
    uint32_t shift = 0;
    while (shift < 63 && (uint64_t(2) << shift) - 1 <= dmi.get_end_address() - dmi.get_start_address()) ++shift;
    if (shift < granule_shift_) granule_shift_ = shift, index_.fill(Slot{});
    const Region granted{dmi.get_end_address(), dmi.get_dmi_ptr(), readable, writable};
    regions_.emplace(dmi.get_start_address(), granted);
    return fill(dmi.get_start_address(), granted);
}

bool DmiCache::access(uint64_t addr, void* data, uint64_t bytes, bool write) {
    auto* cursor = static_cast<unsigned char*>(data);
    while (bytes > 0) {
        uint64_t chunk;
        if (const Slot* r = find(addr, write)) {
            chunk = std::min<uint64_t>(bytes, r->end - addr + 1);
            unsigned char* mem = r->ptr + (addr - r->start);
            write ? std::memcpy(mem, cursor, chunk) : std::memcpy(cursor, mem, chunk);
        } else {
            // No DMI here: one debug transaction. Targets may serve fewer bytes than asked.
            tlm::tlm_generic_payload trans;
            trans.set_command(write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND);
            trans.set_address(addr);
            trans.set_data_ptr(cursor);
            trans.set_data_length(static_cast<unsigned>(std::min<uint64_t>(bytes, 1u << 30)));
            chunk = socket_->transport_dbg(trans);
            if (chunk == 0) return false;
        }
        addr += chunk;
        cursor += chunk;
        bytes -= chunk;
    }
    return true;
}

void DmiCache::invalidate(uint64_t start, uint64_t end) {
    erase(start, end);
    index_.fill(Slot{});
}

bool DmiCache::erase(uint64_t start, uint64_t end) {
    bool erased = false;
    auto it = regions_.upper_bound(start);
    if (it != regions_.begin()) --it;  // the region before start may reach into the range
    while (it != regions_.end() && it->first <= end) {
        if (it->second.end >= start)
            it = regions_.erase(it), erased = true;
        else
            ++it;
    }
    return erased;
}

}  // namespace kpu::model
