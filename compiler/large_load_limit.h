// The binder's large-load limit: one big LOAD in flight per compute tile, in stream order
// (docs/compiler.md, "Engines"). A LOAD of more than the tile's link moves in one DRAM
// latency waits for the tile's previous such LOAD, so the DMA queues interleave the tiles
// instead of serving every tile's prefetches before the next tile's first panel. Smaller
// LOADs (a bias, a narrow strip) take little of the link and mostly wait for DRAM: they wait
// for no LOAD.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "hardware/config.h"

namespace kpu::compiler {

class LargeLoadLimit {
public:
    explicit LargeLoadLimit(const hw::Config& config);

    /// A LOAD of `bytes` for compute tile `tile`, bound to ops [first, first + count): when it
    /// is big, appends the ops of the tile's previous big LOAD to `deps` and becomes the
    /// tile's latest.
    void order(uint32_t tile, uint64_t bytes, uint32_t first, uint32_t count, std::vector<uint32_t>& deps);

private:
    uint64_t window_ = 0;  ///< tile link bandwidth x DRAM latency
    std::vector<std::pair<uint32_t, uint32_t>> last_;  ///< per compute tile: its big LOAD's bound ops [first, second)
};

}  // namespace kpu::compiler
