// Attention lowered to DFX: the masked softmax's pieces (row tiles cut at each matrix of the
// scores), their causal diagonals and mask rows, and the DRAM bytes of the hints against the
// bound stream and the closed form of docs/compiler.md.
#include <gtest/gtest.h>

#include <map>

#include "compiler/binder.h"
#include "compiler/kpu_format.h"
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
            const BoundProgram b = bind(p, config);
            EXPECT_EQ(b.dram_read_bytes, p.hints.dram_read_bytes);
            EXPECT_EQ(b.dram_write_bytes, p.hints.dram_write_bytes);
            EXPECT_EQ(count_ops(p), count_expanded_ops(p));
            EXPECT_EQ(read_kpu(write_kpu(p), "t.kpu"), p);
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
    for (const BoundOp& op : bind(p, config).ops)
        if (op.kind == BoundOp::Kind::Vector) EXPECT_EQ(op.vector.causal_offset, int64_t(row_of.at(op.dfx_op) % 7));
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
