// The systolic fabric, its drain and the vector engine on int8, bfloat16 and float16 operands
// against plain loops: int8 matmuls with zero points into int32 accumulators, the int32 bias,
// the per-channel scale and the saturating int8 store; bfloat16 and float16 operands widened
// and summed in float32 in the order the fabric's PE chain sums (p = 0..k-1, a multiply then
// an add, never fused: this file is built with -ffp-contract=off), C rounded to nearest even;
// the vector engine's quantize, dequantize and mixed-encoding arithmetic; the int8 timing and
// the refusals.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>

#include "hardware/fabric_timing.h"
#include "hardware/numeric.h"
#include "hardware/vector_timing.h"
#include "models/systolic_fabric.h"
#include "models/vector_engine.h"
#include "tests/support/config.h"
#include "tests/support/random_floats.h"
#include "tests/support/report_catcher.h"
#include "tests/support/test_memory.h"

namespace kpu::model {
namespace {

using hw::DType;
using test::random_floats;  // in [-1, 1)

/// minimal (8 x 8 fabric, 8 lanes, 1 GHz) computing every element type: bfloat16 and float16
/// at 2 MACs per PE per cycle, int8 at 4 (the vector engine's ALU at the same rates).
hw::Config every_type_config() {
    return test::config("minimal", {{"fabric.element_types",
                                     R"({"float32": {"macs_per_pe_cycle": 1, "energy_pj_per_mac": 1.0},
                                         "bfloat16": {"macs_per_pe_cycle": 2, "energy_pj_per_mac": 0.5},
                                         "float16": {"macs_per_pe_cycle": 2, "energy_pj_per_mac": 0.5},
                                         "int8": {"macs_per_pe_cycle": 4, "energy_pj_per_mac": 0.25}})"}});
}

std::vector<int8_t> random_int8(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> d(-128, 127);
    std::vector<int8_t> v(n);
    for (auto& x : v) x = int8_t(d(rng));
    return v;
}

/// Raw bytes in and out of the test memory.
template <class T>
void put_raw(test::TestMemory& mem, uint64_t at, const std::vector<T>& v) {
    std::memcpy(&mem.bytes[at - mem.base], v.data(), v.size() * sizeof(T));
}
template <class T>
std::vector<T> get_raw(const test::TestMemory& mem, uint64_t at, size_t n) {
    std::vector<T> v(n);
    std::memcpy(v.data(), &mem.bytes[at - mem.base], n * sizeof(T));
    return v;
}

/// saturate(round_half_even(t) + zero) to [-128, 127], in double (independent of hw::).
int8_t requantize(float t, int32_t zero) {
    const double q = std::nearbyint(double(t)) + zero;  // the default rounding mode: ties to even
    return int8_t(std::min(127.0, std::max(-128.0, q)));
}

/// A fabric or a vector engine on a test memory, recording each completion.
template <class Model>
struct Bench : sc_core::sc_module {
    static constexpr uint64_t kBase = 0x1000;
    hw::Config config;
    Model model;
    test::TestMemory mem{"mem", kBase, 64 * 1024};
    std::vector<std::pair<uint64_t, bool>> done;
    std::vector<sc_core::sc_time> started, ended;

    Bench(sc_core::sc_module_name n, hw::Config c) : sc_module(n), config(std::move(c)), model("model", config) {
        if constexpr (std::is_same_v<Model, SystolicFabric>) model.l1_socket.bind(mem.socket);
        else model.socket.bind(mem.socket);
        model.on_complete([this](uint64_t id, bool ok, const sc_core::sc_time& at) {
            done.emplace_back(id, ok);
            started.push_back(at);
            ended.push_back(sc_core::sc_time_stamp());
        });
    }
};

struct FabricBench : Bench<SystolicFabric> {
    using Bench::Bench;
    void matmul(uint64_t id, const hw::MatmulCommand& c) {
        SystolicFabric::Command command;
        command.id = id, command.matmul = c;
        model.submit(command);
    }
    void drain(uint64_t id, const hw::DrainCommand& c) {
        SystolicFabric::Command command;
        command.id = id, command.drain = true, command.drain_command = c;
        model.submit(command);
    }
};

hw::MatmulCommand int8_matmul(uint64_t a, uint64_t b, uint32_t lda, uint32_t ldb, uint32_t m, uint32_t n, uint32_t k,
                              bool accumulate, int32_t a_zero, int32_t b_zero) {
    hw::MatmulCommand c;
    c.a = a, c.b = b, c.lda = lda, c.ldb = ldb, c.m = m, c.n = n, c.k = k, c.accumulate = accumulate;
    c.type = DType::Int8, c.a_zero = a_zero, c.b_zero = b_zero;
    return c;
}

// Ragged m, n, k on the 8 x 8 fabric, k in two passes (the second accumulates), zero points
// != 0, an int32 bias, a per-channel scale; drained three times from the same accumulators:
// int8 C saturating at both ends, int8 C through relu, float32 C (dequantized output).
TEST(Int8Fabric, MatmulAndDrainGiveThePlainLoopsBitsAndSaturateAtBothEnds) {
    FabricBench bench("bench", every_type_config());
    const uint32_t m = 13, n = 11, k = 19, k1 = 12, lda = 24, ldb = 16, ldc = 12;
    const int32_t za = 3, zb = -7, zc = -5;
    const uint64_t a = FabricBench::kBase, b = a + 1024, bias = b + 1024, scale = bias + 256, c8 = scale + 256,
                   relu8 = c8 + 512, c32 = relu8 + 512;
    const std::vector<int8_t> A = random_int8(size_t(m) * lda, 1), B = random_int8(size_t(k) * ldb, 2);
    std::vector<int32_t> bias_v(n);
    std::vector<float> scale_v(n);
    std::mt19937 rng(3);
    for (uint32_t j = 0; j < n; ++j) bias_v[j] = int32_t(rng() % 20001) - 10000, scale_v[j] = 0.0004f * float(j + 1);
    put_raw(bench.mem, a, A);
    put_raw(bench.mem, b, B);
    put_raw(bench.mem, bias, bias_v);
    put_raw(bench.mem, scale, scale_v);

    bench.matmul(1, int8_matmul(a, b, lda, ldb, m, n, k1, false, za, zb));
    bench.matmul(2, int8_matmul(a + k1, b + uint64_t(k1) * ldb, lda, ldb, m, n, k - k1, true, za, zb));
    hw::DrainCommand d;
    d.c = c8, d.ldc = ldc, d.m = m, d.n = n, d.has_bias = true, d.bias = bias, d.has_scale = true, d.scale = scale;
    d.out_type = DType::Int8, d.out_zero = zc;
    bench.drain(3, d);
    hw::DrainCommand relu = d;
    relu.c = relu8, relu.activation = hw::Activation::Relu;
    bench.drain(4, relu);
    hw::DrainCommand dequantized = d;
    dequantized.c = c32, dequantized.out_type = DType::Float32, dequantized.out_zero = 0;
    bench.drain(5, dequantized);
    sc_core::sc_start();

    ASSERT_EQ(bench.done.size(), 5u);
    for (auto& [id, ok] : bench.done) EXPECT_TRUE(ok) << id;
    const std::vector<int8_t> got = get_raw<int8_t>(bench.mem, c8, size_t(m) * ldc);
    const std::vector<int8_t> got_relu = get_raw<int8_t>(bench.mem, relu8, size_t(m) * ldc);
    const std::vector<float> got32 = get_raw<float>(bench.mem, c32, size_t(m) * ldc);
    int low = 0, high = 0;
    for (uint32_t i = 0; i < m; ++i)
        for (uint32_t j = 0; j < n; ++j) {
            int64_t acc = bias_v[j];
            for (uint32_t p = 0; p < k; ++p) acc += int64_t(A[i * lda + p] - za) * (B[p * ldb + j] - zb);
            const float t = float(acc) * scale_v[j];
            const int8_t want = requantize(t, zc);
            low += want == -128, high += want == 127;
            EXPECT_EQ(got[i * ldc + j], want) << i << "," << j;
            EXPECT_EQ(got_relu[i * ldc + j], requantize(std::max(t, 0.0f), zc)) << i << "," << j;
            EXPECT_EQ(hw::float_bits(got32[i * ldc + j]), hw::float_bits(t)) << i << "," << j;
        }
    EXPECT_GT(low, 0) << "no element saturates at -128";
    EXPECT_GT(high, 0) << "no element saturates at 127";
    EXPECT_EQ(bench.model.macs(DType::Int8), uint64_t(m) * n * k);
    EXPECT_EQ(bench.model.macs(DType::Float32), 0u);
    EXPECT_EQ(bench.model.macs(), uint64_t(m) * n * k);
}

// An int8 MATMUL on t64 (16 x 16, int8 at 4 MACs per PE per cycle, 1.5 GHz) takes
// ceil(m/16) ceil(n/16) ceil(k/4) + min(m,16) + min(n,16) - 2 cycles; float32 ceil(k/1).
TEST(Int8Fabric, MatmulCyclesUseTheTypesMacsPerPeCycle) {
    FabricBench bench("bench", test::config("t64"));
    ASSERT_EQ(bench.config.fabric_type("int8").ops_per_cycle, 4u);
    const uint32_t m = 20, n = 9, k = 19;
    bench.matmul(1, int8_matmul(FabricBench::kBase, FabricBench::kBase + 4096, k, n, m, n, k, false, 0, 0));
    hw::MatmulCommand f32;
    f32.a = FabricBench::kBase, f32.b = FabricBench::kBase + 4096, f32.lda = k, f32.ldb = n;
    f32.m = m, f32.n = n, f32.k = k;
    bench.matmul(2, f32);
    sc_core::sc_start();
    ASSERT_EQ(bench.done.size(), 2u);
    EXPECT_TRUE(bench.done[0].second && bench.done[1].second);
    const uint64_t int8_cycles = 2 * 1 * 5 + 16 + 9 - 2, f32_cycles = 2 * 1 * 19 + 16 + 9 - 2;
    EXPECT_EQ(hw::matmul_cycles(int8_matmul(0, 0, k, n, m, n, k, false, 0, 0), 16, 16, 4), int8_cycles);
    const double period = 1.0 / 1.5e9;
    EXPECT_EQ(bench.ended[0], sc_core::sc_time(double(int8_cycles) * period, sc_core::SC_SEC));
    EXPECT_EQ(bench.ended[1] - bench.ended[0], sc_core::sc_time(double(f32_cycles) * period, sc_core::SC_SEC));
}

/// The float32 a bfloat16 or float16 element holds, and the bits C rounds to.
float widen(uint16_t bits, DType type) {
    return type == DType::BFloat16 ? hw::bfloat16_to_float(bits) : hw::half_to_float(bits);
}
uint16_t narrow(float v, DType type) { return type == DType::BFloat16 ? hw::float_to_bfloat16(v) : hw::float_to_half(v); }

void check_reduced_precision(DType type) {
    FabricBench bench("bench", every_type_config());
    const uint32_t m = 13, n = 21, k = 19, k1 = 7, lda = 20, ldb = 24, ldc = 22;
    const uint64_t a = FabricBench::kBase, b = a + 1024, bias = b + 2048, c = bias + 256;
    std::vector<uint16_t> A(size_t(m) * lda), B(size_t(k) * ldb);
    const std::vector<float> fa = random_floats(A.size(), 1), fb = random_floats(B.size(), 2),
                             bias_v = random_floats(n, 3);
    for (size_t i = 0; i < A.size(); ++i) A[i] = narrow(fa[i] * 4, type);
    for (size_t i = 0; i < B.size(); ++i) B[i] = narrow(fb[i] * 4, type);
    put_raw(bench.mem, a, A);
    put_raw(bench.mem, b, B);
    put_raw(bench.mem, bias, bias_v);
    hw::MatmulCommand first;
    first.a = a, first.b = b, first.lda = lda, first.ldb = ldb, first.m = m, first.n = n, first.k = k1;
    first.type = type;
    hw::MatmulCommand second = first;
    second.a = a + 2 * k1, second.b = b + 2ull * k1 * ldb, second.k = k - k1, second.accumulate = true;
    bench.matmul(1, first);
    bench.matmul(2, second);
    hw::DrainCommand d;
    d.c = c, d.ldc = ldc, d.m = m, d.n = n, d.has_bias = true, d.bias = bias, d.activation = hw::Activation::Relu;
    d.out_type = type;
    bench.drain(3, d);
    sc_core::sc_start();
    ASSERT_EQ(bench.done.size(), 3u);
    for (auto& [id, ok] : bench.done) EXPECT_TRUE(ok) << id;
    const std::vector<uint16_t> got = get_raw<uint16_t>(bench.mem, c, size_t(m) * ldc);
    for (uint32_t i = 0; i < m; ++i)
        for (uint32_t j = 0; j < n; ++j) {
            float sum = 0.0f;
            for (uint32_t p = 0; p < k; ++p) sum += widen(A[i * lda + p], type) * widen(B[p * ldb + j], type);
            const float v = std::max(sum + bias_v[j], 0.0f);
            EXPECT_EQ(got[i * ldc + j], narrow(v, type)) << i << "," << j;
        }
    // The rows' pad past n is untouched.
    EXPECT_EQ(got[n], 0u);
    EXPECT_EQ(bench.model.macs(type), uint64_t(m) * n * k);
    // Operands of 2 bytes an element; C written at 2 bytes, the bias read at 4.
    EXPECT_EQ(bench.model.l1_bytes_read(), (uint64_t(m) * k + uint64_t(k) * n) * 2 + n * 4);
    EXPECT_EQ(bench.model.l1_bytes_written(), uint64_t(m) * n * 2);
}

TEST(ReducedPrecisionFabric, Bfloat16MatmulAndDrainGiveThePlainLoopsBits) { check_reduced_precision(DType::BFloat16); }
TEST(ReducedPrecisionFabric, Float16MatmulAndDrainGiveThePlainLoopsBits) { check_reduced_precision(DType::Float16); }

// Each refusal completes the command with ok = false and one warning naming the reason.
TEST(Int8Fabric, RefusesLoadCAlphaBetaAndTypesTheConfigDoesNotList) {
    test::ReportCatcher catcher;
    FabricBench bench("bench", test::config("edge"));  // float32, bfloat16, int8
    const uint64_t a = FabricBench::kBase, b = a + 1024;
    hw::MatmulCommand load_c = int8_matmul(a, b, 8, 8, 8, 8, 8, false, 0, 0);
    load_c.load_c = true, load_c.c = b + 1024, load_c.ldc = 8;
    bench.matmul(1, load_c);
    hw::MatmulCommand half;
    half.a = a, half.b = b, half.lda = 8, half.ldb = 8, half.m = 8, half.n = 8, half.k = 8, half.type = DType::Float16;
    bench.matmul(2, half);
    bench.matmul(3, int8_matmul(a, b, 8, 8, 8, 8, 8, false, 0, 0));
    hw::DrainCommand scaled;
    scaled.c = b + 1024, scaled.ldc = 8, scaled.m = 8, scaled.n = 8, scaled.alpha = 2.0f;
    bench.drain(4, scaled);
    hw::MatmulCommand mixed = half;  // float products into the int32 accumulators
    mixed.type = DType::BFloat16, mixed.accumulate = true;
    bench.matmul(5, mixed);
    sc_core::sc_start();
    ASSERT_EQ(bench.done.size(), 5u);
    EXPECT_FALSE(bench.done[0].second);
    EXPECT_FALSE(bench.done[1].second);
    EXPECT_TRUE(bench.done[2].second);
    EXPECT_FALSE(bench.done[3].second);
    EXPECT_FALSE(bench.done[4].second);
    EXPECT_EQ(catcher.count({"int8 matmul refused: load_c"}), 1);
    EXPECT_EQ(catcher.count({"matmul refused: element type 'float16' is not supported by config 'edge' (float32, "
                             "bfloat16, int8)"}),
              1);
    EXPECT_EQ(catcher.count({"drain refused: alpha 2 and beta 1 must be 1 after int8 matmuls"}), 1);
    EXPECT_EQ(catcher.count({"accumulates bfloat16 products into the int32 accumulators of an int8 matmul"}), 1);
    EXPECT_EQ(catcher.reports().size(), 4u);
}

// ---- the vector engine ----

using VectorBench = Bench<VectorEngine>;

hw::VectorCommand elementwise(hw::VectorFunction f, uint32_t rows, uint32_t cols) {
    hw::VectorCommand c;
    c.function = f, c.rows = rows, c.cols = cols;
    return c;
}

hw::Encoding int8_encoding(float scale, int32_t zero) { return {DType::Int8, scale, zero}; }

/// ONNX QuantizeLinear in float32, independent of hw::: saturate(round_half_even(x / s) + z).
int8_t quantize(float x, float scale, int32_t zero) {
    const float steps = x / scale;
    return int8_t(std::min(127.0, std::max(-128.0, std::nearbyint(double(steps)) + zero)));
}

// float32 -> int8 (quantize), int8 -> float32 (dequantize), float32 -> bfloat16 and float16,
// with strided rows (pitches in elements of each operand's own type).
TEST(TypedVectorEngine, CopiesQuantizeDequantizeAndRoundToNearestEven) {
    VectorBench bench("bench", every_type_config());
    const uint32_t rows = 5, cols = 37, ld_f = 40, ld_q = 48;
    const float scale = 0.02f;
    const int32_t zero = -9;
    const uint64_t x = VectorBench::kBase, q = x + 1024, back = q + 1024, bf = back + 1024, hf = bf + 1024;
    std::vector<float> X(size_t(rows) * ld_f);
    const std::vector<float> r = random_floats(X.size(), 7);
    for (size_t i = 0; i < X.size(); ++i) X[i] = r[i] * 3.0f;  // beyond +-127 steps: saturates
    X[0] = 0.01f, X[1] = 0.03f, X[2] = -0.01f;  // exactly halfway in steps: ties to even (0.5, 1.5, -0.5)
    put_raw(bench.mem, x, X);
    auto copy = [&](uint64_t id, uint64_t from, uint32_t ld_from, hw::Encoding in, uint64_t to, uint32_t ld_to,
                    hw::Encoding out) {
        hw::VectorCommand c = elementwise(hw::VectorFunction::Copy, rows, cols);
        c.a.addr = from, c.a.ld = ld_from, c.a.encoding = in;
        c.y.addr = to, c.y.ld = ld_to, c.y.encoding = out;
        bench.model.submit({id, c});
    };
    copy(1, x, ld_f, {}, q, ld_q, int8_encoding(scale, zero));
    copy(2, q, ld_q, int8_encoding(scale, zero), back, ld_f, {});
    copy(3, x, ld_f, {}, bf, ld_f, {DType::BFloat16});
    copy(4, x, ld_f, {}, hf, ld_f, {DType::Float16});
    sc_core::sc_start();
    ASSERT_EQ(bench.done.size(), 4u);
    for (auto& [id, ok] : bench.done) EXPECT_TRUE(ok) << id;
    const auto Q = get_raw<int8_t>(bench.mem, q, size_t(rows) * ld_q);
    const auto B = get_raw<float>(bench.mem, back, size_t(rows) * ld_f);
    const auto BF = get_raw<uint16_t>(bench.mem, bf, size_t(rows) * ld_f);
    const auto HF = get_raw<uint16_t>(bench.mem, hf, size_t(rows) * ld_f);
    int saturated = 0;
    for (uint32_t i = 0; i < rows; ++i)
        for (uint32_t j = 0; j < cols; ++j) {
            const float v = X[i * ld_f + j];
            const int8_t want = quantize(v, scale, zero);
            saturated += want == -128 || want == 127;
            EXPECT_EQ(Q[i * ld_q + j], want) << i << "," << j;
            const float dequantized = float(int32_t(want) - zero) * scale;
            EXPECT_EQ(hw::float_bits(B[i * ld_f + j]), hw::float_bits(dequantized)) << i << "," << j;
            EXPECT_EQ(BF[i * ld_f + j], hw::float_to_bfloat16(v)) << i << "," << j;
            EXPECT_EQ(HF[i * ld_f + j], hw::float_to_half(v)) << i << "," << j;
        }
    EXPECT_GT(saturated, 0);
    EXPECT_EQ(Q[0], int8_t(0 + zero));   // 0.5 steps -> 0
    EXPECT_EQ(Q[1], int8_t(2 + zero));   // 1.5 steps -> 2
    EXPECT_EQ(Q[2], int8_t(-0 + zero));  // -0.5 steps -> -0
    EXPECT_EQ(Q[cols], 0) << "the pad past cols is untouched";
}

// An Add of two int8 operands of different quantizations into a third, computed in float32.
TEST(TypedVectorEngine, Int8AddOfDifferentQuantizationsIsTheFloatSumRequantized) {
    VectorBench bench("bench", every_type_config());
    const uint32_t rows = 6, cols = 29;
    const hw::Encoding ea = int8_encoding(0.05f, 4), eb = int8_encoding(0.013f, -20), ey = int8_encoding(0.04f, 11);
    const uint64_t a = VectorBench::kBase, b = a + 1024, y = b + 1024;
    const std::vector<int8_t> A = random_int8(size_t(rows) * cols, 11), B = random_int8(size_t(rows) * cols, 12);
    put_raw(bench.mem, a, A);
    put_raw(bench.mem, b, B);
    hw::VectorCommand c = elementwise(hw::VectorFunction::Add, rows, cols);
    c.has_b = true;
    c.a = {a, cols, hw::Broadcast::None, ea};
    c.b = {b, cols, hw::Broadcast::None, eb};
    c.y = {y, cols, hw::Broadcast::None, ey};
    bench.model.submit({1, c});
    sc_core::sc_start();
    ASSERT_EQ(bench.done.size(), 1u);
    EXPECT_TRUE(bench.done[0].second);
    const auto Y = get_raw<int8_t>(bench.mem, y, size_t(rows) * cols);
    for (size_t i = 0; i < Y.size(); ++i) {
        const float sum = float(A[i] - ea.zero_point) * ea.scale + float(B[i] - eb.zero_point) * eb.scale;
        EXPECT_EQ(Y[i], quantize(sum, ey.scale, ey.zero_point)) << i;
    }
    // int8 at 4 ops per lane per cycle: groups of 8 lanes x 4 = 32 elements, one per row here.
    EXPECT_EQ(hw::vector_cycles(c, bench.config.vector), bench.config.vector.latency_cycles + rows * 1u);
    EXPECT_EQ(bench.ended[0] - bench.started[0],
              sc_core::sc_time(double(bench.config.vector.latency_cycles + rows), sc_core::SC_NS));
    const VectorEngine::TypeCounts& counts = bench.model.counts(DType::Int8);
    EXPECT_EQ(counts.alu_ops, uint64_t(rows) * cols);
    EXPECT_EQ(counts.energy_pj, double(rows) * cols * bench.config.vector_type("int8").energy_pj_per_op);
    EXPECT_EQ(bench.model.counts(DType::Float32).elements, 0u);
    EXPECT_EQ(bench.model.bytes_read(), 2ull * rows * cols);
    EXPECT_EQ(bench.model.bytes_written(), uint64_t(rows) * cols);
}

TEST(TypedVectorEngine, RefusesAnOperandTypeTheConfigDoesNotList) {
    test::ReportCatcher catcher;
    VectorBench bench("bench", test::config("edge"));  // float32, bfloat16, int8
    hw::VectorCommand c = elementwise(hw::VectorFunction::Relu, 2, 8);
    c.a = {VectorBench::kBase, 8, hw::Broadcast::None, {DType::Float16}};
    c.y = {VectorBench::kBase + 256, 8, hw::Broadcast::None, {}};
    bench.model.submit({1, c});
    sc_core::sc_start();
    ASSERT_EQ(bench.done.size(), 1u);
    EXPECT_FALSE(bench.done[0].second);
    EXPECT_EQ(catcher.count({"relu refused: input a's element type float16 is not one of the vector engine's"}), 1);
}

}  // namespace
}  // namespace kpu::model
