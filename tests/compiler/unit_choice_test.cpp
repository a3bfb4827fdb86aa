// Where a depthwise Conv runs: the vector engine or the fabric, by the two formulas of
// docs/compiler.md ("Depthwise convolution"), each checked by hand here.
#include <gtest/gtest.h>

#include <cmath>

#include "compiler/unit_choice.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler {
namespace {

std::string depthwise(uint64_t c, uint64_t hw) {
    const std::string s = std::to_string(c), h = std::to_string(hw);
    return R"({"tensors": [{"name": "x", "shape": [1, )" + s + ", " + h + ", " + h + R"(], "role": "input"},
        {"name": "w", "shape": [)" + s + R"(, 1, 3, 3], "role": "constant"}, {"name": "y"}],
        "ops": [{"op": "Conv", "name": "dw", "inputs": ["x", "w"], "outputs": ["y"],
                 "attributes": {"group": )" + s + R"(, "kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}}]})";
}

// MobileNetV2's 144-channel 56x56 depthwise layer on t64: the fabric uses one column of 16 and
// its layout Transposes triple the DRAM bytes; the vector engine is cheaper.
TEST(UnitChoice, ADepthwiseConvRunsOnTheVectorEngineWhereItIsCheaper) {
    const hw::Config t64 = test::config("t64");
    std::vector<UnitChoice> choices;
    const Graph g = choose_units(parse_graph(depthwise(144, 56), "t.json"), t64, &choices);
    ASSERT_EQ(choices.size(), 1u);
    // Fabric: 144 channels x ceil(3136 / 16) passes x 9 taps over 64 tiles, or the DRAM time of
    // x, y, w and the Transposes' 2 (x + y) at t64's DMA bandwidth, whichever is longer.
    const double bytes = 4.0 * (144 * 56 * 56 * 2 + 144 * 9), layout = 4.0 * 2 * 2 * 144 * 56 * 56;
    const hw::Derived d = hw::derive(t64);
    const double compute = 144.0 * 196 * 9 / 64, dram = (bytes + layout) / d.dma_bandwidth * t64.clocks.fabric_hz;
    EXPECT_NEAR(choices[0].fabric_cycles, std::max(compute, dram), 1e-6 * dram);
    EXPECT_TRUE(choices[0].vector);
    EXPECT_LT(choices[0].vector_cycles, choices[0].fabric_cycles);
    EXPECT_EQ(g.ops().at(0).kind, "depthwise_conv");
    const Program p = compile(parse_graph(depthwise(144, 56), "t.json"), t64);
    EXPECT_EQ(p.graph.ops().at(0).kind, "depthwise_conv");
}

// With one lane per engine the vector engine is 16 times slower and the fabric wins: the Conv
// keeps its expansion (conv_nhwc between layout Transposes).
TEST(UnitChoice, ASlowVectorEngineLeavesItOnTheFabric) {
    const hw::Config slow = hw::load_config(std::string(KPU_SOURCE_DIR) + "/configs/t64.json",
                                            {hw::parse_override("vector.lanes=1")});
    std::vector<UnitChoice> choices;
    const Graph g = choose_units(parse_graph(depthwise(32, 28), "t.json"), slow, &choices);
    ASSERT_EQ(choices.size(), 1u);
    EXPECT_FALSE(choices[0].vector);
    EXPECT_GT(choices[0].vector_cycles, choices[0].fabric_cycles);
    EXPECT_EQ(g.ops().at(0).kind, "Conv");
    const Program p = compile(parse_graph(depthwise(32, 28), "t.json"), slow);
    bool fabric = false;
    for (const Op& op : p.graph.ops()) fabric = fabric || op.kind == "conv_nhwc";
    EXPECT_TRUE(fabric);
    // Asked for (kpu-compile --depthwise-on vector), it runs on the engine all the same.
    const Program forced = compile(parse_graph(depthwise(32, 28), "t.json"), slow,
                                   {Dataflow::OutputStationary, DepthwiseUnit::Vector});
    EXPECT_EQ(forced.graph.ops().at(0).kind, "depthwise_conv");
}

TEST(UnitChoice, AGroupedConvThatIsNotDepthwiseIsNoChoice) {
    const std::string text = R"({"tensors": [{"name": "x", "shape": [1, 8, 9, 9], "role": "input"},
        {"name": "w", "shape": [8, 2, 3, 3], "role": "constant"}, {"name": "y"}],
        "ops": [{"op": "Conv", "name": "c", "inputs": ["x", "w"], "outputs": ["y"], "attributes": {"group": 4}}]})";
    std::vector<UnitChoice> choices;
    const Graph in = parse_graph(text, "t.json");
    EXPECT_EQ(choose_units(in, test::config("t64"), &choices), in);
    EXPECT_TRUE(choices.empty());
}

}  // namespace
}  // namespace kpu::compiler
