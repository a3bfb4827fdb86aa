#include "sc_main/reference.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <cmath>
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "compiler/graph_json.h"

namespace kpu::cli {
namespace {

compiler::Graph mlp_graph() {
    // y = relu(x @ W1 + b1) @ W2: x 2x3, W1 3x2, W2 2x1
    const char* text = R"({"tensors": [
        {"name": "x", "shape": [2, 3], "dtype": "float32", "role": "input"},
        {"name": "W1", "shape": [3, 2], "dtype": "float32", "role": "constant"},
        {"name": "b1", "shape": [2], "dtype": "float32", "role": "constant"},
        {"name": "W2", "shape": [2, 1], "dtype": "float32", "role": "constant"},
        {"name": "h", "dtype": "float32"},
        {"name": "y", "dtype": "float32", "role": "output"}],
      "ops": [
        {"name": "fc1", "op": "matmul", "A": "x", "B": "W1", "C": "h", "bias": "b1", "activation": "relu"},
        {"name": "fc2", "op": "matmul", "A": "h", "B": "W2", "C": "y"}]})";
    return compiler::parse_graph(text, "mlp.json");
}

TEST(Reference, EvaluatesAChainWithBiasAndReluByHand) {
    auto t = run_reference(mlp_graph(), {{"x", {1, 2, 3, -1, 0, 1}},
                                         {"W1", {1, 0, 0, 1, 1, -1}},
                                         {"b1", {0.5f, -10}},
                                         {"W2", {2, 3}}});
    // h = relu([[4, -1], [0, 1]] + [0.5, -10]) = [[4.5, 0], [0.5, 0]]; y = h @ [2, 3] = [9, 1]
    EXPECT_EQ(t["h"].value, (std::vector<double>{4.5, 0, 0.5, 0}));
    EXPECT_EQ(t["y"].value, (std::vector<double>{9, 1}));
    // bounds, in u = 2^-24: 2 K u M + u |x W1 + b1| + u |relu(.)| with K = 3. h[0][0]: M =
    // |1||1| + |3||1| = 4, x = 4.5: 24 + 4.5 + 4.5 = 33. h[0][1]: M = |2||1| + |3||1| = 5,
    // x = -11, relu 0: 30 + 11 = 41.
    const double u = std::ldexp(1.0, -24);
    EXPECT_DOUBLE_EQ(t["h"].bound[0], 33 * u);
    EXPECT_DOUBLE_EQ(t["h"].bound[1], 41 * u);
    // y[0] = h[0] W2 with h's bounds carried: M = 4.5 x 2 = 9, P = (4.5 + 33u) 2 + (0 + 41u) 3
    // = 9 + 189u; 2 K u P + (P - M) + u 9 + u 9, K = 2.
    EXPECT_NEAR(t["y"].bound[0], 4 * u * (9 + 189 * u) + 189 * u + 18 * u, 1e-3 * u);
    // Given h as the hardware computed it, y is one op on exact operands: 4 u 9 + u 9 + u 9.
    auto given = run_reference(mlp_graph(), {{"x", {1, 2, 3, -1, 0, 1}},
                                             {"W1", {1, 0, 0, 1, 1, -1}},
                                             {"b1", {0.5f, -10}},
                                             {"W2", {2, 3}},
                                             {"h", {4.5f, 0, 0.5f, 0}}});
    EXPECT_EQ(given["y"].value, (std::vector<double>{9, 1}));
    EXPECT_DOUBLE_EQ(given["y"].bound[0], 54 * u);
}

// Bounds carried from op to op grow with depth far faster than the values: on a chain of 12
// random 32x32 layers the last one's bound passes an all-zero output. Given the intermediates
// (as kpu-sim gives the hardware's), each op gets one op's tolerance and zeros fail.
TEST(Reference, GivenTheIntermediatesEachOpIsCheckedWithItsOwnTolerance) {
    const int layers = 12, n = 32;
    std::string tensors = R"({"name": "t0", "shape": [4, 32], "dtype": "float32", "role": "input"})";
    std::string ops;
    for (int l = 0; l < layers; ++l) {
        const std::string w = "w" + std::to_string(l), out = "t" + std::to_string(l + 1);
        tensors += R"(, {"name": ")" + w + R"(", "shape": [32, 32], "dtype": "float32", "role": "constant"})";
        tensors += R"(, {"name": ")" + out + R"(", "dtype": "float32"})";
        ops += std::string(l ? ", " : "") + R"({"name": "l)" + std::to_string(l) + R"(", "op": "matmul", "A": "t)" +
               std::to_string(l) + R"(", "B": ")" + w + R"(", "C": ")" + out + R"("})";
    }
    const compiler::Graph graph =
        compiler::parse_graph(R"({"tensors": [)" + tensors + R"(], "ops": [)" + ops + "]}", "chain.json");
    std::mt19937_64 gen(11);
    std::map<std::string, std::vector<float>> inputs;
    auto random = [&](size_t count, double scale) {
        std::vector<float> v(count);
        for (auto& x : v) x = float(scale * (double(gen() >> 11) * 0x1.0p-53 * 2.0 - 1.0));
        return v;
    };
    inputs["t0"] = random(4 * n, 1.0);
    for (int l = 0; l < layers; ++l) inputs["w" + std::to_string(l)] = random(n * n, 0.3);  // values stay O(1)
    const std::string last = "t" + std::to_string(layers);
    const std::vector<uint64_t> shape{4, uint64_t(n)};
    const std::vector<float> zeros(4 * n, 0.0f);

    const auto carried = run_reference(graph, inputs);
    EXPECT_TRUE(check_tensor(zeros, carried.at(last), shape).ok) << "carried bounds are too loose to see zeros";
    EXPECT_GT(carried.at(last).bound_in_products, 1.0);

    // The "hardware": each layer's value rounded to fp32, fed to the next.
    std::map<std::string, std::vector<float>> given = inputs;
    for (int l = 1; l <= layers; ++l) {
        const auto step = run_reference(graph, given);
        const std::vector<double>& v = step.at("t" + std::to_string(l)).value;
        given["t" + std::to_string(l)] = std::vector<float>(v.begin(), v.end());
    }
    given.erase(last);
    const auto each = run_reference(graph, given);
    std::vector<float> hardware(each.at(last).value.begin(), each.at(last).value.end());
    EXPECT_TRUE(check_tensor(hardware, each.at(last), shape).ok);
    EXPECT_FALSE(check_tensor(zeros, each.at(last), shape).ok);
    EXPECT_LT(each.at(last).bound_in_products, 0.01);
}

TEST(Reference, StopsWhenCancelledAndRunsToTheEndOtherwise) {
    const std::map<std::string, std::vector<float>> inputs{
        {"x", {1, 2, 3, -1, 0, 1}}, {"W1", {1, 0, 0, 1, 1, -1}}, {"b1", {0.5f, -10}}, {"W2", {2, 3}}};
    std::atomic<bool> cancel{true};
    EXPECT_THROW(run_reference(mlp_graph(), inputs, &cancel), ReferenceCancelled);
    cancel = false;
    EXPECT_EQ(run_reference(mlp_graph(), inputs, &cancel)["y"].value, (std::vector<double>{9, 1}));
    // Cancelled while it runs (what kpu-sim does when the simulation fails): a 1024^3
    // product takes about 0.2 s here (much longer in a sanitizer build); 30 ms in, it is
    // between blocks, not done.
    const std::string text = R"({"op": "matmul", "A": {"shape": [1024, 1024], "dtype": "float32"},)"
                             R"( "B": {"shape": [1024, 1024], "dtype": "float32"},)"
                             R"( "C": {"shape": [1024, 1024], "dtype": "float32"}})";
    const compiler::Graph big = compiler::parse_graph(text, "big.json");
    const std::map<std::string, std::vector<float>> ones{{"A", std::vector<float>(1024 * 1024, 1.0f)},
                                                         {"B", std::vector<float>(1024 * 1024, 1.0f)}};
    std::atomic<bool> stop{false};
    auto running = std::async(std::launch::async, [&] { return run_reference(big, ones, &stop); });
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    stop = true;
    EXPECT_THROW(running.get(), ReferenceCancelled);
}

TEST(Reference, CheckFindsTheWorstElementAndItsCoordinates) {
    ReferenceTensor ref;
    ref.value = {1, 2, 3, 4, 5, 6};
    for (double v : ref.value) ref.bound.push_back(4 * 8 * std::ldexp(1.0, -24) * v);
    const std::vector<uint64_t> shape = {2, 3};
    std::vector<float> got = {1, 2, 3, 4, 5, 6};
    CheckResult exact = check_tensor(got, ref, shape);
    EXPECT_TRUE(exact.ok);
    EXPECT_EQ(exact.mismatches, 0u);
    // tolerance of element 4 is 4 * 8 * 2^-24 * 5 ~ 9.5e-6: 1e-6 passes, 1e-3 fails
    got[4] = 5.000001f;
    EXPECT_TRUE(check_tensor(got, ref, shape).ok);
    got[4] = 5.001f;
    CheckResult bad = check_tensor(got, ref, shape);
    EXPECT_FALSE(bad.ok);
    EXPECT_EQ(bad.mismatches, 1u);
    EXPECT_EQ(bad.worst_index, 4u);
    EXPECT_EQ(bad.worst_at, (std::vector<uint64_t>{1, 1}));
    EXPECT_DOUBLE_EQ(bad.expected, 5.0);
    EXPECT_NEAR(bad.tolerance, 4 * 8 * 5 * std::ldexp(1.0, -24), 1e-12);
    got[0] = NAN;
    EXPECT_EQ(check_tensor(got, ref, shape).worst_index, 0u) << "NaN is the worst";
}

TEST(Reference, NonFiniteElementsMatchOnlyTheSameClass) {
    ReferenceTensor ref;
    ref.value = {NAN, INFINITY, -INFINITY, 1};
    ref.bound = {NAN, INFINITY, INFINITY, 1e-6};
    const std::vector<uint64_t> shape = {4};
    CheckResult same = check_tensor({NAN, INFINITY, -INFINITY, 1}, ref, shape);
    EXPECT_TRUE(same.ok);
    EXPECT_EQ(same.non_finite, 3u);
    EXPECT_EQ(same.worst_index, 3u);
    const std::vector<float> wrong[] = {{1, INFINITY, -INFINITY, 1},
                                        {NAN, -INFINITY, -INFINITY, 1},
                                        {NAN, INFINITY, NAN, 1},
                                        {NAN, INFINITY, -INFINITY, NAN},
                                        {NAN, INFINITY, -INFINITY, -INFINITY}};
    for (size_t w = 0; w < std::size(wrong); ++w) {
        CheckResult r = check_tensor(wrong[w], ref, shape);
        EXPECT_FALSE(r.ok) << w;
        EXPECT_EQ(r.mismatches, 1u) << w;
        EXPECT_EQ(r.non_finite, w < 3 ? 2u : 3u) << w;
        EXPECT_EQ(r.worst_index, std::min<size_t>(w, 3)) << w;
    }
}

// The reference's loops are blocked for the host's cache; each element must still be the
// plain i-p-j loop's sum, bit for bit. The shape crosses block edges in K and N (and has a
// ragged last block in both), with a bias and relu on the result.
TEST(Reference, BlockedLoopsGiveThePlainLoopsBits) {
    const uint64_t m = 5, k = kReferenceBlock * 2 + 37, n = kReferenceBlock + 19;
    const std::string text = R"({"tensors": [
        {"name": "A", "shape": [)" + std::to_string(m) + ", " + std::to_string(k) + R"(], "dtype": "float32", "role": "input"},
        {"name": "B", "shape": [)" + std::to_string(k) + ", " + std::to_string(n) + R"(], "dtype": "float32", "role": "constant"},
        {"name": "bias", "shape": [)" + std::to_string(n) + R"(], "dtype": "float32", "role": "constant"},
        {"name": "C", "dtype": "float32", "role": "output"}],
      "ops": [{"name": "mm", "op": "matmul", "A": "A", "B": "B", "C": "C", "bias": "bias", "activation": "relu"}]})";
    std::mt19937_64 gen(3);
    auto random = [&](uint64_t count) {
        std::vector<float> v(count);
        for (auto& x : v) x = float(double(gen() >> 11) * 0x1.0p-53 * 2.0 - 1.0);
        return v;
    };
    const std::vector<float> a = random(m * k), b = random(k * n), bias = random(n);
    auto t = run_reference(compiler::parse_graph(text, "blocked.json"), {{"A", a}, {"B", b}, {"bias", bias}});
    const ReferenceTensor& c = t.at("C");
    ASSERT_EQ(c.value.size(), m * n);
    uint64_t differ = 0;
    for (uint64_t i = 0; i < m; ++i) {
        std::vector<double> value(n, 0.0), magnitude(n, 0.0), bound(n);
        for (uint64_t p = 0; p < k; ++p)
            for (uint64_t j = 0; j < n; ++j) {
                value[j] += double(a[i * k + p]) * double(b[p * n + j]);
                magnitude[j] += std::fabs(double(a[i * k + p])) * std::fabs(double(b[p * n + j]));
            }
        for (uint64_t j = 0; j < n; ++j) {
            const double u = std::ldexp(1.0, -24);
            value[j] += double(bias[j]);
            bound[j] = 2.0 * double(k) * u * magnitude[j] + 0.0 + u * std::fabs(value[j]);
            value[j] = value[j] > 0 ? value[j] : 0;
            bound[j] += u * std::fabs(value[j]);
            differ += value[j] != c.value[i * n + j] || bound[j] != c.bound[i * n + j];
        }
    }
    EXPECT_EQ(differ, 0u) << "of " << m * n << " elements";
    EXPECT_GT(std::count(c.value.begin(), c.value.end(), 0.0), 0) << "relu clipped some";
}

}  // namespace
}  // namespace kpu::cli
