// Analytic timing of the output-stationary R x C fabric (docs/models.md derives it).
// Plain C++ so the compiler's cost model and the tests can use the same formulas.
#pragma once

#include <algorithm>
#include <cstdint>

#include "hardware/fabric_command.h"

namespace kpu::hw {

inline uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

/// An m x n x k command runs ceil(m/R) * ceil(n/C) blocks back to back, `macs_per_cycle` k
/// steps per cycle each (the config's macs_per_pe_cycle of the command's element type: a PE
/// does that many MACs of it per cycle), plus one wavefront fill: operands enter skewed, so the last PE in use starts
/// min(m,R) - 1 + min(n,C) - 1 cycles after the first.
/// Starting from a C tile in L1 (load_c) first shifts it in, the reverse of a drain: m rows
/// for each of the ceil(n/C) column blocks.
inline uint64_t matmul_cycles(const hw::MatmulCommand& c, uint32_t rows, uint32_t cols, uint32_t macs_per_cycle = 1) {
    if (c.m == 0 || c.n == 0 || c.k == 0) return 0;
    const uint64_t load = c.load_c ? ceil_div(c.n, cols) * c.m : 0;
    return load + ceil_div(c.m, rows) * ceil_div(c.n, cols) * ceil_div(c.k, macs_per_cycle) + std::min(c.m, rows) +
           std::min(c.n, cols) - 2;
}

/// Draining shifts a block's results out one row per cycle, all columns in parallel: m rows
/// for each of the ceil(n/C) column blocks. The epilogue is pipelined into that shift.
inline uint64_t drain_cycles(const hw::DrainCommand& c, uint32_t /*rows*/, uint32_t cols) {
    return ceil_div(c.n, cols) * c.m;
}

}  // namespace kpu::hw
