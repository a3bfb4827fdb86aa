// keep-in-l3 (docs/compiler.md, "Memory planning"): intermediates that fit the L3 the
// kernels' buffers leave free live there between their writer and their readers instead of
// making a DRAM round trip. The plan is a pure function of the program and the L3 capacity
// it was made for (MemoryEstimate::l3_capacity), so the compiler, the binder, the .kpu
// reader and kpu-sim all derive the same one.
#pragma once

#include <cstdint>
#include <vector>

#include "compiler/dfx.h"
#include "hardware/config.h"

namespace kpu::compiler {

/// Where the L3-resident intermediates live: each in bands of whole rows of its 2D view (its
/// last dimension's columns; a vector is one row), band j in the L3 of compute tile
/// (first_tile + j) mod tiles, every band of it at the same offset from its L3's base, so
/// that its readers draw on many tiles' L3 ports at once as DRAM's channels would serve them.
struct L3Plan {
    std::vector<bool> resident;       ///< per graph tensor: it lives in L3
    std::vector<uint32_t> first_tile; ///< per graph tensor (resident): the tile of its band 0
    std::vector<uint64_t> offset;     ///< per graph tensor (resident): its bands' first byte, from each L3's base
    std::vector<uint64_t> band_rows;  ///< per graph tensor (resident): rows per band (the last band may have fewer)
    uint32_t tiles = 0;               ///< the target's compute tiles
    uint32_t count = 0;               ///< resident tensors

    /// The compute tile holding row `row` of resident tensor `t`, and the row's first byte in its L3.
    uint32_t tile_of(uint32_t t, uint64_t row) const { return uint32_t((first_tile[t] + row / band_rows[t]) % tiles); }
    uint64_t row_offset(uint32_t t, uint64_t row, uint64_t row_bytes) const {
        return offset[t] + row % band_rows[t] * row_bytes;
    }
};

/// The plan for `program` (tiled: its kernels' buffers are known) with `capacity` bytes of
/// L3 on each of its target's compute tiles. Candidates: root tensors of the intermediate
/// role with DRAM (no compile-time value), no views, written and read by kernels, none of
/// them a layout copy (whose strided blocks would cut into a transfer per row). A candidate
/// of R rows has bands of ceil(R / tiles) rows (spread over as many tiles as it can: fewer,
/// bigger bands make hot tiles); its band size (rounded to kAlign) must fit the budget:
/// `capacity` less the most L3 any kernel of its lifetime's steps takes (level_bytes). In
/// decreasing order of bytes times (1 + its reading kernels), ties by index, each goes at
/// the highest free range (from the top of L3 down, the same on every tile) among the placed
/// tensors whose lifetimes overlap its own, its band 0 on the tile after the previous
/// tensor's last band; one that does not fit stays in DRAM.
L3Plan plan_l3(const Program& program, uint64_t capacity);

/// The plan `program` records: plan_l3 at its memory.l3_capacity; none resident without.
L3Plan program_l3_plan(const Program& program);

/// DRAM bytes of the tensors `resident` marks that a kernel's LOADs read and STOREs write.
struct L3Traffic {
    uint64_t read = 0, write = 0;
};
/// Per kernel, from the op stream (for_each_op): what keep-in-l3 takes off its hints.
std::vector<L3Traffic> l3_traffic(const Program& program, const std::vector<bool>& resident);

/// `hints` less `traffic`, its arithmetic intensity recomputed (a kernel without MACs keeps 0).
void drop_l3_traffic(Hints& hints, const L3Traffic& traffic);

/// The pass: plans for `config`'s L3 and, when some tensor fits, records the capacity in
/// program.memory, leaves the resident tensors out of the DRAM plan (the reuse dependencies
/// are made again from `tasks_without_reuse`, the tasks before plan-memory added its own),
/// takes their traffic off the hints and re-estimates the memory. False (the program
/// unchanged) when nothing fits, when plan-memory did not run, or when the new DRAM plan
/// would need more than kMaxReuseDeps dependencies.
bool keep_in_l3(Program& program, const hw::Config& config, const std::vector<Task>& tasks_without_reuse);

/// Whether `config` holds the program's plan: at least the L3 and the compute tiles it was
/// made for (true when the pass did not run). bind() re-blocks a program it does not hold.
bool l3_plan_holds(const Program& program, const hw::Config& config);

/// Undoes the pass (a program whose kernels change, reblock.h; kpu-sim --check, which reads
/// every intermediate back): its tensors back in DRAM, the pass and the capacity off, the
/// dependencies the DRAM plan now needs added, the hints by the closed form again. Nothing
/// when it did not run.
void drop_keep_in_l3(Program& program);

}  // namespace kpu::compiler
