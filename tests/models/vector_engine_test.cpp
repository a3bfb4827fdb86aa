// The VectorEngine on a plain test memory: every function's values against plain
// double-precision loops, its time against hw::vector_cycles exactly, broadcasting corners,
// ragged shapes, strided operands, and refused commands.
//
// Tolerances (docs/models.md, Vector engine), with e = 2^-23 (float's epsilon), L the lanes
// (8 on minimal) and n the row length:
// - element-wise: |y - ref| <= 8 e (|ref| + |a| + |b|): a few roundings of intermediates as
//   large as the operands (gelu's 1 + erf cancels: the |a| term covers it);
// - sums (ReduceSum, ReduceMean): (n/L + log2 L + 2) e sum|a| (per lane n/L additions, then
//   a tree of log2 L), divided by n for the mean; ReduceMax exact;
// - softmax: relative (4 max|x| + n/L + log2 L + 6) e: x = scale a + b rounds by 2e|x|,
//   which exp turns into a relative error, then the sum and the scaling;
// - norms: k e (max|a| rstd |w| + |z w| + |b|), k = n/L + log2 L + 8, z the normalized value:
//   the mean's rounding shifts every z, the variance's scales it.
#include "models/vector_engine.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "hardware/vector_timing.h"
#include "tests/support/config.h"
#include "tests/support/random_floats.h"
#include "tests/support/report_catcher.h"
#include "tests/support/test_memory.h"

namespace kpu::model {
namespace {

using F = hw::VectorFunction;
using hw::Broadcast;
using test::random_floats;
constexpr double kEps = std::numeric_limits<float>::epsilon();

struct Bench : sc_core::sc_module {
    static constexpr uint64_t kBase = 0x1000;
    hw::Config config = test::config("minimal");
    VectorEngine engine{"vector", config};
    test::TestMemory mem{"mem", kBase, 256 * 1024};
    struct Done {
        uint64_t id;
        bool ok;
        sc_core::sc_time started, ended;
    };
    std::vector<Done> done;
    uint64_t next_free = kBase;
    uint64_t issued = 0;  ///< commands submitted by issue()

    explicit Bench(sc_core::sc_module_name n) : sc_module(n) {
        engine.socket.bind(mem.socket);
        engine.on_complete([this](uint64_t id, bool ok, const sc_core::sc_time& started) {
            done.push_back({id, ok, started, sc_core::sc_time_stamp()});
        });
    }
    /// A fresh, 64-byte aligned stretch of `floats` values.
    uint64_t alloc(size_t floats) {
        const uint64_t at = next_free;
        next_free += (floats * 4 + 63) / 64 * 64;
        return at;
    }
    uint64_t put(const std::vector<float>& v) {
        const uint64_t at = alloc(v.size());
        mem.put(at, v);
        return at;
    }
    /// Submits `c` (ids 1, 2, ...) with its result in a fresh stretch of `y_floats` values at
    /// pitch `y_ld`; returns where the result goes.
    uint64_t issue(hw::VectorCommand c, size_t y_floats, uint32_t y_ld) {
        c.y = {alloc(y_floats), y_ld};
        engine.submit({++issued, c});
        return c.y.addr;
    }
    /// Runs the simulation: every command issue() submitted completes, and ok.
    void run_all() {
        sc_core::sc_start();
        ASSERT_EQ(done.size(), issued);
        for (const Done& d : done) EXPECT_TRUE(d.ok) << "command " << d.id;
    }
};

/// A command over a rows x cols tile; operands are filled in by the test.
hw::VectorCommand tile(F f, uint32_t rows, uint32_t cols) {
    hw::VectorCommand c;
    c.function = f;
    c.rows = rows, c.cols = cols;
    return c;
}

double ref_unary(F f, double x, const hw::VectorCommand& c) {
    switch (f) {
        case F::Copy: return x;
        case F::Relu: return std::max(x, 0.0);
        case F::LeakyRelu: return x < 0 ? c.alpha * x : x;
        case F::Gelu: return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
        case F::GeluTanh: return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
        case F::Sigmoid: return 1 / (1 + std::exp(-x));
        case F::Silu: return x / (1 + std::exp(-x));
        case F::Tanh: return std::tanh(x);
        case F::Exp: return std::exp(x);
        case F::Erf: return std::erf(x);
        case F::Sqrt: return std::sqrt(x);
        case F::Reciprocal: return 1 / x;
        case F::Neg: return -x;
        case F::Abs: return std::fabs(x);
        case F::Clip: return std::min(std::max(x, double(c.clip_min)), double(c.clip_max));
        case F::HardSigmoid: return std::max(0.0, std::min(1.0, c.alpha * x + c.beta));
        case F::HardSwish: return x * std::max(0.0, std::min(1.0, x / 6 + 0.5));
        default: ADD_FAILURE() << "not unary: " << to_string(f); return 0;
    }
}

double ref_binary(F f, double x, double y) {
    switch (f) {
        case F::Add: return x + y;
        case F::Sub: return x - y;
        case F::Mul: return x * y;
        case F::Div: return x / y;
        case F::Max: return std::max(x, y);
        case F::Min: return std::min(x, y);
        case F::Pow: return std::pow(x, y);
        default: ADD_FAILURE() << "not binary: " << to_string(f); return 0;
    }
}

/// Reads a rows x cols result with pitch ld.
std::vector<float> get_tile(const Bench& bench, uint64_t at, uint32_t rows, uint32_t cols, uint32_t ld) {
    std::vector<float> out;
    for (uint32_t r = 0; r < rows; ++r) {
        const std::vector<float> row = bench.mem.get(at + uint64_t(r) * ld * 4, cols);
        out.insert(out.end(), row.begin(), row.end());
    }
    return out;
}

TEST(VectorEngine, ElementwiseFunctionsMatchDoublePrecisionLoops) {
    Bench bench("bench");
    // Ragged on 8 lanes (13 = 8 + 5), a strided input and a strided output.
    constexpr uint32_t kRows = 5, kCols = 13, kLda = 16, kLdy = 15;
    struct Case {
        F f;
        float lo = -4, hi = 4;      ///< a's range
        float b_lo = -4, b_hi = 4;  ///< b's range
    };
    const std::vector<Case> cases = {
        {F::Copy},  {F::Relu}, {F::LeakyRelu},        {F::Gelu},       {F::GeluTanh},   {F::Sigmoid},
        {F::Silu},  {F::Tanh}, {F::Exp},              {F::Erf},        {F::Sqrt, 0.01f, 9}, {F::Reciprocal, 0.25f, 4},
        {F::Neg},   {F::Abs},  {F::Clip},             {F::HardSigmoid}, {F::HardSwish, -5, 5},
        {F::Add},   {F::Sub},  {F::Mul},              {F::Div, -4, 4, 0.5f, 4}, {F::Max}, {F::Min},
        {F::Pow, 0.1f, 4, -2, 2},
    };
    struct Issued {
        Case kase;
        hw::VectorCommand c;
        std::vector<float> a, b;
    };
    std::vector<Issued> issued;
    unsigned seed = 1;
    for (const Case& k : cases) {
        Issued is{k, tile(k.f, kRows, kCols), random_floats(kRows * kLda, seed++, k.lo, k.hi), {}};
        hw::VectorCommand& c = is.c;
        c.alpha = k.f == F::LeakyRelu ? 0.01f : 0.2f, c.beta = 0.5f;
        c.clip_min = -1, c.clip_max = 2.5f;
        c.a = {bench.put(is.a), kLda};
        c.has_b = hw::traits_of(k.f).needs_b;
        if (c.has_b) {
            is.b = random_floats(kRows * kCols, seed++, k.b_lo, k.b_hi);
            c.b = {bench.put(is.b), kCols};
        }
        c.y.addr = bench.issue(c, kRows * kLdy, kLdy), c.y.ld = kLdy;
        issued.push_back(is);
    }
    bench.run_all();
    for (const Issued& is : issued) {
        SCOPED_TRACE(to_string(is.c.function));
        const std::vector<float> y = get_tile(bench, is.c.y.addr, kRows, kCols, kLdy);
        for (uint32_t r = 0; r < kRows; ++r)
            for (uint32_t col = 0; col < kCols; ++col) {
                const double a = is.a[r * kLda + col], b = is.c.has_b ? is.b[r * kCols + col] : 0.0;
                const double ref = is.c.has_b ? ref_binary(is.c.function, a, b) : ref_unary(is.c.function, a, is.c);
                EXPECT_NEAR(y[r * kCols + col], ref, 8 * kEps * (std::fabs(ref) + std::fabs(a) + std::fabs(b)))
                    << r << "," << col << " a=" << a << " b=" << b;
            }
    }
}

/// Tolerance of a sum of `values` folded by `lanes` lanes.
double sum_tolerance(const float* values, uint32_t n, uint32_t lanes) {
    double magnitude = 0;
    for (uint32_t i = 0; i < n; ++i) magnitude += std::fabs(values[i]);
    return (double(n) / lanes + std::log2(lanes) + 2) * kEps * magnitude;
}

TEST(VectorEngine, ReductionsWriteOneValuePerRowAtItsPitch) {
    Bench bench("bench");
    constexpr uint32_t kRows = 6, kCols = 37, kLda = 40, kLdy = 2;  // ragged; results every other float
    const std::vector<float> a = random_floats(kRows * kLda, 11, -3, 5);
    const uint64_t a_at = bench.put(a);
    std::vector<uint64_t> y_at;
    for (F f : {F::ReduceSum, F::ReduceMean, F::ReduceMax}) {
        hw::VectorCommand c = tile(f, kRows, kCols);
        c.a = {a_at, kLda};
        y_at.push_back(bench.issue(c, kRows * kLdy, kLdy));
        bench.mem.put(y_at.back(), std::vector<float>(kRows * kLdy, 99.0f));  // between the results: untouched
    }
    bench.run_all();
    for (uint32_t r = 0; r < kRows; ++r) {
        const float* row = a.data() + r * kLda;
        double sum = 0, max = row[0];
        for (uint32_t c = 0; c < kCols; ++c) sum += row[c], max = std::max(max, double(row[c]));
        const double tol = sum_tolerance(row, kCols, 8);
        const std::vector<float> s = bench.mem.get(y_at[0], kRows * kLdy), m = bench.mem.get(y_at[1], kRows * kLdy),
                                 x = bench.mem.get(y_at[2], kRows * kLdy);
        EXPECT_NEAR(s[r * kLdy], sum, tol) << r;
        EXPECT_NEAR(m[r * kLdy], sum / kCols, tol / kCols) << r;
        EXPECT_EQ(x[r * kLdy], max) << r;
        EXPECT_EQ(s[r * kLdy + 1], 99.0f) << r;
    }
}

/// Double-precision softmax of one row of x; masked elements are excluded (weight 0).
std::vector<double> ref_softmax(const std::vector<double>& x, const std::vector<bool>& masked) {
    double max = -INFINITY, sum = 0;
    for (size_t i = 0; i < x.size(); ++i)
        if (!masked[i]) max = std::max(max, x[i]);
    std::vector<double> y(x.size(), 0.0);
    for (size_t i = 0; i < x.size(); ++i)
        if (!masked[i]) sum += y[i] = std::exp(x[i] - max);
    for (double& v : y) v = sum > 0 ? v / sum : 0.0;
    return y;
}

TEST(VectorEngine, SoftmaxWithScaleMaskAndCausalityMatchesDoublePrecision) {
    Bench bench("bench");
    constexpr uint32_t kRows = 6, kCols = 37;
    const std::vector<float> a = random_floats(kRows * kCols, 21, -4, 4), mask = random_floats(kCols, 22, -1, 1);
    const uint64_t a_at = bench.put(a), mask_at = bench.put(mask);
    // Plain; scaled with a row-vector mask; causal from offset 2 (rows 0..5 see 3..8 keys);
    // causal from offset -3, where rows 0..2 see no key at all and give zeros.
    struct Case {
        bool mask, causal;
        int64_t offset;
        float scale;
    };
    const std::vector<Case> cases = {{false, false, 0, 1.0f}, {true, false, 0, 0.7f}, {false, true, 2, 1.0f},
                                     {true, true, -3, 0.7f}};
    std::vector<uint64_t> y_at;
    for (const Case& k : cases) {
        hw::VectorCommand c = tile(F::Softmax, kRows, kCols);
        c.a = {a_at, kCols};
        c.has_b = k.mask;
        c.b = {mask_at, 0, Broadcast::Row};
        c.scale = k.scale, c.causal = k.causal, c.causal_offset = k.offset;
        y_at.push_back(bench.issue(c, kRows * kCols, kCols));
    }
    bench.run_all();
    for (size_t i = 0; i < cases.size(); ++i) {
        const Case& k = cases[i];
        SCOPED_TRACE(i);
        const std::vector<float> y = bench.mem.get(y_at[i], kRows * kCols);
        for (uint32_t r = 0; r < kRows; ++r) {
            std::vector<double> x(kCols);
            std::vector<bool> masked(kCols);
            double max_abs = 0;
            for (uint32_t c = 0; c < kCols; ++c) {
                x[c] = double(k.scale) * a[r * kCols + c] + (k.mask ? mask[c] : 0.0);
                masked[c] = k.causal && int64_t(c) > int64_t(r) + k.offset;
                max_abs = std::max(max_abs, std::fabs(x[c]));
            }
            const std::vector<double> ref = ref_softmax(x, masked);
            const double rel = (4 * max_abs + kCols / 8.0 + 3 + 6) * kEps;
            for (uint32_t c = 0; c < kCols; ++c) {
                if (masked[c]) {
                    EXPECT_EQ(y[r * kCols + c], 0.0f) << r << "," << c;
                    continue;
                }
                EXPECT_NEAR(y[r * kCols + c], ref[c], rel * ref[c]) << r << "," << c;
            }
        }
    }
    // Offset -3: rows 0..2 have every key masked.
    const std::vector<float> last = bench.mem.get(y_at[3], kCols * 3);
    for (float v : last) EXPECT_EQ(v, 0.0f);
}

// Flash attention's three functions over a row of 37 keys cut into blocks of 16, 16 and 5
// (a per-query mask, causal from offset 28: row 0 sees blocks 0 and 1 up to key 28, row 5
// a key of block 2 as well, whose other keys are all masked for rows 0..3): online_softmax
// keeps the running max, sum and correction in the state, online_accumulate rescales O, and
// online_finish divides by l. O / l equals the whole row's softmax times V (here V = the
// identity's columns, so O / l is the softmax itself), within softmax's tolerance plus a
// correction (exp) and a multiply-add per block.
TEST(VectorEngine, OnlineSoftmaxBlocksGiveTheWholeRowsSoftmax) {
    Bench bench("bench");
    constexpr uint32_t kRows = 6, kCols = 37;
    const uint32_t blocks[][2] = {{0, 16}, {16, 16}, {32, 5}};  // first key, keys
    const std::vector<float> a = random_floats(kRows * kCols, 31, -4, 4), mask = random_floats(kRows * kCols, 32, -1, 1);
    const uint64_t a_at = bench.put(a), mask_at = bench.put(mask);
    const uint64_t state = bench.alloc(3 * kRows), o = bench.alloc(kRows * kCols), p = bench.alloc(kRows * 16);
    const float scale = 0.7f;
    const int64_t offset = 28;
    for (size_t j = 0; j < 3; ++j) {
        const uint32_t k0 = blocks[j][0], n = blocks[j][1];
        hw::VectorCommand s = tile(F::OnlineSoftmax, kRows, n);
        s.a = {a_at + k0 * 4, kCols};
        s.has_b = true, s.b = {mask_at + k0 * 4, kCols, Broadcast::None};
        s.scale = scale, s.causal = true, s.causal_offset = offset - int64_t(k0);
        s.state = state, s.online_first = j == 0;
        s.y = {p, 16};
        bench.engine.submit({++bench.issued, s});
        // O's columns k0 .. k0 + n get P (V = the identity), the others 0 (P V's other columns).
        hw::VectorCommand acc = tile(F::OnlineAccumulate, kRows, kCols);
        std::vector<float> pv(kRows * kCols, 0.0f);
        acc.a = {bench.alloc(kRows * kCols), kCols};
        acc.state = state, acc.online_first = j == 0;
        acc.y = {o, kCols};
        // P is computed by the command before: copy it into pv's columns on the engine itself.
        hw::VectorCommand copy = tile(F::Copy, kRows, n);
        copy.a = {p, 16};
        copy.y = {acc.a.addr + k0 * 4, kCols};
        bench.mem.put(acc.a.addr, pv);
        bench.engine.submit({++bench.issued, copy});
        bench.engine.submit({++bench.issued, acc});
    }
    hw::VectorCommand finish = tile(F::OnlineFinish, kRows, kCols);
    finish.a = {o, kCols}, finish.state = state, finish.y = {o, kCols};
    bench.engine.submit({++bench.issued, finish});
    bench.run_all();
    const std::vector<float> y = bench.mem.get(o, kRows * kCols);
    for (uint32_t r = 0; r < kRows; ++r) {
        std::vector<double> x(kCols);
        std::vector<bool> masked(kCols);
        double max_abs = 0;
        for (uint32_t c = 0; c < kCols; ++c) {
            x[c] = double(scale) * a[r * kCols + c] + mask[r * kCols + c];
            masked[c] = int64_t(c) > int64_t(r) + offset;
            max_abs = std::max(max_abs, std::fabs(x[c]));
        }
        const std::vector<double> ref = ref_softmax(x, masked);
        const double rel = (4 * max_abs + kCols / 8.0 + 3 + 6 + 3 * 6) * kEps;
        for (uint32_t c = 0; c < kCols; ++c) {
            if (masked[c]) {
                EXPECT_EQ(y[r * kCols + c], 0.0f) << r << "," << c;
                continue;
            }
            EXPECT_NEAR(y[r * kCols + c], ref[c], rel * ref[c]) << r << "," << c;
        }
    }
}

TEST(VectorEngine, LayerNormAndRmsNormWithWeightAndBiasMatchDoublePrecision) {
    Bench bench("bench");
    constexpr uint32_t kRows = 6, kCols = 37, kLda = 48;
    const std::vector<float> a = random_floats(kRows * kLda, 31, -2, 6), w = random_floats(kCols, 32, -2, 2),
                             bias = random_floats(kCols, 33, -1, 1);
    const uint64_t a_at = bench.put(a), w_at = bench.put(w), bias_at = bench.put(bias);
    struct Case {
        F f;
        bool weight, bias;
    };
    const std::vector<Case> cases = {
        {F::LayerNorm, true, true}, {F::LayerNorm, false, false}, {F::RmsNorm, true, false}, {F::RmsNorm, true, true}};
    std::vector<uint64_t> y_at;
    for (const Case& k : cases) {
        hw::VectorCommand c = tile(k.f, kRows, kCols);
        c.a = {a_at, kLda};
        c.has_weight = k.weight, c.weight = w_at;
        c.has_bias = k.bias, c.bias = bias_at;
        c.epsilon = 1e-5f;
        y_at.push_back(bench.issue(c, kRows * kCols, kCols));
    }
    bench.run_all();
    const double k_eps = (kCols / 8.0 + 3 + 8) * kEps;
    for (size_t i = 0; i < cases.size(); ++i) {
        const Case& k = cases[i];
        SCOPED_TRACE(i);
        const std::vector<float> y = bench.mem.get(y_at[i], kRows * kCols);
        for (uint32_t r = 0; r < kRows; ++r) {
            const float* row = a.data() + r * kLda;
            double mean = 0, spread = 0, max_abs = 0;
            for (uint32_t c = 0; c < kCols; ++c) mean += row[c], max_abs = std::max(max_abs, std::fabs(double(row[c])));
            mean = k.f == F::LayerNorm ? mean / kCols : 0.0;
            for (uint32_t c = 0; c < kCols; ++c) spread += (row[c] - mean) * (row[c] - mean);
            const double rstd = 1 / std::sqrt(spread / kCols + 1e-5);
            for (uint32_t c = 0; c < kCols; ++c) {
                const double z = (row[c] - mean) * rstd, wc = k.weight ? w[c] : 1.0, bc = k.bias ? bias[c] : 0.0;
                const double ref = z * wc + bc;
                const double tol = k_eps * (max_abs * rstd * std::fabs(wc) + std::fabs(z * wc) + std::fabs(bc));
                EXPECT_NEAR(y[r * kCols + c], ref, tol) << r << "," << c;
            }
        }
    }
}

TEST(VectorEngine, BroadcastingCornersGiveTheFloatSums) {
    Bench bench("bench");
    constexpr uint32_t kRows = 4, kCols = 6;
    const std::vector<float> m = random_floats(kRows * 8, 41, -4, 4);  // a 4 x 8 matrix: also a strided column
    const std::vector<float> row = random_floats(kCols, 42, -4, 4), column = random_floats(kRows, 43, -4, 4);
    const uint64_t m_at = bench.put(m), row_at = bench.put(row), column_at = bench.put(column);
    const hw::VectorOperand tile_in{m_at, 8}, scalar{row_at, 0, Broadcast::Scalar}, row_in{row_at, 0, Broadcast::Row},
        column_in{column_at, 1, Broadcast::Column}, strided_column{m_at + 4 * 7, 8, Broadcast::Column};
    auto value = [&](const hw::VectorOperand& in, uint32_t r, uint32_t c) -> float {
        switch (in.broadcast) {
            case Broadcast::None: return m[r * 8 + c];
            case Broadcast::Scalar: return row[0];
            case Broadcast::Row: return row[c];
            case Broadcast::Column: return in.addr == column_at ? column[r] : m[r * 8 + 7];
        }
        return 0;
    };
    struct Case {
        F f;
        hw::VectorOperand a, b;
        uint32_t rows = kRows, cols = kCols;
    };
    const std::vector<Case> cases = {
        {F::Add, tile_in, scalar},          // [4, 6] + []
        {F::Add, tile_in, row_in},          // [4, 6] + [6]
        {F::Add, tile_in, column_in},       // [4, 6] + [4, 1]
        {F::Add, tile_in, strided_column},  // ... + a column of another matrix
        {F::Sub, scalar, tile_in},          // [] - [4, 6]
        {F::Add, column_in, row_in},        // [4, 1] + [6]: both broadcast, an outer sum
        {F::Mul, scalar, scalar, 1, 1},     // one element
        {F::Copy, row_in, {}},              // a row vector expanded to the tile
    };
    std::vector<uint64_t> y_at;
    for (const Case& k : cases) {
        hw::VectorCommand c = tile(k.f, k.rows, k.cols);
        c.a = k.a;
        c.has_b = hw::traits_of(k.f).needs_b;
        c.b = k.b;
        y_at.push_back(bench.issue(c, k.rows * k.cols, k.cols));
    }
    bench.run_all();
    for (size_t i = 0; i < cases.size(); ++i) {
        const Case& k = cases[i];
        SCOPED_TRACE(i);
        const std::vector<float> y = bench.mem.get(y_at[i], k.rows * k.cols);
        for (uint32_t r = 0; r < k.rows; ++r)
            for (uint32_t c = 0; c < k.cols; ++c) {
                const float a = value(k.a, r, c), b = k.f == F::Copy ? 0.0f : value(k.b, r, c);
                const float expected = k.f == F::Add ? a + b : k.f == F::Sub ? a - b : k.f == F::Mul ? a * b : a;
                EXPECT_EQ(y[r * k.cols + c], expected) << r << "," << c;
            }
    }
}

TEST(VectorEngine, EachCommandTakesExactlyTheFormulasCyclesBackToBack) {
    Bench bench("bench");
    const std::vector<float> a = random_floats(10 * 20, 51, -1, 1);
    const uint64_t a_at = bench.put(a), y_at = bench.alloc(10 * 20);
    std::vector<hw::VectorCommand> commands;
    struct Shape {
        F f;
        uint32_t rows, cols;
    };
    for (const Shape& s : {Shape{F::Add, 5, 20}, Shape{F::Exp, 10, 20}, Shape{F::Softmax, 10, 20},
                           Shape{F::LayerNorm, 1, 7}, Shape{F::ReduceMax, 10, 20}, Shape{F::Pow, 3, 9}}) {
        const F f = s.f;
        const uint32_t cols = s.cols;
        hw::VectorCommand c = tile(f, s.rows, cols);
        c.a = c.b = {a_at, cols};
        c.has_b = hw::traits_of(f).needs_b;
        c.y = {y_at, hw::traits_of(f).shape == hw::VectorShape::Reduction ? 1 : cols};
        commands.push_back(c);
        bench.engine.submit({commands.size(), c});
    }
    sc_core::sc_start();
    ASSERT_EQ(bench.done.size(), commands.size());
    // minimal: 1 GHz, so cycles are nanoseconds. Hand-computed in VectorTiming.*; e.g. the
    // 10 x 20 softmax: 8 + 30 + 30 x 4 + 2 x 4 + 30 = 196.
    EXPECT_EQ(hw::vector_cycles(commands[2], bench.config.vector), 196u);
    sc_core::sc_time t = sc_core::SC_ZERO_TIME, busy = sc_core::SC_ZERO_TIME;
    double energy = 0;
    uint64_t elements = 0;
    for (size_t i = 0; i < commands.size(); ++i) {
        SCOPED_TRACE(i);
        const sc_core::sc_time cycles(double(hw::vector_cycles(commands[i], bench.config.vector)), sc_core::SC_NS);
        EXPECT_TRUE(bench.done[i].ok);
        EXPECT_EQ(bench.done[i].started, t);
        EXPECT_EQ(bench.done[i].ended, t + cycles);
        t += cycles, busy += cycles;
        energy += hw::vector_energy_pj(commands[i], bench.config.vector);
        elements += uint64_t(commands[i].rows) * commands[i].cols;
    }
    EXPECT_EQ(bench.engine.busy_time(), busy);
    EXPECT_EQ(bench.engine.commands(), commands.size());
    EXPECT_EQ(bench.engine.elements(), elements);
    EXPECT_DOUBLE_EQ(bench.engine.energy_pj(), energy);
    EXPECT_EQ(bench.engine.bytes_read(), (2 * 100 + 200 + 200 + 7 + 200 + 2 * 27) * 4u);
    EXPECT_EQ(bench.engine.bytes_written(), (100 + 200 + 200 + 7 + 10 + 27) * 4u);
}

/// Runs `body` in an SC_THREAD.
struct Script : sc_core::sc_module {
    std::function<void()> body;
    Script(sc_core::sc_module_name name, std::function<void()> b) : sc_module(name), body(std::move(b)) {
        SC_HAS_PROCESS(Script);
        SC_THREAD(run);
    }
    void run() { body(); }
};

TEST(VectorEngine, ASubmitWhileRunningOrFromTheCallbackQueuesBehindTheRunningCommand) {
    Bench bench("bench");
    const uint64_t a_at = bench.put(random_floats(64, 61, -1, 1)), y_at = bench.alloc(64);
    hw::VectorCommand c = tile(F::Exp, 8, 8);  // 8 + 8 x 4 = 40 cycles
    c.a = c.y = {a_at, 8};
    c.y.addr = y_at;
    bench.engine.on_complete([&](uint64_t id, bool ok, const sc_core::sc_time& started) {
        bench.done.push_back({id, ok, started, sc_core::sc_time_stamp()});
        if (id == 1) bench.engine.submit({3, c});  // as the sequencer does on a completion
    });
    bench.engine.submit({1, c});
    Script later("later", [&] {
        sc_core::wait(5, sc_core::SC_NS);
        bench.engine.submit({2, c});
    });
    sc_core::sc_start();
    ASSERT_EQ(bench.done.size(), 3u);
    const sc_core::sc_time cycle(1, sc_core::SC_NS);
    EXPECT_EQ(bench.done[0].id, 1u);
    EXPECT_EQ(bench.done[0].ended, 40 * cycle) << "the submit at 5 ns does not cut command 1 short";
    EXPECT_EQ(bench.done[1].id, 2u);
    EXPECT_EQ(bench.done[1].started, 40 * cycle);
    EXPECT_EQ(bench.done[1].ended, 80 * cycle);
    EXPECT_EQ(bench.done[2].id, 3u);
    EXPECT_EQ(bench.done[2].ended, 120 * cycle);
}

TEST(VectorEngine, RefusedCommandsAndBadAddressesAreReportedAndTheQueueGoesOn) {
    test::ReportCatcher catcher;
    Bench bench("bench");
    const uint64_t a_at = bench.put(random_floats(24, 71, -1, 1)), y_at = bench.alloc(24);
    bench.mem.put(y_at, std::vector<float>(24, 7.0f));
    auto add = [&] {
        hw::VectorCommand c = tile(F::Add, 4, 6);
        c.a = c.b = c.y = {a_at, 6};
        c.has_b = true;
        c.y.addr = y_at;
        return c;
    };
    hw::VectorCommand bad_pitch = add(), unreadable = add(), unwritable = add(), huge = add(), unknown = add();
    bad_pitch.a.ld = 5;
    unreadable.b.addr = 0x100000;  // past the test memory
    unwritable.y.addr = 0x100000;
    huge.rows = huge.cols = 100000;
    huge.a.ld = huge.b.ld = huge.y.ld = 100000;
    unknown.function = F(200);
    int id = 0;
    for (const auto& c : {bad_pitch, unreadable, unwritable, huge, unknown, add()})
        bench.engine.submit({uint64_t(++id), c});
    sc_core::sc_start();
    ASSERT_EQ(bench.done.size(), 6u);
    for (int i = 0; i < 5; ++i) EXPECT_FALSE(bench.done[i].ok) << i;
    EXPECT_TRUE(bench.done[5].ok) << "the engine goes on with its queue";
    const std::vector<std::string> expected = {
        "kpu/vector: bench.vector: add refused: a.ld 5 < cols 6",
        "kpu/vector: bench.vector: cannot read input b at 0x100000 (96 bytes)",
        "kpu/vector: bench.vector: cannot write the result at 0x100000 (96 bytes)",
        "kpu/vector: bench.vector: add refused: a 100000 x 100000 tile (40000000000 bytes) is larger than a "
        "tile's L1 and L2 (131072 bytes)",
        "kpu/vector: bench.vector: command refused: unknown function 200",
    };
    EXPECT_EQ(test::ReportCatcher::reports(), expected);
    // Nothing was written until the last command.
    EXPECT_EQ(bench.engine.bytes_written(), 24u * 4);
    EXPECT_EQ(bench.engine.commands(), 6u);
    // A refused command still takes its formula's time (the unknown function: none).
    EXPECT_EQ(bench.done[0].ended - bench.done[0].started, sc_core::sc_time(8 + 4, sc_core::SC_NS));
    EXPECT_EQ(bench.done[4].ended, bench.done[4].started);
}

TEST(VectorEngine, WorksThroughTransportDbgWhenNoDmiIsGranted) {
    Bench bench("bench");
    bench.mem.grant_dmi = false;
    const std::vector<float> a = random_floats(3 * 5, 81, -2, 2);
    const uint64_t a_at = bench.put(a), y_at = bench.alloc(3);
    hw::VectorCommand c = tile(F::ReduceSum, 3, 5);
    c.a = {a_at, 5};
    c.y = {y_at, 1};
    bench.engine.submit({1, c});
    sc_core::sc_start();
    ASSERT_EQ(bench.done.size(), 1u);
    EXPECT_TRUE(bench.done[0].ok);
    const std::vector<float> y = bench.mem.get(y_at, 3);
    for (uint32_t r = 0; r < 3; ++r) {
        // 5 elements on 8 lanes: one per lane; the tree halves 5 -> 3 -> 2 -> 1, lane i taking
        // lane i + half.
        const float* x = a.data() + r * 5;
        const float expected = ((x[0] + x[3]) + x[2]) + (x[1] + x[4]);
        EXPECT_EQ(y[r], expected) << r;
    }
}

TEST(VectorEngine, WaitsForItsArithmeticOnTheHelperThreadAndGivesTheInlineBits) {
    Bench inline_bench("inline_bench"), helper_bench("helper_bench");
    HelperThread helper;
    helper_bench.engine.set_helper(&helper);
    helper.submit([] { std::this_thread::sleep_for(std::chrono::milliseconds(200)); });
    const std::vector<float> a = random_floats(9 * 21, 91, -3, 3);
    for (Bench* b : {&inline_bench, &helper_bench}) {
        hw::VectorCommand c = tile(F::Softmax, 9, 21);
        c.a = {b->put(a), 21};
        c.y = {b->alloc(9 * 21), 21};
        b->engine.submit({1, c});
    }
    sc_core::sc_start();
    ASSERT_EQ(helper_bench.done.size(), 1u);
    EXPECT_EQ(helper.jobs_run(), 2u) << "the test's job and the engine's softmax";
    const uint64_t y_at = Bench::kBase + (9 * 21 * 4 + 63) / 64 * 64;
    const std::vector<float> want = inline_bench.mem.get(y_at, 9 * 21), got = helper_bench.mem.get(y_at, 9 * 21);
    EXPECT_EQ(got, want);
    EXPECT_NE(got, std::vector<float>(9 * 21, 0.0f));
    EXPECT_EQ(helper_bench.done[0].ended, inline_bench.done[0].ended) << "host time does not show in simulated time";
}


/// A window function's value in double by plain loops over the kernel's taps (padding: the
/// taps outside the plane; average_pool counts the padded plane's taps when asked).
struct WindowRef {
    double value = 0, magnitude = 0;  ///< the result, and the sum of |terms| (for the tolerance)
};
WindowRef window_ref(const hw::VectorCommand& c, const float* plane, const float* kernel, double bias, uint32_t oh,
                     uint32_t ow) {
    const hw::VectorWindow& w = c.window;
    WindowRef out;
    if (c.function == F::ResizeNearest) {
        out.value = plane[(oh / w.scale_h) * w.in_w + ow / w.scale_w];
        return out;
    }
    double best = -INFINITY, sum = bias;
    int inside = 0, padded = 0;
    out.magnitude = std::fabs(bias);
    for (uint32_t i = 0; i < w.kernel_h; ++i)
        for (uint32_t j = 0; j < w.kernel_w; ++j) {
            const long h = long(oh * w.stride_h + i * w.dilation_h) - long(w.pad_top);
            const long x = long(ow * w.stride_w + j * w.dilation_w) - long(w.pad_left);
            if (h < long(w.in_h + w.pad_bottom) && x < long(w.in_w + w.pad_right)) ++padded;
            if (h < 0 || x < 0 || h >= long(w.in_h) || x >= long(w.in_w)) continue;
            ++inside;
            const double v = plane[h * w.in_w + x], term = kernel ? v * kernel[i * w.kernel_w + j] : v;
            best = std::max(best, v);
            sum += term;
            out.magnitude += std::fabs(term);
        }
    if (c.function == F::MaxPool) out.value = best;
    else if (c.function == F::AveragePool) out.value = sum / (w.count_include_pad ? padded : inside), out.magnitude /= inside;
    else out.value = sum;
    return out;
}

TEST(VectorEngine, WindowFunctionsMatchPlainLoopsOverEachPlane) {
    Bench bench("bench");
    // 5 planes of 7 x 9 at a pitch of 70 (strided rows), 3 channels: plane r of a tile that
    // starts at plane 4 uses channel (4 + r) mod 3.
    constexpr uint32_t kPlanes = 5, kH = 7, kW = 9, kLda = 70;
    const std::vector<float> a = random_floats(kPlanes * kLda, 101, -3, 3), k = random_floats(3 * 25, 102, -1, 1),
                             b = random_floats(3, 103, -1, 1);
    const uint64_t a_at = bench.put(a), k_at = bench.put(k), b_at = bench.put(b);
    auto make = [&](F f, uint32_t kernel, uint32_t stride, uint32_t pad, uint32_t dilation, uint32_t out_h,
                    uint32_t out_w) {
        hw::VectorCommand c = tile(f, kPlanes, kH * kW);
        c.a = {a_at, kLda};
        hw::VectorWindow& w = c.window;
        w.in_h = kH, w.in_w = kW, w.out_h = out_h, w.out_w = out_w;
        w.kernel_h = w.kernel_w = kernel, w.stride_h = w.stride_w = stride, w.dilation_h = w.dilation_w = dilation;
        w.pad_top = w.pad_left = w.pad_bottom = w.pad_right = pad;
        w.channels = 3, w.first_plane = 4;
        if (f == F::DepthwiseConv) c.has_weight = true, c.weight = k_at, c.has_bias = true, c.bias = b_at;
        return c;
    };
    std::vector<hw::VectorCommand> cases = {
        make(F::MaxPool, 3, 2, 1, 1, 4, 5),        // 3 x 3 / 2, pad 1
        make(F::MaxPool, 3, 1, 0, 2, 3, 5),        // dilation 2
        make(F::AveragePool, 3, 2, 1, 1, 4, 5),    // padding not counted
        make(F::AveragePool, 3, 2, 1, 1, 4, 5),    // counted (set below)
        make(F::AveragePool, 2, 2, 0, 1, 4, 5),    // ceil_mode's extra window past the end
        make(F::DepthwiseConv, 3, 1, 1, 1, 7, 9),  // 3 x 3, bias, channel per plane
        make(F::DepthwiseConv, 5, 2, 2, 1, 4, 5),  // 5 x 5 / 2
        make(F::ResizeNearest, 1, 1, 0, 1, 14, 27),
    };
    cases[3].window.count_include_pad = true;
    cases[4].window.pad_bottom = cases[4].window.pad_right = 1;
    cases[7].window.scale_h = 2, cases[7].window.scale_w = 3;
    std::vector<uint64_t> y_at;
    for (const hw::VectorCommand& c : cases) {
        const uint32_t out = c.window.out_h * c.window.out_w;
        y_at.push_back(bench.issue(c, kPlanes * out, out));
    }
    bench.run_all();
    for (size_t i = 0; i < cases.size(); ++i) {
        SCOPED_TRACE(i);
        const hw::VectorCommand& c = cases[i];
        const uint32_t out = c.window.out_h * c.window.out_w;
        const std::vector<float> y = bench.mem.get(y_at[i], kPlanes * out);
        for (uint32_t r = 0; r < kPlanes; ++r) {
            const uint32_t channel = (4 + r) % 3;
            const bool dw = c.function == F::DepthwiseConv;
            const float* kernel = dw ? k.data() + channel * c.window.kernel_h * c.window.kernel_w : nullptr;
            for (uint32_t oh = 0; oh < c.window.out_h; ++oh)
                for (uint32_t ow = 0; ow < c.window.out_w; ++ow) {
                    const WindowRef ref = window_ref(c, a.data() + r * kLda, kernel, dw ? b[channel] : 0.0, oh, ow);
                    const float got = y[r * out + oh * c.window.out_w + ow];
                    // max and nearest are exact; sums k + 2 roundings of their terms' magnitude.
                    const double taps = double(c.window.kernel_h * c.window.kernel_w);
                    EXPECT_NEAR(got, ref.value, (taps + 2) * kEps * ref.magnitude + kEps * std::fabs(ref.value))
                        << r << ": " << oh << "," << ow;
                }
        }
    }
}

}  // namespace
}  // namespace kpu::model
