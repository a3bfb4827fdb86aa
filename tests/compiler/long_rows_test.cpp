// Rows longer than a compute tile holds: an elementwise op runs on a view with shorter rows,
// a reduction in two passes; the DRAM bytes are the closed form of docs/compiler.md ("Long
// rows") and what the bound stream moves.
#include <gtest/gtest.h>

#include "compiler/binder.h"
#include "compiler/long_rows.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler {
namespace {

TEST(LongRows, AnElementwiseOpRunsOnShorterRowsMovingEachByteOnce) {
    const hw::Config minimal = test::config("minimal");
    const Graph g = parse_graph(R"({"tensors": [{"name": "x", "shape": [2, 1000000], "role": "input"},
        {"name": "b", "shape": [2, 1000000], "role": "input"}, {"name": "y"}],
        "ops": [{"op": "Add", "name": "v", "inputs": ["x", "b"], "outputs": ["y"]}]})", "t.json");
    const Program p = compile(g, minimal);
    const std::vector<std::string> expected = {"Reshape [" + std::to_string(2 * 1000000 / p.kernels[0].tile.tn) + ", " +
                                                   std::to_string(p.kernels[0].tile.tn) + "]",
                                               "Reshape", "Add", "Reshape [2, 1000000]"};
    const std::vector<std::string> got = test::op_summary(p.graph);
    ASSERT_EQ(got.size(), 4u);
    EXPECT_EQ(got[0], expected[0]);
    EXPECT_EQ(got[3], expected[3]);
    EXPECT_EQ(1000000 % p.kernels[0].tile.tn, 0u);
    EXPECT_EQ(p.hints.dram_read_bytes, 4u * 2 * 2000000);
    EXPECT_EQ(p.hints.dram_write_bytes, 4u * 2000000);
    test::expect_consistent(p, minimal);
}

// A reduction of rows of n in chunks of n / c: c values per row, then one.
TEST(LongRows, AReductionRunsInTwoPassesOverChunksThenTheirResults) {
    const hw::Config minimal = test::config("minimal");
    const Graph g = parse_graph(R"({"tensors": [{"name": "x", "shape": [3, 1000000], "role": "input"},
        {"name": "axes", "dtype": "int64", "role": "constant", "value": [-1]}, {"name": "y"}],
        "ops": [{"op": "ReduceMean", "name": "r", "inputs": ["x", "axes"], "outputs": ["y"]}]})", "t.json");
    const Program p = compile(g, minimal);
    ASSERT_EQ(p.kernels.size(), 2u);
    const uint64_t chunk = p.kernels[0].tile.tn, c = 1000000 / chunk;
    EXPECT_EQ(1000000 % chunk, 0u);
    const std::vector<std::string> expected = {"Reshape [" + std::to_string(3 * c) + ", " + std::to_string(chunk) + "]",
                                               "ReduceMean [" + std::to_string(3 * c) + "]",
                                               "Reshape [3, " + std::to_string(c) + "]", "ReduceMean [3]",
                                               "Reshape [3, 1]"};
    EXPECT_EQ(test::op_summary(p.graph), expected);
    EXPECT_EQ(p.hints.dram_read_bytes, 4u * (3000000 + 3 * c));
    EXPECT_EQ(p.hints.dram_write_bytes, 4u * (3 * c + 3));
    test::expect_consistent(p, minimal);
}

TEST(LongRows, RowsThatFitAreLeftAsTheyAre) {
    const Graph g = parse_graph(R"({"tensors": [{"name": "x", "shape": [3, 1000], "role": "input"}, {"name": "y"}],
        "ops": [{"op": "Exp", "name": "e", "inputs": ["x"], "outputs": ["y"]}]})", "t.json");
    EXPECT_EQ(split_long_rows(g, test::config("minimal")), g);
}

}  // namespace
}  // namespace kpu::compiler
