// One L1 buffer beside the systolic fabric: Streamers fill it with rows/columns from L2 and
// drain results from it; the fabric reads and writes it through DMI. No socket of its own:
// the tile's L1Fanout hands it the accesses of its address range (TLM-2.0 forward
// interface, local offsets). Time: l1 latency in sram_hz cycles plus N / port bandwidth per
// burst, on its own port.
// The whole buffer is one lazily allocated page, so one DMI grant (or direct_pointer())
// covers all of it: the fabric gets one host pointer per buffer.
#pragma once

#include "hardware/address_map.h"
#include "models/memory_target.h"

namespace kpu::model {

class L1Buffer : public Memory {
public:
    L1Buffer(sc_core::sc_module_name name, const hw::Config& config, const hw::AddressMap& map, uint32_t tile,
             uint32_t buffer, PageArena* arena = nullptr)
        : Memory(name, "L1 buffer", config.l1, config.clocks.sram_hz, map.l1_base(tile, buffer),
                 whole_buffer_page(config.l1.capacity_bytes), arena) {}

private:
    static uint64_t whole_buffer_page(uint64_t capacity) {
        uint64_t page = 1;
        while (page < capacity) page <<= 1;
        return page;
    }
};

}  // namespace kpu::model
