// The calibration's thresholds on histograms whose answer follows from the definitions, and the
// precision passes' graphs: the QDQ structure quantize_int8 builds (op kinds, dtypes, the
// integer weights and biases against plain loops) and the reduced float weights' bits.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "compiler/compile_error.h"
#include "compiler/graph_json.h"
#include "compiler/passes/precision.h"
#include "hardware/config.h"
#include "hardware/numeric.h"
#include "sc_main/calibration.h"
#include "sc_main/npy.h"
#include "tests/support/run_tool.h"

namespace kpu::compiler {
namespace {

using cli::CalibrationMethod;
using cli::TensorStats;

hw::Config edge() { return hw::load_config(std::string(KPU_SOURCE_DIR) + "/configs/edge.json"); }

/// A histogram of `bins` bins of width 1 (range = bins) with the given counts.
TensorStats histogram(std::vector<int64_t> counts, double abs_max) {
    TensorStats s(uint32_t(counts.size()));
    s.counts = std::move(counts);
    s.range = double(s.counts.size());
    s.abs_max = abs_max, s.min = -abs_max, s.max = abs_max;
    for (int64_t c : s.counts) s.count += uint64_t(c);
    return s;
}

TEST(Calibration, HistogramRangeIsThePowerOfTwoAboveMaxAndDoublingKeepsEachValueInItsBin) {
    TensorStats s;
    const double first[] = {0.5, -0.25};
    s.add(first, 2);
    EXPECT_EQ(s.range, 1.0);  // the smallest power of two above 0.5
    const double second[] = {3.0};
    s.add(second, 1);
    EXPECT_EQ(s.range, 4.0);
    const double width = 4.0 / cli::kHistogramBins;
    std::vector<int64_t> want(cli::kHistogramBins, 0);
    for (double v : {0.5, 0.25, 3.0}) ++want[uint64_t(v / width)];
    EXPECT_EQ(s.counts, want);
    EXPECT_EQ(s.min, -0.25);
    EXPECT_EQ(s.max, 3.0);
    EXPECT_EQ(s.abs_max, 3.0);
    EXPECT_EQ(s.count, 3u);
    EXPECT_EQ(cli::choose_threshold(s, CalibrationMethod::MinMax), 3.0);
}

TEST(Calibration, NonFiniteValuesAreRefusedNamingTheTensor) {
    TensorStats s;
    const double values[] = {1.0, NAN, INFINITY};
    try {
        s.add(values, 3, "tensor 'y'");
        FAIL() << "no error";
    } catch (const cli::CalibrationError& e) {
        EXPECT_STREQ(e.what(), "calibration: tensor 'y' has 2 non-finite values");
    }
}

TEST(Calibration, PercentileIsTheUpperEdgeOfTheBinWhereTheCumulativeCountReachesIt) {
    std::vector<int64_t> counts(2048, 0);
    for (int b = 0; b < 1000; ++b) counts[b] = 1;  // 1000 values, one per bin of width 1
    const TensorStats s = histogram(counts, 999.5);
    // 50 %: 500 values, reached at bin 499, whose upper edge is 500.
    EXPECT_EQ(cli::choose_threshold(s, CalibrationMethod::Percentile, 50.0), 500.0);
    EXPECT_EQ(cli::choose_threshold(s, CalibrationMethod::Percentile, 99.9), 999.0);
    EXPECT_EQ(cli::choose_threshold(s, CalibrationMethod::Percentile, 100.0), 999.5);  // capped at max |x|
    EXPECT_THROW(cli::choose_threshold(s, CalibrationMethod::Percentile, 0.0), cli::CalibrationError);
}

TEST(Calibration, MseIsTheEdgeWithTheLeastSquaredErrorOfTheBinCentres) {
    std::vector<int64_t> counts(256, 0);
    counts[10] = 1000000, counts[40] = 100000, counts[200] = 1;  // a mode, a shoulder, an outlier
    const TensorStats s = histogram(counts, 200.9);
    double best = HUGE_VAL, want = 0;
    for (int i = 1; i <= 256; ++i) {  // the definition, candidate by candidate
        const double scale = i / 127.0;
        double error = 0;
        for (int b : {10, 40, 200}) {
            const double c = b + 0.5, q = std::min(std::nearbyint(c / scale), 127.0);
            error += double(counts[b]) * (c - q * scale) * (c - q * scale);
        }
        if (error < best) best = error, want = i;
    }
    EXPECT_EQ(cli::choose_threshold(s, CalibrationMethod::Mse), std::min(want, 200.9));
    EXPECT_LT(cli::choose_threshold(s, CalibrationMethod::Mse), 200.9);
}

TEST(Calibration, EntropyKeepsAHistogramThatFitsTheQuantizedBinsAndClipsAnOutlier) {
    // 128 equal bins: P = Q at i = 128 (KL 0), the first candidate.
    std::vector<int64_t> flat(512, 0);
    for (int b = 0; b < 128; ++b) flat[b] = 50;
    EXPECT_EQ(cli::kl_divergence_curve(flat)[0], 0.0);
    EXPECT_EQ(cli::choose_threshold(histogram(flat, 128.0), CalibrationMethod::Entropy), 128.0);
    // A decaying histogram with one far outlier: clipped well below it.
    std::vector<int64_t> tail(2048, 0);
    for (int b = 0; b < 400; ++b) tail[b] = int64_t(10000 * std::exp(-b / 60.0)) + 1;
    tail[2000] = 1;
    const double t = cli::choose_threshold(histogram(tail, 2000.5), CalibrationMethod::Entropy);
    EXPECT_GE(t, 128.0);
    EXPECT_LT(t, 1000.0);
}

TEST(Calibration, ActivationScalesSymmetricAndAsymmetric) {
    TensorStats s = histogram(std::vector<int64_t>(2048, 0), 4.0);
    s.min = 0.0, s.max = 4.0;  // a ReLU's output
    EXPECT_EQ(cli::activation_scale(s, 2.54, true), std::make_pair(2.54 / 127.0, 0));
    const auto [scale, zero_point] = cli::activation_scale(s, 4.0, false);
    EXPECT_EQ(scale, 4.0 / 255.0);
    EXPECT_EQ(zero_point, -128);  // lo = 0 onto -128
    EXPECT_EQ(cli::activation_scale(s, 0.0, true), std::make_pair(1.0, 0));
    EXPECT_EQ(cli::parse_calibration_method("mse"), CalibrationMethod::Mse);
    try {
        cli::parse_calibration_method("kl");
        FAIL() << "no error";
    } catch (const cli::CalibrationError& e) {
        EXPECT_STREQ(e.what(), "calibration method 'kl' is not one of minmax, percentile, mse, entropy");
    }
}

TEST(Calibration, WeightScalesPerOutputChannelAlongAnyAxis) {
    // B [K = 2, N = 3] of a MatMul: the channels are the columns.
    const std::vector<double> b = {1.0, -6.0, 0.0, -2.0, 3.0, 0.0};
    const auto [channels, rows] = cli::channels_first(b, {2, 3}, {1});
    EXPECT_EQ(channels, 3u);
    EXPECT_EQ(rows, (std::vector<double>{1.0, -2.0, -6.0, 3.0, 0.0, 0.0}));
    EXPECT_EQ(cli::weight_scales(rows, channels), (std::vector<double>{2.0 / 127.0, 6.0 / 127.0, 1.0}));
}

// ---- the passes ----

/// x [2, 4] -> MatMul(w [4, 3]) -> Relu -> r -> Gemm(r, w2 [3, 5], bias [5]) -> y (an output);
/// without `gemm`, the last op a MatMul "mm2" with no bias.
struct Mlp {
    Graph graph;
    Weights weights;
    explicit Mlp(bool gemm = true) {
        graph.add_tensor(Tensor("x", {2, 4}, DType::Float32, TensorRole::Input));
        graph.add_tensor(Tensor("w", {4, 3}, DType::Float32, TensorRole::Constant));
        graph.add_tensor(Tensor("w2", {3, 5}, DType::Float32, TensorRole::Constant));
        if (gemm) graph.add_tensor(Tensor("bias", {5}, DType::Float32, TensorRole::Constant));
        graph.add_tensor(Tensor("h", {}));
        graph.add_tensor(Tensor("r", {}));
        graph.add_tensor(Tensor("y", {}, DType::Float32, TensorRole::Output));
        const auto t = [&](const char* n) { return *graph.find_tensor(n); };
        graph.add_op(Op{"mm", "MatMul", {t("x"), t("w")}, {t("h")}, {}, {}});
        graph.add_op(Op{"act", "Relu", {t("h")}, {t("r")}, {}, {}});
        if (gemm) graph.add_op(Op{"fc", "Gemm", {t("r"), t("w2"), t("bias")}, {t("y")}, {}, {}});
        else graph.add_op(Op{"mm2", "MatMul", {t("r"), t("w2")}, {t("y")}, {}, {}});
        graph.check("test");
        for (const Tensor& x : graph.tensors()) {
            if (x.role != TensorRole::Constant) continue;
            Weight w{x.shape, {}, DType::Float32, {}};
            for (uint64_t i = 0; i < x.elements(); ++i) w.values.push_back(float(std::sin(1.7 * double(i) + x.name.size())));
            weights[x.name] = w;
        }
    }
};

Quantization per_tensor(float scale, int32_t zero_point = 0) { return Quantization{{scale}, {zero_point}, 0}; }

TEST(PrecisionPasses, QuantizeInt8PutsQdqAroundEachMatmulWithIntegerWeightsAndBias) {
    Mlp m;
    QuantTable table;
    table["x"] = per_tensor(0.02f);
    table["r"] = per_tensor(0.01f, -5);
    table["w"] = Quantization{{0.007f, 0.006f, 0.0075f}, {0, 0, 0}, 1};
    table["w2"] = Quantization{{0.0071f, 0.0072f, 0.0073f, 0.0074f, 0.0078f}, {0, 0, 0, 0, 0}, 1};
    const Weights before = m.weights;
    Weights weights = m.weights;
    const Graph g = quantize_int8(m.graph, weights, table, edge());
    std::multiset<std::string> kinds;
    for (const Op& op : g.ops()) kinds.insert(op.kind);
    // Q/DQ of x, DQ of w, the MatMul, the Relu, Q/DQ of r (after the Relu, not before it),
    // DQ of w2 and of the bias, the Gemm; y is an output: no Q after it.
    EXPECT_EQ(kinds, (std::multiset<std::string>{"QuantizeLinear", "DequantizeLinear", "DequantizeLinear", "MatMul", "Relu",
                                                 "QuantizeLinear", "DequantizeLinear", "DequantizeLinear",
                                                 "DequantizeLinear", "Gemm"}));
    const Op& mm = g.ops()[*g.find_op("mm")];
    const Op& fc = g.ops()[*g.find_op("fc")];
    const Op& act = g.ops()[*g.find_op("act")];
    EXPECT_EQ(g.tensor(act.inputs[0]).name, "h");  // the Relu reads the MatMul's float output
    for (uint32_t t : {mm.inputs[0], mm.inputs[1], fc.inputs[0], fc.inputs[1], fc.inputs[2]})
        EXPECT_EQ(g.tensor(t).dtype, DType::Float32);  // the MAC ops read DQ outputs
    const auto producer = [&](uint32_t t) -> const Op& {
        for (const Op& op : g.ops())
            if (op.outputs[0] == t) return op;
        throw std::runtime_error("no producer");
    };
    // X: x -> Q (x's scale) -> DQ.
    const Op& dqx = producer(mm.inputs[0]);
    EXPECT_EQ(dqx.kind, "DequantizeLinear");
    const Tensor& qx = g.tensor(dqx.inputs[0]);
    EXPECT_EQ(qx.dtype, DType::Int8);
    EXPECT_EQ(*qx.quant, table["x"]);
    EXPECT_EQ(g.tensor(producer(dqx.inputs[0]).inputs[0]).name, "x");
    // Gemm's X: the Relu's output through Q (r's scale and zero point) -> DQ.
    const Op& dqr = producer(fc.inputs[0]);
    EXPECT_EQ(*g.tensor(dqr.inputs[0]).quant, table["r"]);
    EXPECT_EQ(g.tensor(producer(dqr.inputs[0]).inputs[0]).name, "r");
    // Weights: int8 constants, round_half_even(w / s_c), c the column.
    for (const auto& [op, name] : {std::make_pair(&mm, std::string("w")), std::make_pair(&fc, std::string("w2"))}) {
        const Tensor& q = g.tensor(producer(op->inputs[1]).inputs[0]);
        EXPECT_EQ(q.dtype, DType::Int8);
        EXPECT_EQ(q.role, TensorRole::Constant);
        EXPECT_EQ(q.quant->scale, table[name].scale);
        EXPECT_EQ(q.quant->axis, 1u);
        const Weight& w = weights.at(q.name);
        EXPECT_EQ(w.dtype, DType::Int8);
        EXPECT_TRUE(w.values.empty());
        const Weight& f = before.at(name);
        const uint64_t n = f.shape[1];
        ASSERT_EQ(w.integers.size(), f.values.size());
        for (uint64_t i = 0; i < f.values.size(); ++i) {
            const float steps = f.values[i] / table[name].scale[i % n];
            const int32_t want = int32_t(std::max(-128.0f, std::min(127.0f, std::nearbyint(steps))));
            EXPECT_EQ(w.integers[i], want) << name << "[" << i << "]";
        }
    }
    // Bias: int32, scale s_x s_w[c], round_half_even(b / scale).
    const Tensor& qb = g.tensor(producer(fc.inputs[2]).inputs[0]);
    EXPECT_EQ(qb.dtype, DType::Int32);
    for (uint64_t c = 0; c < 5; ++c) {
        const float s = float(double(0.01f) * double(table["w2"].scale[c]));
        EXPECT_EQ(qb.quant->scale[c], s);
        EXPECT_EQ(qb.quant->zero_point[c], 0);
        EXPECT_EQ(weights.at(qb.name).integers[c], int32_t(std::nearbyint(double(before.at("bias").values[c]) / double(s))));
    }
    // The float weights nothing reads went.
    EXPECT_FALSE(weights.count("w"));
    EXPECT_FALSE(weights.count("w2"));
    EXPECT_FALSE(weights.count("bias"));
    EXPECT_EQ(g.tensor(*g.find_tensor("y")).dtype, DType::Float32);
}

TEST(PrecisionPasses, QuantizeInt8NamesATensorTheCalibrationLacks) {
    Mlp m;
    QuantTable table;
    table["x"] = per_tensor(0.02f);
    table["w"] = Quantization{{0.007f, 0.006f, 0.0075f}, {0, 0, 0}, 1};
    try {
        quantize_int8(m.graph, m.weights, table, edge());
        FAIL() << "no error";
    } catch (const CompileError& e) {
        EXPECT_STREQ(e.what(), "int8: the calibration has no entry for tensor 'r' (of op 'mm')");
    }
}

/// Mlp(false) with weights whose rounding to bfloat16 / float16 goes both ways and ties.
Graph matmul_chain(Weights& weights) {
    Mlp m(false);
    weights = m.weights;
    weights["w"].values.clear();
    weights["w2"].values.clear();
    for (uint64_t i = 0; i < 12; ++i) weights["w"].values.push_back(1.0f + float(i) * 0x1p-10f + 0x1p-17f);
    for (uint64_t i = 0; i < 15; ++i) weights["w2"].values.push_back(-3.0f + float(i) * 0.1f);
    return m.graph;
}

TEST(PrecisionPasses, FloatPrecisionRoundsMacWeightsToNearestEvenAndCastsAtTheEdges) {
    for (DType type : {DType::BFloat16, DType::Float16}) {
        Weights weights;
        const Graph source = matmul_chain(weights);
        const Weights before = weights;
        hw::Config config = edge();
        if (type == DType::Float16) config = hw::load_config(std::string(KPU_SOURCE_DIR) + "/configs/datacenter.json");
        const Graph g = to_float_precision(source, weights, type, config);
        for (const char* name : {"w", "w2"}) {
            EXPECT_EQ(g.tensor(*g.find_tensor(name)).dtype, type);
            const Weight& w = weights.at(name);
            EXPECT_EQ(w.dtype, type);
            for (size_t i = 0; i < w.values.size(); ++i) {
                const float f = before.at(name).values[i];
                // Round to nearest even on the bits: bfloat16 keeps 7 fraction bits, float16 10.
                uint32_t bits = hw::float_bits(f);
                const int drop = type == DType::BFloat16 ? 16 : 13;
                const uint32_t half = 1u << (drop - 1), rest = bits & ((1u << drop) - 1), lsb = (bits >> drop) & 1u;
                bits &= ~((1u << drop) - 1);
                if (rest > half || (rest == half && lsb)) bits += 1u << drop;
                EXPECT_EQ(hw::float_bits(w.values[i]), bits) << name << "[" << i << "] " << to_string(type);
            }
        }
        // x (float32) -> Cast -> the MatMul; the MatMul's and Relu's outputs of the type; the
        // last MatMul writes a tensor of the type that a Cast writes into y (float32).
        EXPECT_EQ(g.tensor(*g.find_tensor("x")).dtype, DType::Float32);
        EXPECT_EQ(g.tensor(*g.find_tensor("y")).dtype, DType::Float32);
        EXPECT_EQ(g.tensor(*g.find_tensor("h")).dtype, type);
        EXPECT_EQ(g.tensor(*g.find_tensor("r")).dtype, type);
        const Op& mm = g.ops()[*g.find_op("mm")];
        const Op& mm2 = g.ops()[*g.find_op("mm2")];
        EXPECT_EQ(g.tensor(mm.inputs[0]).dtype, type);
        EXPECT_EQ(g.tensor(mm2.outputs[0]).dtype, type);
        int casts = 0;
        for (const Op& op : g.ops())
            if (op.kind == "Cast") {
                ++casts;
                const bool in = g.tensor(op.inputs[0]).name == "x";
                EXPECT_TRUE(in || g.tensor(op.outputs[0]).name == "y");
                EXPECT_EQ(std::get<std::string>(op.attributes.at("to")), in ? to_string(type) : "float32");
            }
        EXPECT_EQ(casts, 2);
    }
}

TEST(PrecisionPasses, FloatPrecisionConvertsAConstantAVectorOpReadsBesideAnActivation) {
    Graph graph;
    for (Tensor t : {Tensor("x", {2, 4}, DType::Float32, TensorRole::Input),
                     Tensor("w", {4, 3}, DType::Float32, TensorRole::Constant),
                     Tensor("b", {3}, DType::Float32, TensorRole::Constant), Tensor("h", {}),
                     Tensor("y", {}, DType::Float32, TensorRole::Output)})
        graph.add_tensor(std::move(t));
    graph.tensor(*graph.find_tensor("b")).value = std::vector<double>{0.1, 1.0 + 0x1p-8, -2.5};
    graph.add_op(Op{"mm", "MatMul", {0, 1}, {3}, {}, {}});
    graph.add_op(Op{"bias", "Add", {3, 2}, {4}, {}, {}});
    graph.check("test");
    Weights weights{{"w", Weight{{4, 3}, std::vector<float>(12, 0.5f), DType::Float32, {}}}};
    const Graph g = to_float_precision(graph, weights, DType::BFloat16, edge());
    const Tensor& b = g.tensor(*g.find_tensor("b"));
    EXPECT_EQ(b.dtype, DType::BFloat16);  // the Add's operands are of one type
    const std::vector<double> want = {double(hw::bfloat16_to_float(hw::float_to_bfloat16(0.1f))), 1.0, -2.5};
    EXPECT_EQ(std::get<std::vector<double>>(b.value), want);  // 1 + 2^-8, half an ulp: ties to even, 1
}

TEST(PrecisionPasses, APrecisionTheFabricDoesNotListIsRefused) {
    Weights weights;
    const Graph source = matmul_chain(weights);
    try {
        to_float_precision(source, weights, DType::Float16, edge());
        FAIL() << "no error";
    } catch (const std::exception& e) {
        EXPECT_STREQ(e.what(), "element type 'float16' is not supported by config 'edge' (float32, bfloat16, int8)");
    }
    hw::Config no_int8 = edge();
    no_int8.fabric.element_types.erase(
        std::remove_if(no_int8.fabric.element_types.begin(), no_int8.fabric.element_types.end(),
                       [](const hw::ElementType& e) { return e.name == "int8"; }),
        no_int8.fabric.element_types.end());
    EXPECT_THROW(quantize_int8(source, weights, {}, no_int8), std::exception);
}

// ---- kpu-compile's options ----

/// kpu-compile's stdout and stderr for `args`, and its exit status.
std::pair<int, std::string> kpu_compile(const std::string& args) {
    const test::ToolRun r =
        test::run_command(std::string(KPU_BINARY_DIR) + "/bin/kpu-compile " + args + " 2>&1", "precision_test_");
    return {r.exit_code, r.out};
}

/// A directory of `n` calibration samples of `shape` for examples/mlp.json's one input.
std::string sample_dir(const std::string& name, int n, const std::vector<uint64_t>& shape) {
    const std::filesystem::path dir = std::filesystem::path(KPU_BINARY_DIR) / ("precision_test_" + name);
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    uint64_t count = 1;
    for (uint64_t d : shape) count *= d;
    for (int i = 0; i < n; ++i) {
        std::vector<float> values(count);
        for (uint64_t j = 0; j < count; ++j) values[j] = float(std::sin(double(i * 31 + j)));
        char file[32];
        std::snprintf(file, sizeof file, "s%03d.npy", i);
        cli::write_npy((dir / file).string(), shape, values.data());
    }
    return dir.string();
}

TEST(KpuCompilePrecision, TooFewSamplesAWrongShapeAndAnUnlistedTypeAreOneLineEach) {
    const std::string source = KPU_SOURCE_DIR, graph = source + "/examples/mlp.json";
    const std::string out = std::string(KPU_BINARY_DIR) + "/precision_test.kpu";
    const Graph mlp = load_graph(graph);
    std::vector<uint64_t> shape;
    std::string input;
    for (const Tensor& t : mlp.tensors())
        if (t.role == TensorRole::Input) shape = t.shape, input = t.name;
    ASSERT_FALSE(shape.empty());
    EXPECT_EQ(kpu_compile(graph + " -o " + out + " --precision int8 --calibration " + sample_dir("few", 12, shape)),
              std::make_pair(1, std::string("kpu-compile: error: INT8 calibration requires at least 100 samples (got 12)\n")));
    std::vector<uint64_t> wrong = shape;
    ++wrong.back();
    const std::string bad = sample_dir("bad", 1, wrong);
    EXPECT_EQ(kpu_compile(graph + " -o " + out + " --precision int8 --calibration " + bad),
              std::make_pair(1, "kpu-compile: error: " + bad + "/s000.npy: input '" + input + "' has shape " +
                                    shape_string(wrong) + ", the graph's is " + shape_string(shape) + "\n"));
    EXPECT_EQ(kpu_compile(graph + " -o " + out + " --config " + source + "/configs/edge.json --precision fp16"),
              std::make_pair(1, std::string("kpu-compile: error: element type 'float16' is not supported by config "
                                            "'edge' (float32, bfloat16, int8)\n")));
    EXPECT_EQ(kpu_compile(graph + " -o " + out + " --precision int4"),
              std::make_pair(1, std::string("kpu-compile: error: --precision: unknown precision 'int4' (fp32, bf16, "
                                            "fp16, int8)\n")));
}

}  // namespace
}  // namespace kpu::compiler
