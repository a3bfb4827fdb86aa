// One external DRAM channel (HBM/DDR/LPDDR). Consecutive device addresses interleave across
// channels in blocks of dram.interleave_bytes (which block goes to which channel:
// AddressMap::dram_channel); the interconnect hands this channel offsets inside its own
// capacity. Socket: `socket` (target). Time: dram latency in dram_hz cycles plus N / channel
// bandwidth per burst, per port (MemoryTarget).
#pragma once

#include "hardware/address_map.h"
#include "hardware/config.h"
#include "models/memory_target.h"

namespace kpu::model {

class DramChannel : public MemoryTarget {
public:
    DramChannel(sc_core::sc_module_name name, const hw::Config& config, const hw::AddressMap& map, uint32_t channel,
                PageArena* arena = nullptr)
        : MemoryTarget(name, "DRAM channel", config.dram, config.clocks.dram_hz, 0, 0, arena), map_(map), channel_(channel) {}

    uint64_t device_address(uint64_t offset) const override { return map_.dram_address(channel_, offset); }
    uint32_t channel() const { return channel_; }

private:
    const hw::AddressMap& map_;
    uint32_t channel_;
};

}  // namespace kpu::model
