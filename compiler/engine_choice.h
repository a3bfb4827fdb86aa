// The binder's engine policy: which engine runs each move, and how one DRAM transfer (LOAD or
// STORE) is cut into slices for several DMA engines (docs/compiler.md, "Engines").
#pragma once

#include <cstdint>
#include <vector>

#include "compiler/bound_program.h"
#include "compiler/graph.h"
#include "compiler/ops/matmul.h"
#include "hardware/address_map.h"
#include "hardware/config.h"

namespace kpu::compiler {

/// The engine instance an op runs on.
struct EngineChoice {
    EngineKind engine = EngineKind::Dma;
    uint32_t unit = 0;  ///< BlockMover or Streamer of the tile; for Dma see dma_engine()
};

/// The engine of a move of graph op `op`'s tensor `tensor` from level `src` to `dst`: a DMA
/// engine when either end is DRAM (one per slice, dma_engine()), a Streamer when either end
/// is L1, a BlockMover between L3 and L2. A, B, results and bias go to units 0, 1, 2, 3
/// modulo the tile's count, so that their transfers run in parallel.
EngineChoice engine_for_move(hw::Level src, hw::Level dst, const MatmulOperands& op, uint32_t tensor, const hw::Config& config);

/// What one compute tile's link from the interconnect into its L3 carries, bytes/s.
double tile_link_bandwidth(const hw::Config& config);

/// How many DMA engines one LOAD or STORE is spread over: as many as the destination compute
/// tile's link can feed (min(interconnect link, L3 ports) / DMA engine bandwidth), at least 1,
/// at most the chip's engines. More would only queue at that tile's link while other tiles'
/// transfers wait for an engine.
uint32_t dma_slices(const hw::Config& config);

/// How the binder runs one DRAM transfer (LOAD or STORE) on the DMA engines: cut into units
/// (interleave blocks of `block` bytes when source and destination are both contiguous and the
/// transfer is whole blocks, rows otherwise), unit u in slice u mod n, n = min(engines, units,
/// bytes / block) slices. The slices cover the transfer's bytes exactly once, each at the same
/// destination offset as before; n = 1 returns the transfer unchanged.
std::vector<hw::Transfer> split_dram_transfer(const hw::Transfer& transfer, uint32_t engines, uint64_t block);

/// The DMA engine of slice `slice` of `slices` of a transfer for compute tile `tile`:
/// (tile x slices + slice) mod engines. A tile's transfers always use the same engines (its
/// DMA channels), so the tiles share the engines evenly whatever the order of their LOADs in
/// the stream.
uint32_t dma_engine(uint32_t tile, uint32_t slice, uint32_t slices, const hw::Config& config);

}  // namespace kpu::compiler
