#include "sc_main/reference.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace kpu::cli {

namespace {

double activate(double x, compiler::Activation activation) {
    switch (activation) {
        case compiler::Activation::None: return x;
        case compiler::Activation::Relu: return x > 0 ? x : 0;
        case compiler::Activation::Gelu: {
            const double kSqrt2OverPi = std::sqrt(2.0 / M_PI);
            return 0.5 * x * (1.0 + std::tanh(kSqrt2OverPi * (x + 0.044715 * x * x * x)));
        }
    }
    return x;
}

ReferenceTensor from_input(const std::vector<float>& data) {
    ReferenceTensor t;
    t.value.assign(data.begin(), data.end());
    t.magnitude.resize(data.size());
    std::transform(data.begin(), data.end(), t.magnitude.begin(), [](float v) { return std::fabs(double(v)); });
    return t;
}

/// One row of C (`width` elements) += one row of A (`depth` elements) times a block of B
/// (`depth` rows of `width`): run once for the values, once for the magnitudes. Four products
/// per load and store of C, added one by one in p order. A function of its own, so that the
/// compiler sees the restrict pointers and vectorizes the j loop (inlined into the blocking
/// loops, GCC 12 does not).
void add_products(double* __restrict c, const double* __restrict a, const double* __restrict b, uint64_t depth,
                  uint64_t width) {
    uint64_t p = 0;
    for (; p + 4 <= depth; p += 4) {
        const double a0 = a[p], a1 = a[p + 1], a2 = a[p + 2], a3 = a[p + 3];
        const double *b0 = b + p * width, *b1 = b0 + width, *b2 = b1 + width, *b3 = b2 + width;
        for (uint64_t j = 0; j < width; ++j) {
            double sum = c[j];
            sum += a0 * b0[j];
            sum += a1 * b1[j];
            sum += a2 * b2[j];
            sum += a3 * b3[j];
            c[j] = sum;
        }
    }
    for (; p < depth; ++p) {
        const double a0 = a[p];
        const double* b0 = b + p * width;
        for (uint64_t j = 0; j < width; ++j) c[j] += a0 * b0[j];
    }
}

/// C += A B, values and magnitudes, in double: every element adds its products in p order,
/// one rounding per multiply and one per add, which is what makes this a reference. The
/// loops are blocked for the host's cache: a kReferenceBlock-square block of B is copied to
/// contiguous buffers that stay in L2 while every row of A passes over it (add_products),
/// and each row's parts of A and C go through small buffers of their own. None of this
/// changes the order of any element's additions, so the results are the plain i-p-j loop's
/// bits (Reference.BlockedLoopsGiveThePlainLoopsBits).
void accumulate(const ReferenceTensor& a, const ReferenceTensor& b, ReferenceTensor& c, uint64_t m, uint64_t n,
                uint64_t k) {
    std::vector<double> block_value(kReferenceBlock * kReferenceBlock), block_magnitude(block_value.size());
    std::vector<double> row_a(2 * kReferenceBlock), row_c(2 * kReferenceBlock);
    for (uint64_t j0 = 0; j0 < n; j0 += kReferenceBlock) {
        const uint64_t width = std::min(n - j0, kReferenceBlock);
        for (uint64_t p0 = 0; p0 < k; p0 += kReferenceBlock) {
            const uint64_t depth = std::min(k - p0, kReferenceBlock);
            for (uint64_t p = 0; p < depth; ++p) {
                std::copy_n(&b.value[(p0 + p) * n + j0], width, &block_value[p * width]);
                std::copy_n(&b.magnitude[(p0 + p) * n + j0], width, &block_magnitude[p * width]);
            }
            for (uint64_t i = 0; i < m; ++i) {
                // Through small buffers: at 4096^3, where rows lie 32 KiB apart, this made the
                // loops 2.4x faster (likely cache-set conflicts between the tensors' rows).
                std::copy_n(&a.value[i * k + p0], depth, row_a.data());
                std::copy_n(&a.magnitude[i * k + p0], depth, row_a.data() + kReferenceBlock);
                std::copy_n(&c.value[i * n + j0], width, row_c.data());
                std::copy_n(&c.magnitude[i * n + j0], width, row_c.data() + kReferenceBlock);
                add_products(row_c.data(), row_a.data(), block_value.data(), depth, width);
                add_products(row_c.data() + kReferenceBlock, row_a.data() + kReferenceBlock, block_magnitude.data(),
                             depth, width);
                std::copy_n(row_c.data(), width, &c.value[i * n + j0]);
                std::copy_n(row_c.data() + kReferenceBlock, width, &c.magnitude[i * n + j0]);
            }
        }
    }
}

}  // namespace

std::map<std::string, ReferenceTensor> run_reference(const compiler::Graph& graph,
                                                     const std::map<std::string, std::vector<float>>& inputs) {
    std::map<std::string, ReferenceTensor> tensors;
    for (const auto& [name, data] : inputs) tensors[name] = from_input(data);
    auto get = [&](uint32_t index) -> const ReferenceTensor& {
        const auto& name = graph.tensor(index).name;
        auto it = tensors.find(name);
        if (it == tensors.end()) throw std::runtime_error("reference: no value for tensor '" + name + "'");
        return it->second;
    };
    for (uint32_t id : graph.topological_order("reference")) {
        const compiler::Op& op = graph.ops()[id];
        const uint64_t m = graph.m(id), n = graph.n(id), k = graph.k(id);
        const ReferenceTensor& a = get(op.a);
        const ReferenceTensor& b = get(op.b);
        const ReferenceTensor* bias = op.bias ? &get(*op.bias) : nullptr;
        ReferenceTensor c;
        c.value.assign(m * n, 0.0);
        c.magnitude.assign(m * n, 0.0);
        c.k_total = k + std::max(a.k_total, b.k_total);
        accumulate(a, b, c, m, n, k);
        for (uint64_t i = 0; i < m; ++i) {
            double* value = &c.value[i * n];
            double* magnitude = &c.magnitude[i * n];
            for (uint64_t j = 0; j < n; ++j) {
                if (bias) value[j] += bias->value[j], magnitude[j] += bias->magnitude[j];
                value[j] = activate(value[j], op.activation);
            }
        }
        tensors[graph.tensor(op.c).name] = std::move(c);
    }
    return tensors;
}

CheckResult check_tensor(const std::vector<float>& got, const ReferenceTensor& expected,
                         const std::vector<uint64_t>& shape) {
    CheckResult r;
    double worst_ratio = -1;
    const double unit = std::ldexp(1.0, -24);
    for (uint64_t i = 0; i < got.size(); ++i) {
        const double tolerance = 4.0 * double(std::max<uint64_t>(expected.k_total, 1)) * unit * expected.magnitude[i] + 1e-30;
        const double error = std::fabs(double(got[i]) - expected.value[i]);
        const double ratio = std::isnan(error) ? INFINITY : error / tolerance;
        if (!(error <= tolerance)) ++r.mismatches;
        if (ratio > worst_ratio) {
            worst_ratio = ratio;
            r.worst_index = i, r.got = got[i], r.expected = expected.value[i], r.error = error, r.tolerance = tolerance;
        }
    }
    r.ok = r.mismatches == 0;
    r.worst_at.resize(shape.size());
    uint64_t rest = r.worst_index;
    for (size_t d = shape.size(); d-- > 0;) r.worst_at[d] = rest % shape[d], rest /= shape[d];
    return r;
}

}  // namespace kpu::cli
