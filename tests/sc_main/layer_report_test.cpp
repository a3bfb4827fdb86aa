// The per-layer report's pure parts (sc_main/layer_report.h): source layers from lowered op
// names, the attribution of overlapping ops' time, cycles by largest remainder. The report of
// whole networks is checked end to end by tests/e2e/models_check.py.
#include "sc_main/layer_report.h"

#include <numeric>

#include <gtest/gtest.h>

using kpu::cli::attribute_ps;
using kpu::cli::LayerInterval;
using kpu::cli::source_layer;
using kpu::cli::to_cycles;

TEST(LayerReport, ExpandedPartsMapBackToTheirOnnxNode) {
    EXPECT_EQ(source_layer("/layer1/layer1.0/conv1/Conv.x_nhwc"), "/layer1/layer1.0/conv1/Conv");
    EXPECT_EQ(source_layer("/layer1/layer1.0/conv1/Conv"), "/layer1/layer1.0/conv1/Conv");
    EXPECT_EQ(source_layer("/relu/Relu.relaid.relu.Relu_output_0"), "/relu/Relu");
    EXPECT_EQ(source_layer("layer1_0_conv1"), "layer1_0_conv1");  // FX
    EXPECT_EQ(source_layer("bn1.bn.apply"), "bn1");               // graph JSON: before the first '.'
    EXPECT_EQ(source_layer(".hidden"), ".hidden");
}

TEST(LayerReport, OverlapGoesToTheOldestLayerAndIdleToTheOneWaitedFor) {
    // Layer 0 runs [10, 50); layer 1 [30, 80) in its shadow until 50; nothing runs [80, 100);
    // layer 2 [100, 120); the run ends at 130. Start at 0: [0, 10) waits for layer 0.
    const std::vector<LayerInterval> ops = {{10, 30, 0}, {20, 50, 0}, {30, 80, 1}, {100, 120, 2}};
    const std::vector<uint64_t> ps = attribute_ps(ops, 3, 0, 130);
    EXPECT_EQ(ps, (std::vector<uint64_t>{50, 30, 50}));  // 0: [0, 50); 1: [50, 80); 2: [80, 130)
    EXPECT_EQ(std::accumulate(ps.begin(), ps.end(), uint64_t(0)), 130u);
}

TEST(LayerReport, AnOlderLayerStartingLaterStillTakesTheOverlap) {
    // Layer 1's op starts first; layer 0's op (older in program order) overlaps it.
    const std::vector<uint64_t> ps = attribute_ps({{0, 40, 1}, {10, 30, 0}}, 2, 0, 40);
    EXPECT_EQ(ps, (std::vector<uint64_t>{20, 20}));
}

TEST(LayerReport, CyclesAddUpToTheRunsByLargestRemainder) {
    const std::vector<uint64_t> cycles = to_cycles({1, 1, 1}, 10);
    EXPECT_EQ(std::accumulate(cycles.begin(), cycles.end(), uint64_t(0)), 10u);
    EXPECT_EQ(cycles, (std::vector<uint64_t>{4, 3, 3}));
    EXPECT_EQ(to_cycles({0, 700, 300}, 7), (std::vector<uint64_t>{0, 5, 2}));  // 4.9 and 2.1
    EXPECT_EQ(to_cycles({}, 5), std::vector<uint64_t>{});
}
