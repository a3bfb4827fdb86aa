// Batched MatMul (numpy batch broadcasting, a task grid per C matrix) and Gemm with transposed
// operands on the fabric: DRAM traffic against the closed form and the bound stream, where
// each task's regions lie, the dependencies of a batched consumer, the .kpu's task batch, and
// the reasons given for what does not lower yet.
#include <gtest/gtest.h>

#include <set>

#include "compiler/binder.h"
#include "compiler/dfx.h"
#include "compiler/generate.h"
#include "compiler/kpu_format.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler {
namespace {

/// y = MatMul(a, b) or Gemm(a, b (, c)) with `attributes` (a JSON object or "").
std::string lone(const std::string& kind, const std::string& a, const std::string& b, const std::string& attributes = "",
                 const std::string& c = "") {
    return R"({"tensors": [{"name": "a", "shape": )" + a + R"(, "role": "input"}, {"name": "b", "shape": )" + b +
           R"(, "role": "constant"}, )" + (c.empty() ? "" : R"({"name": "c", "shape": )" + c + R"(, "role": "constant"}, )") +
           R"({"name": "y"}], "ops": [{"op": ")" + kind + R"(", "name": "mm", "inputs": ["a", "b")" +
           (c.empty() ? "" : R"(, "c")") + R"(], "outputs": ["y"])" +
           (attributes.empty() ? "" : R"(, "attributes": )" + attributes) + "}]}";
}

/// DRAM bytes the op stream moves (LOADs, STOREs), summed independently of the hints.
std::pair<uint64_t, uint64_t> stream_bytes(const Program& p) {
    std::pair<uint64_t, uint64_t> bytes{0, 0};
    for_each_op(p, [&](const DfxOp& op) {
        if (op.kind == DfxOpKind::Load) bytes.first += op.bytes();
        if (op.kind == DfxOpKind::Store) bytes.second += op.bytes();
    });
    return bytes;
}

/// The closed form of docs/compiler.md: batch x 4 (M K Pn + K N Pm), 4 batch M N, with the
/// task grid Pm x Pn read off the tasks of matrix 0.
void expect_closed_form(const Program& p, uint64_t batch, uint64_t m, uint64_t n, uint64_t k) {
    std::set<uint32_t> rows, cols;
    uint64_t tasks = 0;
    for (const Task& t : p.tasks) {
        ++tasks;
        if (t.batch == 0) rows.insert(t.r0), cols.insert(t.c0);
    }
    const uint64_t pm = rows.size(), pn = cols.size();
    EXPECT_EQ(tasks, batch * pm * pn) << "the same task grid for every matrix";
    EXPECT_EQ(p.hints.dram_read_bytes, batch * 4 * (m * k * pn + k * n * pm));
    EXPECT_EQ(p.hints.dram_write_bytes, batch * 4 * m * n);
    EXPECT_EQ(p.hints.macs, batch * m * n * k);
}

TEST(BatchedMatmul, HintsEqualTheOpStreamTheBoundProgramAndTheClosedForm) {
    struct Case {
        const char *a, *b;
        uint64_t batch, m, n, k;
    };
    const Case cases[] = {{"[2, 3, 5, 7]", "[2, 3, 7, 4]", 6, 5, 4, 7},  {"[5, 1, 7, 3]", "[4, 3, 2]", 20, 7, 2, 3},
                          {"[3, 7]", "[2, 7, 5]", 2, 3, 5, 7},            {"[3, 37, 41]", "[3, 41, 29]", 3, 37, 29, 41},
                          {"[1, 4, 100, 64]", "[1, 4, 64, 100]", 4, 100, 100, 64}, {"[7]", "[3, 7, 5]", 3, 1, 5, 7}};
    for (const char* name : {"edge", "t64"})
        for (Dataflow dataflow : {Dataflow::OutputStationary, Dataflow::WeightStationary})
            for (const Case& c : cases) {
                SCOPED_TRACE(std::string(name) + " " + to_string(dataflow) + " " + c.a + " @ " + c.b);
                const hw::Config config = test::config(name);
                const Program p = compile(parse_graph(lone("MatMul", c.a, c.b), "t.json"), config, {dataflow});
                const MatmulOperands mm = matmul_operands(p.graph, 0);
                EXPECT_EQ(mm.batch, c.batch);
                EXPECT_EQ(mm.m, c.m);
                EXPECT_EQ(mm.n, c.n);
                EXPECT_EQ(mm.k, c.k);
                expect_closed_form(p, c.batch, c.m, c.n, c.k);
                EXPECT_EQ(stream_bytes(p), std::make_pair(p.hints.dram_read_bytes, p.hints.dram_write_bytes));
                EXPECT_EQ(count_ops(p), count_expanded_ops(p));
                const BoundProgram b = bind(p, config);
                EXPECT_EQ(b.dram_read_bytes, p.hints.dram_read_bytes);
                EXPECT_EQ(b.dram_write_bytes, p.hints.dram_write_bytes);
                EXPECT_EQ(b.macs, p.hints.macs);
            }
}

// [5, 1, 7, 3] @ [4, 3, 2]: C's batch is [5, 4]; matrix t = 4 i + j takes A's matrix i (its
// dim of 1 broadcasts) and B's matrix j.
TEST(BatchedMatmul, EachTaskLoadsItsOwnMatricesAndStoresIntoItsC) {
    const Program p = compile(parse_graph(lone("MatMul", "[5, 1, 7, 3]", "[4, 3, 2]"), "t.json"), test::config("t64"));
    const Graph& g = p.graph;
    const uint32_t a = *g.find_tensor("a"), b = *g.find_tensor("b"), y = *g.find_tensor("y");
    const MatmulOperands mm = matmul_operands(g, 0);
    for (uint32_t t = 0; t < 20; ++t) {
        EXPECT_EQ(mm.a_row(t), t / 4 * 7);
        EXPECT_EQ(mm.b_row(t), t % 4 * 3);
        EXPECT_EQ(mm.c_row(t), t * 7);
    }
    std::set<uint32_t> stored;  // C matrices written
    for_each_op(p, [&](const DfxOp& op) {
        if (op.kind != DfxOpKind::Load && op.kind != DfxOpKind::Store) return;
        const uint32_t t = p.tasks[op.task].batch;
        const auto inside = [&](uint64_t first, uint64_t rows) {
            EXPECT_GE(op.row, first) << "task " << op.task << " matrix " << t;
            EXPECT_LE(op.row + op.rows, first + rows) << "task " << op.task << " matrix " << t;
        };
        if (op.tensor == a) inside(t / 4 * 7, 7);
        if (op.tensor == b) inside(t % 4 * 3, 3);
        if (op.tensor == y) inside(t * 7, 7), stored.insert(t);
    });
    EXPECT_EQ(stored.size(), 20u);
}

// B with one matrix (a shared weight) folds A's batch into M: one tall matmul, the same
// kernels and tasks as the rank-2 MatMul over A's 2D view.
TEST(BatchedMatmul, ASharedBFoldsTheBatchIntoM) {
    const hw::Config t64 = test::config("t64");
    const Program flat = compile(parse_graph(lone("MatMul", "[96, 48]", "[48, 80]"), "t.json"), t64);
    for (const char* b : {"[48, 80]", "[1, 48, 80]", "[1, 1, 48, 80]"}) {
        SCOPED_TRACE(b);
        const Program p = compile(parse_graph(lone("MatMul", "[2, 3, 16, 48]", b), "t.json"), t64);
        const MatmulOperands mm = matmul_operands(p.graph, 0);
        EXPECT_EQ(mm.batch, 1u);
        EXPECT_EQ(mm.m, 96u);
        EXPECT_EQ(p.kernels, flat.kernels);
        EXPECT_EQ(p.tasks, flat.tasks);
    }
}

// H[b] = X[b] @ W[b], Y[b] = H[b] @ V[b]: a consumer task waits for the producer tasks of its
// own matrix that wrote the rows it reads, and for no other.
TEST(BatchedMatmul, AConsumerWaitsForTheProducersOfItsOwnMatrix) {
    const std::string text = R"({"tensors": [{"name": "x", "shape": [3, 64, 40], "role": "input"},
        {"name": "w", "shape": [3, 40, 64], "role": "constant"}, {"name": "h"},
        {"name": "v", "shape": [3, 64, 24], "role": "constant"}, {"name": "y"}],
      "ops": [{"op": "MatMul", "name": "p", "inputs": ["x", "w"], "outputs": ["h"]},
              {"op": "MatMul", "name": "c", "inputs": ["h", "v"], "outputs": ["y"]}]})";
    const hw::Config t64 = test::config("t64");
    // -O0: the deps are exactly the producers (plan-memory adds what reuse needs: MemoryPlan.*).
    const Program p = compile(parse_graph(text, "t.json"), t64, CompileOptions(Dataflow::OutputStationary, DepthwiseUnit::Auto, PassSelection{0, {}}));
    const Kernel& producer = p.kernels[0];
    for (uint32_t t = 0; t < p.tasks.size(); ++t) {
        const Task& task = p.tasks[t];
        if (task.kernel != 1) continue;
        // Independently: the producer tasks of this matrix whose C rows meet the task's A rows.
        const uint64_t r0 = uint64_t(task.r0) * p.kernels[1].tile.tm, r1 = uint64_t(task.r1) * p.kernels[1].tile.tm;
        std::vector<uint32_t> want;
        for (uint32_t u = 0; u < t; ++u) {
            const Task& w = p.tasks[u];
            if (w.kernel == 0 && w.batch == task.batch && w.r0 * producer.tile.tm < r1 && r0 < w.r1 * producer.tile.tm)
                want.push_back(u);
        }
        EXPECT_FALSE(want.empty());
        EXPECT_EQ(task.deps, want) << "task " << t << " of matrix " << task.batch;
        EXPECT_EQ(producer_tasks(p, t), want);
    }
    const BoundProgram b = bind(p, t64);
    EXPECT_EQ(b.dram_read_bytes, p.hints.dram_read_bytes);
    EXPECT_EQ(b.dram_write_bytes, p.hints.dram_write_bytes);
}

TEST(BatchedMatmul, TheKpuCarriesATasksMatrixOnlyWhenItIsNotTheFirst) {
    const hw::Config edge = test::config("edge");
    const Program flat = compile(parse_graph(lone("MatMul", "[20, 30]", "[30, 40]"), "t.json"), edge);
    EXPECT_EQ(write_kpu(flat).find("\"batch\""), std::string::npos);
    const Program p = compile(parse_graph(lone("MatMul", "[2, 3, 20, 30]", "[2, 3, 30, 40]"), "t.json"), edge);
    const std::string text = write_kpu(p);
    EXPECT_NE(text.find("\"batch\": 5"), std::string::npos);
    EXPECT_EQ(read_kpu(text, "t.kpu"), p);
    std::string bad = text;
    bad.replace(bad.find("\"batch\": 5"), 10, "\"batch\": 6");
    EXPECT_EQ(test::error_of([&] { read_kpu(bad, "t.kpu"); }),
              "t.kpu: tasks[" + std::to_string(p.tasks.size() - 1) +
                  "].batch: matrix 6 out of range (kernel 0 has 6 C matrices)");
    bad = text;
    bad.replace(bad.find("\"batch\": 5"), 10, "\"batch\": 4");
    const std::string error = test::error_of([&] { read_kpu(bad, "t.kpu"); });
    EXPECT_NE(error.find("of matrix 4 of kernel 0 is already covered by task"), std::string::npos) << error;
}

// Gemm with transA / transB reads each operand's stored bytes once per task, like the
// untransposed form, and transposes its blocks on the way from L3 to L2.
TEST(GemmLowering, TransposedOperandsMoveTheSameDramBytesAndTransposeOnChip) {
    for (const char* name : {"edge", "t64"})
        for (Dataflow dataflow : {Dataflow::OutputStationary, Dataflow::WeightStationary})
            for (int ta = 0; ta < 2; ++ta)
                for (int tb = 0; tb < 2; ++tb) {
                    SCOPED_TRACE(std::string(name) + " " + to_string(dataflow) + " transA " + std::to_string(ta) +
                                 " transB " + std::to_string(tb));
                    const hw::Config config = test::config(name);
                    const uint64_t m = 100, n = 130, k = 300;
                    const std::string a = ta ? "[300, 100]" : "[100, 300]", b = tb ? "[130, 300]" : "[300, 130]";
                    const std::string attributes =
                        R"({"transA": )" + std::to_string(ta) + R"(, "transB": )" + std::to_string(tb) + "}";
                    const Program p = compile(parse_graph(lone("Gemm", a, b, attributes, "[130]"), "t.json"), config,
                                              {dataflow});
                    const MatmulOperands mm = matmul_operands(p.graph, 0);
                    EXPECT_EQ(mm.trans_a, ta == 1);
                    EXPECT_EQ(mm.trans_b, tb == 1);
                    std::set<uint32_t> rows, cols;
                    for (const Task& t : p.tasks) rows.insert(t.r0), cols.insert(t.c0);
                    const uint64_t pm = rows.size(), pn = cols.size();
                    EXPECT_EQ(p.hints.dram_read_bytes, 4 * (m * k * pn + k * n * pm + n * pm));
                    EXPECT_EQ(p.hints.dram_write_bytes, 4 * m * n);
                    EXPECT_EQ(stream_bytes(p), std::make_pair(p.hints.dram_read_bytes, p.hints.dram_write_bytes));
                    EXPECT_EQ(count_ops(p), count_expanded_ops(p));
                    const BoundProgram bound = bind(p, config);
                    EXPECT_EQ(bound.dram_read_bytes, p.hints.dram_read_bytes);
                    EXPECT_EQ(bound.dram_write_bytes, p.hints.dram_write_bytes);
                    // Every byte of a transposed operand that comes on chip goes L3 -> L2 transposed.
                    uint64_t transposed = 0, loaded = 0;
                    const uint32_t at = *p.graph.find_tensor("a"), bt = *p.graph.find_tensor("b");
                    for_each_op(p, [&](const DfxOp& op) {
                        const bool trans = (op.tensor == at && ta) || (op.tensor == bt && tb);
                        if (op.kind == DfxOpKind::Load && trans) loaded += op.bytes();
                        if (op.kind == DfxOpKind::Move && op.transpose) {
                            EXPECT_TRUE(trans);
                            EXPECT_EQ(op.src_level(), hw::Level::L3);
                            EXPECT_EQ(op.dst_level(), hw::Level::L2);
                            transposed += op.bytes();
                        }
                    });
                    EXPECT_GE(transposed, loaded);
                    EXPECT_EQ(transposed == 0, ta == 0 && tb == 0);
                    uint64_t bound_transposed = 0;
                    for (const BoundOp& op : bound.ops)
                        if (op.kind == BoundOp::Kind::Move && op.move.transform == hw::Transform::Transpose) {
                            EXPECT_EQ(op.engine, EngineKind::BlockMover);
                            bound_transposed += op.move.bytes();
                        }
                    EXPECT_LE(bound_transposed, transposed) << "some may be elided, none added";
                    EXPECT_EQ(bound_transposed == 0, transposed == 0);
                }
}

// alpha and beta go to the drain of each C tile's last K pass: alpha acc + beta bias.
TEST(GemmLowering, AlphaAndBetaScaleTheLastPasssDrain) {
    // edge: K = 4099 runs in passes (the e2e check's long_k case); t64 in one.
    for (const char* name : {"edge", "t64"}) {
        SCOPED_TRACE(name);
        const hw::Config config = test::config(name);
        const Program p = compile(
            parse_graph(lone("Gemm", "[17, 4099]", "[19, 4099]", R"({"alpha": 0.5, "beta": -2, "transB": 1})", "[19]"),
                        "t.json"),
            config);
        const MatmulOperands mm = matmul_operands(p.graph, 0);
        EXPECT_EQ(mm.alpha, 0.5f);
        EXPECT_EQ(mm.beta, -2.0f);
        uint64_t scaled = 0, plain = 0;
        for_each_op(p, [&](const DfxOp& op) {
            if (op.kind != DfxOpKind::Drain) return;
            (op.has_bias ? scaled : plain) += 1;
            EXPECT_EQ(op.alpha, op.has_bias ? 0.5f : 1.0f) << "only the finished sum is scaled";
            if (op.has_bias) {
                EXPECT_EQ(op.beta, -2.0f);
            }
        });
        EXPECT_EQ(scaled, count_ops(p).by_kind[int(DfxOpKind::Drain)] - plain);
        EXPECT_EQ(plain == 0, p.kernels[0].tile.kc == 0) << "earlier passes drain unscaled";
        for (const BoundOp& op : bind(p, config).ops)
            if (op.kind == BoundOp::Kind::Drain && op.drain.has_bias) {
                EXPECT_EQ(op.drain.alpha, 0.5f);
                EXPECT_EQ(op.drain.beta, -2.0f);
            }
    }
}

TEST(GemmLowering, WhatDoesNotLowerYetIsNamed) {
    const hw::Config edge = test::config("edge");
    const auto error = [&](const std::string& text) {
        return test::error_of([&] { compile(parse_graph(text, "t.json"), edge); });
    };
    const std::string head = "graph: Unsupported operators: ";
    EXPECT_EQ(error(lone("Gemm", "[4, 8]", "[6, 8]", R"({"transB": 1})", "[4, 6]")),
              head + "Gemm (mm: C of shape [4, 6] not yet supported (only [N] = [6]))");
    EXPECT_EQ(error(lone("MatMul", "[3, 4, 8]", "[8]")), head + "MatMul (mm: B of rank 1 not yet supported)");
}

}  // namespace
}  // namespace kpu::compiler
