// One external DRAM channel (HBM/DDR/LPDDR). Consecutive device addresses interleave across
// channels in blocks of dram.interleave_bytes; the interconnect hands this channel offsets
// inside its own capacity. Socket: `socket` (target). Time: dram latency in dram_hz cycles
// plus N / channel bandwidth per burst, per port (MemoryTarget).
#pragma once

#include "hardware/config.h"
#include "models/memory_target.h"

namespace kpu::model {

class DramChannel : public MemoryTarget {
public:
    DramChannel(sc_core::sc_module_name name, const hw::Config& config, uint32_t channel)
        : MemoryTarget(name, "DRAM channel", config.dram, config.clocks.dram_hz, 0),
          channel_(channel),
          channels_(config.dram.count),
          interleave_(config.dram.interleave_bytes) {}

    uint64_t device_address(uint64_t offset) const override {
        return ((offset / interleave_) * channels_ + channel_) * interleave_ + offset % interleave_;
    }
    uint32_t channel() const { return channel_; }

private:
    uint32_t channel_, channels_;
    uint64_t interleave_;
};

}  // namespace kpu::model
