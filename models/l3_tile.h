// The L3 scratchpad of one compute tile: software-managed SRAM that DMA engines fill from
// DRAM and BlockMovers read into L2. Socket: `socket` (target). Time: l3 latency in sram_hz
// cycles plus N / port bandwidth per burst, on the earliest-free of its l3.ports ports.
#pragma once

#include "hardware/address_map.h"
#include "models/memory_target.h"

namespace kpu::model {

class L3Tile : public MemoryTarget {
public:
    L3Tile(sc_core::sc_module_name name, const hw::Config& config, const hw::AddressMap& map, uint32_t tile,
           PageArena* arena = nullptr)
        : MemoryTarget(name, "L3 tile", config.l3, config.clocks.sram_hz, map.l3_base(tile), 0, arena) {}
};

}  // namespace kpu::model
