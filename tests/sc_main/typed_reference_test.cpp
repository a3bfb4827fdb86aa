// The reference and --check for int8, bfloat16 and float16 tensors (reference_ops.h, "Element
// types"): QuantizeLinear, DequantizeLinear and Cast against values worked by hand, quantized
// MatMul, Gemm and Conv bit for bit against plain integer loops written here, the rounding of
// a bfloat16 or float16 result in the bound, the interval of stored integers an int8 output
// of a float computation may take, and the check's messages in each type's units.
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "compiler/ops/op_schema.h"
#include "hardware/numeric.h"
#include "sc_main/reference.h"
#include "sc_main/reference_ops.h"

namespace kpu::cli {
namespace {

using compiler::Quantization;
using hw::DType;

const double kU = std::ldexp(1.0, -24);

RefOperand operand(std::vector<uint64_t> shape, std::vector<double> values, DType dtype = DType::Float32,
                   std::optional<Quantization> quant = std::nullopt) {
    RefOperand x;
    x.present = true;
    x.shape = std::move(shape);
    x.bound.assign(values.size(), 0.0);
    x.value = std::move(values);
    x.dtype = dtype;
    x.quant = std::move(quant);
    return x;
}

/// One op of `kind` (attributes `attributes`) on `inputs` into one output of `shape`, `dtype`
/// and `quant`, evaluated as run_reference evaluates it.
ReferenceTensor evaluate_one(const std::string& kind, std::vector<RefOperand> inputs, std::vector<uint64_t> shape,
                             DType dtype, std::optional<Quantization> quant = std::nullopt,
                             std::map<std::string, compiler::AttrValue> attributes = {}) {
    compiler::Op op;
    op.name = "op";
    op.kind = kind;
    op.attributes = std::move(attributes);
    for (size_t i = 0; i < inputs.size(); ++i) op.inputs.push_back(uint32_t(i));
    op.outputs = {uint32_t(inputs.size())};
    OpEvaluation e{op, compiler::schema_of(op), std::move(inputs), {std::move(shape)}, {}, {dtype}, {quant}};
    e.outputs.resize(1);
    EXPECT_TRUE(evaluate(e)) << kind;
    return e.outputs[0];
}

Quantization per_tensor(float scale, int32_t zero_point) { return Quantization{{scale}, {zero_point}, 0}; }

TEST(TypedReference, QuantizeLinearRoundsHalfToEvenAddsTheZeroPointAndSaturates) {
    // x / 0.5 = 0.5, 1.5, -1.5, 2000, -2000, 1, 2.5: rounded half to even 0, 2, -2, (saturated),
    // 1, 2; plus the zero point 1.
    const ReferenceTensor y =
        evaluate_one("QuantizeLinear", {operand({7}, {0.25, 0.75, -0.75, 1000, -1000, 0.5, 1.25})}, {7}, DType::Int8,
                     per_tensor(0.5f, 1));
    EXPECT_EQ(y.type, DType::Int8);
    EXPECT_EQ(y.value, (std::vector<double>{1, 3, -1, 127, -128, 2, 3}));
    EXPECT_EQ(y.bound, std::vector<double>(7, 0.0));  // exact inputs: exactly the hardware's integers
    EXPECT_EQ(y.below, std::vector<double>(7, 0.0));
}

TEST(TypedReference, DequantizeLinearIsTheRealValueWithinOneRounding) {
    const ReferenceTensor y =
        evaluate_one("DequantizeLinear", {operand({4}, {-128, 0, 5, 127}, DType::Int8, per_tensor(0.1f, 3))}, {4},
                     DType::Float32);
    const double s = double(0.1f);
    EXPECT_EQ(y.value, (std::vector<double>{-131 * s, -3 * s, 2 * s, 124 * s}));
    for (size_t i = 0; i < 4; ++i) EXPECT_DOUBLE_EQ(y.bound[i], kU * std::fabs(y.value[i]));
    // Per output channel (axis 1 of [2, 2]): each column its own scale and zero point.
    const ReferenceTensor z = evaluate_one(
        "DequantizeLinear", {operand({2, 2}, {10, 10, 20, 20}, DType::Int8, Quantization{{0.5f, 0.25f}, {0, 2}, 1})},
        {2, 2}, DType::Float32);
    EXPECT_EQ(z.value, (std::vector<double>{5, 2, 10, 4.5}));
}

TEST(TypedReference, CastToBfloat16AndFloat16AddsTheTypesRounding) {
    const ReferenceTensor b = evaluate_one("Cast", {operand({2}, {3.0, -1e-3})}, {2}, DType::BFloat16, std::nullopt,
                                           {{"to", std::string("bfloat16")}});
    EXPECT_EQ(b.value, (std::vector<double>{3.0, -1e-3}));
    EXPECT_DOUBLE_EQ(b.bound[0], 3.0 / 256);
    EXPECT_DOUBLE_EQ(b.bound[1], 1e-3 / 256);
    const ReferenceTensor h = evaluate_one("Cast", {operand({1}, {3.0})}, {1}, DType::Float16, std::nullopt,
                                           {{"to", std::string("float16")}});
    EXPECT_DOUBLE_EQ(h.bound[0], 3.0 / 2048 + std::ldexp(1.0, -25));
    // From int8 without a quantization: the stored integer is the value.
    const ReferenceTensor f = evaluate_one("Cast", {operand({2}, {-7, 100}, DType::Int8)}, {2}, DType::Float32,
                                           std::nullopt, {{"to", std::string("float32")}});
    EXPECT_EQ(f.value, (std::vector<double>{-7, 100}));
    EXPECT_EQ(f.bound, (std::vector<double>{0, 0}));
}

/// Random int8 values in [-128, 127].
std::vector<double> int8s(size_t count, std::mt19937& gen) {
    std::uniform_int_distribution<int> d(-128, 127);
    std::vector<double> v(count);
    for (double& x : v) x = d(gen);
    return v;
}

/// An int8 C's stored integer from the exact sum `acc` (bias included), as the shared design
/// writes it: float32(acc) times the float32 multiplier, round half to even, plus zc, saturated.
double requantize(int64_t acc, double sa, double sb, double sc, int32_t zc, bool relu) {
    float t = float(acc) * float(sa * sb / sc);
    if (relu && t < 0) t = 0;
    const double r = std::nearbyint(double(t)) + zc;
    return r < -128 ? -128 : r > 127 ? 127 : r;
}

TEST(TypedReference, QuantizedMatMulIsAPlainIntegerLoopBitForBit) {
    std::mt19937 gen(7);
    const uint64_t m = 5, k = 9, n = 4;
    const std::vector<double> a = int8s(m * k, gen), b = int8s(k * n, gen);
    const std::vector<float> sb = {0.02f, 0.013f, 0.05f, 0.007f};  // per output channel
    const std::vector<double> bias = {1000, -20000, 3, 77777};
    const float sa = 0.031f, sc = 2.0f;
    const int32_t za = -3, zb = 2, zc = 5;
    Quantization bq{sb, {zb, zb, zb, zb}, 1};
    const auto run = [&](const std::string& kind, DType out, std::map<std::string, compiler::AttrValue> attributes) {
        return evaluate_one(kind,
                            {operand({m, k}, a, DType::Int8, per_tensor(sa, za)), operand({k, n}, b, DType::Int8, bq),
                             operand({n}, bias, DType::Int32, Quantization{{1.0f}, {0}, 0})},
                            {m, n}, out, out == DType::Int8 ? std::optional(per_tensor(sc, zc)) : std::nullopt,
                            attributes);
    };
    const ReferenceTensor c = run("matmul", DType::Int8, {{"activation", std::string("relu")}});
    const ReferenceTensor g = run("Gemm", DType::Int8, {});
    const ReferenceTensor f = run("matmul", DType::Float32, {});
    for (uint64_t i = 0; i < m; ++i)
        for (uint64_t j = 0; j < n; ++j) {
            int64_t acc = int64_t(bias[j]);
            for (uint64_t p = 0; p < k; ++p) acc += (int64_t(a[i * k + p]) - za) * (int64_t(b[p * n + j]) - zb);
            EXPECT_EQ(c.value[i * n + j], requantize(acc, sa, sb[j], sc, zc, true)) << i << "," << j;
            EXPECT_EQ(g.value[i * n + j], requantize(acc, sa, sb[j], sc, zc, false)) << i << "," << j;
            EXPECT_EQ(f.value[i * n + j], double(float(acc) * float(double(sa) * double(sb[j])))) << i << "," << j;
        }
    EXPECT_EQ(c.bound, std::vector<double>(m * n, 0.0));  // bit-exact: the check is got == expected
    EXPECT_EQ(c.type, DType::Int8);
    EXPECT_EQ(f.type, DType::Float32);
    EXPECT_EQ(f.bound, std::vector<double>(m * n, 0.0));
}

TEST(TypedReference, QuantizedConvPadsWithTheZeroPointBitForBit) {
    std::mt19937 gen(11);
    const uint64_t c_in = 2, h = 5, w = 4, c_out = 3, kh = 3, kw = 3;
    const std::vector<double> x = int8s(c_in * h * w, gen), wt = int8s(c_out * c_in * kh * kw, gen);
    const float sx = 0.05f, sw = 0.01f, sy = 0.2f;
    const int32_t zx = 7, zy = -4;
    const ReferenceTensor y = evaluate_one(
        "Conv", {operand({1, c_in, h, w}, x, DType::Int8, per_tensor(sx, zx)),
                 operand({c_out, c_in, kh, kw}, wt, DType::Int8, per_tensor(sw, 0))},
        {1, c_out, h, w}, DType::Int8, per_tensor(sy, zy), {{"pads", std::vector<int64_t>{1, 1, 1, 1}}});
    // The input padded with its zero point (what the DMA's fill writes), then a plain loop.
    std::vector<int64_t> padded((h + 2) * (w + 2) * c_in, zx);
    for (uint64_t c = 0; c < c_in; ++c)
        for (uint64_t i = 0; i < h; ++i)
            for (uint64_t j = 0; j < w; ++j)
                padded[(c * (h + 2) + i + 1) * (w + 2) + j + 1] = int64_t(x[(c * h + i) * w + j]);
    for (uint64_t o = 0; o < c_out; ++o)
        for (uint64_t i = 0; i < h; ++i)
            for (uint64_t j = 0; j < w; ++j) {
                int64_t acc = 0;
                for (uint64_t c = 0; c < c_in; ++c)
                    for (uint64_t r = 0; r < kh; ++r)
                        for (uint64_t s = 0; s < kw; ++s)
                            acc += (padded[(c * (h + 2) + i + r) * (w + 2) + j + s] - zx) *
                                   int64_t(wt[((o * c_in + c) * kh + r) * kw + s]);
                EXPECT_EQ(y.value[(o * h + i) * w + j], requantize(acc, sx, sw, sy, zy, false)) << o << i << j;
            }
    EXPECT_EQ(y.bound, std::vector<double>(c_out * h * w, 0.0));
}

TEST(TypedReference, AnInt8OutputOfAFloatComputationIsTheIntervalOfItsEnds) {
    // y = 1.25 +- 0.01 under scale 0.5: y / s in [2.48, 2.52], so q in [2, 3]; the nearest of
    // 2.5 is 2 (ties to even).
    ReferenceTensor t;
    t.value = {1.25, 1.0, -100};
    t.bound = {0.01, 0.01, 0};
    store_as(t, {3}, DType::Int8, per_tensor(0.5f, 0));
    EXPECT_EQ(t.value, (std::vector<double>{2, 2, -128}));
    EXPECT_EQ(t.bound, (std::vector<double>{1, 0, 0}));  // above: 3, 2, -128
    EXPECT_EQ(t.below, (std::vector<double>{0, 0, 0}));
    for (const auto& [got, ok] : std::vector<std::pair<float, bool>>{{2, true}, {3, true}, {4, false}, {1, false}}) {
        const CheckResult r = check_tensor({got, 2, -128}, t, {3});
        EXPECT_EQ(r.ok, ok) << got;
    }
    const CheckResult bad = check_tensor({4, 2, -128}, t, {3});
    EXPECT_EQ(check_message("q", {3}, false, bad, 3),
              "q [3]: MISMATCH in 1 elements; worst at [0]: simulated 4, reference 2 (int8, in stored integers: "
              "allowed 2 to 3)");
    const CheckResult good = check_tensor({3, 2, -128}, t, {3});
    EXPECT_EQ(check_message("q", {3}, true, good, 3),
              "q [3] (intermediate): ok (int8, in stored integers: worst error 1 at [0], allowed 2 to 3)");
    // Bit-exact elements (bound 0): a difference of one is a mismatch.
    ReferenceTensor exact;
    exact.value = {5, -7};
    exact.bound = {0, 0};
    exact.type = DType::Int8;
    EXPECT_TRUE(check_tensor({5, -7}, exact, {2}).ok);
    const CheckResult off = check_tensor({5, -6}, exact, {2});
    EXPECT_FALSE(off.ok);
    EXPECT_EQ(check_message("c", {2}, false, off, 2),
              "c [2]: MISMATCH in 1 elements; worst at [1]: simulated -6, reference -7 (int8, in stored "
              "integers: exact)");
    EXPECT_EQ(check_message("c", {2}, false, check_tensor({5, -7}, exact, {2}), 2),
              "c [2]: ok (int8, in stored integers: worst error 0 at [0], exact)");
}

TEST(TypedReference, VectorOpsOnInt8ComputeOnTheRealValues) {
    // A layout op moves the stored integers (an output without a quantization takes its
    // operand's); Relu is max(q, zp) in stored integers, not max(q, 0).
    const ReferenceTensor t = evaluate_one("Transpose", {operand({2, 3}, {1, 2, 3, -4, -5, -128}, DType::Int8,
                                                                 per_tensor(0.1f, 5))},
                                           {3, 2}, DType::Int8);
    EXPECT_EQ(t.value, (std::vector<double>{1, -4, 2, -5, 3, -128}));
    EXPECT_EQ(t.bound, std::vector<double>(6, 0.0));
    EXPECT_EQ(t.below, std::vector<double>(6, 0.0));
    const ReferenceTensor r = evaluate_one("Relu", {operand({4}, {-10, -3, 0, 7}, DType::Int8, per_tensor(0.5f, -3))},
                                           {4}, DType::Int8, per_tensor(0.5f, -3));
    EXPECT_EQ(r.value, (std::vector<double>{-3, -3, 0, 7}));
    EXPECT_EQ(r.bound, std::vector<double>(4, 0.0));
    // Per output channel: QuantizeLinear into a [2, 2] tensor quantized along axis 1.
    const ReferenceTensor q = evaluate_one("QuantizeLinear", {operand({2, 2}, {1, 1, -1, 2})}, {2, 2}, DType::Int8,
                                           Quantization{{0.5f, 0.25f}, {0, 1}, 1});
    EXPECT_EQ(q.value, (std::vector<double>{2, 5, -2, 9}));
}

TEST(TypedReference, ABfloat16ResultPassesWithinItsOwnRoundingAndNotBeyond) {
    // 1 + 2^-8 is halfway between the bfloat16 values 1 and 1 + 2^-7: either neighbour passes
    // (error 2^-8 within the bound 2^-8 (1 + 2^-8)), the next one below 1 does not.
    const double y = 1 + std::ldexp(1.0, -8);
    const ReferenceTensor b = evaluate_one("Cast", {operand({1}, {y})}, {1}, DType::BFloat16, std::nullopt,
                                           {{"to", std::string("bfloat16")}});
    EXPECT_TRUE(check_tensor({hw::bfloat16_to_float(hw::float_to_bfloat16(float(y)))}, b, {1}).ok);
    EXPECT_TRUE(check_tensor({float(1 + std::ldexp(1.0, -7))}, b, {1}).ok);
    const CheckResult below = check_tensor({float(1 - std::ldexp(1.0, -8))}, b, {1});
    EXPECT_FALSE(below.ok);
    EXPECT_EQ(check_message("h", {1}, false, below, 1),
              "h [1]: MISMATCH in 1 elements; worst at [0]: simulated 0.99609375, reference 1.00390625 (bfloat16), "
              "error 0.0078125 > tolerance 0.00392150879");
    EXPECT_EQ(check_message("h", {1}, false, check_tensor({1.0f}, b, {1}), 1),
              "h [1]: ok (bfloat16: worst error 0.00391 at [0], tolerance 0.00392)");
}

TEST(TypedReference, AFloat32OutputKeepsItsMessagesAndTolerance) {
    // The float32 path is untouched by the types: the bound has its 1e-30 floor, the message
    // names no type.
    ReferenceTensor t;
    t.value = {1.0};
    t.bound = {0.0};
    const CheckResult r = check_tensor({1.0f}, t, {1});
    EXPECT_DOUBLE_EQ(r.tolerance, 1e-30);
    EXPECT_EQ(check_message("y", {1}, false, r, 1), "y [1]: ok (worst error 0 at [0], tolerance 1e-30)");
}

}  // namespace
}  // namespace kpu::cli
