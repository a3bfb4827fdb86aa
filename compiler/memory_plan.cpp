#include "compiler/memory_plan.h"

#include <algorithm>
#include <iterator>
#include <map>

#include "compiler/binder.h"
#include "compiler/generate.h"
#include "compiler/high_water.h"
#include "compiler/keep_in_l3.h"
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

/// Best fit: the lowest-waste gap from `floor` on among `live` (sorted by begin) that holds
/// `size` bytes from a multiple of `unit`, or the first such byte above them all.
uint64_t best_fit(const std::vector<Placed>& live, uint64_t size, uint64_t unit, uint64_t floor) {
    uint64_t best = UINT64_MAX, best_waste = UINT64_MAX, cursor = floor;
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

MemoryPlan plan_memory(const Graph& graph, uint64_t granule, bool reuse, const std::vector<bool>& in_l3) {
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
        if (roots[t] == t && !is_compile_time_value(graph, t) && !(t < in_l3.size() && in_l3[t]))
            plan.placed[t] = true, order.push_back(t);
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
        // Tensors live over the whole schedule (the constants) overlap every other: they stack
        // at the bottom. The others go above, each among the placed ones live at a step of its
        // own lifetime (found per step: linear in the lifetimes' lengths, not quadratic).
        uint32_t last_step = 0;
        for (uint32_t t : order) last_step = std::max(last_step, plan.lifetime[t].last);
        uint64_t base = 0;
        std::vector<uint32_t> rest;
        for (uint32_t t : order) {
            if (plan.lifetime[t].first > 0 || plan.lifetime[t].last < last_step) {
                rest.push_back(t);
                continue;
            }
            plan.offset[t] = round_up(base, unit(t));
            base = plan.end[t] = plan.offset[t] + size(t);
        }
        std::vector<std::vector<uint32_t>> at_step(last_step + 1);
        std::vector<uint64_t> seen(n, 0);
        uint64_t stamp = 0;
        std::vector<Placed> live;
        for (uint32_t t : rest) {
            live.clear();
            ++stamp;
            for (uint32_t step = plan.lifetime[t].first; step <= plan.lifetime[t].last; ++step)
                for (uint32_t p : at_step[step])
                    if (seen[p] != stamp) seen[p] = stamp, live.push_back({plan.offset[p], plan.end[p], plan.lifetime[p]});
            std::sort(live.begin(), live.end(), [](const Placed& a, const Placed& b) { return a.begin < b.begin; });
            plan.offset[t] = best_fit(live, size(t), unit(t), base);
            plan.end[t] = plan.offset[t] + size(t);
            for (uint32_t step = plan.lifetime[t].first; step <= plan.lifetime[t].last; ++step) at_step[step].push_back(t);
        }
        // A plan that lowers no peak is not worth moving tensors: then one range per tensor.
        if (set_extent(graph, plan) >= own_ranges) plan.offset = own, plan.end = own_end, plan.reuse = false;
    }
    for (uint32_t t = 0; t < n; ++t)
        if (roots[t] != t) plan.offset[t] = plan.offset[roots[t]], plan.end[t] = plan.end[roots[t]];
    set_extent(graph, plan);
    return plan;
}

Graph order_for_memory(const Graph& graph, uint64_t granule) {
    const std::vector<uint32_t> roots = alias_roots(graph);
    const size_t n_ops = graph.ops().size(), n_tensors = graph.tensors().size();
    std::vector<int64_t> producer(n_tensors, -1);
    std::vector<uint32_t> readers(n_tensors, 0);  // per root: the ops that read it and are not scheduled yet
    for (uint32_t o = 0; o < n_ops; ++o) {
        for (uint32_t t : graph.ops()[o].outputs)
            if (t != kNoTensor) producer[t] = o;
        for (uint32_t t : graph.ops()[o].inputs)
            if (t != kNoTensor) ++readers[roots[t]];
    }
    std::vector<uint32_t> waiting(n_ops, 0);  // per op: inputs whose producer is not scheduled
    std::vector<std::vector<uint32_t>> consumers(n_ops);
    for (uint32_t o = 0; o < n_ops; ++o)
        for (uint32_t t : graph.ops()[o].inputs)
            if (t != kNoTensor && producer[t] >= 0) ++waiting[o], consumers[producer[t]].push_back(o);
    const auto kept = [&](uint32_t root) {  // what no schedule frees: inputs, constants, outputs
        const TensorRole role = graph.tensor(root).role.value_or(TensorRole::Intermediate);
        return role != TensorRole::Intermediate;
    };
    std::vector<uint32_t> ready, order;
    for (uint32_t o = 0; o < n_ops; ++o)
        if (!waiting[o]) ready.push_back(o);
    std::vector<uint64_t> seen(n_tensors, 0);  // an input read twice by one op counts once
    uint64_t stamp = 0;
    while (!ready.empty()) {
        size_t best = 0;
        int64_t best_net = INT64_MAX;
        for (size_t i = 0; i < ready.size(); ++i) {
            const Op& op = graph.ops()[ready[i]];
            int64_t net = 0;
            ++stamp;
            if (!is_view_op(op))
                for (uint32_t t : op.outputs)
                    if (t != kNoTensor && roots[t] == t) net += int64_t(graph.tensor(t).bytes());
            for (uint32_t t : op.inputs) {
                if (t == kNoTensor || seen[roots[t]] == stamp || kept(roots[t])) continue;
                seen[roots[t]] = stamp;
                uint32_t reads = 0;
                for (uint32_t u : op.inputs) reads += u != kNoTensor && roots[u] == roots[t];
                if (readers[roots[t]] == reads) net -= int64_t(graph.tensor(roots[t]).bytes());
            }
            if (net < best_net || (net == best_net && ready[i] < ready[best])) best = i, best_net = net;
        }
        const uint32_t o = ready[best];
        ready.erase(ready.begin() + long(best));
        order.push_back(o);
        for (uint32_t t : graph.ops()[o].inputs)
            if (t != kNoTensor) --readers[roots[t]];
        for (uint32_t c : consumers[o])
            if (--waiting[c] == 0) ready.push_back(c);
    }
    bool same = true;
    for (uint32_t i = 0; i < order.size(); ++i) same = same && order[i] == i;
    if (same) return graph;
    Graph reordered;
    for (const Tensor& t : graph.tensors()) reordered.add_tensor(t);
    for (uint32_t o : order) reordered.add_op(graph.ops()[o]);
    reordered.check("graph");
    return plan_memory(reordered, granule, true).extent < plan_memory(graph, granule, true).extent ? reordered : graph;
}

MemoryPlan program_memory_plan(const Program& program, uint64_t granule) {
    const bool reuse = program.memory &&
                       std::find(program.passes.begin(), program.passes.end(), Pass::PlanMemory) != program.passes.end();
    const std::vector<bool> in_l3 = program_l3_plan(program).resident;
    return plan_memory(program.graph, reuse ? program.memory->granule : granule, reuse, in_l3);
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
    // Tensors by first step, each painted over the range it takes: the tensors it paints over,
    // the last ones to hold its bytes, are dead by then and its writers wait for their
    // accessors. Earlier holders of those bytes are waited for through them: each holder's
    // writers waited for its own predecessors.
    std::vector<uint32_t> tensors;
    for (uint32_t t = 0; t < g.tensors().size(); ++t)
        if (plan.placed[t]) tensors.push_back(t);
    std::stable_sort(tensors.begin(), tensors.end(),
                     [&](uint32_t a, uint32_t b) { return plan.lifetime[a].first < plan.lifetime[b].first; });
    std::map<uint64_t, std::pair<uint64_t, uint32_t>> paint;  // begin -> (end, holder)
    std::vector<std::vector<uint32_t>> extra(program.tasks.size());  // per writer task: the accessors to wait for
    for (uint32_t b : tensors) {
        const uint64_t b0 = plan.offset[b], b1 = plan.end[b];
        if (b0 == b1) continue;
        auto it = paint.upper_bound(b0);
        if (it != paint.begin() && std::prev(it)->second.first > b0) --it;
        std::vector<std::pair<uint64_t, std::pair<uint64_t, uint32_t>>> kept;  // the parts outside [b0, b1)
        while (it != paint.end() && it->first < b1) {
            const auto [begin, held] = *it;
            const uint32_t a = held.second;
            if (plan.reuses(b, a))
                for (uint32_t w : writers[b]) extra[w].insert(extra[w].end(), accessors[a].begin(), accessors[a].end());
            if (begin < b0) kept.push_back({begin, {b0, a}});
            if (held.first > b1) kept.push_back({b1, held});
            it = paint.erase(it);
        }
        for (const auto& part : kept) paint.insert(part);
        paint[b0] = {b1, b};
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
    e.l3_capacity = program.memory ? program.memory->l3_capacity : 0;  // keep-in-l3's, carried
    uint32_t steps = 0;
    for (uint32_t t = 0; t < g.tensors().size(); ++t)
        if (plan.placed[t]) steps = std::max(steps, plan.lifetime[t].last + 1);
    std::vector<int64_t> change(steps + 1, 0);  // per step: the live non-constant bytes' change
    for (uint32_t t = 0; t < g.tensors().size(); ++t) {
        if (!plan.placed[t]) continue;
        if (g.tensor(t).role == TensorRole::Constant) {
            e.weights += g.tensor(t).bytes();
            continue;
        }
        change[plan.lifetime[t].first] += int64_t(g.tensor(t).bytes());
        change[plan.lifetime[t].last + 1] -= int64_t(g.tensor(t).bytes());
    }
    int64_t live = 0;
    for (int64_t c : change) live += c, e.activations = std::max(e.activations, uint64_t(live));
    return e;
}

bool sram_marks_estimated(const Program& program) { return count_ops(program).total <= kMaxSramMarkOps; }

MemoryEstimate estimate_memory(const Program& program, const hw::Config& config) {
    MemoryEstimate e = estimate_memory(program, program.memory ? program.memory->granule : config.dram.interleave_bytes);
    if (!sram_marks_estimated(program)) return e;
    // The binder's layout, tile placement, engine choice and elided moves decide which SRAM
    // bytes the ops touch: the marks come from the bound program itself.
    const HighWater marks = high_water(bind(program, config), hw::AddressMap(config));
    e.l3 = marks[hw::Level::L3], e.l2 = marks[hw::Level::L2], e.l1 = marks[hw::Level::L1];
    return e;
}

void record_sram_marks(Program& program, const hw::Config& config) {
    if (!program.memory) return;
    const MemoryEstimate e = estimate_memory(program, config);
    program.memory->l3 = e.l3, program.memory->l2 = e.l2, program.memory->l1 = e.l1;
}

}  // namespace kpu::compiler
