#include "models/dmi_cache.h"

#include <algorithm>
#include <cstring>

namespace kpu::model {

const DmiCache::Region* DmiCache::find(uint64_t addr, bool write) {
    auto fits = [&](const Region& r) { return addr >= r.start && addr <= r.end && (write ? r.writable : r.readable); };
    if (last_ < regions_.size() && fits(regions_[last_])) return &regions_[last_];
    for (size_t i = 0; i < regions_.size(); ++i)
        if (fits(regions_[i])) return &regions_[(last_ = i)];

    tlm::tlm_generic_payload trans;
    tlm::tlm_dmi dmi;
    trans.set_command(write ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND);
    trans.set_address(addr);
    if (!socket_->get_direct_mem_ptr(trans, dmi)) return nullptr;
    if (addr < dmi.get_start_address() || addr > dmi.get_end_address()) return nullptr;
    const bool readable = dmi.is_read_allowed(), writable = dmi.is_write_allowed();
    if (!(write ? writable : readable)) return nullptr;
    regions_.push_back({dmi.get_start_address(), dmi.get_end_address(), dmi.get_dmi_ptr(), readable, writable});
    last_ = regions_.size() - 1;
    return &regions_.back();
}

bool DmiCache::access(uint64_t addr, void* data, uint64_t bytes, bool write) {
    auto* cursor = static_cast<unsigned char*>(data);
    while (bytes > 0) {
        uint64_t chunk;
        if (const Region* r = find(addr, write)) {
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
    regions_.erase(std::remove_if(regions_.begin(), regions_.end(),
                                  [&](const Region& r) { return r.start <= end && r.end >= start; }),
                   regions_.end());
    last_ = 0;
}

}  // namespace kpu::model
