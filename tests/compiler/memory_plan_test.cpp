// Memory planning (compiler/memory_plan.h): lifetimes, placement, the dependencies reuse adds,
// the refusal and estimate_memory, each against a plain evaluation of the definitions.
#include <algorithm>
#include <set>

#include "compiler/memory_plan.h"
#include "compiler/ops/op_schema.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler::test {
namespace {

/// Only plan-memory (the other passes would change the kernels this test reasons about).
CompileOptions plan_only() {
    PassSelection passes;
    for (const auto& [pass, name] : kPassNames)
        if (pass != Pass::PlanMemory) passes.disabled.push_back(pass);
    return {Dataflow::OutputStationary, DepthwiseUnit::Auto, passes};
}

CompileOptions level0() { return {Dataflow::OutputStationary, DepthwiseUnit::Auto, PassSelection{0, {}}}; }

TEST(MemoryPlan, LifetimesRunFromTheFirstWriterToTheLastReader) {
    const Graph g = relu_chain(4, 64, 1024);
    const std::vector<Lifetime> life = tensor_lifetimes(g);
    // Steps: 0 the host's writes, kernel k at k + 1, 5 the host's reads.
    const std::vector<std::pair<std::string, Lifetime>> want = {
        {"x", {0, 1}}, {"t0", {1, 2}}, {"t1", {2, 3}}, {"t2", {3, 4}}, {"y", {4, 5}}};
    for (const auto& [name, l] : want) {
        const uint32_t t = *g.find_tensor(name);
        EXPECT_EQ(life[t].first, l.first) << name;
        EXPECT_EQ(life[t].last, l.last) << name;
    }
}

TEST(MemoryPlan, AChainNeedsTwoActivationsAndNoTwoLiveTensorsOverlap) {
    const Graph g = relu_chain(6, 64, 1024);  // 256 KiB each
    const uint64_t bytes = 64 * 1024 * 4;
    const MemoryPlan plan = plan_memory(g, 4096, true);
    EXPECT_TRUE(plan.reuse);
    EXPECT_EQ(plan.extent, 2 * bytes);
    const MemoryPlan own = plan_memory(g, 4096, false);
    EXPECT_FALSE(own.reuse);
    EXPECT_EQ(own.extent, 7 * bytes);
    for (uint32_t a = 0; a < g.tensors().size(); ++a) {
        EXPECT_EQ(plan.offset[a] % 4096, 0u);
        EXPECT_EQ(own.offset[a], a * bytes);  // the binder's -O0 placement, in index order
        for (uint32_t b = a + 1; b < g.tensors().size(); ++b)
            if (plan.lifetime[a].overlaps(plan.lifetime[b])) {
                EXPECT_TRUE(plan.end[a] <= plan.offset[b] || plan.end[b] <= plan.offset[a])
                    << g.tensor(a).name << " and " << g.tensor(b).name << " are live together and overlap";
            }
    }
}

TEST(MemoryPlan, ReusingWritersDependOnEveryTaskThatAccessedTheDeadTensor) {
    const hw::Config edge = config("edge");
    const Graph g = relu_chain(5, 256, 256);
    const Program p0 = compile(g, edge, level0());
    const Program p2 = compile(g, edge, plan_only());
    ASSERT_EQ(p2.passes, std::vector<Pass>{Pass::PlanMemory});
    ASSERT_EQ(p0.tasks.size(), p2.tasks.size());
    ASSERT_GT(p0.tasks.size(), p0.kernels.size());  // several tasks per kernel: they run side by side
    // Independently: which tensors each task reads and writes, from its kernel's op.
    const MemoryPlan plan = plan_memory(p2.graph, edge.dram.interleave_bytes, true);
    const auto accesses = [&](uint32_t task, uint32_t tensor, bool writes_only) {
        const Op& op = p2.graph.ops()[p2.kernels[p2.tasks[task].kernel].op];
        const bool writes = std::count(op.outputs.begin(), op.outputs.end(), tensor) > 0;
        return writes || (!writes_only && std::count(op.inputs.begin(), op.inputs.end(), tensor) > 0);
    };
    // Per byte (64 at a time) of b: the tensor that held it last before b.
    const auto last_holders = [&](uint32_t b) {
        std::set<uint32_t> holders;
        for (uint64_t x = plan.offset[b]; x < plan.end[b]; x += 64) {
            int64_t last = -1;
            for (uint32_t a = 0; a < g.tensors().size(); ++a)
                if (a != b && plan.reuses(b, a) && plan.offset[a] <= x && x < plan.end[a] &&
                    (last < 0 || plan.lifetime[a].first > plan.lifetime[uint32_t(last)].first))
                    last = a;
            if (last >= 0) holders.insert(uint32_t(last));
        }
        return holders;
    };
    uint64_t added = 0;
    for (uint32_t t = 0; t < p2.tasks.size(); ++t) {
        std::set<uint32_t> want(p0.tasks[t].deps.begin(), p0.tasks[t].deps.end());
        for (uint32_t b = 0; b < g.tensors().size(); ++b)
            if (plan.placed[b] && accesses(t, b, true))
                for (uint32_t a : last_holders(b))
                    for (uint32_t u = 0; u < p2.tasks.size(); ++u)
                        if (accesses(u, a, false)) want.insert(u);
        EXPECT_EQ(p2.tasks[t].deps, std::vector<uint32_t>(want.begin(), want.end())) << "task " << t;
        added += want.size() - p0.tasks[t].deps.size();
    }
    EXPECT_GT(added, 0u);
    // The .kpu carries them; the reader refuses a reusing program without them.
    EXPECT_EQ(read_kpu(write_kpu(p2), "p.kpu"), p2);
    Program stripped = p2;
    for (uint32_t t = 0; t < stripped.tasks.size(); ++t) stripped.tasks[t].deps = p0.tasks[t].deps;
    EXPECT_NE(error_of([&] { read_kpu(write_kpu(stripped), "p.kpu"); }).find("whose DRAM this task's output reuses"),
              std::string::npos);
}

TEST(MemoryPlan, TheBinderPlacesPerThePlanAndMinusO0AsBefore) {
    const hw::Config edge = config("edge");
    const Graph g = relu_chain(5, 256, 256);
    const Program p0 = compile(g, edge, level0());
    EXPECT_TRUE(p0.passes.empty());
    EXPECT_FALSE(p0.memory.has_value());
    const BoundProgram b0 = expect_consistent(p0, edge);
    for (uint32_t t = 0; t < b0.tensors.size(); ++t) EXPECT_EQ(b0.tensors[t].dram_addr, t * 256 * 256 * 4);
    const Program p2 = compile(g, edge, plan_only());
    const BoundProgram b2 = expect_consistent(p2, edge);
    const MemoryPlan plan = plan_memory(p2.graph, edge.dram.interleave_bytes, true);
    for (uint32_t t = 0; t < b2.tensors.size(); ++t) EXPECT_EQ(b2.tensors[t].dram_addr, plan.offset[t]);
}

TEST(MemoryPlan, ComputeChecksThePlannedPeakNotTheSum) {
    // 2 MiB of DRAM: a chain of 256 KiB tensors (2.25 MiB in all) fits with reuse only.
    const hw::Config small = config("edge", {hw::parse_override("dram.capacity_mib=1")});
    EXPECT_EQ(error_of([&] { compile(relu_chain(8, 256, 256), small, level0()); }),
              "the graph's tensors need 2359296 bytes of DRAM (each from a 2048-byte interleave boundary) but "
              "config 'edge' has 2097152");
    EXPECT_EQ(compile(relu_chain(8, 256, 256), small, plan_only()).memory->dram, 2 * 256 * 256 * 4u);
    // 1.5 MiB tensors: two live at once do not fit.
    EXPECT_EQ(error_of([&] { compile(relu_chain(3, 1024, 384), small, plan_only()); }),
              "DRAM memory exceeded: 3145728 bytes required, 2097152 available (config 'edge'; tensor 't0' "
              "(1572864 bytes) ends highest, with every dead tensor's space reused)");
}

TEST(MemoryPlan, EstimateMemoryIsThePlansPeaksAndTheBuffersLargestLevels) {
    const hw::Config edge = config("edge");
    const Program p = compile(parse_graph(mlp_json(64, 256, 512, 128), "mlp.json"), edge, plan_only());
    ASSERT_TRUE(p.memory.has_value());
    const MemoryEstimate& e = *p.memory;
    EXPECT_EQ(e.granule, edge.dram.interleave_bytes);
    EXPECT_EQ(e.weights, (256 * 512 + 512 + 512 * 128 + 128) * 4u);
    // x and h live together (fc1 reads x, writes h), then h and y (fc2).
    EXPECT_EQ(e.activations, std::max(64 * 256 + 64 * 512, 64 * 512 + 64 * 128) * 4u);
    uint64_t l3 = 0, l2 = 0, l1 = 0;
    for (uint32_t k = 0; k < p.kernels.size(); ++k) {
        const auto buffers = plan_buffers(p.graph, p.kernels[k], max_task_extent(p, k));
        l3 = std::max(l3, level_bytes(buffers, hw::Level::L3));
        l2 = std::max(l2, level_bytes(buffers, hw::Level::L2));
        l1 = std::max(l1, level_bytes(buffers, hw::Level::L1));
    }
    EXPECT_EQ(e.l3, l3);
    EXPECT_EQ(e.l2, l2);
    EXPECT_EQ(e.l1, l1);
    const BoundProgram b = bind(p, edge);
    uint64_t top = 0;
    for (const BoundTensor& t : b.tensors) top = std::max(top, t.dram_addr + t.bytes);
    EXPECT_EQ(e.dram, top);
    // Stored in the .kpu and checked on read.
    std::string text = write_kpu(p);
    const std::string field = "\"peak_dram\": " + std::to_string(e.dram);
    ASSERT_NE(text.find(field), std::string::npos);
    text.replace(text.find(field), field.size(), "\"peak_dram\": 1");
    EXPECT_NE(error_of([&] { read_kpu(text, "p.kpu"); }).find("memory.peak_dram: 1 but the program's memory plan gives"),
              std::string::npos);
}

// Two branches of x, each a big Relu reduced to a column, given branch by branch interleaved:
// Relu a, Relu b, then their reductions. Finishing a branch before starting the other frees a
// before b is written.
TEST(MemoryPlan, AnOrderOfSmallerPeakReplacesTheGivenOneAndAChainKeepsItsOwn) {
    const Graph g = parse_graph(R"({"tensors": [{"name": "x", "shape": [256, 1024], "role": "input"},
        {"name": "axes", "dtype": "int64", "role": "constant", "value": [-1]},
        {"name": "a"}, {"name": "b"}, {"name": "ma"}, {"name": "mb"}, {"name": "y"}],
        "ops": [{"op": "Relu", "name": "ra", "inputs": ["x"], "outputs": ["a"]},
                {"op": "Relu", "name": "rb", "inputs": ["x"], "outputs": ["b"]},
                {"op": "ReduceMean", "name": "sa", "inputs": ["a", "axes"], "outputs": ["ma"]},
                {"op": "ReduceMean", "name": "sb", "inputs": ["b", "axes"], "outputs": ["mb"]},
                {"op": "Add", "name": "add", "inputs": ["ma", "mb"], "outputs": ["y"]}]})", "branches.json");
    const uint64_t big = 256 * 1024 * 4, granule = 4096;
    // x, a and b live together; the columns reuse x's space once it is dead.
    EXPECT_EQ(plan_memory(g, granule, true).extent, 3 * big);
    const Graph reordered = order_for_memory(g, granule);
    std::vector<std::string> names;
    for (const Op& op : reordered.ops()) names.push_back(op.name);
    EXPECT_EQ(names, (std::vector<std::string>{"ra", "sa", "rb", "sb", "add"}));
    // b reuses a's space; ma, live with x, a and b, goes above them.
    EXPECT_EQ(plan_memory(reordered, granule, true).extent, 2 * big + 1024);
    const Program p = compile(g, config("t64"), plan_only());
    EXPECT_EQ(p.graph, reordered);
    EXPECT_EQ(p.memory->dram, 2 * big + 1024);
    const Graph chain = relu_chain(6, 64, 1024);
    EXPECT_EQ(order_for_memory(chain, granule), chain);
}

}  // namespace
}  // namespace kpu::compiler::test
