// The memory high-water marks of a bound program (docs/compiler.md, "Memory planning"): per
// level, one past the highest byte its ops read or write. DRAM from the tensor area's base;
// each SRAM level inside one compute tile's share of it (its L3; its L2 banks, its L1 buffers
// one after the other as hw::AddressMap lays them out), the highest over the tiles: what a
// tile must have at that level for the program to run. The compiler's estimate_memory (every
// op of the program it binds) and kpu-sim's stats (the ops the run completed) both come from
// here, so the planned marks are the simulated ones when the run completes.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "compiler/bound_program.h"
#include "hardware/address_map.h"

namespace kpu::compiler {

/// Calls `touch(addr, bytes)` for each range of device memory `op` reads or writes: a move's
/// source and destination footprints (strides included), a Matmul's A, B and (load_c) C, a
/// Drain's C and bias, a vector command's inputs, output, weight, bias and row statistics.
void for_each_footprint(const BoundOp& op, const std::function<void(uint64_t addr, uint64_t bytes)>& touch);

/// The high-water marks of a set of ops, per hw::Level.
struct HighWater {
    uint64_t bytes[4] = {0, 0, 0, 0};  ///< per hw::Level: one past the highest byte touched (SRAM: per compute tile)
    uint64_t operator[](hw::Level level) const { return bytes[int(level)]; }
};

/// The marks over the ops of `program` for which done[op.id] holds (every op when `done` is
/// null): kpu-sim passes the ops its run completed.
HighWater high_water(const BoundProgram& program, const hw::AddressMap& map, const std::vector<bool>* done = nullptr);

}  // namespace kpu::compiler
