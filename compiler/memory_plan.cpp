#include "compiler/memory_plan.h"

#include <algorithm>
#include <numeric>

#include "compiler/ops/op_schema.h"

namespace kpu::compiler {

std::vector<uint32_t> kernel_ops(const Graph& graph) {
    std::vector<uint32_t> ops;
    for (uint32_t op = 0; op < graph.ops().size(); ++op)
        if (!is_view_op(graph.ops()[op])) ops.push_back(op);
    return ops;
}

std::vector<Lifetime> tensor_lifetimes(const Graph& graph) {
    const std::vector<uint32_t> roots = alias_roots(graph);
    const std::vector<uint32_t> kernels = kernel_ops(graph);
    const uint32_t end = uint32_t(kernels.size()) + 1;
    const size_t n = graph.tensors().size();
    constexpr uint32_t kNever = UINT32_MAX;
    std::vector<uint32_t> first(n, kNever), last(n, 0);
    for (uint32_t k = 0; k < kernels.size(); ++k) {
        const Op& op = graph.ops()[kernels[k]];
        for (uint32_t t : op.outputs) {
            if (t == kNoTensor) continue;
            first[roots[t]] = std::min(first[roots[t]], k + 1);
            last[roots[t]] = std::max(last[roots[t]], k + 1);
        }
        for (uint32_t t : op.inputs)
            if (t != kNoTensor) last[roots[t]] = std::max(last[roots[t]], k + 1);
    }
    for (uint32_t t = 0; t < n; ++t) {  // what the host writes and reads, at the ends
        const TensorRole role = graph.tensor(t).role.value_or(TensorRole::Intermediate);
        const uint32_t r = roots[t];
        if (role == TensorRole::Input || role == TensorRole::Constant) first[r] = 0;
        if (role == TensorRole::Output || role == TensorRole::Constant) last[r] = end;
    }
    std::vector<Lifetime> lifetimes(n);
    for (uint32_t t = 0; t < n; ++t) {
        const uint32_t r = roots[t];
        const uint32_t f = first[r] == kNever ? last[r] : first[r];  // read but never written: a step
        lifetimes[t] = {f, std::max(f, last[r])};
    }
    return lifetimes;
}

namespace {

/// A tensor placed so far: its bytes [begin, end) (rounded) and lifetime.
struct Placed {
    uint64_t begin, end;
    Lifetime life;
};

/// Best fit: the lowest-waste gap among `live` (sorted by begin) that holds `size` bytes from
/// a multiple of `unit`, or the first such byte above them all.
uint64_t best_fit(const std::vector<Placed>& live, uint64_t size, uint64_t unit) {
    uint64_t best = UINT64_MAX, best_waste = UINT64_MAX, cursor = 0;
    for (const Placed& p : live) {
        const uint64_t at = round_up(cursor, unit);
        if (p.begin >= at + size && p.begin - at - size < best_waste) best = at, best_waste = p.begin - at - size;
        cursor = std::max(cursor, p.end);
    }
    return best != UINT64_MAX ? best : round_up(cursor, unit);
}

/// Sets plan.extent and plan.top from the placed tensors' offsets; returns the extent.
uint64_t set_extent(const Graph& graph, MemoryPlan& plan) {
    plan.extent = 0, plan.top = kNoTensor;
    for (uint32_t t = 0; t < plan.placed.size(); ++t) {
        if (!plan.placed[t]) continue;
        const uint64_t end = plan.offset[t] + graph.tensor(t).bytes();
        if (end > plan.extent || plan.top == kNoTensor) plan.extent = std::max(plan.extent, end), plan.top = t;
    }
    return plan.extent;
}

}  // namespace

MemoryPlan plan_memory(const Graph& graph, uint64_t granule, bool reuse) {
    MemoryPlan plan;
    plan.granule = granule;
    plan.reuse = reuse;
    const size_t n = graph.tensors().size();
    const std::vector<uint32_t> roots = alias_roots(graph);
    plan.lifetime = tensor_lifetimes(graph);
    plan.placed.assign(n, false);
    plan.offset.assign(n, 0);
    std::vector<uint32_t> order;
    for (uint32_t t = 0; t < n; ++t)
        if (roots[t] == t && !is_compile_time_value(graph, t)) plan.placed[t] = true, order.push_back(t);
    const auto rounded = [&](uint32_t t) { return round_up(graph.tensor(t).bytes(), granule); };
    uint64_t next = 0;  // one range per tensor, in index order
    for (uint32_t t : order) plan.offset[t] = next, next += rounded(t);
    const uint64_t own_ranges = next - (order.empty() ? 0 : rounded(order.back()) - graph.tensor(order.back()).bytes());
    plan.end.assign(n, 0);
    for (uint32_t t : order) plan.end[t] = plan.offset[t] + rounded(t);
    if (reuse) {
        const std::vector<uint64_t> own = plan.offset, own_end = plan.end;
        // A tensor smaller than the granule goes on a kAlign boundary: small ones (biases) pack.
        const auto unit = [&](uint32_t t) { return graph.tensor(t).bytes() >= granule ? granule : kAlign; };
        const auto size = [&](uint32_t t) { return round_up(graph.tensor(t).bytes(), unit(t)); };
        std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
            if (size(a) != size(b)) return size(a) > size(b);
            return plan.lifetime[a].first < plan.lifetime[b].first;
        });
        std::vector<Placed> placed, live;
        for (uint32_t t : order) {
            live.clear();
            for (const Placed& p : placed)
                if (p.life.overlaps(plan.lifetime[t])) live.push_back(p);
            std::sort(live.begin(), live.end(), [](const Placed& a, const Placed& b) { return a.begin < b.begin; });
            plan.offset[t] = best_fit(live, size(t), unit(t));
            plan.end[t] = plan.offset[t] + size(t);
            placed.push_back({plan.offset[t], plan.end[t], plan.lifetime[t]});
        }
        // A plan that lowers no peak is not worth moving tensors: then one range per tensor.
        if (set_extent(graph, plan) >= own_ranges) plan.offset = own, plan.end = own_end, plan.reuse = false;
    }
    for (uint32_t t = 0; t < n; ++t)
        if (roots[t] != t) plan.offset[t] = plan.offset[roots[t]], plan.end[t] = plan.end[roots[t]];
    set_extent(graph, plan);
    return plan;
}

MemoryPlan program_memory_plan(const Program& program, uint64_t granule) {
    const bool reuse = program.memory &&
                       std::find(program.passes.begin(), program.passes.end(), Pass::PlanMemory) != program.passes.end();
    return plan_memory(program.graph, reuse ? program.memory->granule : granule, reuse);
}

uint64_t add_reuse_deps(Program& program, const MemoryPlan& plan) {
    const Graph& g = program.graph;
    const std::vector<uint32_t> roots = alias_roots(g);
    // Per root tensor: the tasks that access it and those that write it.
    std::vector<std::vector<uint32_t>> accessors(g.tensors().size()), writers(g.tensors().size());
    for (uint32_t t = 0; t < program.tasks.size(); ++t) {
        const Op& op = g.ops()[program.kernels[program.tasks[t].kernel].op];
        for (uint32_t x : op.inputs)
            if (x != kNoTensor && plan.placed[roots[x]]) accessors[roots[x]].push_back(t);
        for (uint32_t x : op.outputs)
            if (x != kNoTensor && plan.placed[roots[x]]) accessors[roots[x]].push_back(t), writers[roots[x]].push_back(t);
    }
    for (auto& a : accessors) a.erase(std::unique(a.begin(), a.end()), a.end());
    std::vector<uint32_t> tensors;
    for (uint32_t t = 0; t < g.tensors().size(); ++t)
        if (plan.placed[t]) tensors.push_back(t);
    std::vector<std::vector<uint32_t>> extra(program.tasks.size());  // per writer task: the accessors to wait for
    for (uint32_t b : tensors) {
        for (uint32_t a : tensors) {
            if (a == b || !plan.reuses(b, a)) continue;
            for (uint32_t w : writers[b]) extra[w].insert(extra[w].end(), accessors[a].begin(), accessors[a].end());
        }
    }
    uint64_t added = 0;
    for (uint32_t w = 0; w < program.tasks.size(); ++w) {
        if (extra[w].empty()) continue;
        std::vector<uint32_t>& deps = program.tasks[w].deps;
        const size_t before = deps.size();
        deps.insert(deps.end(), extra[w].begin(), extra[w].end());
        std::sort(deps.begin(), deps.end());
        deps.erase(std::unique(deps.begin(), deps.end()), deps.end());
        added += deps.size() - before;
    }
    return added;
}

MemoryEstimate estimate_memory(const Program& program, uint64_t granule) {
    const MemoryPlan plan = program_memory_plan(program, granule);
    const Graph& g = program.graph;
    MemoryEstimate e;
    e.granule = plan.granule;
    e.dram = plan.extent;
    uint32_t steps = 0;
    for (uint32_t t = 0; t < g.tensors().size(); ++t)
        if (plan.placed[t]) steps = std::max(steps, plan.lifetime[t].last + 1);
    std::vector<uint64_t> live(steps, 0);  // per step: the live non-constant bytes
    for (uint32_t t = 0; t < g.tensors().size(); ++t) {
        if (!plan.placed[t]) continue;
        if (g.tensor(t).role == TensorRole::Constant) {
            e.weights += g.tensor(t).bytes();
            continue;
        }
        for (uint32_t s = plan.lifetime[t].first; s <= plan.lifetime[t].last; ++s) live[s] += g.tensor(t).bytes();
    }
    for (uint64_t bytes : live) e.activations = std::max(e.activations, bytes);
    for (uint32_t k = 0; k < program.kernels.size(); ++k) {
        const std::vector<BufferSpec> buffers = plan_buffers(g, program.kernels[k], max_task_extent(program, k));
        e.l3 = std::max(e.l3, level_bytes(buffers, hw::Level::L3));
        e.l2 = std::max(e.l2, level_bytes(buffers, hw::Level::L2));
        e.l1 = std::max(e.l1, level_bytes(buffers, hw::Level::L1));
    }
    return e;
}

}  // namespace kpu::compiler
