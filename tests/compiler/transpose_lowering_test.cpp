// Transpose of the last two axes lowered as data movement: its DRAM traffic (every byte read
// once and written once, the hints equal to the bound stream's), the transposing moves, and
// every other perm lowering as copies, and the reason given for a matrix too large for a compute tile.
#include <gtest/gtest.h>

#include <algorithm>

#include "compiler/binder.h"
#include "compiler/dfx.h"
#include "compiler/generate.h"
#include "compiler/kpu_format.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler {
namespace {

/// y = Transpose(x) with x of `shape` and `perm` ("" for ONNX's default).
std::string transpose(const std::string& shape, const std::string& perm) {
    return R"({"tensors": [{"name": "x", "shape": )" + shape + R"(, "role": "input"}, {"name": "y"}],
      "ops": [{"op": "Transpose", "name": "t1", "inputs": ["x"], "outputs": ["y"], "attributes": )" +
           (perm.empty() ? std::string("{}") : R"({"perm": )" + perm + "}") + "}]}";
}

TEST(TransposeLowering, OtherPermsLowerAsCopiesAndATooLargeMatrixIsRefused) {
    const hw::Config edge = test::config("edge");
    // Every other perm is a layout op's copies (copy_op.h; layout_lowering_test.cpp).
    for (const auto& [shape, perm] : {std::pair{"[3, 5, 7]", "[1, 0, 2]"}, {"[3, 5, 7]", ""},
                                      {"[2, 3, 5, 7]", "[1, 0, 3, 2]"}, {"[7]", "[0]"}}) {
        const Graph g = parse_graph(transpose(shape, perm), "t.json");
        EXPECT_TRUE(is_copy_op(g, g.ops()[0])) << shape << " " << perm;
        EXPECT_EQ(compile(g, edge).hints.dram_write_bytes, g.tensor(*g.find_tensor("x")).bytes());
    }
    // 2 slots of 512 x 512 x 4 B in L2; 2 in L3.panel and 2 in L3.out.
    EXPECT_EQ(test::error_of([&] { compile(parse_graph(transpose("[512, 512]", "[1, 0]"), "t.json"), edge); }),
              "op 't1' (Transpose): a matrix of 512 x 512 of tensor 'x' needs 2097152 bytes of L2 and 4194304 bytes of L3 per "
              "compute tile with its double buffers, but config 'edge' has 262144 and 524288 (matrices that large "
              "are not yet supported)");
}

/// The perm that swaps the last two axes of `shape`.
std::string perm_of(const std::string& shape) {
    const size_t rank = size_t(std::count(shape.begin(), shape.end(), ',')) + 1;
    std::string perm;
    for (size_t d = 0; d < rank; ++d) {
        const size_t axis = d + 2 < rank ? d : d + 2 == rank ? rank - 1 : rank - 2;
        perm += (d ? ", " : "") + std::to_string(axis);
    }
    return "[" + perm + "]";
}

TEST(TransposeLowering, EveryDramByteIsReadOnceAndWrittenOnceByTheMovers) {
    for (const char* name : {"edge", "t64"})
        for (const char* shape : {"[7, 13]", "[3, 5, 37]", "[2, 3, 64, 48]", "[1, 1]"}) {
            SCOPED_TRACE(std::string(name) + " " + shape);
            const hw::Config config = test::config(name);
            const Program p = compile(parse_graph(transpose(shape, perm_of(shape)), "t.json"), config);
            const Graph& g = p.graph;
            const uint64_t bytes = g.tensor(*g.find_tensor("x")).bytes();
            ASSERT_EQ(p.kernels.size(), 1u);
            EXPECT_EQ(p.hints.dram_read_bytes, bytes);
            EXPECT_EQ(p.hints.dram_write_bytes, bytes);
            EXPECT_EQ(p.hints.macs, 0u);
            EXPECT_EQ(count_ops(p), count_expanded_ops(p));
            EXPECT_EQ(count_ops(p).by_kind[int(DfxOpKind::Vector)], 0u) << "no compute";
            const BoundProgram b = bind(p, config);
            EXPECT_EQ(b.dram_read_bytes, p.hints.dram_read_bytes);
            EXPECT_EQ(b.dram_write_bytes, p.hints.dram_write_bytes);
            uint64_t transposed = 0;
            for (const BoundOp& op : b.ops) {
                EXPECT_NE(op.kind, BoundOp::Kind::Vector);
                if (op.kind == BoundOp::Kind::Move && op.move.transform == hw::Transform::Transpose) {
                    EXPECT_EQ(op.engine, EngineKind::BlockMover);
                    transposed += op.move.bytes();
                }
            }
            EXPECT_EQ(transposed, bytes) << "each matrix transposed once, L3 to L2";
        }
}

// A Transpose's tile in a .kpu holds whole matrices: tm a multiple of the matrix rows.
TEST(TransposeLowering, AKpuWhoseTileSplitsAMatrixIsRejected) {
    const Program p = compile(parse_graph(transpose("[3, 5, 37]", "[0, 2, 1]"), "t.json"), test::config("edge"));
    ASSERT_EQ(p.kernels[0].tile.tm, 5u);  // one matrix per row tile (3 matrices, 4 compute tiles)
    std::string text = write_kpu(p);
    const size_t at = text.find("5", text.find("\"tile\": ["));
    ASSERT_NE(at, std::string::npos) << text;
    text.replace(at, 1, "4");
    EXPECT_EQ(test::error_of([&] { read_kpu(text, "t.kpu"); }),
              "t.kpu: kernels[0].tile[0]: tm 4 of a Transpose must be a multiple of 5 (whole matrices)");
}

}  // namespace
}  // namespace kpu::compiler
