// The vector engine's contract (hardware/vector_command.h) and timing formula
// (hardware/vector_timing.h), against cycles and energies computed by hand.
#include "hardware/vector_timing.h"

#include <gtest/gtest.h>

namespace kpu::hw {
namespace {

/// minimal.json's vector engine: 8 lanes, 8 cycles of fill, SFU 4 cycles (erf 8).
VectorUnit unit(uint32_t lanes = 8, uint32_t latency = 8) {
    VectorUnit u;
    u.lanes = lanes;
    u.latency_cycles = latency;
    for (const auto& entry : kSfuFunctionNames) u.sfu_cycles[size_t(entry.value)] = 4;
    u.sfu_cycles[size_t(SfuFunction::Erf)] = 8;
    u.energy_pj_per_op = 0.5;
    u.energy_pj_per_sfu_op = 2.0;
    return u;
}

VectorCommand command(VectorFunction f, uint32_t rows, uint32_t cols) {
    VectorCommand c;
    c.function = f;
    c.rows = rows, c.cols = cols;
    c.a.ld = c.y.ld = cols;
    c.has_b = traits_of(f).needs_b;
    c.b.ld = cols;
    if (traits_of(f).shape == VectorShape::Reduction) c.y.ld = 1;
    return c;
}

uint64_t cycles(VectorFunction f, uint32_t rows, uint32_t cols, const VectorUnit& u = unit()) {
    return vector_cycles(command(f, rows, cols), u);
}

TEST(VectorTiming, ElementwiseIsLatencyPlusOneCyclePerLaneGroupTimesTheCost) {
    using F = VectorFunction;
    EXPECT_EQ(cycles(F::Add, 8, 8), 8u + 8 * 1);  // one group per row
    EXPECT_EQ(cycles(F::Relu, 1, 1), 8u + 1);     // a lone element still takes a group
    // Ragged: 20 columns on 8 lanes are 3 groups per row, the last one 4 lanes wide.
    EXPECT_EQ(cycles(F::Add, 5, 20), 8u + 5 * 3);
    EXPECT_EQ(cycles(F::Exp, 5, 20), 8u + 5 * 3 * 4);
    EXPECT_EQ(cycles(F::Gelu, 5, 20), 8u + 5 * 3 * 8);      // erf
    EXPECT_EQ(cycles(F::GeluTanh, 5, 20), 8u + 5 * 3 * 4);  // tanh
    EXPECT_EQ(cycles(F::Div, 7, 9), 8u + 7 * 2 * 4);        // reciprocal
    EXPECT_EQ(cycles(F::Sqrt, 7, 9), 8u + 7 * 2 * 4);       // rsqrt
    EXPECT_EQ(cycles(F::Pow, 3, 9), 8u + 3 * 2 * (4 + 4));  // ln and exp, both at exp's cost
    // A wider engine: 16 lanes and 12 cycles of fill (t64).
    EXPECT_EQ(cycles(F::Mul, 64, 100, unit(16, 12)), 12u + 64 * 7);
}

TEST(VectorTiming, ReductionsTakeOnePassOverTheTile) {
    using F = VectorFunction;
    EXPECT_EQ(cycles(F::ReduceSum, 3, 17), 8u + 3 * 3);
    EXPECT_EQ(cycles(F::ReduceMean, 3, 17), 8u + 3 * 3);  // 1/cols rides in the pass
    EXPECT_EQ(cycles(F::ReduceMax, 1, 8), 8u + 1);
}

TEST(VectorTiming, SoftmaxAndTheNormsTakeThePassesTheyNeed) {
    using F = VectorFunction;
    // 10 x 20 on 8 lanes: 30 groups per pass over the tile, 2 per pass over the 10 rows.
    // softmax: max, exp and sum, reciprocal of the sums, scale.
    EXPECT_EQ(cycles(F::Softmax, 10, 20), 8u + 30 + 30 * 4 + 2 * 4 + 30);
    // layernorm: mean, variance, rsqrt per row, normalize.
    EXPECT_EQ(cycles(F::LayerNorm, 10, 20), 8u + 30 + 30 + 2 * 4 + 30);
    // rmsnorm: mean square, rsqrt per row, normalize.
    EXPECT_EQ(cycles(F::RmsNorm, 10, 20), 8u + 30 + 2 * 4 + 30);
    // docs/models.md's example: a 128 x 128 attention softmax on t64 (16 lanes, 12 of fill).
    EXPECT_EQ(cycles(F::Softmax, 128, 128, unit(16, 12)), 12u + 1024 + 4096 + 8 * 4 + 1024);
    // One row of 1000: 125 groups per pass, one group of row statistics.
    EXPECT_EQ(cycles(F::LayerNorm, 1, 1000), 8u + 125 + 125 + 4 + 125);
}

TEST(VectorTiming, TheOnlineSoftmaxFunctionsTakeThePassesFlashAttentionNeeds) {
    using F = VectorFunction;
    // 10 x 20 on 8 lanes: 30 groups per pass over the tile, 2 over the 10 rows' statistics.
    // online_softmax: scale, mask and max; corrections exp(m - m'); exp and sum; l = c l + sum.
    EXPECT_EQ(cycles(F::OnlineSoftmax, 10, 20), 8u + 30 + 2 * 4 + 30 * 4 + 2);
    // online_accumulate: one multiply-add pass; online_finish: reciprocal of l, scale.
    EXPECT_EQ(cycles(F::OnlineAccumulate, 10, 20), 8u + 30);
    EXPECT_EQ(cycles(F::OnlineFinish, 10, 20), 8u + 2 * 4 + 30);
}

TEST(VectorTiming, PassesNameWhatTheyDo) {
    const VectorPasses p = vector_passes(command(VectorFunction::Softmax, 10, 20), unit());
    ASSERT_EQ(p.count, 4);
    EXPECT_STREQ(p.pass[0].what, "max");
    EXPECT_STREQ(p.pass[1].what, "exp and sum");
    EXPECT_EQ(p.pass[1].groups, 30u);
    EXPECT_EQ(p.pass[1].elements, 200u);
    EXPECT_STREQ(p.pass[2].what, "reciprocal of the sums");
    EXPECT_EQ(p.pass[2].groups, 2u);
    EXPECT_EQ(p.pass[2].elements, 10u);
}

TEST(VectorTiming, EnergyChargesEachElementOfEachPass) {
    using F = VectorFunction;
    // 0.5 pJ per ALU element, 2 pJ per SFU evaluation.
    EXPECT_DOUBLE_EQ(vector_energy_pj(command(F::Add, 5, 20), unit()), 100 * 0.5);
    EXPECT_DOUBLE_EQ(vector_energy_pj(command(F::Exp, 5, 20), unit()), 100 * 2.0);
    EXPECT_DOUBLE_EQ(vector_energy_pj(command(F::Pow, 3, 9), unit()), 27 * 2 * 2.0);
    EXPECT_DOUBLE_EQ(vector_energy_pj(command(F::Softmax, 10, 20), unit()),
                     200 * 0.5 + 200 * 2.0 + 10 * 2.0 + 200 * 0.5);
}

TEST(VectorTiming, EveryFunctionHasPassesAndAnEmptyTileNone) {
    for (const auto& entry : kVectorFunctionNames) {
        SCOPED_TRACE(entry.name);
        const VectorPasses p = vector_passes(command(entry.value, 3, 5), unit());
        EXPECT_GE(p.count, 1);
        for (const VectorPass& pass : p) EXPECT_GE(pass.cost, 1u);
        EXPECT_EQ(vector_cycles(command(entry.value, 0, 5), unit()), 0u);
        VectorFunction parsed{};
        EXPECT_TRUE(parse_vector_function(entry.name, parsed));
        EXPECT_EQ(parsed, entry.value);
    }
    EXPECT_EQ(vector_cycles(command(VectorFunction(200), 3, 5), unit()), 0u);
}

/// A window command over `planes` planes of in_h x in_w, out_h x out_w out, a kh x kw kernel.
VectorCommand window(VectorFunction f, uint32_t planes, uint32_t in_h, uint32_t in_w, uint32_t out_h, uint32_t out_w,
                     uint32_t kh, uint32_t kw) {
    VectorCommand c = command(f, planes, in_h * in_w);
    c.window.in_h = in_h, c.window.in_w = in_w, c.window.out_h = out_h, c.window.out_w = out_w;
    c.window.kernel_h = kh, c.window.kernel_w = kw;
    c.y.ld = out_h * out_w;
    c.has_weight = f == VectorFunction::DepthwiseConv;
    return c;
}

TEST(VectorTiming, WindowFunctionsTakeACyclePerTapPerLaneGroupOfOutputs) {
    using F = VectorFunction;
    // 3 planes of 9 x 11 pooled to 4 x 5 (20 outputs: 3 groups of 8 lanes per plane), 3 x 3 taps.
    EXPECT_EQ(vector_cycles(window(F::MaxPool, 3, 9, 11, 4, 5, 3, 3), unit()), 8u + 3 * 3 * 9);
    // Average: the same sums, then one pass scaling by 1 / count.
    EXPECT_EQ(vector_cycles(window(F::AveragePool, 3, 9, 11, 4, 5, 3, 3), unit()), 8u + 3 * 3 * 9 + 3 * 3);
    // Depthwise 5 x 5 on 2 planes of 7 x 7 to 3 x 3 (9 outputs: 2 groups): a multiply-add per tap.
    EXPECT_EQ(vector_cycles(window(F::DepthwiseConv, 2, 7, 7, 3, 3, 5, 5), unit()), 8u + 2 * 2 * 25);
    // Nearest x2 of 2 planes of 3 x 3 (36 outputs: 5 groups), one copy each.
    EXPECT_EQ(vector_cycles(window(F::ResizeNearest, 2, 3, 3, 6, 6, 1, 1), unit()), 8u + 2 * 5);
    // t64's engine (16 lanes, 12 of fill): a 56 x 56 plane max-pooled 3 x 3 / 2 to 28 x 28 (49 groups).
    EXPECT_EQ(vector_cycles(window(F::MaxPool, 64, 56, 56, 28, 28, 3, 3), unit(16, 12)), 12u + 64 * 49 * 9);
    // Energy: an ALU op per tap per output.
    EXPECT_DOUBLE_EQ(vector_energy_pj(window(F::MaxPool, 3, 9, 11, 4, 5, 3, 3), unit()), 3 * 20 * 9 * 0.5);
    EXPECT_DOUBLE_EQ(vector_energy_pj(window(F::AveragePool, 3, 9, 11, 4, 5, 3, 3), unit()), 3 * 20 * 10 * 0.5);
}

TEST(VectorTiming, AluPassesRunAtTheRateOfOperandAsTypeAndSfuPassesAtTheLanes) {
    using F = VectorFunction;
    VectorUnit u = unit();  // 8 lanes, float32 at energy 0.5 (its energy_pj_per_op)
    u.element_types = {{"float32", 1, 0.5}, {"bfloat16", 2, 0.25}, {"int8", 4, 0.125}};
    auto typed = [](VectorFunction f, uint32_t rows, uint32_t cols, DType type) {
        VectorCommand c = command(f, rows, cols);
        c.a.encoding.type = type;
        return c;
    };
    // int8: groups of 8 x 4 = 32 elements; bfloat16 16; float32 8.
    EXPECT_EQ(vector_cycles(typed(F::Add, 5, 70, DType::Int8), u), 8u + 5 * 3);
    EXPECT_EQ(vector_cycles(typed(F::Add, 5, 70, DType::BFloat16), u), 8u + 5 * 5);
    EXPECT_EQ(vector_cycles(typed(F::Add, 5, 70, DType::Float32), u), 8u + 5 * 9);
    // Softmax of int8 input: max and scale passes 32 wide, exp 8 wide (4 cycles), the rows'
    // reciprocals ceil(5 / 8) groups.
    EXPECT_EQ(vector_cycles(typed(F::Softmax, 5, 70, DType::Int8), u), 8u + 5 * 3 + 5 * 9 * 4 + 1 * 4 + 5 * 3);
    // Energy: ALU elements at the type's energy, SFU evaluations at energy_pj_per_sfu_op.
    EXPECT_DOUBLE_EQ(vector_energy_pj(typed(F::Add, 5, 70, DType::Int8), u), 350 * 0.125);
    EXPECT_DOUBLE_EQ(vector_energy_pj(typed(F::Softmax, 5, 70, DType::Int8), u), 2 * 350 * 0.125 + (350 + 5) * 2.0);
    EXPECT_EQ(vector_alu_ops(typed(F::Softmax, 5, 70, DType::Int8), u), 700u);
    // A hand-built unit listing no types: float32 at lanes and energy_pj_per_op, as before.
    EXPECT_EQ(vector_cycles(command(F::Add, 5, 70), unit()), 8u + 5 * 9);
    EXPECT_DOUBLE_EQ(vector_energy_pj(command(F::Add, 5, 70), unit()), 350 * 0.5);
    EXPECT_EQ(vector_element_type(u, DType::Float16), nullptr);
}

TEST(VectorCommand, WindowProblemsNameTheGeometry) {
    using F = VectorFunction;
    const VectorCommand pool = window(F::MaxPool, 2, 5, 6, 3, 3, 3, 3);
    auto with = [](VectorCommand c, auto change) {
        change(c);
        return c;
    };
    EXPECT_EQ(vector_command_problem(pool), "");
    EXPECT_EQ(vector_command_problem(with(pool, [](VectorCommand& c) { c.cols = 29; })),
              "cols 29 is not the plane's 5 x 6");
    EXPECT_EQ(vector_command_problem(with(pool, [](VectorCommand& c) { c.window.out_w = 0; })),
              "an empty plane (5 x 6 in, 3 x 0 out)");
    EXPECT_EQ(vector_command_problem(with(pool, [](VectorCommand& c) { c.window.stride_h = 0; })),
              "a kernel, stride or dilation of 0 (kernel 3 x 3, strides 0 x 1, dilations 1 x 1)");
    EXPECT_EQ(vector_command_problem(with(pool, [](VectorCommand& c) { c.window.stride_h = 3; })),
              "the output plane 3 x 3 has windows that start past the input's 5 x 6 (pads 0, 0)");
    EXPECT_EQ(vector_command_problem(with(pool, [](VectorCommand& c) { c.y.ld = 8; })), "y.ld 8 < 9");
    EXPECT_EQ(vector_command_problem(with(pool, [](VectorCommand& c) { c.has_bias = true; })),
              "weight and bias are for layer_norm and rms_norm, not max_pool");
    const VectorCommand dw = window(F::DepthwiseConv, 2, 5, 6, 3, 4, 3, 3);
    EXPECT_EQ(vector_command_problem(dw), "");
    EXPECT_EQ(vector_command_problem(with(dw, [](VectorCommand& c) { c.has_weight = false; })),
              "depthwise_conv needs a weight (has_weight is not set)");
    EXPECT_EQ(weight_elements(with(dw, [](VectorCommand& c) { c.window.channels = 4; })), 36u);
    EXPECT_EQ(bias_elements(with(dw, [](VectorCommand& c) { c.window.channels = 4; })), 4u);
    VectorCommand up = window(F::ResizeNearest, 1, 2, 3, 4, 9, 1, 1);
    up.window.scale_h = 2, up.window.scale_w = 3;
    EXPECT_EQ(vector_command_problem(up), "");
    EXPECT_EQ(vector_command_problem(with(up, [](VectorCommand& c) { c.window.scale_w = 2; })),
              "the output plane 4 x 9 is not the input's 2 x 3 times the scales 2 x 2");
}

TEST(VectorCommand, ProblemsNameTheFieldAndTheNumbers) {
    using F = VectorFunction;
    struct Case {
        VectorCommand c;
        std::string expected;
    };
    auto with = [](VectorCommand c, auto change) {
        change(c);
        return c;
    };
    const VectorCommand add = command(F::Add, 4, 6);
    const std::vector<Case> cases = {
        {add, ""},
        {command(F::Softmax, 4, 6), ""},
        {with(add, [](VectorCommand& c) { c.function = F(200); }), "unknown function 200"},
        {with(add, [](VectorCommand& c) { c.cols = 0; }), "empty tile (4 x 0)"},
        {with(add, [](VectorCommand& c) { c.a.ld = 5; }), "a.ld 5 < cols 6"},
        {with(add, [](VectorCommand& c) { c.b.ld = 2; }), "b.ld 2 < cols 6"},
        {with(add, [](VectorCommand& c) { c.b.broadcast = Broadcast::Column, c.b.ld = 0; }),
         "b.ld is 0 for a column vector (1 when its values are contiguous)"},
        {with(add, [](VectorCommand& c) { c.b.broadcast = Broadcast::Scalar, c.b.ld = 0; }), ""},
        {with(add, [](VectorCommand& c) { c.a.broadcast = Broadcast::Row; }), ""},
        {with(add, [](VectorCommand& c) { c.has_b = false; }), "add needs a second input (has_b is not set)"},
        {with(command(F::Relu, 4, 6), [](VectorCommand& c) { c.has_b = true; }), "relu takes one input (has_b is set)"},
        {with(command(F::ReduceSum, 4, 6), [](VectorCommand& c) { c.a.broadcast = Broadcast::Scalar; }),
         "a cannot broadcast for reduce_sum (it is scalar)"},
        {with(command(F::ReduceSum, 4, 6), [](VectorCommand& c) { c.y.ld = 0; }), "y.ld 0 < 1"},
        {with(add, [](VectorCommand& c) { c.y.ld = 3; }), "y.ld 3 < 6"},
        {with(add, [](VectorCommand& c) { c.y.broadcast = Broadcast::Row; }), "y cannot broadcast (it is row)"},
        {with(add, [](VectorCommand& c) { c.has_bias = true; }),
         "weight and bias are for layer_norm and rms_norm, not add"},
        {with(command(F::LayerNorm, 4, 6), [](VectorCommand& c) { c.has_weight = c.has_bias = true; }), ""},
        {with(add, [](VectorCommand& c) { c.causal = true; }), "causal is for softmax, not add"},
        {with(command(F::Softmax, 4, 6), [](VectorCommand& c) {
             c.has_b = true, c.b.broadcast = Broadcast::Row, c.causal = true;
         }),
         ""},
    };
    for (size_t i = 0; i < cases.size(); ++i) EXPECT_EQ(vector_command_problem(cases[i].c), cases[i].expected) << i;
}

}  // namespace
}  // namespace kpu::hw
