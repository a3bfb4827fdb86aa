// Memory planning (compiler/memory_plan.h): lifetimes, placement, the dependencies reuse adds,
// the refusal and estimate_memory, each against a plain evaluation of the definitions.
#include <algorithm>
#include <array>
#include <set>

#include "compiler/high_water.h"
#include "compiler/memory_plan.h"
#include "compiler/tile_placement.h"
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

/// The SRAM marks of `b` by a plain walk: the last byte of every row each op reads or writes
/// (a move's valid source rows and every destination row over its outer dimensions, a
/// transposing move's destination a row per source column; the fabric's and the vector
/// engine's operands row by row, broadcast ones as the values they are), each SRAM byte's
/// offset in its compute tile's share of the level (the level's window cut into equal per-tile
/// shares), the highest + 1 per level.
std::array<uint64_t, 4> walked_sram_marks(const BoundProgram& b, const hw::Config& c) {
    std::array<uint64_t, 4> marks{};
    const auto byte = [&](uint64_t a) {
        const std::pair<uint64_t, uint64_t> share[] = {{hw::kL3Base, c.l3.capacity_bytes},
                                                       {hw::kL2Base, uint64_t(c.l2.count) * c.l2.capacity_bytes},
                                                       {hw::kL1Base, uint64_t(c.l1.count) * c.l1.capacity_bytes}};
        for (int level = 0; level < 3; ++level)
            if (a >= share[level].first && a < share[level].first + hw::kRegionSize)
                marks[level + 1] = std::max(marks[level + 1], (a - share[level].first) % share[level].second + 1);
    };
    const auto rows = [&](uint64_t at, uint64_t n, uint64_t bytes, uint64_t stride) {
        for (uint64_t r = 0; r < n; ++r) byte(at + r * stride + bytes - 1);
    };
    const auto operand = [&](const hw::VectorOperand& x, uint64_t n, uint64_t cols) {
        switch (x.broadcast) {
            case hw::Broadcast::None: return rows(x.addr, n, 4 * cols, 4 * uint64_t(x.ld));
            case hw::Broadcast::Scalar: return byte(x.addr + 3);
            case hw::Broadcast::Row: return byte(x.addr + 4 * cols - 1);
            case hw::Broadcast::Column: return rows(x.addr, n, 4, 4 * uint64_t(x.ld));
        }
    };
    for (const BoundOp& op : b.ops) {
        if (op.kind == BoundOp::Kind::Move) {
            const hw::Transfer& x = op.move;
            const hw::TransferDim &d0 = x.outer[0], &d1 = x.outer[1];
            for (uint64_t i1 = d1.pad_before; i1 + d1.pad_after < d1.count; ++i1)
                for (uint64_t i0 = d0.pad_before; i0 + d0.pad_after < d0.count; ++i0)
                    rows(x.src + (i1 - d1.pad_before) * d1.src_stride + (i0 - d0.pad_before) * d0.src_stride,
                         x.rows - x.row_pad_before - x.row_pad_after, x.row_bytes, x.src_stride);
            if (x.transform == hw::Transform::Transpose) {
                rows(x.dst, x.row_bytes / x.elem_bytes, uint64_t(x.rows) * x.elem_bytes, x.dst_stride);
                continue;
            }
            for (uint64_t i1 = 0; i1 < d1.count; ++i1)
                for (uint64_t i0 = 0; i0 < d0.count; ++i0)
                    rows(x.dst + i1 * d1.dst_stride + i0 * d0.dst_stride, x.rows, x.row_bytes, x.dst_stride);
        } else if (op.kind == BoundOp::Kind::Matmul) {
            rows(op.matmul.a, op.matmul.m, 4 * op.matmul.k, 4 * op.matmul.lda);
            rows(op.matmul.b, op.matmul.k, 4 * op.matmul.n, 4 * op.matmul.ldb);
            if (op.matmul.load_c) rows(op.matmul.c, op.matmul.m, 4 * op.matmul.n, 4 * op.matmul.ldc);
        } else if (op.kind == BoundOp::Kind::Drain) {
            rows(op.drain.c, op.drain.m, 4 * op.drain.n, 4 * op.drain.ldc);
            if (op.drain.has_bias) byte(op.drain.bias + 4 * op.drain.n - 1);
            if (op.drain.has_scale) byte(op.drain.scale + 4 * op.drain.n - 1);
            if (op.drain.has_residual) rows(op.drain.residual, op.drain.m, 4 * op.drain.n, 4 * op.drain.ldr);
        } else {
            const hw::VectorCommand& v = op.vector;
            operand(v.a, v.rows, v.cols);
            if (v.has_b) operand(v.b, v.rows, v.cols);
            rows(v.y.addr, v.rows, 4 * hw::y_cols(v), 4 * uint64_t(v.y.ld));
            if (v.has_weight) byte(v.weight + 4 * hw::weight_elements(v) - 1);
            if (v.has_bias) byte(v.bias + 4 * hw::bias_elements(v) - 1);
            if (hw::uses_state(v.function)) byte(v.state + 4 * 3 * uint64_t(v.rows) - 1);
        }
    }
    return marks;
}

/// estimate_memory's SRAM marks of `p` on `config` against the walk of the program bound there.
void expect_walked_marks(const Program& p, const hw::Config& config) {
    const MemoryEstimate e = estimate_memory(p, config);
    const std::array<uint64_t, 4> walked = walked_sram_marks(bind(p, config), config);
    EXPECT_EQ(e.l3, walked[1]);
    EXPECT_EQ(e.l2, walked[2]);
    EXPECT_EQ(e.l1, walked[3]);
    EXPECT_LE(e.l3, level_capacity(config, hw::Level::L3));
    EXPECT_LE(e.l2, level_capacity(config, hw::Level::L2));
    EXPECT_LE(e.l1, level_capacity(config, hw::Level::L1));
}

TEST(MemoryPlan, EstimateMemoryIsThePlansPeaksAndTheBoundOpsSramMarks) {
    const hw::Config edge = config("edge");
    // Two Gemms with biases, and a Relu between them (-O0's vector op): the fabric's, the
    // drain's and the vector engine's footprints.
    Graph g = parse_graph(mlp_json(64, 256, 512, 128), "mlp.json");
    Program p = compile(g, edge, plan_only());
    ASSERT_TRUE(p.memory.has_value());
    EXPECT_EQ(p.memory->l3 + p.memory->l2 + p.memory->l1, 0u) << "compile() leaves the SRAM marks to record_sram_marks";
    record_sram_marks(p, edge);
    const MemoryEstimate& e = *p.memory;
    EXPECT_EQ(e.granule, edge.dram.interleave_bytes);
    EXPECT_EQ(e.weights, (256 * 512 + 512 + 512 * 128 + 128) * 4u);
    // x and h live together (fc1 reads x, writes h), then h and y (fc2).
    EXPECT_EQ(e.activations, std::max(64 * 256 + 64 * 512, 64 * 512 + 64 * 128) * 4u);
    const BoundProgram b = bind(p, edge);
    const std::array<uint64_t, 4> walked = walked_sram_marks(b, edge);
    EXPECT_EQ(e.l3, walked[1]);
    EXPECT_EQ(e.l2, walked[2]);
    EXPECT_EQ(e.l1, walked[3]);
    EXPECT_EQ(estimate_memory(p, edge), e) << "record_sram_marks records what estimate_memory gives on the config";
    // Inside the layout the binder gives each kernel's buffers, and every level used.
    uint64_t layout[4] = {};
    for (uint32_t k = 0; k < p.kernels.size(); ++k) {
        const BufferLayout l = place_buffers(p, k, edge);
        for (const BufferSpec& s : plan_buffers(p.graph, p.kernels[k], max_task_extent(p, k)))
            for (uint32_t slot = 0; slot < s.slots; ++slot)
                layout[int(s.level)] = std::max(layout[int(s.level)], l.offset[int(s.buffer)][slot] + s.slot_bytes);
    }
    EXPECT_GT(e.l3, 0u);
    EXPECT_GT(e.l2, 0u);
    EXPECT_GT(e.l1, 0u);
    EXPECT_LE(e.l3, layout[int(hw::Level::L3)]);
    EXPECT_LE(e.l2, layout[int(hw::Level::L2)]);
    EXPECT_LE(e.l1, layout[int(hw::Level::L1)]);
    // The same figures on the config for a program without plan-memory (-O0), as kpu-compile
    // and Python ask for them.
    expect_walked_marks(compile(g, edge, level0()), edge);
    uint64_t top = 0;
    for (const BoundTensor& t : b.tensors) top = std::max(top, t.dram_addr + t.bytes);
    EXPECT_EQ(e.dram, top);
    // Stored in the .kpu and checked on read (the DRAM figures; the SRAM marks are the
    // target config's, which the reader does not have: kept as written).
    std::string text = write_kpu(p);
    EXPECT_EQ(read_kpu(text, "p.kpu").memory, p.memory);
    const std::string field = "\"peak_dram\": " + std::to_string(e.dram);
    ASSERT_NE(text.find(field), std::string::npos);
    text.replace(text.find(field), field.size(), "\"peak_dram\": 1");
    EXPECT_NE(error_of([&] { read_kpu(text, "p.kpu"); }).find("memory.peak_dram: 1 but the program's memory plan gives"),
              std::string::npos);
}

// Each op kind's footprint on its own, by hand: where its last byte is in its tile's share of
// the level (edge: L2 banks of 32 KiB, L1 buffers of 2 KiB), and only the ops done count.
TEST(MemoryPlan, HighWaterIsTheLastByteOfEachOpsFootprintInItsTilesShare) {
    const hw::Config edge = config("edge");
    const hw::AddressMap map(edge);
    const uint64_t bank = edge.l2.capacity_bytes, buffer = edge.l1.capacity_bytes;
    const auto marks_of = [&](const BoundOp& op) {
        BoundProgram b;
        b.ops.push_back(op);
        const HighWater h = high_water(b, map);
        return std::array<uint64_t, 4>{h[hw::Level::Dram], h[hw::Level::L3], h[hw::Level::L2], h[hw::Level::L1]};
    };
    BoundOp load;  // DRAM -> L3 of tile 2: 3 rows of 64 bytes
    load.move.src = 1000, load.move.dst = map.l3_base(2) + 128, load.move.rows = 3, load.move.row_bytes = 64;
    load.move.src_stride = 256, load.move.dst_stride = 96;
    EXPECT_EQ(marks_of(load), (std::array<uint64_t, 4>{1000 + 2 * 256 + 64, 128 + 2 * 96 + 64, 0, 0}));
    BoundOp transpose;  // L3 -> L2 bank 1 of tile 3: 4 rows of 4 floats, a destination row per column
    transpose.move.src = map.l3_base(3), transpose.move.dst = map.l2_base(3, 1) + 8, transpose.move.rows = 4;
    transpose.move.row_bytes = 16, transpose.move.src_stride = 16, transpose.move.dst_stride = 64;
    transpose.move.transform = hw::Transform::Transpose;
    EXPECT_EQ(marks_of(transpose), (std::array<uint64_t, 4>{0, 4 * 16, bank + 8 + 3 * 64 + 4 * 4, 0}));
    BoundOp matmul;  // A 2 x 3 (pitch 5) in buffer 0, B 3 x 4 in buffer 2, C 2 x 4 from buffer 3
    matmul.kind = BoundOp::Kind::Matmul;
    matmul.matmul = {map.l1_base(1, 0), map.l1_base(1, 2), 5, 4, 2, 4, 3, false, false, map.l1_base(1, 3) + 4, 4};
    EXPECT_EQ(marks_of(matmul), (std::array<uint64_t, 4>{0, 0, 0, 2 * buffer + 4 * (2 * 4 + 4)}));
    matmul.matmul.load_c = true;
    EXPECT_EQ(marks_of(matmul), (std::array<uint64_t, 4>{0, 0, 0, 3 * buffer + 4 + 4 * (4 + 4)}));
    BoundOp drain;  // C 2 x 3 (pitch 8) in buffer 2, the bias's 3 values in buffer 4
    drain.kind = BoundOp::Kind::Drain;
    drain.drain.c = map.l1_base(0, 2), drain.drain.ldc = 8, drain.drain.m = 2, drain.drain.n = 3;
    EXPECT_EQ(marks_of(drain), (std::array<uint64_t, 4>{0, 0, 0, 2 * buffer + 4 * (8 + 3)}));
    drain.drain.has_bias = true, drain.drain.bias = map.l1_base(0, 4);
    EXPECT_EQ(marks_of(drain), (std::array<uint64_t, 4>{0, 0, 0, 4 * buffer + 4 * 3}));
    BoundOp epilogue = drain;  // with a scale in buffer 5 and a residual 2 x 3 (pitch 6) in buffer 6
    epilogue.drain.has_scale = true, epilogue.drain.scale = map.l1_base(0, 5);
    EXPECT_EQ(marks_of(epilogue), (std::array<uint64_t, 4>{0, 0, 0, 5 * buffer + 4 * 3}));
    epilogue.drain.has_residual = true, epilogue.drain.residual = map.l1_base(0, 6), epilogue.drain.ldr = 6;
    EXPECT_EQ(marks_of(epilogue), (std::array<uint64_t, 4>{0, 0, 0, 6 * buffer + 4 * (6 + 3)}));
    BoundOp vector;  // online softmax of 8 x 16 in L2: its row statistics (3 x 8 values) end highest
    vector.kind = BoundOp::Kind::Vector;
    vector.vector.function = hw::VectorFunction::OnlineSoftmax;
    vector.vector.rows = 8, vector.vector.cols = 16;
    vector.vector.a = {map.l2_base(0, 0), 16, hw::Broadcast::None};
    vector.vector.y = {map.l2_base(0, 1), 16, hw::Broadcast::None};
    vector.vector.state = map.l2_base(0, 2) + 100;
    EXPECT_EQ(marks_of(vector), (std::array<uint64_t, 4>{0, 0, 2 * bank + 100 + 4 * 3 * 8, 0}));
    vector.vector.has_b = true, vector.vector.b = {map.l2_base(0, 5), 2, hw::Broadcast::Column};  // 8 values 2 apart
    EXPECT_EQ(marks_of(vector), (std::array<uint64_t, 4>{0, 0, 5 * bank + 4 * (7 * 2 + 1), 0}));
    // Of a program, the highest per level over the ops done.
    BoundProgram b;
    for (BoundOp op : {load, transpose, matmul, drain, vector}) op.id = uint32_t(b.ops.size()), b.ops.push_back(op);
    const std::vector<bool> done = {true, false, true, false, true};
    const HighWater h = high_water(b, map, &done);
    EXPECT_EQ(h[hw::Level::L3], 128 + 2 * 96 + 64u);
    EXPECT_EQ(h[hw::Level::L2], 5 * bank + 4 * (7 * 2 + 1));
    EXPECT_EQ(h[hw::Level::L1], 3 * buffer + 4 + 4 * (4 + 4));
    EXPECT_EQ(high_water(b, map)[hw::Level::L1], 4 * buffer + 4 * 3) << "the drain's bias, when it is done";
}

// The marks on the programs whose footprints the MLP lacks: the ResNet-18 block's gathering
// moves (outer dimensions, zero rows), the BERT layer's LayerNorms (weight and bias),
// broadcast operands, transposing moves and, with every pass, flash attention's row
// statistics, which only the vector engine touches; at -O0 and -O2, on edge and t64.
TEST(MemoryPlan, SramMarksAreTheBoundOpsHighestBytesOnTheExamples) {
    for (const char* name : {"resnet18_basic_block.json", "bert_base_layer.json"})
        for (const char* config_name : {"edge", "t64"}) {
            SCOPED_TRACE(std::string(name) + " on " + config_name);
            const hw::Config c = config(config_name);
            const Graph g = parse_graph(test::example(name), name);
            expect_walked_marks(compile(g, c, level0()), c);
            Program p2 = compile(g, c);
            ASSERT_TRUE(p2.memory.has_value());
            record_sram_marks(p2, c);
            const std::array<uint64_t, 4> walked = walked_sram_marks(bind(p2, c), c);
            EXPECT_EQ(p2.memory->l3, walked[1]);
            EXPECT_EQ(p2.memory->l2, walked[2]);
            EXPECT_EQ(p2.memory->l1, walked[3]);
        }
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
