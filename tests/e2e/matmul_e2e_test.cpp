// Compiled programs run on the simulated KPU and give the reference's numbers, on the
// small config and on the 64-tile one, for square, skinny and ragged shapes.
#include "tests/e2e/e2e_support.h"

namespace kpu::test {
namespace {

TEST(MatmulOnMinimal, SquareMatchesReference) { run_and_check(matmul_json(128, 128, 128), config("minimal")); }
TEST(MatmulOnMinimal, TallSkinnyMatchesReference) { run_and_check(matmul_json(1024, 8, 64), config("minimal")); }
TEST(MatmulOnMinimal, RaggedMatchesReference) { run_and_check(matmul_json(333, 257, 129), config("minimal")); }
TEST(MatmulOnMinimal, OneByOneByOneMatchesReference) { run_and_check(matmul_json(1, 1, 1), config("minimal")); }
TEST(MatmulOnMinimal, WeightStationaryMatchesReference) {
    run_and_check(matmul_json(200, 72, 96), config("minimal"), nullptr, compiler::Dataflow::WeightStationary);
}

/// A matmul whose K is too long for one pass over L3, with a bias and GELU on the last one.
std::string long_k_graph(uint64_t m, uint64_t n, uint64_t k) { return matmul_json(m, n, k, true, "gelu"); }

void expect_passes(const std::string& graph, const hw::Config& target, compiler::Dataflow dataflow) {
    const compiler::Program p = compile(graph, target, dataflow);
    EXPECT_GT(p.kernels[0].tile.kc, 0u) << "K fits one pass: the test no longer exercises passes";
}

TEST(MatmulOnMinimal, LongKInPassesWithBiasAndGeluMatchesReference) {
    const std::string g = long_k_graph(40, 24, 20000);
    expect_passes(g, config("minimal"), compiler::Dataflow::OutputStationary);
    run_and_check(g, config("minimal"));
}
TEST(MatmulOnMinimal, LongKInPassesWeightStationaryMatchesReference) {
    const std::string g = long_k_graph(24, 40, 20000);
    expect_passes(g, config("minimal"), compiler::Dataflow::WeightStationary);
    run_and_check(g, config("minimal"), nullptr, compiler::Dataflow::WeightStationary);
}

TEST(MatmulOnT64, SquareMatchesReference) { run_and_check(matmul_json(256, 256, 256), config("t64")); }
TEST(MatmulOnT64, TallSkinnyMatchesReference) { run_and_check(matmul_json(4096, 16, 128), config("t64")); }
TEST(MatmulOnT64, LargeRaggedMatchesReference) { run_and_check(matmul_json(1000, 999, 517), config("t64")); }
TEST(MatmulOnT64, OneByOneByOneMatchesReference) { run_and_check(matmul_json(1, 1, 1), config("t64")); }
TEST(MatmulOnT64, LongKInPassesMatchesReference) {
    // K = 8192 does not fit t64's 1 MiB of L3 in one pass even for 16 x 16 tiles.
    const std::string g = matmul_json(64, 64, 8192);
    expect_passes(g, config("t64"), compiler::Dataflow::OutputStationary);
    run_and_check(g, config("t64"));
}

TEST(MlpOnMinimal, ChainWithBiasReluAndIntermediateInDramMatchesReference) {
    run_and_check(example("mlp.json"), config("minimal"));
}

TEST(MlpOnT64, GeluChainMatchesReference) {
    const char* graph = R"({"tensors": [
        {"name": "x", "shape": [96, 80], "role": "input"},
        {"name": "W1", "shape": [80, 112], "role": "constant"},
        {"name": "b1", "shape": [112], "role": "constant"},
        {"name": "h"},
        {"name": "W2", "shape": [112, 40], "role": "constant"},
        {"name": "y"}],
      "ops": [
        {"op": "matmul", "name": "fc1", "A": "x", "B": "W1", "bias": "b1", "activation": "gelu", "C": "h"},
        {"op": "matmul", "name": "fc2", "A": "h", "B": "W2", "C": "y"}]})";
    run_and_check(graph, config("t64"));
}

}  // namespace
}  // namespace kpu::test
