#include "compiler/keep_in_l3.h"

#include <algorithm>
#include <numeric>

#include "compiler/generate.h"
#include "compiler/memory_plan.h"
#include "compiler/ops/op_schema.h"

namespace kpu::compiler {

namespace {

/// A resident tensor's range on the tiles that hold its bands, as depths below the top of L3
/// [top, bottom), and its lifetime.
struct Held {
    uint64_t top, bottom;
    Lifetime life;
};

/// The smallest depth from which `size` bytes fit among `live` (the placed tensors whose
/// lifetimes overlap the new one's), first fit from the top of L3.
uint64_t first_free_depth(std::vector<Held>& live, uint64_t size) {
    std::sort(live.begin(), live.end(), [](const Held& a, const Held& b) { return a.top < b.top; });
    uint64_t depth = 0;
    for (const Held& h : live) {
        if (h.top >= depth + size) return depth;
        depth = std::max(depth, h.bottom);
    }
    return depth;
}

}  // namespace

L3Plan plan_l3(const Program& program, uint64_t capacity) {
    const Graph& g = program.graph;
    const size_t n = g.tensors().size();
    L3Plan plan;
    plan.resident.assign(n, false);
    plan.first_tile.assign(n, 0);
    plan.offset.assign(n, 0);
    plan.band_rows.assign(n, 1);
    plan.tiles = program.target.compute_tiles;
    if (capacity == 0 || plan.tiles == 0 || program.kernels.empty()) return plan;
    const std::vector<uint32_t> roots = alias_roots(g);
    const std::vector<Lifetime> life = tensor_lifetimes(g);
    // Per kernel (step k + 1): the L3 its buffers take on every tile it runs on.
    const std::vector<TaskExtent> extents = max_task_extents(program);
    std::vector<uint64_t> used(program.kernels.size());
    for (uint32_t k = 0; k < program.kernels.size(); ++k)
        used[k] = level_bytes(plan_buffers(g, program.kernels[k], extents[k]), hw::Level::L3);
    // Per root: the kernels that read it (an op reading it twice counts once), and its views.
    std::vector<uint64_t> readers(n, 0);
    std::vector<bool> viewed(n, false);
    for (uint32_t t = 0; t < n; ++t)
        if (roots[t] != t) viewed[roots[t]] = true;
    // A layout copy's strided blocks step over rows: in bands they would cut into a transfer
    // per row, so what a copy reads or writes stays in DRAM.
    std::vector<bool> copied(n, false);
    for (const Kernel& kernel : program.kernels) {
        const Op& op = g.ops()[kernel.op];
        if (!is_copy_op(g, op)) continue;
        for (const auto* list : {&op.inputs, &op.outputs})
            for (uint32_t t : *list)
                if (t != kNoTensor) copied[roots[t]] = true;
    }
    for (const Kernel& kernel : program.kernels) {
        std::vector<uint32_t> read;
        for (uint32_t t : g.ops()[kernel.op].inputs)
            if (t != kNoTensor) read.push_back(roots[t]);
        std::sort(read.begin(), read.end());
        read.erase(std::unique(read.begin(), read.end()), read.end());
        for (uint32_t r : read) ++readers[r];
    }
    const uint32_t kernels = uint32_t(program.kernels.size());
    std::vector<uint32_t> candidates;
    for (uint32_t t = 0; t < n; ++t) {
        const Tensor& tensor = g.tensor(t);
        if (roots[t] != t || viewed[t] || copied[t] || is_compile_time_value(g, t) || tensor.bytes() == 0 || readers[t] == 0) continue;
        if (tensor.role.value_or(TensorRole::Intermediate) != TensorRole::Intermediate) continue;
        if (tensor.dtype != DType::Float32) continue;  // keep-in-l3 keeps float32 tensors only
        if (life[t].first < 1 || life[t].last > kernels) continue;
        candidates.push_back(t);
    }
    const auto saved = [&](uint32_t t) { return g.tensor(t).bytes() * (1 + readers[t]); };
    std::stable_sort(candidates.begin(), candidates.end(), [&](uint32_t a, uint32_t b) { return saved(a) > saved(b); });
    // The placed ones per step of their lifetimes: a candidate looks only at those of its own
    // steps (linear in the lifetimes' lengths, not quadratic in the tensors).
    std::vector<Held> held, live;
    std::vector<std::vector<uint32_t>> at_step(kernels + 2);
    std::vector<uint64_t> seen;
    uint64_t stamp = 0;
    uint64_t next_tile = 0;
    for (uint32_t t : candidates) {
        const Tensor& tensor = g.tensor(t);
        const uint64_t row_bytes = tensor.shape.size() >= 2 ? tensor.shape.back() * dtype_bytes(tensor.dtype) : tensor.bytes();
        const uint64_t rows = tensor.bytes() / row_bytes;
        const uint64_t band_rows = (rows + plan.tiles - 1) / plan.tiles;
        const uint64_t bands = (rows + band_rows - 1) / band_rows;
        const uint64_t size = round_up(std::min(rows, band_rows) * row_bytes, kAlign);
        uint64_t busy = 0;  // the most L3 a kernel of its lifetime takes
        for (uint32_t step = life[t].first; step <= life[t].last; ++step) busy = std::max(busy, used[step - 1]);
        if (busy >= capacity || size > capacity - busy) continue;
        live.clear();
        ++stamp;
        for (uint32_t step = life[t].first; step <= life[t].last; ++step)
            for (uint32_t h : at_step[step])
                if (seen[h] != stamp) seen[h] = stamp, live.push_back(held[h]);
        const uint64_t depth = first_free_depth(live, size);
        if (depth + size > capacity - busy) continue;
        for (uint32_t step = life[t].first; step <= life[t].last; ++step) at_step[step].push_back(uint32_t(held.size()));
        held.push_back({depth, depth + size, life[t]});
        seen.push_back(0);
        plan.resident[t] = true;
        plan.first_tile[t] = uint32_t(next_tile);
        plan.offset[t] = capacity - depth - size;
        plan.band_rows[t] = band_rows;
        next_tile = (next_tile + bands) % plan.tiles;
        ++plan.count;
    }
    return plan;
}

L3Plan program_l3_plan(const Program& program) {
    return plan_l3(program, program.memory ? program.memory->l3_capacity : 0);
}

std::vector<L3Traffic> l3_traffic(const Program& program, const std::vector<bool>& resident) {
    std::vector<L3Traffic> traffic(program.kernels.size());
    for_each_op(program, [&](const DfxOp& op) {
        if ((op.kind != DfxOpKind::Load && op.kind != DfxOpKind::Store) || !resident[op.tensor]) return;
        L3Traffic& k = traffic[program.tasks[op.task].kernel];
        (op.kind == DfxOpKind::Load ? k.read : k.write) += op.bytes();
    });
    return traffic;
}

void drop_l3_traffic(Hints& hints, const L3Traffic& traffic) {
    hints.dram_read_bytes -= traffic.read;
    hints.dram_write_bytes -= traffic.write;
    if (hints.macs == 0) return;
    const uint64_t bytes = hints.dram_read_bytes + hints.dram_write_bytes;
    hints.arithmetic_intensity = bytes ? 2.0 * double(hints.macs) / double(bytes) : 0.0;
}

bool keep_in_l3(Program& program, const hw::Config& config, const std::vector<Task>& tasks_without_reuse) {
    if (!program.memory) return false;
    const L3Plan plan = plan_l3(program, config.l3.capacity_bytes);
    if (!plan.count) return false;
    const uint64_t granule = program.memory->granule;
    program.memory->l3_capacity = config.l3.capacity_bytes;  // what program_memory_plan leaves out from now on
    std::vector<Task> reusing = std::move(program.tasks);
    program.tasks = tasks_without_reuse;
    if (add_reuse_deps(program, program_memory_plan(program, granule)) > kMaxReuseDeps) {
        program.tasks = std::move(reusing);
        program.memory->l3_capacity = 0;
        return false;
    }
    const std::vector<L3Traffic> traffic = l3_traffic(program, plan.resident);
    Hints total;
    for (uint32_t k = 0; k < program.kernels.size(); ++k) {
        drop_l3_traffic(program.kernels[k].hints, traffic[k]);
        total.add(program.kernels[k].hints);
    }
    program.hints = total;
    program.memory = estimate_memory(program, granule);
    return true;
}

bool l3_plan_holds(const Program& program, const hw::Config& config) {
    if (!program.memory || !program.memory->l3_capacity) return true;
    return config.l3.capacity_bytes >= program.memory->l3_capacity && config.compute_tiles >= program.target.compute_tiles;
}

void drop_keep_in_l3(Program& program) {
    if (!program.memory || !program.memory->l3_capacity) return;
    program.memory->l3_capacity = 0;
    program.passes.erase(std::remove(program.passes.begin(), program.passes.end(), Pass::KeepInL3),
                         program.passes.end());
    add_reuse_deps(program, program_memory_plan(program, program.memory->granule));
    std::vector<std::pair<uint32_t, uint32_t>> span(program.kernels.size(), {UINT32_MAX, 0});
    for (uint32_t t = 0; t < program.tasks.size(); ++t) {
        auto& [first, end] = span[program.tasks[t].kernel];
        first = std::min(first, t), end = t + 1;
    }
    Hints total;
    for (uint32_t k = 0; k < program.kernels.size(); ++k) {
        Hints& h = program.kernels[k].hints;
        const uint64_t estimated = h.estimated_cycles;
        h = span[k].first < span[k].second ? kernel_hints(program, k, span[k].first, span[k].second) : Hints{};
        h.estimated_cycles = estimated;
        total.add(h);
    }
    program.hints = total;
}

}  // namespace kpu::compiler
