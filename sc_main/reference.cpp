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
        // Every element sums its products in p order, in double: what makes this a reference.
        // The loops are blocked so that a block of B (value and magnitude) stays in the host's
        // cache while every row of A passes over it; within each element the order of the
        // additions is that of the plain i-p-j loop, so the results are the same bits
        // (Reference.BlockedLoopsGiveThePlainLoopsBits).
        for (uint64_t j0 = 0; j0 < n; j0 += kReferenceBlock) {
            const uint64_t j1 = std::min(n, j0 + kReferenceBlock);
            for (uint64_t p0 = 0; p0 < k; p0 += kReferenceBlock) {
                const uint64_t p1 = std::min(k, p0 + kReferenceBlock);
                for (uint64_t i = 0; i < m; ++i) {
                    double* value = &c.value[i * n];
                    double* magnitude = &c.magnitude[i * n];
                    for (uint64_t p = p0; p < p1; ++p) {
                        const double av = a.value[i * k + p], am = a.magnitude[i * k + p];
                        const double* bv = &b.value[p * n];
                        const double* bm = &b.magnitude[p * n];
                        for (uint64_t j = j0; j < j1; ++j) {
                            value[j] += av * bv[j];
                            magnitude[j] += am * bm[j];
                        }
                    }
                }
            }
        }
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
