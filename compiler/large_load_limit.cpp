#include "compiler/large_load_limit.h"

#include "compiler/engine_choice.h"

namespace kpu::compiler {

LargeLoadLimit::LargeLoadLimit(const hw::Config& config)
    : window_(uint64_t(tile_link_bandwidth(config) * config.dram.latency_cycles / config.clocks.dram_hz)),
      last_(config.compute_tiles, {0, 0}) {}

void LargeLoadLimit::order(uint32_t tile, uint64_t bytes, uint32_t first, uint32_t count, std::vector<uint32_t>& deps) {
    if (bytes <= window_) return;
    for (uint32_t b = last_[tile].first; b < last_[tile].second; ++b) deps.push_back(b);
    last_[tile] = {first, first + count};
}

}  // namespace kpu::compiler
