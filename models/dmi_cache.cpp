#include "models/dmi_cache.h"

#include <algorithm>
#include <cstring>

namespace kpu::model {

DmiCache::Regions::const_iterator DmiCache::find(uint64_t addr, bool write) {
    if (last_ != regions_.end() && addr >= last_->first && addr <= last_->second.end &&
        (write ? last_->second.writable : last_->second.readable))
        return last_;
    auto it = regions_.upper_bound(addr);
    if (it != regions_.begin()) {
        --it;
        if (addr <= it->second.end && (write ? it->second.writable : it->second.readable)) return last_ = it;
    }
    tlm::tlm_generic_payload trans;
    tlm::tlm_dmi dmi;
    trans.set_command(write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND);
    trans.set_address(addr);
    if (!socket_->get_direct_mem_ptr(trans, dmi)) return regions_.end();
    if (addr < dmi.get_start_address() || addr > dmi.get_end_address()) return regions_.end();
    const bool readable = dmi.is_read_allowed(), writable = dmi.is_write_allowed();
    if (!(write ? writable : readable)) return regions_.end();
    invalidate(dmi.get_start_address(), dmi.get_end_address());  // a wider grant replaces narrower ones
    return last_ = regions_
                       .emplace(dmi.get_start_address(),
                                Region{dmi.get_end_address(), dmi.get_dmi_ptr(), readable, writable})
                       .first;
}

bool DmiCache::access(uint64_t addr, void* data, uint64_t bytes, bool write) {
    auto* cursor = static_cast<unsigned char*>(data);
    while (bytes > 0) {
        uint64_t chunk;
        if (auto it = find(addr, write); it != regions_.end()) {
            const Region& r = it->second;
            chunk = std::min<uint64_t>(bytes, r.end - addr + 1);
            unsigned char* mem = r.ptr + (addr - it->first);
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
    last_ = regions_.end();
    auto it = regions_.upper_bound(start);
    if (it != regions_.begin()) --it;  // the region before start may reach into the range
    while (it != regions_.end() && it->first <= end)
        it = it->second.end >= start ? regions_.erase(it) : std::next(it);
}

}  // namespace kpu::model
