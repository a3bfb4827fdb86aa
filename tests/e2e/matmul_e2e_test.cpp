// Compiled programs run on the simulated KPU and give the reference's numbers, on the
// small config and on the 64-tile one, for square, skinny and ragged shapes.
#include "tests/e2e/e2e_support.h"

namespace kpu::test {
namespace {

TEST(MatmulOnMinimal, SquareMatchesReference) { run_and_check(matmul_graph(128, 128, 128), config("minimal")); }
TEST(MatmulOnMinimal, TallSkinnyMatchesReference) { run_and_check(matmul_graph(1024, 8, 64), config("minimal")); }
TEST(MatmulOnMinimal, RaggedMatchesReference) { run_and_check(matmul_graph(333, 257, 129), config("minimal")); }
TEST(MatmulOnMinimal, OneByOneByOneMatchesReference) { run_and_check(matmul_graph(1, 1, 1), config("minimal")); }
TEST(MatmulOnMinimal, WeightStationaryMatchesReference) {
    run_and_check(matmul_graph(200, 72, 96), config("minimal"), nullptr, compiler::Dataflow::WeightStationary);
}

TEST(MatmulOnT64, SquareMatchesReference) { run_and_check(matmul_graph(256, 256, 256), config("t64")); }
TEST(MatmulOnT64, TallSkinnyMatchesReference) { run_and_check(matmul_graph(4096, 16, 128), config("t64")); }
TEST(MatmulOnT64, LargeRaggedMatchesReference) { run_and_check(matmul_graph(1000, 999, 517), config("t64")); }
TEST(MatmulOnT64, OneByOneByOneMatchesReference) { run_and_check(matmul_graph(1, 1, 1), config("t64")); }

TEST(MlpOnMinimal, ChainWithBiasReluAndIntermediateInDramMatchesReference) {
    std::ifstream in(std::string(KPU_SOURCE_DIR) + "/examples/mlp.json");
    std::string text((std::istreambuf_iterator<char>(in)), {});
    run_and_check(text, config("minimal"));
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
