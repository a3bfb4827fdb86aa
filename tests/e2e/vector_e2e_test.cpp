// A lone vector op on the platform: each VECTOR op takes exactly the engine's formula
// (hw::vector_cycles) on its tile's engine, and the run takes at least the busiest engine's
// sum plus a row tile's way in and out. Values are checked against NumPy by vector_check.py
// (kpu-sim --check does not cover the vector ops until the reference does).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "hardware/vector_timing.h"
#include "tests/e2e/e2e_support.h"

namespace kpu::test {
namespace {

TEST(VectorOps, EachVectorOpTakesTheEnginesFormulaAndTheRunIsBoundedBelowByIt) {
    const hw::Config edge = config("edge");
    const std::string softmax = R"({"tensors": [{"name": "x", "shape": [257, 131], "role": "input"}, {"name": "y"}],
        "ops": [{"op": "Softmax", "name": "sm", "inputs": ["x"], "outputs": ["y"]}]})";
    const compiler::Program program = compile(softmax, edge);
    cli::Prepared prepared = cli::prepare(edge, program, "", 7);
    auto* session = new cli::Session;  // one simulation per test process; lives until it ends
    session->job = prepared.job;
    session->build(edge);
    sc_core::sc_start();
    ASSERT_EQ(session->failure(), "");
    const model::Sequencer& sequencer = session->kpu->sequencer();
    ASSERT_TRUE(sequencer.succeeded());
    const double cycle_s = 1.0 / edge.clocks.fabric_hz;
    std::vector<uint64_t> per_tile(edge.compute_tiles, 0);
    uint32_t vector_ops = 0;
    for (const compiler::BoundOp& op : prepared.bound.ops) {
        if (op.kind != compiler::BoundOp::Kind::Vector) continue;
        ++vector_ops;
        const uint64_t formula = hw::vector_cycles(op.vector, edge.vector);
        const auto& record = sequencer.records()[op.id];
        EXPECT_EQ(std::llround((record.completed - record.started).to_seconds() / cycle_s), int64_t(formula))
            << "op " << op.id;
        per_tile[op.tile] += formula;
    }
    EXPECT_EQ(vector_ops, (257 + program.kernels[0].tile.tm - 1) / program.kernels[0].tile.tm);
    const uint64_t busiest = *std::max_element(per_tile.begin(), per_tile.end());
    EXPECT_GT(session->host->result().cycles, busiest);
}

}  // namespace
}  // namespace kpu::test
