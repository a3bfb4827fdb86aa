#include "compiler/reblock.h"

#include <algorithm>
#include <numeric>
#include <optional>
#include <sstream>
#include <tuple>

#include "compiler/ffn_fusion.h"
#include "compiler/flash_attention.h"
#include "compiler/generate.h"
#include "compiler/keep_in_l3.h"
#include "compiler/memory_plan.h"
#include "compiler/ops/op_schema.h"
#include "compiler/tiler.h"

namespace kpu::compiler {
namespace {

uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

/// Whether `plan` fits one compute tile of `config` at every on-chip level.
bool plan_fits(const std::vector<BufferSpec>& plan, const hw::Config& config) {
    for (hw::Level level : {hw::Level::L1, hw::Level::L2, hw::Level::L3})
        if (level_bytes(plan, level) > level_capacity(config, level)) return false;
    return true;
}

/// The divisors of n, largest first.
std::vector<uint32_t> divisors(uint32_t n) {
    std::vector<uint32_t> small, large;
    for (uint32_t d = 1; uint64_t(d) * d <= n; ++d)
        if (n % d == 0) {
            small.push_back(d);
            if (d != n / d) large.push_back(n / d);
        }
    std::vector<uint32_t> out(large.begin(), large.end());
    out.insert(out.end(), small.rbegin(), small.rend());
    return out;
}

/// ceil(n / 2^i) for i = 0, 1, ... down to 1: the sub-task sides tried (fewest sub-tasks first).
std::vector<uint64_t> halvings(uint64_t n) {
    std::vector<uint64_t> out;
    for (uint64_t d = 1;; d *= 2) {
        const uint64_t v = ceil_div(n, d);
        if (out.empty() || out.back() != v) out.push_back(v);
        if (v <= 1) return out;
    }
}

/// The largest task of every kernel, in elements, in one pass over the tasks.
std::vector<TaskExtent> task_extents(const Program& program) {
    std::vector<KernelDims> dims;
    dims.reserve(program.kernels.size());
    for (const Kernel& k : program.kernels) dims.push_back(kernel_dims(program.graph, k.op));
    std::vector<TaskExtent> out(program.kernels.size());
    for (const Task& t : program.tasks) {
        const TileShape& s = program.kernels[t.kernel].tile;
        const KernelDims& d = dims[t.kernel];
        TaskExtent& e = out[t.kernel];
        e.rows = std::max(e.rows, std::min<uint64_t>(d.m, uint64_t(t.r1) * s.tm) - uint64_t(t.r0) * s.tm);
        e.cols = std::max(e.cols, std::min<uint64_t>(d.n, uint64_t(t.c1) * s.tn) - uint64_t(t.c0) * s.tn);
    }
    return out;
}

/// A kernel's new tiling: the tile, and the sub-task sides in new tiles (rows x columns; 0:
/// an original task stays one task).
struct Blocking {
    TileShape tile;
    uint64_t task_rows = 0, task_cols = 0;
};

/// The largest kc (a multiple of tk, or all of K) with which a matmul's plan fits; nullopt
/// when none does. One pass of all K comes first (its `out` is two strips, not the task's C).
std::optional<uint32_t> fitting_kc(const MatmulOperands& mm, Dataflow dataflow, TileShape tile, uint64_t kc_most,
                                   TaskExtent extent, const hw::Config& config) {
    const auto fits = [&](uint64_t kc) {
        tile.kc = kc >= mm.k ? 0 : uint32_t(kc);
        return plan_fits(plan_buffers(mm, mm.k, dataflow, tile, extent), config);
    };
    if (kc_most >= mm.k && fits(mm.k)) return 0u;
    const uint64_t most = std::min<uint64_t>(kc_most, mm.k - 1) / tile.tk;  // chunks per pass, several passes
    if (most == 0 || !fits(tile.tk)) return std::nullopt;
    uint64_t lo = 1, hi = most + 1;  // fits(lo tk), !fits(hi tk) or hi past the range
    while (hi - lo > 1) {
        const uint64_t mid = lo + (hi - lo) / 2;
        (fits(mid * tile.tk) ? lo : hi) = mid;
    }
    return uint32_t(lo * tile.tk);
}

/// A matmul's (or convolution's) sub-tiling: tile sides dividing the original ones, sub-tasks
/// cut from each task. Chosen, among those that fit, by (1) the least fabric the sub-tiles
/// leave idle on `config`'s fabric, (2) the least DRAM traffic (the biggest sub-tasks: every
/// sub-task reads its rows of A and columns of B), (3) the fewest ops (the longest K chunks
/// and passes). nullopt when nothing fits.
std::optional<Blocking> block_matmul(const Graph& graph, const Kernel& kernel, TaskExtent extent,
                                     const hw::Config& config) {
    const MatmulOperands mm = matmul_operands(graph, kernel.op);
    const TileShape& t = kernel.tile;
    const uint64_t K = mm.k, R = config.fabric.rows, C = config.fabric.cols;
    struct Candidate {
        uint32_t tm, tn;
        uint64_t rows, cols;  ///< sub-task sides in new tiles
        double idle;          ///< fabric blocks per useful one
        uint64_t dram;        ///< elements an original task's sub-tasks read
    };
    std::vector<Candidate> all;
    for (uint32_t tm : divisors(t.tm))
        for (uint32_t tn : divisors(t.tn)) {
            const double idle = double(ceil_div(tm, R) * R) / tm * double(ceil_div(tn, C) * C) / tn;
            for (uint64_t rows : halvings(ceil_div(extent.rows, tm)))
                for (uint64_t cols : halvings(ceil_div(extent.cols, tn))) {
                    const uint64_t pr = ceil_div(ceil_div(extent.rows, tm), rows);
                    const uint64_t pc = ceil_div(ceil_div(extent.cols, tn), cols);
                    const uint64_t sub_rows = std::min<uint64_t>(rows * tm, extent.rows);
                    const uint64_t a = mm.conv ? mm.conv->max_region_pixels(sub_rows) * mm.conv->cg * pr : extent.rows * K;
                    all.push_back({tm, tn, rows, cols, idle, a * pc + K * extent.cols * pr});
                }
        }
    std::stable_sort(all.begin(), all.end(), [](const Candidate& a, const Candidate& b) {
        return std::tie(a.idle, a.dram) < std::tie(b.idle, b.dram);
    });
    std::optional<Blocking> best;
    uint64_t best_ops = 0;
    const Candidate* first = nullptr;
    for (const Candidate& c : all) {
        if (first && (c.idle != first->idle || c.dram != first->dram)) break;  // only equals of the first that fits
        const TaskExtent sub{std::min<uint64_t>(c.rows * c.tm, extent.rows), std::min<uint64_t>(c.cols * c.tn, extent.cols)};
        for (uint32_t tk : divisors(t.tk)) {  // the longest K chunk that fits, then the longest pass
            const std::optional<uint32_t> kc = fitting_kc(mm, kernel.dataflow, {c.tm, c.tn, tk, 0}, t.pass_k(K), sub, config);
            if (!kc) continue;
            const TileShape tile{c.tm, c.tn, tk, *kc};
            const uint64_t pass = tile.pass_k(K), passes = ceil_div(K, pass);
            const uint64_t chunks = (passes - 1) * ceil_div(pass, tk) + ceil_div(K - (passes - 1) * pass, tk);
            const uint64_t ops = ceil_div(mm.m, c.tm) * ceil_div(mm.n, c.tn) * (chunks + passes);
            if (!best || ops < best_ops) {
                best = Blocking{tile, c.rows, c.cols};
                best_ops = ops;
            }
            if (!first) first = &c;
            break;
        }
    }
    return best;
}

/// A vector op's row tiles: the longest that fits and on which every task's first and end
/// row lie (any length for a kernel of one task; whole matrices for a Transpose).
std::optional<Blocking> block_vector(const Program& program, uint32_t kernel_index, const hw::Config& config) {
    const Kernel& kernel = program.kernels[kernel_index];
    const VectorOperands v = vector_operands(program.graph, kernel.op);
    const uint64_t unit = v.transpose ? v.matrix_rows : 1;
    const auto fits = [&](uint64_t tm) { return plan_fits(plan_vector_buffers(program.graph, v, std::min(tm, v.rows)), config); };
    if (!fits(unit)) return std::nullopt;
    uint64_t lo = 1, hi = kernel.tile.tm / unit + 1;  // fits(lo unit), !fits(hi unit) or hi past tm
    while (hi - lo > 1) {
        const uint64_t mid = lo + (hi - lo) / 2;
        (fits(mid * unit) ? lo : hi) = mid;
    }
    // The task boundaries inside the rows (none for one task): the row tile must divide them.
    uint64_t boundaries = 0;
    for (const Task& t : program.tasks) {
        if (t.kernel != kernel_index) continue;
        boundaries = std::gcd(boundaries, uint64_t(t.r0) * kernel.tile.tm);
        if (uint64_t(t.r1) * kernel.tile.tm < v.rows) boundaries = std::gcd(boundaries, uint64_t(t.r1) * kernel.tile.tm);
    }
    uint64_t tm = lo * unit;
    while (boundaries && boundaries % tm) tm -= unit;  // unit divides every boundary: ends at unit
    return Blocking{{uint32_t(tm), kernel.tile.tn, kernel.tile.tk, kernel.tile.kc}, 0, 0};
}

/// A copy op's pieces: chunks of rows that divide the original ones, each as wide as fits.
std::optional<Blocking> block_copy(const Graph& graph, const Kernel& kernel, const hw::Config& config) {
    const CopyOperands c = copy_operands(graph, kernel.op);
    const auto fits = [&](uint32_t tn, uint64_t tk) {
        return plan_fits(plan_copy_buffers(graph, c, {1, tn, uint32_t(tk), 0}), config);
    };
    for (uint32_t tn : divisors(kernel.tile.tn)) {
        if (!fits(tn, 1)) continue;
        uint64_t lo = 1, hi = uint64_t(kernel.tile.tk) + 1;  // fits(tn, lo), !fits(tn, hi) or hi past tk
        while (hi - lo > 1) {
            const uint64_t mid = lo + (hi - lo) / 2;
            (fits(tn, mid) ? lo : hi) = mid;
        }
        return Blocking{{1, tn, uint32_t(lo), 0}, 0, 0};
    }
    return std::nullopt;
}

/// A fused kernel (ffn_fusion.h, flash_attention.h): the largest divisors of its row block,
/// and of an FFN's K chunk (tn = tk) or an attention's key block (tn), with which its plan
/// fits. Both add their K chunks in the same order whatever their size (the same bits). A
/// task keeps all of its columns (an attention task all of its keys); an attention task is
/// one query block (the .kpu reader's rule), an FFN task keeps its rows.
std::optional<Blocking> block_fused(const Graph& graph, const Kernel& kernel, TaskExtent extent,
                                    const hw::Config& config) {
    const bool flash = is_flash_op(graph.ops()[kernel.op]);
    for (uint32_t tm : divisors(kernel.tile.tm))
        for (uint32_t tn : divisors(kernel.tile.tn)) {
            Kernel k = kernel;
            k.tile.tm = tm, k.tile.tn = tn;
            if (!flash) k.tile.tk = tn;
            if (plan_fits(plan_buffers(graph, k, extent), config)) return Blocking{k.tile, flash ? 1u : 0u, 0};
        }
    return std::nullopt;
}

/// The smallest sub-tiling of a kernel's class: what the binder's refusal then names.
Blocking smallest(const Graph& graph, const Kernel& kernel) {
    const Op& op = graph.ops()[kernel.op];
    if (is_copy_op(graph, op)) return {{1, 1, 1, 0}, 0, 0};
    if (is_flash_op(op)) return {{1, 1, kernel.tile.tk, 0}, 1, 0};
    if (is_ffn_op(op)) return {{1, 1, 1, 0}, 0, 0};
    if (is_vector_op(op)) {
        const VectorOperands v = vector_operands(graph, kernel.op);
        return {{uint32_t(v.transpose ? v.matrix_rows : 1), kernel.tile.tn, kernel.tile.tk, kernel.tile.kc}, 0, 0};
    }
    const uint64_t k = matmul_operands(graph, kernel.op).k;
    return {{1, 1, 1, k > 1 ? 1u : 0u}, 1, 1};
}

const char* op_class(const Graph& graph, const Kernel& kernel) {
    const Op& op = graph.ops()[kernel.op];
    if (is_copy_op(graph, op)) return "copy";
    if (is_vector_op(op)) return "vector";
    if (is_flash_op(op) || is_ffn_op(op)) return op.kind.c_str();
    return matmul_operands(graph, kernel.op).conv ? "conv" : "matmul";
}

/// Appends the sub-tasks of `task` (of a kernel re-blocked from `from` by `b`) to `out`:
/// its element rows and columns in new tiles (its boundaries lie on them), cut into sub-tasks
/// row by row.
void split_task(const Task& task, const TileShape& from, const Blocking& b, const KernelDims& dims,
                std::vector<Task>& out) {
    const auto range = [](uint64_t first, uint64_t end, uint64_t extent, uint64_t old_side, uint64_t side) {
        return std::pair<uint64_t, uint64_t>{first * old_side / side,
                                             ceil_div(std::min(extent, end * old_side), side)};
    };
    const auto [r0, r1] = range(task.r0, task.r1, dims.m, from.tm, b.tile.tm);
    const auto [c0, c1] = range(task.c0, task.c1, dims.n, from.tn, b.tile.tn);
    const uint64_t rows = b.task_rows ? b.task_rows : r1 - r0, cols = b.task_cols ? b.task_cols : c1 - c0;
    for (uint64_t r = r0; r < r1; r += rows)
        for (uint64_t c = c0; c < c1; c += cols)
            out.push_back({task.kernel, uint32_t(r), uint32_t(std::min(r1, r + rows)), uint32_t(c),
                           uint32_t(std::min(c1, c + cols)), {}, task.batch});
}

}  // namespace

bool fits_config(const Program& program, const hw::Config& config) {
    const std::vector<TaskExtent> extents = task_extents(program);
    for (uint32_t k = 0; k < program.kernels.size(); ++k)
        if (!plan_fits(plan_buffers(program.graph, program.kernels[k], extents[k]), config)) return false;
    return true;
}

Program reblock(const Program& program, const hw::Config& config, ReblockReport* report) {
    if (report) *report = {config.name, {}};
    const Graph& graph = program.graph;
    const std::vector<TaskExtent> extents = task_extents(program);
    std::vector<std::optional<Blocking>> blocking(program.kernels.size());
    bool any = false;
    for (uint32_t k = 0; k < program.kernels.size(); ++k) {
        const Kernel& kernel = program.kernels[k];
        if (plan_fits(plan_buffers(graph, kernel, extents[k]), config)) continue;
        const Op& op = graph.ops()[kernel.op];
        std::optional<Blocking> b = is_copy_op(graph, op)  ? block_copy(graph, kernel, config)
                                    : is_vector_op(op)     ? block_vector(program, k, config)
                                    : is_flash_op(op) || is_ffn_op(op) ? block_fused(graph, kernel, extents[k], config)
                                                           : block_matmul(graph, kernel, extents[k], config);
        blocking[k] = b ? *b : smallest(graph, kernel);
        any = true;
    }
    if (!any && l3_plan_holds(program, config)) return program;

    Program out;
    out.graph = program.graph;
    out.target = target_of(config);
    out.weights = program.weights;
    out.passes = program.passes;  // the memory plan (its reuse deps are kept below) and the rest
    out.kernels = program.kernels;
    std::vector<KernelDims> dims;
    for (uint32_t k = 0; k < out.kernels.size(); ++k) {
        dims.push_back(kernel_dims(graph, out.kernels[k].op));
        if (blocking[k]) out.kernels[k].tile = blocking[k]->tile;
    }
    // Each task becomes its sub-tasks, in place; a task's new dependencies are the sub-tasks
    // that write what it reads, and every sub-task of a task it waited for without reading
    // from it (an ordering a hand-written .kpu may ask for).
    ProducerIndex old_producers(program), producers(out);
    std::vector<uint32_t> first_new(program.tasks.size() + 1, 0);
    out.tasks.reserve(program.tasks.size());
    for (uint32_t t = 0; t < program.tasks.size(); ++t) {
        const Task& task = program.tasks[t];
        std::vector<uint32_t> extra;
        if (!task.deps.empty()) {
            const std::vector<uint32_t> read = old_producers.producers(t);
            for (uint32_t d : task.deps)
                if (!std::binary_search(read.begin(), read.end(), d))
                    for (uint32_t s = first_new[d]; s < first_new[d + 1]; ++s) extra.push_back(s);
        }
        old_producers.add(t);
        first_new[t] = uint32_t(out.tasks.size());
        if (const auto& b = blocking[task.kernel])
            split_task(task, program.kernels[task.kernel].tile, *b, dims[task.kernel], out.tasks);
        else
            out.tasks.push_back({task.kernel, task.r0, task.r1, task.c0, task.c1, {}, task.batch});
        for (uint32_t n = first_new[t]; n < out.tasks.size(); ++n) {
            std::vector<uint32_t> deps = producers.producers(n);
            deps.insert(deps.end(), extra.begin(), extra.end());
            std::sort(deps.begin(), deps.end());
            deps.erase(std::unique(deps.begin(), deps.end()), deps.end());
            out.tasks[n].deps = std::move(deps);
            producers.add(n);
        }
        first_new[t + 1] = uint32_t(out.tasks.size());
    }
    // The hints by the closed forms, for the new tiles and the new target's fabric.
    std::vector<std::pair<uint32_t, uint32_t>> span(out.kernels.size(), {UINT32_MAX, 0});
    for (uint32_t t = 0; t < out.tasks.size(); ++t) {
        auto& s = span[out.tasks[t].kernel];
        s = {std::min(s.first, t), t + 1};
    }
    std::vector<uint64_t> tasks_before(program.kernels.size(), 0), tasks_after(out.kernels.size(), 0);
    for (const Task& t : program.tasks) ++tasks_before[t.kernel];
    for (const Task& t : out.tasks) ++tasks_after[t.kernel];
    out.hints = {};
    for (uint32_t k = 0; k < out.kernels.size(); ++k) {
        Kernel& kernel = out.kernels[k];
        const uint64_t estimated = blocking[k] ? 0 : kernel.hints.estimated_cycles;
        kernel.hints = span[k].first < span[k].second ? kernel_hints(out, k, span[k].first, span[k].second) : Hints{};
        kernel.hints.estimated_cycles = estimated;
        out.hints.add(kernel.hints);
        if (!report || !blocking[k]) continue;
        const TileShape& from = program.kernels[k].tile;
        const TileShape& to = kernel.tile;
        ReblockedKernel r;
        r.kernel = k;
        r.op = graph.ops()[kernel.op].name;
        r.op_class = op_class(graph, kernel);
        r.from = from;
        r.to = to;
        r.sub_tiles = ceil_div(from.tm, to.tm) * ceil_div(from.tn, to.tn) * ceil_div(from.tk, to.tk);
        r.tasks_from = tasks_before[k];
        r.tasks_to = tasks_after[k];
        report->kernels.push_back(r);
    }
    if (program.memory) {  // the same plan (the SRAM marks are a config's: estimate_memory(out, config))
        out.memory = program.memory;
        drop_keep_in_l3(out);  // the new tiles' buffers may need that L3
        out.memory = estimate_memory(out, program.memory->granule);
    }
    return out;
}

std::string describe(const ReblockReport& report) {
    std::ostringstream out;
    for (const ReblockedKernel& k : report.kernels) {
        out << "op '" << k.op << "': ";
        if (k.op_class == "vector")
            out << "row tiles of " << k.from.tm << " rows re-blocked to " << k.to.tm << " rows";
        else if (k.op_class == "copy")
            out << "pieces of " << k.from.tn << "x" << k.from.tk << " re-blocked to " << k.to.tn << "x" << k.to.tk;
        else
            out << "tile " << k.from.tm << "x" << k.from.tn << "x" << k.from.tk << " re-blocked to " << k.to.tm << "x"
                << k.to.tn << "x" << k.to.tk;
        out << " for " << report.config << ": " << k.sub_tiles << " sub-tiles";
        if ((k.op_class == "matmul" || k.op_class == "conv") && k.to.kc != k.from.kc)
            out << ", K in passes of " << (k.to.kc ? std::to_string(k.to.kc) : std::string("all of K"));
        out << ", " << k.tasks_to << " tasks (were " << k.tasks_from << ")\n";
    }
    return out.str();
}

}  // namespace kpu::compiler
