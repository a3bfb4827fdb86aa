// Attention lowered to DFX: the masked softmax's pieces (row tiles cut at each matrix of the
// scores), their causal diagonals and mask rows, and the DRAM bytes of the hints against the
// bound stream and the closed form of docs/compiler.md.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "compiler/binder.h"
#include "compiler/kpu_format.h"
#include "compiler/ops/op_schema.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler {
namespace {

/// y = masked_softmax(x [, mask]) with x of `shape`, the mask of `mask_shape` ("" for none).
std::string masked_softmax(const std::string& shape, const std::string& mask_shape, bool causal) {
    const bool mask = !mask_shape.empty();
    return R"({"tensors": [{"name": "x", "shape": )" + shape + R"(, "role": "input"},)" +
           (mask ? R"({"name": "m", "shape": )" + mask_shape + R"(, "role": "input"},)" : std::string()) +
           R"({"name": "y"}], "ops": [{"op": "masked_softmax", "name": "sm", "inputs": ["x")" +
           (mask ? R"(, "m")" : "") + R"(], "outputs": ["y"], "attributes": {"scale": 0.125, "is_causal": )" +
           (causal ? "1" : "0") + "}}]}";
}

// The mask is read once per query row when it has one (every piece its own rows), once per
// piece when it is one row per matrix, once per task when it is a scalar; x and y once.
TEST(AttentionLowering, MaskedSoftmaxMovesXOnceAndItsMaskByTheClosedForm) {
    const uint64_t sq = 19, skv = 23, rows = 2 * 3 * sq;
    struct Case {
        std::string mask;
        bool causal;
    };
    const Case cases[] = {{"", true},           {"[19, 23]", false}, {"[2, 1, 1, 23]", true},
                          {"[23]", true},       {"[1]", true},       {"[2, 3, 19, 23]", false}};
    for (const char* name : {"minimal", "edge", "t64"}) {
        const hw::Config config = test::config(name);
        for (const Case& c : cases) {
            SCOPED_TRACE(std::string(name) + " mask " + c.mask);
            const Program p = compile(parse_graph(masked_softmax("[2, 3, 19, 23]", c.mask, c.causal), "t.json"), config);
            const uint64_t tm = p.kernels[0].tile.tm;
            // Pieces: each row tile cut at multiples of sq (a plain loop over the rows).
            uint64_t pieces = 0, vectors = 0;
            for (const Task& t : p.tasks)
                for (uint64_t r = t.r0 * tm; r < std::min(rows, t.r1 * tm); ++r)
                    pieces += r == t.r0 * tm || r % tm == 0 || r % sq == 0;
            uint64_t mask = 0;  // elements
            if (c.mask == "[1]") mask = p.tasks.size();
            else if (c.mask == "[19, 23]" || c.mask == "[2, 3, 19, 23]") mask = rows * skv;
            else if (!c.mask.empty()) mask = pieces * skv;
            EXPECT_EQ(p.hints.dram_read_bytes, 4 * (rows * skv + mask));
            EXPECT_EQ(p.hints.dram_write_bytes, 4 * rows * skv);
            const BoundProgram b = test::expect_consistent(p, config);
            // Every piece's VECTOR lies in one matrix and starts its diagonal at its own row.
            for (const BoundOp& op : b.ops) {
                if (op.kind != BoundOp::Kind::Vector) continue;
                ++vectors;
                EXPECT_EQ(op.vector.causal, c.causal);
                EXPECT_FLOAT_EQ(op.vector.scale, 0.125f);
            }
            const bool cut = c.causal || (c.mask != "" && c.mask != "[2, 3, 19, 23]" && c.mask != "[1]");
            uint64_t row_tiles = 0;
            for (const Task& t : p.tasks) row_tiles += t.r1 - t.r0;
            EXPECT_EQ(vectors, cut ? pieces : row_tiles);
        }
    }
}

// Each piece's causal offset is its first row's place in its matrix, and a piece never
// crosses a matrix: the bound commands cover every row once.
TEST(AttentionLowering, EachPieceStartsItsCausalDiagonalAtItsRowInTheMatrix) {
    const hw::Config config = test::config("edge");
    const Program p = compile(parse_graph(masked_softmax("[3, 7, 11]", "", true), "t.json"), config);
    uint64_t covered = 0;
    std::map<uint32_t, uint64_t> row_of;  // VECTOR DFX op id -> its first row
    for_each_op(p, [&](const DfxOp& op) {
        if (op.kind != DfxOpKind::Vector) return;
        EXPECT_EQ(op.row / 7, (op.row + op.m - 1) / 7) << "piece at row " << op.row << " crosses a matrix";
        covered += op.m;
        row_of[op.id] = op.row;
    });
    EXPECT_EQ(covered, 21u);
    for (const BoundOp& op : bind(p, config).ops) {
        if (op.kind == BoundOp::Kind::Vector) {
            EXPECT_EQ(op.vector.causal_offset, int64_t(row_of.at(op.dfx_op) % 7));
        }
    }
}

// Grouped heads (4 query heads on 2 key/value heads): the queries viewed as [B, Hkv, g Sq, E]
// share one K^T per key/value head, the softmax sees the scores as [B, Hq, Sq, Skv] (its mask
// and causal diagonal per query head), and the result is viewed back.
TEST(AttentionLowering, AttentionExpandsIntoTransposeMatmulsAndAMaskedSoftmax) {
    const std::string text = R"({"tensors": [{"name": "q", "shape": [2, 4, 5, 8], "role": "input"},
        {"name": "k", "shape": [2, 2, 7, 8], "role": "input"}, {"name": "v", "shape": [2, 2, 7, 3], "role": "input"},
        {"name": "m", "shape": [5, 7], "role": "input"}, {"name": "y"}],
        "ops": [{"op": "Attention", "name": "att", "inputs": ["q", "k", "v", "m"], "outputs": ["y"],
                 "attributes": {"is_causal": 1}}]})";
    const Graph g = expand_composites(parse_graph(text, "t.json"), "t.json");
    const std::vector<std::string> expected = {
        "Transpose [2, 2, 8, 7]", "Reshape [2, 2, 10, 8]", "MatMul [2, 2, 10, 7]", "Reshape [2, 4, 5, 7]",
        "masked_softmax [2, 4, 5, 7]", "Reshape [2, 2, 10, 7]", "MatMul [2, 2, 10, 3]", "Reshape [2, 4, 5, 3]"};
    EXPECT_EQ(test::op_summary(g), expected);
    const Op& softmax = g.ops()[4];
    EXPECT_EQ(g.tensor(softmax.inputs[1]).name, "m");
    EXPECT_DOUBLE_EQ(std::get<double>(softmax.attributes.at("scale")), 1 / std::sqrt(8.0));
    EXPECT_EQ(std::get<int64_t>(softmax.attributes.at("is_causal")), 1);
    EXPECT_EQ(g.tensor(g.ops().back().outputs[0]).name, "y");
}

// The 3-D form splits the heads out of the hidden axis and merges them back after.
TEST(AttentionLowering, ThreeDimensionalAttentionSplitsAndMergesHeads) {
    const std::string text = R"({"tensors": [{"name": "q", "shape": [1, 6, 12], "role": "input"},
        {"name": "k", "shape": [1, 9, 12], "role": "input"}, {"name": "v", "shape": [1, 9, 6], "role": "input"},
        {"name": "y"}], "ops": [{"op": "Attention", "name": "a", "inputs": ["q", "k", "v"], "outputs": ["y"],
        "attributes": {"q_num_heads": 3, "kv_num_heads": 3, "scale": 0.5}}]})";
    const Graph g = expand_composites(parse_graph(text, "t.json"), "t.json");
    const std::vector<std::string> expected = {
        "Reshape [1, 6, 3, 4]", "Transpose [1, 3, 6, 4]", "Reshape [1, 9, 3, 4]", "Transpose [1, 3, 4, 9]",
        "Reshape [1, 9, 3, 2]", "Transpose [1, 3, 9, 2]", "MatMul [1, 3, 6, 9]", "masked_softmax [1, 3, 6, 9]",
        "MatMul [1, 3, 6, 2]", "Transpose [1, 6, 3, 2]", "Reshape [1, 6, 6]"};
    EXPECT_EQ(test::op_summary(g), expected);
    EXPECT_EQ(g.tensor(g.ops().back().outputs[0]).name, "y");
}

TEST(AttentionLowering, ASoftcapIsRefusedWithItsValue) {
    const std::string text = R"({"tensors": [{"name": "q", "shape": [1, 1, 4, 8], "role": "input"},
        {"name": "k", "shape": [1, 1, 4, 8], "role": "input"}, {"name": "v", "shape": [1, 1, 4, 8], "role": "input"},
        {"name": "y"}], "ops": [{"op": "Attention", "name": "a", "inputs": ["q", "k", "v"], "outputs": ["y"],
        "attributes": {"softcap": 30.0}}]})";
    const std::string error = test::error_of([&] { compile(parse_graph(text, "t.json"), test::config("edge")); });
    EXPECT_NE(error.find("Unsupported operators: Attention (a: softcap = 30 not yet supported)"), std::string::npos)
        << error;
}

TEST(AttentionLowering, AMaskBroadcastAlongTheKeysIsNamed) {
    const std::string error = test::error_of([] {
        compile(parse_graph(masked_softmax("[4, 9]", "[4, 1]", false), "t.json"), test::config("edge"));
    });
    EXPECT_NE(error.find("input 'mask' of shape [4, 1] broadcast along the last axis (9) not yet supported"),
              std::string::npos)
        << error;
}

}  // namespace
}  // namespace kpu::compiler
