// The DFX generator: graph + target config -> Program. Tiles every matmul (tiler.h), lays its
// C tile grid out as a grid of tasks, links tasks that read another kernel's DRAM output, and
// computes the hints by the closed forms of docs/compiler.md.
#pragma once

#include "compiler/dfx.h"
#include "hardware/config.h"

namespace kpu::compiler {

struct CompileOptions {
    Dataflow dataflow = Dataflow::OutputStationary;
};

Program compile(const Graph& graph, const hw::Config& target, const CompileOptions& options = {});

/// Hints of one kernel from its tasks and the target fabric (estimated_cycles is left 0).
Hints kernel_hints(const Program& program, uint32_t kernel);

/// Op counts of the op stream, indexed by DfxOpKind.
struct OpCounts {
    uint64_t by_kind[5] = {0, 0, 0, 0, 0};
    uint64_t total = 0;
    bool operator==(const OpCounts& o) const;
};
/// By formula from the tasks (fast, whatever the size).
OpCounts count_ops(const Program& program);
/// By expanding the stream (what the formula is tested against).
OpCounts count_expanded_ops(const Program& program);

}  // namespace kpu::compiler
