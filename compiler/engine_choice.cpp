#include "compiler/engine_choice.h"

#include <algorithm>
#include <cmath>

namespace kpu::compiler {

namespace {

/// Which engine of a kind moves a tensor: A, B, results and bias on different units when the
/// tile has that many, so their transfers run in parallel.
uint32_t unit_for(const MatmulOperands& op, uint32_t tensor, uint32_t count) {
    const uint32_t role = tensor == op.a ? 0 : tensor == op.b ? 1 : tensor == op.c ? 2 : 3;
    return role % count;
}

}  // namespace

EngineChoice engine_for_move(hw::Level src, hw::Level dst, const MatmulOperands& op, uint32_t tensor, const hw::Config& config) {
    if (src == hw::Level::Dram || dst == hw::Level::Dram) return {EngineKind::Dma, 0};
    if (src == hw::Level::L1 || dst == hw::Level::L1)
        return {EngineKind::Streamer, unit_for(op, tensor, config.streamer.count)};
    return {EngineKind::BlockMover, unit_for(op, tensor, config.block_mover.count)};
}

double tile_link_bandwidth(const hw::Config& config) {
    return std::min(config.interconnect.bandwidth_bytes_per_s, config.l3.bandwidth_bytes_per_s * config.l3.ports);
}

uint32_t dma_slices(const hw::Config& config) {
    const double n = std::floor(tile_link_bandwidth(config) / config.dma.bandwidth_bytes_per_s);
    return uint32_t(std::clamp(n, 1.0, double(config.dma.count)));
}

std::vector<hw::Transfer> split_dram_transfer(const hw::Transfer& x, uint32_t engines, uint64_t block) {
    // Units: interleave blocks when both sides are contiguous and whole blocks, rows otherwise.
    hw::Transfer unit = x;
    const uint64_t bytes = x.bytes();
    if (x.src_stride == x.row_bytes && x.dst_stride == x.row_bytes && block > 0 && bytes % block == 0 &&
        bytes / block > x.rows) {
        unit.rows = uint32_t(bytes / block);
        unit.row_bytes = uint32_t(block);
        unit.src_stride = unit.dst_stride = block;
    }
    const uint64_t n = std::min<uint64_t>({engines, unit.rows, block ? bytes / block : 1});
    if (n <= 1) return {x};
    std::vector<hw::Transfer> slices;
    for (uint64_t i = 0; i < n; ++i) {
        hw::Transfer s = unit;
        s.rows = uint32_t((unit.rows - i + n - 1) / n);  // units i, i + n, i + 2n, ...
        s.src = unit.src + i * unit.src_stride;
        s.dst = unit.dst + i * unit.dst_stride;
        s.src_stride = unit.src_stride * n;
        s.dst_stride = unit.dst_stride * n;
        slices.push_back(s);
    }
    return slices;
}

uint32_t dma_engine(uint32_t tile, uint32_t slice, uint32_t slices, const hw::Config& config) {
    return uint32_t((uint64_t(tile) * slices + slice) % config.dma.count);
}

}  // namespace kpu::compiler
