// The DFX generator: graph + target config -> Program. Tiles every matmul (tiler.h), lays its
// C tile grid out as a grid of tasks, links tasks that read another kernel's DRAM output, and
// computes the hints by the closed forms of docs/compiler.md.
#pragma once

#include "compiler/dfx.h"
#include "compiler/passes.h"
#include "compiler/tiler.h"
#include "compiler/unit_choice.h"
#include "hardware/config.h"

namespace kpu::compiler {

struct CompileOptions {
    CompileOptions(Dataflow dataflow_ = Dataflow::OutputStationary, DepthwiseUnit depthwise_ = DepthwiseUnit::Auto,
                   PassSelection passes_ = {})
        : dataflow(dataflow_), depthwise(depthwise_), passes(std::move(passes_)) {}
    Dataflow dataflow = Dataflow::OutputStationary;
    DepthwiseUnit depthwise = DepthwiseUnit::Auto;  ///< where depthwise Convs run (unit_choice.h)
    PassSelection passes;                           ///< which optimization passes run (passes.h)
    std::vector<std::string>* notes = nullptr;      ///< where passes say what they left and why (kpu-compile -v)
};

/// Compiles `graph` (checked here on a copy: Graph::check, so a graph built in C++ needs no
/// separate call) for `target`. Throws CompileError with one precise line. `weights` (may be
/// null) holds the values of the constants that are not inline; a pass that folds constants
/// reads them and replaces or adds entries (the caller writes them beside the .kpu).
Program compile(const Graph& graph, const hw::Config& target, const CompileOptions& options = {},
                Weights* weights = nullptr);

/// What a program compiled for `config` records as its target.
Target target_of(const hw::Config& config);

/// Appends the kernel of matmul `op` as `choice` tiles it: its C tile grid cut into tasks of
/// choice.task_rows x task_cols tiles, row by row (each with the earlier tasks it reads
/// from), and its hints, which it also adds to program.hints (so a program built kernel by
/// kernel is consistent: read_kpu(write_kpu(p)) == p). Returns the kernel's index. With
/// `producers` (an index of every task so far, which gets the new ones), adding kernel after
/// kernel stays near-linear in tasks; without it, one is built from the program's tasks.
uint32_t add_kernel(Program& program, uint32_t op, Dataflow dataflow, const TilingChoice& choice,
                    ProducerIndex* producers = nullptr);

/// Hints of one kernel from its tasks and the target fabric (estimated_cycles is left 0).
/// Only tasks [first_task, end_task) are looked at (default: all): where the kernel's tasks
/// are known to lie, a program of many kernels is not scanned once per kernel.
Hints kernel_hints(const Program& program, uint32_t kernel, uint32_t first_task = 0,
                   uint32_t end_task = UINT32_MAX);

/// Op counts of the op stream, indexed by DfxOpKind.
struct OpCounts {
    uint64_t by_kind[6] = {0, 0, 0, 0, 0, 0};
    uint64_t total = 0;
    bool operator==(const OpCounts& o) const;
};
/// By formula from the tasks (fast, whatever the size).
OpCounts count_ops(const Program& program);
/// By expanding the stream (what the formula is tested against).
OpCounts count_expanded_ops(const Program& program);

}  // namespace kpu::compiler
