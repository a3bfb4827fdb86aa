// Memory planning (docs/compiler.md, "Memory planning"): when each DRAM tensor holds data over
// the program's schedule, and where in DRAM it sits so that a tensor reuses the space of
// tensors that are dead by the time it is written. The plan is a pure function of the
// program's graph (its op order is the kernel order) and the DRAM interleave granule, so the
// compiler, the binder, the .kpu reader and kpu-sim all derive the same one.
#pragma once

#include <cstdint>
#include <vector>

#include "compiler/dfx.h"
#include "hardware/config.h"

namespace kpu::compiler {

/// When a DRAM tensor (a root of alias_roots) holds data, in steps of the schedule: step 0 is
/// the host's writes before the first kernel, step k + 1 kernel k (the graph's k-th op that is
/// no view; a kernel's tasks run in any order, so a kernel is the unit), and step K + 1 the
/// host's reads after the last of the K kernels. Inclusive at both ends.
struct Lifetime {
    uint32_t first = 0;  ///< an input's and a constant's: 0; else the first kernel writing it
    uint32_t last = 0;   ///< an output's and a constant's: K + 1; else the last kernel reading (or writing) it
    bool overlaps(const Lifetime& o) const { return first <= o.last && o.first <= last; }
};

/// Where every DRAM tensor sits, in bytes from the tensor area's base (the binder's address 0).
struct MemoryPlan {
    uint64_t granule = 0;               ///< every offset is a multiple of it (the DRAM interleave)
    bool reuse = false;                 ///< some tensor reuses another's bytes (else one range per tensor)
    std::vector<bool> placed;           ///< per graph tensor: whether it has DRAM of its own (a root, no compile-time value)
    std::vector<uint64_t> offset;       ///< per graph tensor: its bytes' start (a view: its root's)
    std::vector<uint64_t> end;          ///< per graph tensor: its range's end (its bytes rounded up to its alignment)
    std::vector<Lifetime> lifetime;     ///< per graph tensor (a view: its root's)
    uint64_t extent = 0;                ///< the highest byte any tensor occupies, + 1 (max of offset + bytes)
    uint32_t top = kNoTensor;           ///< the tensor that ends at `extent` (the first such one)

    /// Whether tensor `b` (a root) reuses bytes of tensor `a`: `a`'s lifetime ends before
    /// `b`'s begins and their ranges overlap.
    bool reuses(uint32_t b, uint32_t a) const {
        return lifetime[a].last < lifetime[b].first && offset[a] < end[b] && offset[b] < end[a];
    }
};

/// Lifetimes of every tensor of the checked `graph` (a view's: its root's, over the readers
/// of the root and of every view of it).
std::vector<Lifetime> tensor_lifetimes(const Graph& graph);

/// The plan of `graph`'s DRAM tensors. With `reuse`: tensors in decreasing size (ties by
/// first step, then index), each at the lowest-waste gap (best fit) among the tensors already
/// placed whose lifetimes overlap its own, or above them all; a tensor of at least `granule`
/// bytes from a multiple of it (whole interleave blocks), a smaller one from a multiple of
/// kAlign (so that biases pack), each range its bytes rounded up to that alignment.
/// Without, or when that lowers no peak (then `reuse` is false): one range per tensor in index
/// order, as the binder places them at -O0. The tensors `in_l3` marks (keep-in-l3's
/// residents, per graph tensor; empty: none) have no DRAM.
MemoryPlan plan_memory(const Graph& graph, uint64_t granule, bool reuse, const std::vector<bool>& in_l3 = {});

/// The checked `graph` with its ops in an order of smaller peak DRAM when there is one: a
/// greedy schedule that takes, among the ops whose inputs are ready, the one that allocates
/// least net of what it frees (ties: the graph's order, so that chains keep theirs), kept
/// only when its planned peak (plan_memory with reuse) is below the given order's; else the
/// graph itself.
Graph order_for_memory(const Graph& graph, uint64_t granule);

/// The plan the binder follows for `program`: with reuse when it ran plan-memory and records
/// its estimate (at the granule it was planned for, MemoryEstimate::granule), else without,
/// at `granule`; without the tensors keep-in-l3 keeps in L3 (program_l3_plan).
MemoryPlan program_memory_plan(const Program& program, uint64_t granule);

/// Adds to program.tasks' deps what reuse needs under out-of-order execution: every task that
/// writes a tensor B depends on every task that reads or writes a tensor A that last held some
/// of B's bytes before B (A's lifetime ends before B's begins; the tensors that held them
/// before A are waited for through A's writers, which depend on theirs). Keeps each task's
/// deps sorted and unique. Returns how many dependencies it added.
uint64_t add_reuse_deps(Program& program, const MemoryPlan& plan);

/// The most reuse dependencies compile() adds (add_reuse_deps's count); beyond, plan-memory
/// leaves the program's DRAM as -O0 places it. A dependency takes about 10 bytes of the .kpu:
/// 4 million keep a program well inside the 64 MiB a .kpu may have.
constexpr uint64_t kMaxReuseDeps = 4'000'000;

/// The kernels of the graph's ops, each op's index: the non-view ops in order (the steps of
/// Lifetime are these plus one).
std::vector<uint32_t> kernel_ops(const Graph& graph);

/// estimate_memory's DRAM figures: what the plan needs (the SRAM marks, which depend on the
/// config's layout of the buffers, are 0).
MemoryEstimate estimate_memory(const Program& program, uint64_t granule);

/// The most ops (count_ops) a program may have for estimate_memory to bind it for its SRAM
/// marks: binding costs about a microsecond per op, which would make the marks, not the
/// compile, the time kpu-compile takes (8192^3 matmul: 5.5 M ops, 4 s against 0.3 s).
constexpr uint64_t kMaxSramMarkOps = 250'000;

/// Whether estimate_memory(program, config) gives `program`'s SRAM marks: it has at most
/// kMaxSramMarkOps ops.
bool sram_marks_estimated(const Program& program);

/// estimate_memory on `config`: the DRAM figures at the program's own granule (plan-memory's,
/// else the config's interleave) and, when sram_marks_estimated (else 0), the SRAM marks of the
/// program bound on `config` (high_water.h): what kpu-sim's stats measure when it runs the
/// program on `config`. Throws the binder's CompileError when the program does not fit
/// `config` even re-blocked.
MemoryEstimate estimate_memory(const Program& program, const hw::Config& config);

/// Sets the SRAM marks of program.memory (when plan-memory ran) to estimate_memory(program,
/// config)'s. Binds the program, which takes longer than compiling a program of a hundred
/// thousand ops: compile() leaves the marks 0, and kpu-compile records them once it has
/// checked that the .kpu is not too large to be read back.
void record_sram_marks(Program& program, const hw::Config& config);

}  // namespace kpu::compiler
