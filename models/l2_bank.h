// One L2 bank of a compute tile: the staging SRAM between L3 and the L1 buffers next to the
// fabric. Socket: `socket` (target). Time: l2 latency in sram_hz cycles plus N / port
// bandwidth per burst, per port; two movers on one bank share its ports' bandwidth.
#pragma once

#include "hardware/address_map.h"
#include "models/memory_target.h"

namespace kpu::model {

class L2Bank : public MemoryTarget {
public:
    L2Bank(sc_core::sc_module_name name, const hw::Config& config, const hw::AddressMap& map, uint32_t tile,
           uint32_t bank, PageArena* arena = nullptr)
        : MemoryTarget(name, "L2 bank", config.l2, config.clocks.sram_hz, map.l2_base(tile, bank), 0, arena) {}
};

}  // namespace kpu::model
