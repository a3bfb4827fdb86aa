#include "models/dmi_cache.h"

#include <algorithm>
#include <cstring>

namespace kpu::model {

const DmiRegion* DmiCache::grant(uint64_t addr, uint64_t bytes, tlm::tlm_command command) {
    tlm::tlm_generic_payload request;
    request.set_command(command);
    request.set_address(addr);
    request.set_data_length(unsigned(std::min<uint64_t>(bytes, ~0u)));
    TimingPath path;
    request.set_extension(&path);
    tlm::tlm_dmi dmi;
    const bool granted = socket_->get_direct_mem_ptr(request, dmi);
    request.clear_extension(&path);
    if (!granted || addr < dmi.get_start_address() || addr > dmi.get_end_address()) return nullptr;
    ++grants_;
    DmiRegion r;
    r.lo = dmi.get_start_address();
    r.hi = dmi.get_end_address() + 1;
    r.data = dmi.get_dmi_ptr();
    r.readable = dmi.is_read_allowed();
    r.writable = dmi.is_write_allowed();
    r.path = path;
    return regions_.add(r);
}

bool DmiCache::access(uint64_t addr, void* data, uint64_t bytes, bool write) {
    auto* cursor = static_cast<unsigned char*>(data);
    while (bytes > 0) {
        uint64_t chunk;
        if (const DmiRegion* r = find(addr, write)) {
            chunk = std::min<uint64_t>(bytes, r->hi - addr);
            unsigned char* mem = r->data + (addr - r->lo);
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

}  // namespace kpu::model
