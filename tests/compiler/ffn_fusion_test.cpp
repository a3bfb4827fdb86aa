// The fused FFN (fuse-ffn, compiler/ffn_fusion.h): the pass's choice of pairs, the kernel's
// DRAM bytes against the closed form, the op stream and the bound program, H never in DRAM,
// and the fall-back when a row block does not fit.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "compiler/ffn_fusion.h"
#include "compiler/ops/op_schema.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler {
namespace {

std::string s(uint64_t v) { return std::to_string(v); }

/// y = (act(x @ W1 (+ b1)) @ W2 (+ b2)) as one `ffn` op, or as two fused matmuls through h.
std::string ffn_json(uint64_t m, uint64_t k, uint64_t hidden, uint64_t n, const std::string& act, bool b1, bool b2,
                     bool fused_op) {
    std::string t = R"({"tensors": [{"name": "x", "shape": [)" + s(m) + ", " + s(k) + R"(], "role": "input"},
        {"name": "W1", "shape": [)" + s(k) + ", " + s(hidden) + R"(], "role": "constant"},
        {"name": "W2", "shape": [)" + s(hidden) + ", " + s(n) + R"(], "role": "constant"},)";
    if (b1) t += R"({"name": "b1", "shape": [)" + s(hidden) + R"(], "role": "constant"},)";
    if (b2) t += R"({"name": "b2", "shape": [)" + s(n) + R"(], "role": "constant"},)";
    if (!fused_op) t += R"({"name": "h"},)";
    t += R"({"name": "y"}], "ops": [)";
    if (fused_op)
        return t + R"({"op": "ffn", "name": "f", "inputs": ["x", "W1", "W2", )" + (b1 ? R"("b1")" : R"("")") +
               (b2 ? R"(, "b2")" : "") + R"(], "outputs": ["y"], "attributes": {"activation": ")" + act + R"("}}]})";
    return t + R"({"op": "matmul", "name": "fc1", "A": "x", "B": "W1", )" + (b1 ? R"("bias": "b1", )" : "") +
           R"("activation": ")" + act + R"(", "C": "h"},
        {"op": "matmul", "name": "fc2", "A": "h", "B": "W2", )" + (b2 ? R"("bias": "b2", )" : "") + R"("C": "y"}]})";
}

struct Shape {
    uint64_t m, k, hidden, n;
};

// The hints are the closed form (X once; W1, W2 and the biases once per row block; Y once;
// no H), the op stream moves exactly those bytes (LOADs and STOREs summed here, the bound
// program by the binder), the formula op counts are the stream's, the .kpu round trips.
TEST(FfnFusion, HintsEqualTheOpStreamTheBoundProgramAndTheClosedForm) {
    const Shape shapes[] = {{100, 72, 200, 40}, {37, 50, 130, 20}, {1, 33, 17, 5}, {64, 64, 128, 64}, {130, 24, 40, 19}};
    for (const char* name : {"minimal", "edge", "t64"}) {
        const hw::Config config = test::config(name);
        for (const Shape& sh : shapes)
            for (int biases = 0; biases < 4; ++biases) {
                const bool b1 = biases & 1, b2 = biases & 2;
                SCOPED_TRACE(std::string(name) + " " + s(sh.m) + "x" + s(sh.k) + "x" + s(sh.hidden) + "x" + s(sh.n) +
                             " b1 " + s(b1) + " b2 " + s(b2));
                const Program p =
                    compile(parse_graph(ffn_json(sh.m, sh.k, sh.hidden, sh.n, biases % 3 ? "gelu" : "relu", b1, b2, true),
                                        "f.json"),
                            config);
                ASSERT_EQ(p.kernels.size(), 1u);
                const uint64_t tm = p.kernels[0].tile.tm, blocks = (sh.m + tm - 1) / tm;
                EXPECT_EQ(p.tasks.size(), blocks);
                EXPECT_EQ(p.hints.dram_read_bytes,
                          4 * (sh.m * sh.k + blocks * (sh.k * sh.hidden + sh.hidden * sh.n + (b1 ? sh.hidden : 0) +
                                                       (b2 ? sh.n : 0))));
                EXPECT_EQ(p.hints.dram_write_bytes, 4 * sh.m * sh.n);
                EXPECT_EQ(p.hints.macs, sh.m * sh.hidden * sh.k + sh.m * sh.n * sh.hidden);
                uint64_t read = 0, write = 0;
                for_each_op(p, [&](const DfxOp& op) {
                    if (op.kind == DfxOpKind::Load) read += op.bytes();
                    if (op.kind == DfxOpKind::Store) write += op.bytes();
                });
                EXPECT_EQ(read, p.hints.dram_read_bytes);
                EXPECT_EQ(write, p.hints.dram_write_bytes);
                test::expect_consistent(p, config);
            }
    }
}

// Where the pass fuses (the MLP on minimal), the program has one ffn op that absorbed both
// matmuls, no tensor h, and a stream whose LOADs and STOREs never touch H: it goes from the
// drain to L3.hidden and from there to L2 as the second matmul's A. -O0 keeps h in DRAM.
TEST(FfnFusion, HNeverReachesDram) {
    const hw::Config minimal = test::config("minimal");
    const Graph g = parse_graph(test::mlp_json(100, 72, 200, 40), "mlp.json");
    const Program p = compile(g, minimal);
    ASSERT_NE(std::find(p.passes.begin(), p.passes.end(), Pass::FuseFfn), p.passes.end());
    ASSERT_EQ(p.graph.ops().size(), 1u);
    EXPECT_EQ(p.graph.ops()[0].kind, "ffn");
    EXPECT_EQ(p.graph.ops()[0].name, "fc2");
    EXPECT_EQ(p.graph.ops()[0].fused_with, (std::vector<std::string>{"fc1"}));
    EXPECT_FALSE(p.graph.find_tensor("h").has_value());
    std::set<std::string> dram;
    uint64_t from_hidden = 0, to_hidden = 0;
    for_each_op(p, [&](const DfxOp& op) {
        if (op.kind == DfxOpKind::Load || op.kind == DfxOpKind::Store) {
            dram.insert(std::string(to_string(op.kind)) + " " + p.graph.tensor(op.tensor).name);
            EXPECT_NE(op.kind == DfxOpKind::Load ? op.dst.buffer : op.src.buffer, Buffer::Hidden);
        }
        if (op.kind == DfxOpKind::Move) {
            from_hidden += op.src.buffer == Buffer::Hidden;
            to_hidden += op.dst.buffer == Buffer::Hidden;
        }
    });
    EXPECT_EQ(dram, (std::set<std::string>{"LOAD x", "LOAD W1", "LOAD W2", "LOAD b1", "LOAD b2", "STORE y"}));
    const uint64_t t = p.kernels[0].tile.tn, blocks = p.tasks.size(), strips = (200 + t - 1) / t;
    EXPECT_EQ(to_hidden, blocks * strips) << "every H tile of every row block into L3.hidden";
    EXPECT_EQ(from_hidden, blocks * strips * ((40 + t - 1) / t)) << "and out again once per Y strip";
    test::expect_consistent(p, minimal);

    CompileOptions o0;
    o0.passes.level = 0;
    const Program apart = compile(g, minimal, o0);
    EXPECT_TRUE(apart.passes.empty());
    EXPECT_EQ(apart.kernels.size(), 2u);
    EXPECT_LT(p.hints.dram_read_bytes + p.hints.dram_write_bytes,
              apart.hints.dram_read_bytes + apart.hints.dram_write_bytes);
    // --disable-pass fuse-ffn at -O2 leaves it as -O0 does.
    EXPECT_EQ(compile(g, minimal, test::unfused()).kernels, apart.kernels);
}

// A hidden layer whose row block of the fabric's rows does not fit L3 (minimal: 256 KiB per
// compute tile) is left to the two matmuls, and -v's notes say why; an ffn op given directly
// fails naming the op and the bytes.
TEST(FfnFusion, AHiddenBlockThatDoesNotFitFallsBackToTwoMatmuls) {
    const hw::Config minimal = test::config("minimal");
    const Graph g = parse_graph(test::mlp_json(64, 64, 8192, 64), "mlp.json");
    std::vector<std::string> notes;
    CompileOptions options;
    options.notes = &notes;
    const Program p = compile(g, minimal, options);
    EXPECT_EQ(p.kernels.size(), 2u);
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_NE(notes[0].find("fuse-ffn: left 'fc1' and 'fc2' unfused: op 'fc2' (ffn): a row block of 8 rows"),
              std::string::npos)
        << notes[0];
    EXPECT_NE(notes[0].find("bytes of L3 per compute tile"), std::string::npos) << notes[0];
    const std::string e = test::error_of(
        [&] { compile(parse_graph(ffn_json(64, 64, 8192, 64, "relu", true, true, true), "f.json"), minimal); });
    EXPECT_NE(e.find("op 'f' (ffn): a row block of 8 rows (its X panel, its 8 x 8192 H block"), std::string::npos) << e;
    EXPECT_NE(e.find("config 'minimal' has 262144"), std::string::npos) << e;
}

// Only a private H between two plain matmuls is fused: not one another op reads too, not a
// graph output, not when the second matmul has an activation of its own.
TEST(FfnFusion, OnlyAPrivateHiddenBetweenTwoPlainMatmulsIsFused) {
    const hw::Config minimal = test::config("minimal");
    const std::string base = test::mlp_json(100, 72, 200, 40);
    auto kinds = [&](const std::string& text) {
        std::vector<std::string> out;
        const Program p = compile(parse_graph(text, "g.json"), minimal);
        for (const Op& op : p.graph.ops()) out.push_back(op.kind);
        return out;
    };
    EXPECT_EQ(kinds(base), std::vector<std::string>{"ffn"});
    std::string relu2 = base;
    relu2.replace(relu2.find(R"("bias": "b2", )"), 14, R"("bias": "b2", "activation": "relu", )");
    EXPECT_EQ(kinds(relu2), (std::vector<std::string>{"matmul", "matmul"}));
    std::string shared = base;  // h also read by a Relu
    shared.replace(shared.find(R"({"name": "y"}])"), 14, R"({"name": "y"}, {"name": "r"}])");
    shared.replace(shared.rfind("]}"), 2, R"(, {"op": "Relu", "name": "r", "inputs": ["h"], "outputs": ["r"]}]})");
    EXPECT_EQ(kinds(shared), (std::vector<std::string>{"matmul", "matmul", "Relu"}));
    std::string output = base;  // h a graph output
    output.replace(output.find(R"({"name": "h"})"), 13, R"({"name": "h", "role": "output"})");
    EXPECT_EQ(kinds(output), (std::vector<std::string>{"matmul", "matmul"}));
}

// The ffn op's inference and its precise errors.
TEST(FfnFusion, TheOpInfersYAndNamesAMismatch) {
    const Graph g = parse_graph(ffn_json(7, 5, 9, 3, "gelu", false, true, true), "f.json");
    EXPECT_EQ(g.tensor(*g.find_tensor("y")).shape, (std::vector<uint64_t>{7, 3}));
    const FfnOperands f = ffn_operands(g, 0);
    EXPECT_EQ(f.m, 7u);
    EXPECT_EQ(f.k, 5u);
    EXPECT_EQ(f.hidden, 9u);
    EXPECT_EQ(f.n, 3u);
    EXPECT_FALSE(f.b1.has_value());
    EXPECT_TRUE(f.b2.has_value());
    EXPECT_EQ(f.activation, Activation::Gelu);
    std::string bad = ffn_json(7, 5, 9, 3, "gelu", true, true, true);
    bad.replace(bad.find(R"("shape": [9, 3])"), 15, R"("shape": [8, 3])");
    EXPECT_EQ(test::error_of([&] { parse_graph(bad, "f.json"); }),
              "f.json: op 'f' (ffn): input 'W1' ('W1', [5, 9]) dimension 1 is 9 but input 'W2' ('W2', [8, 3]) "
              "dimension 0 is 8");
}

}  // namespace
}  // namespace kpu::compiler
