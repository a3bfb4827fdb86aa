#include "sc_main/reference_ops.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <stdexcept>

#include "compiler/ops/matmul.h"
#include "compiler/passes/fuse_rows.h"
#include "sc_main/reference_window.h"

namespace kpu::cli {

namespace {

const double kUnit = std::ldexp(1.0, -24);  ///< u: fp32's unit roundoff

uint64_t count(const std::vector<uint64_t>& shape, size_t from = 0, size_t to = SIZE_MAX) {
    const size_t end = std::min(to, shape.size());
    uint64_t n = 1;
    for (auto it = shape.begin() + long(std::min(from, end)); it != shape.begin() + long(end); ++it) n *= *it;
    return n;
}

/// Row-major strides of `shape`.
std::vector<uint64_t> strides_of(const std::vector<uint64_t>& shape) {
    std::vector<uint64_t> s(shape.size(), 1);
    for (size_t d = shape.size(); d-- > 1;) s[d - 1] = s[d] * shape[d];
    return s;
}

/// For each element of `out` (row-major), the flat index of the element of `in` that numpy's
/// broadcasting reads: `in` aligned to the right, its dimensions of 1 repeated.
std::vector<uint64_t> broadcast_index(const std::vector<uint64_t>& in, const std::vector<uint64_t>& out) {
    const std::vector<uint64_t> in_strides = strides_of(in);
    const size_t shift = out.size() - in.size();
    std::vector<uint64_t> index(count(out)), at(out.size(), 0);
    for (uint64_t e = 0; e < index.size(); ++e) {
        uint64_t flat = 0;
        for (size_t d = 0; d < in.size(); ++d)
            if (in[d] != 1) flat += at[d + shift] * in_strides[d];
        index[e] = flat;
        for (size_t d = out.size(); d-- > 0;) {
            if (++at[d] < out[d]) break;
            at[d] = 0;
        }
    }
    return index;
}

size_t normalize_axis(int64_t axis, size_t rank) { return size_t(axis < 0 ? axis + int64_t(rank) : axis); }

ReferenceTensor& output(OpEvaluation& e, size_t i = 0) {
    ReferenceTensor& t = e.outputs.at(i);
    t.value.assign(count(e.output_shapes.at(i)), 0.0);
    t.bound.assign(t.value.size(), 0.0);
    t.sums = false;  // the ops that sum say so
    return t;
}

// ---- elementwise ----------------------------------------------------------------------

/// y = f(x) elementwise with the op's own error `own(x, y)`; an operand's bound carried
/// through the endpoints x +- e (f monotone) or, with `lipschitz` > 0, as lipschitz * e.
template <class F, class Own>
void unary(OpEvaluation& e, F f, Own own, double lipschitz = 0) {
    const RefOperand& x = e.inputs.at(0);
    ReferenceTensor& y = output(e);
    for (uint64_t i = 0; i < y.value.size(); ++i) {
        const double v = x.value[i], ex = x.bound[i], r = f(v);
        double carried = 0;
        if (ex > 0) {
            carried = lipschitz > 0 ? lipschitz * ex : std::max(std::fabs(f(v + ex) - r), std::fabs(f(v - ex) - r));
            if (std::isnan(carried)) carried = INFINITY;
        }
        y.value[i] = r;
        y.bound[i] = carried + own(v, r);
    }
}

double exact(double, double) { return 0; }
double one_rounding(double, double y) { return kUnit * std::fabs(y); }
double two_ulp(double, double y) { return 4 * kUnit * std::fabs(y); }
double four_ulp(double, double y) { return 8 * kUnit * std::fabs(y); }
double gelu_own(double x, double y) { return 5 * kUnit * std::fabs(x) + 2 * kUnit * std::fabs(y); }

void ref_relu(OpEvaluation& e) { unary(e, [](double x) { return x > 0 ? x : 0.0; }, exact); }
void ref_neg(OpEvaluation& e) { unary(e, [](double x) { return -x; }, exact); }
void ref_abs(OpEvaluation& e) { unary(e, [](double x) { return std::fabs(x); }, exact, 1.0); }
void ref_exp(OpEvaluation& e) { unary(e, [](double x) { return std::exp(x); }, two_ulp); }
void ref_tanh(OpEvaluation& e) { unary(e, [](double x) { return std::tanh(x); }, two_ulp); }
void ref_erf(OpEvaluation& e) { unary(e, [](double x) { return std::erf(x); }, two_ulp); }
void ref_sqrt(OpEvaluation& e) { unary(e, [](double x) { return std::sqrt(x); }, one_rounding); }
void ref_sigmoid(OpEvaluation& e) { unary(e, [](double x) { return 1 / (1 + std::exp(-x)); }, four_ulp); }
void ref_silu(OpEvaluation& e) { unary(e, [](double x) { return x / (1 + std::exp(-x)); }, four_ulp, 1.1); }

void ref_reciprocal(OpEvaluation& e) {
    // 1/x is monotone on each side of 0: an interval reaching 0 has no bound.
    const RefOperand& x = e.inputs.at(0);
    unary(e, [](double v) { return 1 / v; }, one_rounding);
    for (uint64_t i = 0; i < x.value.size(); ++i)
        if (x.bound[i] >= std::fabs(x.value[i]) && x.bound[i] > 0) e.outputs[0].bound[i] = INFINITY;
}

void ref_leaky_relu(OpEvaluation& e) {
    const double alpha = e.float_attr("alpha");
    unary(e, [alpha](double x) { return x >= 0 ? x : alpha * x; },
          [](double, double y) { return 2 * kUnit * std::fabs(y); }, std::max(1.0, std::fabs(alpha)));
}

void ref_hard_sigmoid(OpEvaluation& e) {
    const double alpha = e.float_attr("alpha"), beta = e.float_attr("beta");
    unary(e, [=](double x) { return std::clamp(alpha * x + beta, 0.0, 1.0); },
          [=](double x, double y) {
              return 2 * kUnit * std::fabs(alpha * x) + kUnit * std::fabs(beta) + kUnit * std::fabs(y);
          },
          std::fabs(alpha));
}

void ref_hard_swish(OpEvaluation& e) {
    unary(e, [](double x) { return x * std::clamp(x / 6 + 0.5, 0.0, 1.0); },
          [](double x, double y) { return kUnit * std::fabs(x) * (std::fabs(x) / 3 + 1) + 2 * kUnit * std::fabs(y); },
          1.5);
}

void ref_gelu(OpEvaluation& e) {
    if (e.string_attr("approximate") == "tanh") {
        const double k = std::sqrt(2.0 / M_PI);
        unary(e, [k](double x) { return 0.5 * x * (1 + std::tanh(k * (x + 0.044715 * x * x * x))); }, gelu_own, 1.2);
    } else {
        unary(e, [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }, gelu_own, 1.2);
    }
}

void ref_clip(OpEvaluation& e) {
    const double lo = e.has_input(1) ? e.inputs[1].value.at(0) : -INFINITY;
    const double hi = e.has_input(2) ? e.inputs[2].value.at(0) : INFINITY;
    const double bounds = (e.has_input(1) ? e.inputs[1].bound[0] : 0) + (e.has_input(2) ? e.inputs[2].bound[0] : 0);
    unary(e, [=](double x) { return std::min(std::max(x, lo), hi); }, [=](double, double) { return bounds; }, 1.0);
}

/// C = f(A, B) with numpy broadcasting; `carry(a, ea, b, eb, c)`: the operands' bounds
/// through f; `own(c)`: f's own error.
template <class F, class Carry, class Own>
void binary(OpEvaluation& e, F f, Carry carry, Own own) {
    const RefOperand& a = e.inputs.at(0);
    const RefOperand& b = e.inputs.at(1);
    ReferenceTensor& c = output(e);
    const std::vector<uint64_t> ia = broadcast_index(a.shape, e.output_shapes[0]);
    const std::vector<uint64_t> ib = broadcast_index(b.shape, e.output_shapes[0]);
    for (uint64_t i = 0; i < c.value.size(); ++i) {
        const double x = a.value[ia[i]], ex = a.bound[ia[i]], y = b.value[ib[i]], ey = b.bound[ib[i]];
        const double r = f(x, y);
        double carried = ex > 0 || ey > 0 ? carry(x, ex, y, ey, r) : 0.0;
        if (std::isnan(carried)) carried = INFINITY;
        c.value[i] = r;
        c.bound[i] = carried + own(r);
    }
}

double own_rounding(double c) { return kUnit * std::fabs(c); }
double own_exact(double) { return 0; }
double sum_of_bounds(double, double ex, double, double ey, double) { return ex + ey; }
double larger_bound(double, double ex, double, double ey, double) { return std::max(ex, ey); }

void ref_add(OpEvaluation& e) { binary(e, [](double a, double b) { return a + b; }, sum_of_bounds, own_rounding); }
void ref_sub(OpEvaluation& e) { binary(e, [](double a, double b) { return a - b; }, sum_of_bounds, own_rounding); }
void ref_max(OpEvaluation& e) { binary(e, [](double a, double b) { return std::max(a, b); }, larger_bound, own_exact); }
void ref_min(OpEvaluation& e) { binary(e, [](double a, double b) { return std::min(a, b); }, larger_bound, own_exact); }

void ref_mul(OpEvaluation& e) {
    binary(e, [](double a, double b) { return a * b; },
           [](double a, double ea, double b, double eb, double) {
               return std::fabs(a) * eb + std::fabs(b) * ea + ea * eb;
           },
           own_rounding);
}

void ref_div(OpEvaluation& e) {
    binary(e, [](double a, double b) { return a / b; },
           [](double a, double ea, double b, double eb, double) {
               const double b_low = std::fabs(b) - eb;  // |b'| >= b_low
               return b_low > 0 ? (std::fabs(a) * eb + std::fabs(b) * ea) / (std::fabs(b) * b_low) : INFINITY;
           },
           own_rounding);
}

void ref_pow(OpEvaluation& e) {
    // a^b = exp(b ln|a|) (sign aside) is monotone in b ln|a|, bilinear in (b, ln|a|): its
    // extremes over the box of the operands' errors are at the corners (|a| - ea > 0).
    binary(e, [](double a, double b) { return std::pow(a, b); },
           [](double a, double ea, double b, double eb, double c) {
               if (std::fabs(a) - ea <= 0) return double(INFINITY);
               double worst = 0;
               for (double da : {-ea, ea})
                   for (double db : {-eb, eb})
                       worst = std::max(worst, std::fabs(std::pow(std::fabs(a) + da, b + db) - std::fabs(c)));
               return worst;
           },
           [](double c) { return 4 * kUnit * std::fabs(c); });
}

/// The same elements in the same order under another shape (and the no-op reduction).
void ref_same_elements(OpEvaluation& e) {
    ReferenceTensor& y = output(e);
    y.value = e.inputs[0].value, y.bound = e.inputs[0].bound;
}

// ---- reductions -----------------------------------------------------------------------

/// The reduced axes (ONNX opset 18): input 1's values, none given: all (or none when
/// noop_with_empty_axes).
std::set<size_t> reduced_axes(const OpEvaluation& e) {
    const size_t rank = e.inputs[0].shape.size();
    std::set<size_t> axes;
    if (e.has_input(1))
        for (int64_t a : e.ints(1)) axes.insert(normalize_axis(a, rank));
    if (axes.empty() && e.int_attr("noop_with_empty_axes") == 0)
        for (size_t d = 0; d < rank; ++d) axes.insert(d);
    return axes;
}

/// For each element of the input, the flat index of the output element it reduces into.
std::vector<uint64_t> reduce_target(const std::vector<uint64_t>& shape, const std::set<size_t>& axes) {
    std::vector<uint64_t> kept = shape;
    for (size_t a : axes) kept[a] = 1;
    const std::vector<uint64_t> kept_strides = strides_of(kept);
    std::vector<uint64_t> target(count(shape)), at(shape.size(), 0);
    for (uint64_t i = 0; i < target.size(); ++i) {
        uint64_t flat = 0;
        for (size_t d = 0; d < shape.size(); ++d)
            if (!axes.count(d)) flat += at[d] * kept_strides[d];
        target[i] = flat;
        for (size_t d = shape.size(); d-- > 0;) {
            if (++at[d] < shape[d]) break;
            at[d] = 0;
        }
    }
    return target;
}

enum class Reduction { Sum, Mean, Max };

template <Reduction kind>
void ref_reduce(OpEvaluation& e) {
    const RefOperand& x = e.inputs.at(0);
    const std::set<size_t> axes = reduced_axes(e);
    if (axes.empty()) return ref_same_elements(e);  // noop_with_empty_axes: the input, exactly
    ReferenceTensor& y = output(e);
    const std::vector<uint64_t> target = reduce_target(x.shape, axes);
    const double n = double(x.value.size()) / double(std::max<size_t>(1, y.value.size()));
    std::vector<double> magnitude(y.value.size(), 0.0);
    if (kind == Reduction::Max) y.value.assign(y.value.size(), -INFINITY);
    for (uint64_t i = 0; i < target.size(); ++i) {
        const uint64_t t = target[i];
        if (kind == Reduction::Max) {
            y.value[t] = std::max(y.value[t], x.value[i]);
            y.bound[t] = std::max(y.bound[t], x.bound[i]);
        } else {
            y.value[t] += x.value[i], y.bound[t] += x.bound[i], magnitude[t] += std::fabs(x.value[i]);
        }
    }
    if (kind == Reduction::Max) return;
    y.sums = true;
    for (uint64_t t = 0; t < y.value.size(); ++t) {
        y.bound[t] += 2 * n * kUnit * magnitude[t];
        if (kind == Reduction::Mean) {
            y.value[t] /= n, y.bound[t] /= n;
            y.bound[t] += 2 * kUnit * std::fabs(y.value[t]);
        }
    }
}

// ---- softmax, normalization -----------------------------------------------------------

/// Softmax of `n` values at x[0], x[stride], ... (bounds e) into y and its bounds.
void softmax_row(const double* x, const double* ex, uint64_t stride, uint64_t n, double* y, double* ey,
                 uint64_t out_stride) {
    double top = -INFINITY, carried = 0;
    for (uint64_t j = 0; j < n; ++j) top = std::max(top, x[j * stride]);
    for (uint64_t j = 0; j < n; ++j)
        if (x[j * stride] > -INFINITY) carried = std::max(carried, ex[j * stride]);
    double sum = 0;
    for (uint64_t j = 0; j < n; ++j) sum += std::exp(x[j * stride] - top);
    double spread = 0;  // sum_j y_j |d_j|
    for (uint64_t j = 0; j < n; ++j) {
        const double d = x[j * stride] - top, p = std::exp(d) / sum;
        y[j * out_stride] = p;
        if (p > 0) spread += p * std::fabs(d);
    }
    const double growth = std::expm1(2 * carried);
    for (uint64_t j = 0; j < n; ++j) {
        const double p = y[j * out_stride];
        const double d = p > 0 ? std::fabs(x[j * stride] - top) : 0.0;
        ey[j * out_stride] = p * kUnit * (d + spread + 2 * double(n) + 6) + p * growth;
    }
}

void ref_softmax(OpEvaluation& e) {
    const RefOperand& x = e.inputs.at(0);
    const size_t axis = normalize_axis(e.int_attr("axis"), x.shape.size());
    const uint64_t outer = count(x.shape, 0, axis), n = x.shape[axis], inner = count(x.shape, axis + 1);
    ReferenceTensor& y = output(e);
    for (uint64_t o = 0; o < outer; ++o)
        for (uint64_t i = 0; i < inner; ++i) {
            const uint64_t at = o * n * inner + i;
            softmax_row(&x.value[at], &x.bound[at], inner, n, &y.value[at], &y.bound[at], inner);
        }
}

/// softmax(scale x (+ mask)) along the last axis, element (i, j) of each matrix [Sq, Skv]
/// masked out where j > i when causal: the scaling and the mask's add one rounding each.
void ref_masked_softmax(OpEvaluation& e) {
    const RefOperand& x = e.inputs.at(0);
    const uint64_t skv = x.shape.back(), sq = x.shape[x.shape.size() - 2], rows = count(x.shape) / skv;
    const double scale = e.float_attr("scale");
    const bool causal = e.int_attr("is_causal") != 0;
    std::vector<uint64_t> mask_at;
    if (e.has_input(1)) mask_at = broadcast_index(e.inputs[1].shape, x.shape);
    ReferenceTensor& y = output(e);
    std::vector<double> s(skv), es(skv);
    for (uint64_t r = 0; r < rows; ++r) {
        for (uint64_t j = 0; j < skv; ++j) {
            const uint64_t at = r * skv + j;
            s[j] = scale * x.value[at];
            es[j] = std::fabs(scale) * x.bound[at] + kUnit * std::fabs(s[j]);
            if (!mask_at.empty()) {
                s[j] += e.inputs[1].value[mask_at[at]];
                es[j] += e.inputs[1].bound[mask_at[at]] + kUnit * std::fabs(s[j]);
            }
            if (causal && j > r % sq) s[j] = -INFINITY, es[j] = 0;
        }
        softmax_row(s.data(), es.data(), 1, skv, &y.value[r * skv], &y.bound[r * skv], 1);
    }
}

/// LayerNormalization (`centred`) and RMSNormalization over the axes from `axis` on.
void normalize(OpEvaluation& e, bool centred) {
    const RefOperand& x = e.inputs.at(0);
    const size_t axis = normalize_axis(e.int_attr("axis"), x.shape.size());
    const double epsilon = e.float_attr("epsilon");
    const std::vector<uint64_t> normalized(x.shape.begin() + long(axis), x.shape.end());
    const uint64_t rows = count(x.shape, 0, axis), n = count(normalized);
    const std::vector<uint64_t> scale_at = broadcast_index(e.inputs[1].shape, normalized);
    const bool has_bias = centred && e.has_input(2);
    const std::vector<uint64_t> bias_at = has_bias ? broadcast_index(e.inputs[2].shape, normalized) : scale_at;
    ReferenceTensor& y = output(e);
    const bool stats = centred && e.output_shapes.size() > 1;
    ReferenceTensor* mean_out = stats && !e.output_shapes[1].empty() ? &output(e, 1) : nullptr;
    ReferenceTensor* inv_out =
        stats && e.output_shapes.size() > 2 && !e.output_shapes[2].empty() ? &output(e, 2) : nullptr;
    const double dn = double(n);
    std::vector<double> d(n), ed(n);
    for (uint64_t r = 0; r < rows; ++r) {
        const double* xv = &x.value[r * n];
        const double* xe = &x.bound[r * n];
        double mean = 0, mean_error = 0, magnitude = 0;
        if (centred) {
            for (uint64_t j = 0; j < n; ++j) mean += xv[j], magnitude += std::fabs(xv[j]), mean_error += xe[j];
            mean /= dn;
            mean_error = mean_error / dn + (2 * dn + 1) * kUnit * magnitude / dn;
        }
        double var = 0, var_error = 0;
        for (uint64_t j = 0; j < n; ++j) {
            d[j] = xv[j] - mean;
            ed[j] = mean_error + xe[j] + (centred ? kUnit * std::fabs(d[j]) : 0.0);
            var += d[j] * d[j];
            var_error += 2 * std::fabs(d[j]) * ed[j] + ed[j] * ed[j];
        }
        var /= dn;
        var_error = var_error / dn + (2 * dn + 2) * kUnit * var;
        const double v = var + epsilon, inv = 1 / std::sqrt(v);
        // |1/sqrt(v') - 1/sqrt(v)| <= inv (1/sqrt(1 - dv/v) - 1), plus the fp32 rsqrt's 2 ulp.
        const double rho = var_error < v ? 1 / std::sqrt(1 - var_error / v) - 1 + 4 * kUnit : INFINITY;
        if (mean_out) mean_out->value[r] = mean, mean_out->bound[r] = mean_error;
        if (inv_out) inv_out->value[r] = inv, inv_out->bound[r] = inv * rho;
        for (uint64_t j = 0; j < n; ++j) {
            const double s = e.inputs[1].value[scale_at[j]], es = e.inputs[1].bound[scale_at[j]];
            const double normal = d[j] * inv;
            const double normal_error = std::fabs(normal) * rho + inv * ed[j] + kUnit * std::fabs(normal);
            double out = normal * s;
            double bound =
                std::fabs(s) * normal_error + (std::fabs(normal) + normal_error) * es + kUnit * std::fabs(out);
            if (has_bias) {
                out += e.inputs[2].value[bias_at[j]];
                bound += e.inputs[2].bound[bias_at[j]] + kUnit * std::fabs(out);
            }
            y.value[r * n + j] = out;
            y.bound[r * n + j] = bound;
        }
    }
}

void ref_layer_norm(OpEvaluation& e) { normalize(e, true); }
void ref_rms_norm(OpEvaluation& e) { normalize(e, false); }

// ---- matmul family, attention ---------------------------------------------------------

/// One dot product's sums: the value, M = sum |a||b| and P = sum (|a| + ea)(|b| + eb).
struct Dot {
    double value = 0, magnitude = 0, padded = 0;
    void add(double a, double ea, double b, double eb) {
        value += a * b;
        magnitude += std::fabs(a * b);
        padded += (std::fabs(a) + ea) * (std::fabs(b) + eb);
    }
    /// The fp32 sum's error bound over k products, operands' bounds carried (reference.h).
    double bound(uint64_t k) const { return 2 * double(k) * kUnit * padded + (padded - magnitude); }
};

void note_products(ReferenceTensor& t, double bound, double magnitude, uint64_t k) {
    if (magnitude > 0) t.bound_in_products = std::max(t.bound_in_products, bound * double(k) / magnitude);
}

/// The matmul family's sums: calls sum(at, channel, k, terms) for each element of C in
/// row-major order, `at` its flat index, `channel` its column (the output channel), and
/// terms(add) calling add(a index, b index) for its k products in order of p. MatMul (and
/// the fused matmul, its rank-2 B's case): numpy's batch broadcasting, a rank-1 operand
/// promoted; Gemm: transA and transB.
template <class Sum>
void matmul_sums(const OpEvaluation& e, Sum sum) {
    const RefOperand& a = e.inputs.at(0);
    const RefOperand& b = e.inputs.at(1);
    if (e.op.kind == "Gemm") {
        const bool ta = e.int_attr("transA") != 0, tb = e.int_attr("transB") != 0;
        const uint64_t m = a.shape[ta ? 1 : 0], k = a.shape[ta ? 0 : 1], n = b.shape[tb ? 0 : 1];
        for (uint64_t i = 0; i < m; ++i)
            for (uint64_t j = 0; j < n; ++j)
                sum(i * n + j, j, k, [&](auto add) {
                    for (uint64_t p = 0; p < k; ++p) add(ta ? p * m + i : i * k + p, tb ? j * k + p : p * n + j);
                });
        return;
    }
    std::vector<uint64_t> as = a.shape, bs = b.shape;
    if (as.size() == 1) as.insert(as.begin(), 1);
    if (bs.size() == 1) bs.push_back(1);
    const uint64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
    const std::vector<uint64_t> a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
    std::vector<uint64_t> batch(std::max(a_batch.size(), b_batch.size()), 1);
    for (size_t d = 0; d < batch.size(); ++d) {
        const size_t da = d + a_batch.size(), db = d + b_batch.size();  // aligned to the right
        const uint64_t x = da >= batch.size() ? a_batch[da - batch.size()] : 1;
        const uint64_t y = db >= batch.size() ? b_batch[db - batch.size()] : 1;
        batch[d] = std::max(x, y);
    }
    const std::vector<uint64_t> ia = broadcast_index(a_batch, batch), ib = broadcast_index(b_batch, batch);
    for (uint64_t t = 0; t < ia.size(); ++t)
        for (uint64_t i = 0; i < m; ++i)
            for (uint64_t j = 0; j < n; ++j)
                sum(t * m * n + i * n + j, j, k, [&](auto add) {
                    for (uint64_t p = 0; p < k; ++p) add(ia[t] * m * k + i * k + p, ib[t] * k * n + p * n + j);
                });
}

void ref_matmul(OpEvaluation& e) {
    const RefOperand& a = e.inputs.at(0);
    const RefOperand& b = e.inputs.at(1);
    ReferenceTensor& c = output(e);
    c.sums = true;
    matmul_sums(e, [&](uint64_t at, uint64_t, uint64_t k, const auto& terms) {
        Dot dot;
        terms([&](uint64_t x, uint64_t y) { dot.add(a.value[x], a.bound[x], b.value[y], b.bound[y]); });
        c.value[at] = dot.value;
        c.bound[at] = dot.bound(k) + 2 * kUnit * std::fabs(dot.value);
        note_products(c, c.bound[at], dot.magnitude, k);
    });
}

void ref_gemm(OpEvaluation& e) {
    const RefOperand& a = e.inputs.at(0);
    const RefOperand& b = e.inputs.at(1);
    const double alpha = e.float_attr("alpha"), beta = e.float_attr("beta");
    ReferenceTensor& y = output(e);
    const std::vector<uint64_t> ic =
        e.has_input(2) ? broadcast_index(e.inputs[2].shape, e.output_shapes[0]) : std::vector<uint64_t>();
    y.sums = true;
    matmul_sums(e, [&](uint64_t at, uint64_t, uint64_t k, const auto& terms) {
        Dot dot;
        terms([&](uint64_t x, uint64_t z) { dot.add(a.value[x], a.bound[x], b.value[z], b.bound[z]); });
        double value = alpha * dot.value;
        double bound = std::fabs(alpha) * dot.bound(k) + kUnit * std::fabs(value);
        if (!ic.empty()) {
            const double c = beta * e.inputs[2].value[ic[at]];
            bound += std::fabs(beta) * e.inputs[2].bound[ic[at]] + kUnit * std::fabs(c);
            value += c;
        }
        bound += kUnit * std::fabs(value);
        y.value[at] = value;
        y.bound[at] = bound;
        note_products(y, bound, std::fabs(alpha) * dot.magnitude, k);
    });
}

/// Attention; `online`: as flash_attention computes it (reference_ops.h gives the extra terms
/// of its tolerance).
void attention(OpEvaluation& e, bool online) {
    const RefOperand& q = e.inputs.at(0);
    const RefOperand& kt = e.inputs.at(1);
    const RefOperand& v = e.inputs.at(2);
    const bool four = q.shape.size() == 4;
    const uint64_t batch = q.shape[0];
    const uint64_t hq = four ? q.shape[1] : uint64_t(e.int_attr("q_num_heads"));
    const uint64_t hkv = four ? kt.shape[1] : uint64_t(e.int_attr("kv_num_heads"));
    const uint64_t sq = q.shape[four ? 2 : 1], skv = kt.shape[four ? 2 : 1];
    const uint64_t width = four ? q.shape[3] : q.shape[2] / hq, vwidth = four ? v.shape[3] : v.shape[2] / hkv;
    // Element (b, h, s, x) of a tensor with `heads` heads of `size`, in either form.
    const auto at = [four](uint64_t heads, uint64_t seq, uint64_t size, uint64_t b, uint64_t h, uint64_t s,
                           uint64_t x) {
        return four ? ((b * heads + h) * seq + s) * size + x : (b * seq + s) * heads * size + h * size + x;
    };
    const double scale = e.has_attr("scale") ? e.float_attr("scale") : 1 / std::sqrt(double(width));
    const double softcap = e.float_attr("softcap");
    const bool causal = e.int_attr("is_causal") != 0;
    std::vector<uint64_t> mask_at;
    if (e.has_input(3)) mask_at = broadcast_index(e.inputs[3].shape, {batch, hq, sq, skv});
    ReferenceTensor& y = output(e);
    y.sums = true;
    std::vector<double> scores(skv), score_bounds(skv), p(skv), ep(skv);
    for (uint64_t b = 0; b < batch; ++b)
        for (uint64_t h = 0; h < hq; ++h) {
            const uint64_t g = h / (hq / hkv);  // the key/value head of query head h
            for (uint64_t i = 0; i < sq; ++i) {
                for (uint64_t j = 0; j < skv; ++j) {
                    Dot dot;
                    for (uint64_t x = 0; x < width; ++x) {
                        const uint64_t qa = at(hq, sq, width, b, h, i, x), ka = at(hkv, skv, width, b, g, j, x);
                        dot.add(q.value[qa], q.bound[qa], kt.value[ka], kt.bound[ka]);
                    }
                    double s = dot.value * scale;
                    double es = std::fabs(scale) * dot.bound(width) + 2 * kUnit * std::fabs(s);
                    if (softcap > 0) {
                        s = softcap * std::tanh(s / softcap);  // 1-Lipschitz
                        es += 2 * kUnit * std::fabs(dot.value * scale) + 6 * kUnit * std::fabs(s);
                    }
                    if (!mask_at.empty()) {
                        const uint64_t ma = mask_at[((b * hq + h) * sq + i) * skv + j];
                        s += e.inputs[3].value[ma];
                        es += e.inputs[3].bound[ma] + kUnit * std::fabs(s);
                    }
                    if (causal && j > i) s = -INFINITY, es = 0;
                    scores[j] = s, score_bounds[j] = es;
                }
                softmax_row(scores.data(), score_bounds.data(), 1, skv, p.data(), ep.data(), 1);
                if (online) {  // the running max's corrections, and l's
                    double top = -INFINITY, spread = 0;
                    for (uint64_t j = 0; j < skv; ++j) top = std::max(top, scores[j]);
                    for (uint64_t j = 0; j < skv; ++j)
                        if (p[j] > 0) spread += p[j] * std::fabs(scores[j] - top);
                    for (uint64_t j = 0; j < skv; ++j)
                        if (p[j] > 0) ep[j] += p[j] * kUnit * (std::fabs(scores[j] - top) + spread + 10 * double(skv));
                }
                // Online, each product passes the fabric's sum of a key block and O's
                // accumulation over the blocks (at most 2 Skv additions), then O / l.
                const uint64_t adds = online ? 2 * skv : skv;
                for (uint64_t x = 0; x < vwidth; ++x) {
                    Dot dot;
                    for (uint64_t j = 0; j < skv; ++j) {
                        const uint64_t va = at(hkv, skv, vwidth, b, g, j, x);
                        dot.add(p[j], ep[j], v.value[va], v.bound[va]);
                    }
                    const uint64_t ya = at(hq, sq, vwidth, b, h, i, x);
                    y.value[ya] = dot.value;
                    y.bound[ya] = dot.bound(adds) + (online ? 2 : 1) * kUnit * std::fabs(dot.value);
                }
            }
        }
}

void ref_attention(OpEvaluation& e) { attention(e, false); }
void ref_flash_attention(OpEvaluation& e) { attention(e, true); }

// ---- layout (exact) ---------------------------------------------------------------------

/// Output element i is input element source[i], with its bound.
void gather_elements(OpEvaluation& e, size_t input, size_t out, const std::vector<uint64_t>& source) {
    const RefOperand& x = e.inputs.at(input);
    ReferenceTensor& y = output(e, out);
    for (uint64_t i = 0; i < source.size(); ++i) y.value[i] = x.value[source[i]], y.bound[i] = x.bound[source[i]];
}

/// Calls visit(flat index, coordinates) for every element of `shape`, in row-major order.
template <class Visit>
void for_each_index(const std::vector<uint64_t>& shape, Visit visit) {
    const uint64_t total = count(shape);
    std::vector<uint64_t> at(shape.size(), 0);
    for (uint64_t i = 0; i < total; ++i) {
        visit(i, at);
        for (size_t d = shape.size(); d-- > 0;) {
            if (++at[d] < shape[d]) break;
            at[d] = 0;
        }
    }
}

void ref_transpose(OpEvaluation& e) {
    const std::vector<uint64_t>& in = e.inputs[0].shape;
    std::vector<int64_t> perm;
    if (e.has_attr("perm")) perm = e.ints_attr("perm");
    else
        for (size_t d = in.size(); d-- > 0;) perm.push_back(int64_t(d));
    const std::vector<uint64_t> in_strides = strides_of(in);
    std::vector<uint64_t> source(count(in));
    for_each_index(e.output_shapes[0], [&](uint64_t i, const std::vector<uint64_t>& at) {
        uint64_t flat = 0;
        for (size_t d = 0; d < at.size(); ++d) flat += at[d] * in_strides[size_t(perm[d])];
        source[i] = flat;
    });
    gather_elements(e, 0, 0, source);
}

void ref_concat(OpEvaluation& e) {
    const std::vector<uint64_t>& out = e.output_shapes[0];
    const size_t axis = normalize_axis(e.int_attr("axis"), out.size());
    const uint64_t outer = count(out, 0, axis), inner = count(out, axis + 1);
    ReferenceTensor& y = output(e);
    uint64_t offset = 0;  // along the axis
    for (const RefOperand& x : e.inputs) {
        const uint64_t dim = x.shape[axis];
        for (uint64_t o = 0; o < outer; ++o)
            for (uint64_t r = 0; r < dim * inner; ++r) {
                const uint64_t to = (o * out[axis] + offset) * inner + r, from = o * dim * inner + r;
                y.value[to] = x.value[from], y.bound[to] = x.bound[from];
            }
        offset += dim;
    }
}

void ref_split(OpEvaluation& e) {
    const std::vector<uint64_t>& in = e.inputs[0].shape;
    const size_t axis = normalize_axis(e.int_attr("axis"), in.size());
    const uint64_t outer = count(in, 0, axis), inner = count(in, axis + 1);
    // Every part's length along the axis, an omitted output's too (it still takes its part):
    // `split`, else ceil(dim / parts) each and the rest for the last (ONNX opset 18).
    const uint64_t parts = e.output_shapes.size(), each = (in[axis] + parts - 1) / parts;
    std::vector<uint64_t> sizes;
    if (e.has_input(1))
        for (int64_t v : e.ints(1)) sizes.push_back(uint64_t(v));
    else
        for (uint64_t k = 0; k < parts; ++k) sizes.push_back(std::min(each, in[axis] - std::min(in[axis], each * k)));
    uint64_t offset = 0;
    for (size_t k = 0; k < parts; offset += sizes[k++]) {
        if (e.output_shapes[k].empty() && in.size() > 0) continue;
        const uint64_t dim = sizes[k];
        std::vector<uint64_t> source;
        for (uint64_t o = 0; o < outer; ++o)
            for (uint64_t r = 0; r < dim * inner; ++r) source.push_back((o * in[axis] + offset) * inner + r);
        gather_elements(e, 0, k, source);
    }
}

void ref_slice(OpEvaluation& e) {
    const std::vector<uint64_t>& in = e.inputs[0].shape;
    const std::vector<int64_t> starts = e.ints(1);
    std::vector<int64_t> axes(starts.size()), steps(starts.size(), 1);
    for (size_t i = 0; i < axes.size(); ++i) axes[i] = int64_t(i);
    if (e.has_input(3)) axes = e.ints(3);
    if (e.has_input(4)) steps = e.ints(4);
    std::vector<int64_t> first(in.size(), 0), step(in.size(), 1);
    for (size_t i = 0; i < starts.size(); ++i) {
        const size_t axis = normalize_axis(axes[i], in.size());
        const int64_t dim = int64_t(in[axis]), s = starts[i] < 0 ? starts[i] + dim : starts[i];
        step[axis] = steps[i];
        first[axis] = steps[i] > 0 ? std::clamp<int64_t>(s, 0, dim) : std::clamp<int64_t>(s, 0, dim - 1);
    }
    const std::vector<uint64_t> in_strides = strides_of(in);
    std::vector<uint64_t> source(count(e.output_shapes[0]));
    for_each_index(e.output_shapes[0], [&](uint64_t i, const std::vector<uint64_t>& at) {
        uint64_t flat = 0;
        for (size_t d = 0; d < at.size(); ++d) flat += uint64_t(first[d] + int64_t(at[d]) * step[d]) * in_strides[d];
        source[i] = flat;
    });
    gather_elements(e, 0, 0, source);
}

void ref_gather(OpEvaluation& e) {
    const std::vector<uint64_t>& data = e.inputs[0].shape;
    const size_t axis = normalize_axis(e.int_attr("axis"), data.size());
    const std::vector<int64_t> indices = e.ints(1);
    const uint64_t outer = count(data, 0, axis), inner = count(data, axis + 1), dim = data[axis];
    std::vector<uint64_t> source;
    for (uint64_t o = 0; o < outer; ++o)
        for (int64_t index : indices) {
            const uint64_t row = uint64_t(index < 0 ? index + int64_t(dim) : index);
            for (uint64_t r = 0; r < inner; ++r) source.push_back((o * dim + row) * inner + r);
        }
    gather_elements(e, 0, 0, source);
}

// ---- convolution -----------------------------------------------------------------------

/// A direct 2-D convolution in plain loops over the taps: y(n, g, o, oh, ow) = sum over kh,
/// kw, c of x(n, g, c, ih, iw) w(g, o, c, kh, kw) (+ b(g, o)), ih = oh sh + kh dh - top, iw =
/// ow sw + kw dw - left, taps outside the image skipped. The `at` functions give each
/// operand's flat index (the layouts differ); calls sum(at, channel, k, terms) as
/// matmul_sums() does, k = kH kW Cg (the taps inside the image add their products).
struct ConvShape {
    uint64_t n, groups, cg, h, w, cog, kh, kw, oh, ow;
    int64_t sh, sw, dh, dw, top, left;
};
template <typename X, typename W, typename Y, typename Sum>
void conv_sums(const ConvShape& s, X x_at, W w_at, Y y_at, Sum sum) {
    const uint64_t k = s.kh * s.kw * s.cg;
    for (uint64_t n = 0; n < s.n; ++n)
        for (uint64_t g = 0; g < s.groups; ++g)
            for (uint64_t o = 0; o < s.cog; ++o)
                for (uint64_t oh = 0; oh < s.oh; ++oh)
                    for (uint64_t ow = 0; ow < s.ow; ++ow)
                        sum(y_at(n, g, o, oh, ow), g * s.cog + o, k, [&](auto add) {
                            for (uint64_t kh = 0; kh < s.kh; ++kh)
                                for (uint64_t kw = 0; kw < s.kw; ++kw) {
                                    const int64_t ih = int64_t(oh) * s.sh + int64_t(kh) * s.dh - s.top;
                                    const int64_t iw = int64_t(ow) * s.sw + int64_t(kw) * s.dw - s.left;
                                    if (ih < 0 || iw < 0 || ih >= int64_t(s.h) || iw >= int64_t(s.w)) continue;
                                    for (uint64_t c = 0; c < s.cg; ++c)
                                        add(x_at(n, g, c, uint64_t(ih), uint64_t(iw)), w_at(g, o, c, kh, kw));
                                }
                        });
}

/// Conv's sums: X [N, C, H, W], W [C_out, C / group, kH, kW]; auto_pad SAME_* puts the odd pad
/// at the end (UPPER) or the start (LOWER), VALID none.
template <class Sum>
void nchw_conv_sums(const OpEvaluation& e, Sum sum) {
    const std::vector<uint64_t>& xs = e.inputs[0].shape;
    const std::vector<uint64_t>& ws = e.inputs[1].shape;
    const std::vector<uint64_t>& ys = e.output_shapes.at(0);
    const uint64_t groups = uint64_t(e.int_attr("group"));
    ConvShape s{xs[0], groups, xs[1] / groups, xs[2], xs[3], ws[0] / groups, ws[2], ws[3], ys[2], ys[3], 1, 1, 1, 1, 0, 0};
    if (e.has_attr("strides")) s.sh = e.ints_attr("strides")[0], s.sw = e.ints_attr("strides")[1];
    if (e.has_attr("dilations")) s.dh = e.ints_attr("dilations")[0], s.dw = e.ints_attr("dilations")[1];
    const std::string auto_pad = e.string_attr("auto_pad");
    if (auto_pad == "NOTSET" && e.has_attr("pads")) s.top = e.ints_attr("pads")[0], s.left = e.ints_attr("pads")[1];
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
        const auto before = [&](int64_t in, int64_t out, int64_t k, int64_t stride, int64_t dilation) {
            const int64_t need = std::max<int64_t>(0, (out - 1) * stride + (k - 1) * dilation + 1 - in);
            return auto_pad == "SAME_UPPER" ? need / 2 : need - need / 2;
        };
        s.top = before(int64_t(s.h), int64_t(s.oh), int64_t(s.kh), s.sh, s.dh);
        s.left = before(int64_t(s.w), int64_t(s.ow), int64_t(s.kw), s.sw, s.dw);
    }
    conv_sums(
        s,
        [&](uint64_t n, uint64_t g, uint64_t c, uint64_t ih, uint64_t iw) {
            return ((n * xs[1] + g * s.cg + c) * s.h + ih) * s.w + iw;
        },
        [&](uint64_t g, uint64_t o, uint64_t c, uint64_t kh, uint64_t kw) {
            return (((g * s.cog + o) * s.cg + c) * s.kh + kh) * s.kw + kw;
        },
        [&](uint64_t n, uint64_t g, uint64_t o, uint64_t oh, uint64_t ow) {
            return ((n * ws[0] + g * s.cog + o) * s.oh + oh) * s.ow + ow;
        },
        sum);
}

/// conv_nhwc's sums: X [N, G, H, W, Cg], W [G, kH, kW, Cg, Cog] -> Y [N, G, OH, OW, Cog].
template <class Sum>
void nhwc_conv_sums(const OpEvaluation& e, Sum sum) {
    const std::vector<uint64_t>& xs = e.inputs[0].shape;
    const std::vector<uint64_t>& ws = e.inputs[1].shape;
    const std::vector<uint64_t>& ys = e.output_shapes.at(0);
    const std::vector<int64_t> st = e.ints_attr("strides"), di = e.ints_attr("dilations"), pa = e.ints_attr("pads");
    const ConvShape s{xs[0], xs[1], xs[4], xs[2], xs[3], ws[4], ws[1], ws[2], ys[2], ys[3],
                      st[0], st[1], di[0], di[1], pa[0], pa[1]};
    conv_sums(
        s,
        [&](uint64_t n, uint64_t g, uint64_t c, uint64_t ih, uint64_t iw) {
            return (((n * s.groups + g) * s.h + ih) * s.w + iw) * s.cg + c;
        },
        [&](uint64_t g, uint64_t o, uint64_t c, uint64_t kh, uint64_t kw) {
            return (((g * s.kh + kh) * s.kw + kw) * s.cg + c) * s.cog + o;
        },
        [&](uint64_t n, uint64_t g, uint64_t o, uint64_t oh, uint64_t ow) {
            return (((n * s.groups + g) * s.oh + oh) * s.ow + ow) * s.cog + o;
        },
        sum);
}

/// Any product op's sums: the convolutions' or the matmul family's.
template <class Sum>
void product_sums(const OpEvaluation& e, Sum sum) {
    if (e.op.kind == "Conv") nchw_conv_sums(e, sum);
    else if (e.op.kind == "conv_nhwc") nhwc_conv_sums(e, sum);
    else matmul_sums(e, sum);
}

/// A convolution in double with the GEMM's tolerance (K = kH kW Cg), the bias add one
/// rounding, then conv_nhwc's drain epilogue stages (fuse-epilogue) when present.
void convolve(OpEvaluation& e) {
    const RefOperand& x = e.inputs.at(0);
    const RefOperand& w = e.inputs.at(1);
    const bool has_bias = e.has_input(2);
    ReferenceTensor& y = output(e);
    y.sums = true;
    product_sums(e, [&](uint64_t at, uint64_t channel, uint64_t k, const auto& terms) {
        Dot dot;
        terms([&](uint64_t xi, uint64_t wi) { dot.add(x.value[xi], x.bound[xi], w.value[wi], w.bound[wi]); });
        double value = dot.value, bound = dot.bound(k) + kUnit * std::fabs(value);
        if (has_bias) {
            value += e.inputs[2].value[channel];
            bound += e.inputs[2].bound[channel];
        }
        bound += kUnit * std::fabs(value);
        if (e.has_input(3))  // conv_nhwc's drain epilogue (fuse-epilogue)
            drain_scale(value, bound, e.inputs[3].value[channel], e.inputs[3].bound[channel]);
        if (e.has_input(4)) drain_residual(value, bound, e.inputs[4].value[at], e.inputs[4].bound[at]);
        y.value[at] = value;
        y.bound[at] = bound;
        note_products(y, bound, dot.magnitude, k);
    });
}

/// Conv: X [N, C, H, W], W [C_out, C / group, kH, kW], B [C_out].
void ref_conv(OpEvaluation& e) { convolve(e); }

/// conv_nhwc: X [N, G, H, W, Cg], W [G, kH, kW, Cg, Cog], B [G, Cog] -> Y [N, G, OH, OW, Cog],
/// times its scale [G, Cog], plus its residual (Y's shape), then its drain activation (the
/// fuse-epilogue pass's), bounded as the fused matmul's.
void ref_conv_nhwc(OpEvaluation& e) {
    convolve(e);
    compiler::Activation activation = compiler::Activation::None;
    compiler::parse_activation(e.string_attr("activation"), activation);
    if (activation == compiler::Activation::None) return;
    ReferenceTensor& y = e.outputs[0];
    for (uint64_t i = 0; i < y.value.size(); ++i) {
        const double x = y.value[i], v = drain_activate(x, activation);
        y.bound[i] = drain_activation_bound(y.bound[i], x, v, activation) + kUnit * std::fabs(v);
        y.value[i] = v;
    }
}

/// vector_chain (fuse-rows): its steps' references one after the other, each step's result
/// (its bound carried) the next one's chained operand, as the unfused ops are evaluated.
void ref_vector_chain(OpEvaluation& e) {
    std::string problem;
    const std::vector<compiler::ChainStep> steps = compiler::chain_steps(e.op, problem);
    if (!problem.empty()) throw std::runtime_error("reference: op '" + e.op.name + "' (vector_chain): " + problem);
    ReferenceTensor result;
    for (const compiler::ChainStep& step : steps) {
        OpEvaluation s{step.op, compiler::schema_of(step.op), {}, e.output_shapes, {}, {}, {}};
        for (size_t i = 0; i < step.op.inputs.size(); ++i) {
            RefOperand operand;
            if (step.chained == i) {
                operand.present = true;
                operand.shape = e.output_shapes.at(0);
                operand.value = std::move(result.value);
                operand.bound = std::move(result.bound);
            } else if (step.op.inputs[i] != compiler::kNoTensor) {
                const auto at = std::find(e.op.inputs.begin(), e.op.inputs.end(), step.op.inputs[i]);
                operand = e.inputs.at(size_t(at - e.op.inputs.begin()));
            }
            s.inputs.push_back(std::move(operand));
        }
        s.outputs.resize(1);
        op_reference(step.op.kind)(s);
        result = std::move(s.outputs[0]);
    }
    e.outputs.at(0) = std::move(result);
}

// ---- element types ----------------------------------------------------------------------

/// Whether `e` is a quantized matmul or convolution (the shared design's semantics): a product
/// op whose A (X) and B (W) are int8.
bool is_quantized_product(const OpEvaluation& e) {
    static const std::set<std::string> kProducts = {"MatMul", "Gemm", "matmul", "Conv", "conv_nhwc"};
    return kProducts.count(e.op.kind) && e.inputs.size() > 1 && e.inputs[0].dtype == hw::DType::Int8 &&
           e.inputs[1].dtype == hw::DType::Int8;
}

/// A quantization's scale and zero point for index `channel` of its axis (per tensor: the one).
float scale_at(const std::optional<compiler::Quantization>& q, uint64_t channel) {
    return q ? q->scale[q->scale.size() == 1 ? 0 : channel % q->scale.size()] : 1.0f;
}
int32_t zero_at(const std::optional<compiler::Quantization>& q, uint64_t channel) {
    return q ? q->zero_point[q->zero_point.size() == 1 ? 0 : channel % q->zero_point.size()] : 0;
}

/// A quantized matmul or convolution, bit-exact (bound 0): acc = sum (a - za)(b - zb) in
/// integers, plus the int32 bias; t = float32(acc) * M[n] in float32, M[n] = float32(s_a s_b[n]
/// / s_c) (s_c = 1 for a float32 C); the drain's activation; an int8 C's q = saturate(
/// round_half_even(t) + zc). The operands are taken as exact (kpu-sim passes the hardware's).
void ref_quantized_product(OpEvaluation& e) {
    const RefOperand& a = e.inputs.at(0);
    const RefOperand& b = e.inputs.at(1);
    const int64_t za = zero_at(a.quant, 0), zb = zero_at(b.quant, 0);
    const bool int8_out = e.output_dtypes.at(0) == hw::DType::Int8;
    const std::optional<compiler::Quantization>& c_quant = e.output_quants.at(0);
    const double s_c = int8_out ? double(scale_at(c_quant, 0)) : 1.0;
    const int32_t zc = int8_out ? zero_at(c_quant, 0) : 0;
    const compiler::Activation activation = compiler::activation_of(e.op);
    // Gemm's C broadcasts over Y; the others' bias is one per output channel.
    const bool gemm = e.op.kind == "Gemm";
    const std::vector<uint64_t> bias_at =
        gemm && e.has_input(2) ? broadcast_index(e.inputs[2].shape, e.output_shapes[0]) : std::vector<uint64_t>();
    ReferenceTensor& y = output(e);
    y.sums = true;
    product_sums(e, [&](uint64_t at, uint64_t channel, uint64_t, const auto& terms) {
        int64_t acc = 0;
        terms([&](uint64_t x, uint64_t w) { acc += (int64_t(a.value[x]) - za) * (int64_t(b.value[w]) - zb); });
        if (e.has_input(2)) acc += int64_t(e.inputs[2].value[gemm ? bias_at[at] : channel]);
        const float multiplier = float(double(scale_at(a.quant, 0)) * double(scale_at(b.quant, channel)) / s_c);
        float t = float(acc) * multiplier;  // float32: one rounding each
        if (activation == compiler::Activation::Relu) t = std::fmax(t, 0.0f);
        else if (activation != compiler::Activation::None) t = float(drain_activate(t, activation));
        if (int8_out) {
            const float steps = std::fmin(std::fmax(t, -1024.0f), 1024.0f);  // beyond any int8 + zero point
            y.value[at] = double(std::clamp<int32_t>(int32_t(std::nearbyint(steps)) + zc, -128, 127));
        } else {
            y.value[at] = double(t);
            if (activation != compiler::Activation::None && activation != compiler::Activation::Relu)
                y.bound[at] = drain_activation_bound(0, double(float(acc) * multiplier), double(t), activation);
        }
    });
    y.type = e.output_dtypes.at(0);
}

/// An operand with a quantization read as its real values: (q - zp) * scale exactly, bound
/// one float32 rounding of the product (int32: two, the conversion to float32 and the product);
/// its own bound scaled.
void read_as_real(RefOperand& x) {
    const compiler::Quantization& q = *x.quant;
    const uint64_t inner = count(x.shape, q.axis + 1), dim = q.axis < x.shape.size() ? x.shape[q.axis] : 1;
    const double roundings = x.dtype == hw::DType::Int32 ? 2 : 1;
    for (uint64_t i = 0; i < x.value.size(); ++i) {
        const uint64_t channel = (i / inner) % dim;
        const double scale = scale_at(x.quant, channel);
        x.value[i] = (x.value[i] - zero_at(x.quant, channel)) * scale;
        x.bound[i] = x.bound[i] * scale + roundings * kUnit * std::fabs(x.value[i]);
    }
    x.quant.reset();
}

/// The stored integer the hardware writes for float32 `v` in `type` under `q` (hw::store_element),
/// at index `channel` of its axis.
double stored_integer(float v, hw::DType type, const std::optional<compiler::Quantization>& q, uint64_t channel) {
    if (type == hw::DType::Int8) return double(hw::quantize_int8(v, scale_at(q, channel), zero_at(q, channel)));
    return double(hw::round_saturate(v, INT32_MIN, INT32_MAX));
}

/// The largest float32 at most `v` / the smallest at least `v`.
float float_below(double v) {
    const float f = float(v);
    return double(f) > v ? std::nextafter(f, -INFINITY) : f;
}
float float_above(double v) {
    const float f = float(v);
    return double(f) < v ? std::nextafter(f, INFINITY) : f;
}

/// Every op kind's reference: one line each.
const std::map<std::string, OpReference> kReferences = {
    {"Add", ref_add},
    {"Sub", ref_sub},
    {"Mul", ref_mul},
    {"Div", ref_div},
    {"Max", ref_max},
    {"Min", ref_min},
    {"Pow", ref_pow},
    {"Relu", ref_relu},
    {"Neg", ref_neg},
    {"Abs", ref_abs},
    {"LeakyRelu", ref_leaky_relu},
    {"Gelu", ref_gelu},
    {"Sigmoid", ref_sigmoid},
    {"Tanh", ref_tanh},
    {"Exp", ref_exp},
    {"Sqrt", ref_sqrt},
    {"Reciprocal", ref_reciprocal},
    {"Erf", ref_erf},
    {"Clip", ref_clip},
    {"HardSwish", ref_hard_swish},
    {"HardSigmoid", ref_hard_sigmoid},
    {"Silu", ref_silu},
    {"ReduceSum", ref_reduce<Reduction::Sum>},
    {"ReduceMean", ref_reduce<Reduction::Mean>},
    {"ReduceMax", ref_reduce<Reduction::Max>},
    {"Softmax", ref_softmax},
    {"masked_softmax", ref_masked_softmax},
    {"LayerNormalization", ref_layer_norm},
    {"RMSNormalization", ref_rms_norm},
    {"Reshape", ref_same_elements},
    {"Flatten", ref_same_elements},
    {"Squeeze", ref_same_elements},
    {"Unsqueeze", ref_same_elements},
    {"Transpose", ref_transpose},
    {"Concat", ref_concat},
    {"Slice", ref_slice},
    {"Split", ref_split},
    {"Gather", ref_gather},
    {"MatMul", ref_matmul},
    {"Gemm", ref_gemm},
    {"Attention", ref_attention},
    {"flash_attention", ref_flash_attention},
    {"MaxPool", ref_max_pool},
    {"AveragePool", ref_average_pool},
    {"GlobalAveragePool", ref_global_average_pool},
    {"BatchNormalization", ref_batch_normalization},
    {"Resize", ref_resize},
    {"depthwise_conv", ref_depthwise_conv},
    {"Conv", ref_conv},
    {"conv_nhwc", ref_conv_nhwc},
    {"vector_chain", ref_vector_chain},
    // The conversions are the identity on values; evaluate() reads the input through its
    // encoding and stores the output through the output's (reference_ops.h).
    {"QuantizeLinear", ref_same_elements},
    {"DequantizeLinear", ref_same_elements},
    {"Cast", ref_same_elements},
};

double as_double(const compiler::AttrValue& v) {
    return std::holds_alternative<int64_t>(v) ? double(std::get<int64_t>(v)) : std::get<double>(v);
}

}  // namespace

bool OpEvaluation::has_attr(const std::string& name) const {
    return compiler::attribute_of(op, schema, name).has_value();
}
int64_t OpEvaluation::int_attr(const std::string& name) const {
    return std::get<int64_t>(*compiler::attribute_of(op, schema, name));
}
double OpEvaluation::float_attr(const std::string& name) const {
    return as_double(*compiler::attribute_of(op, schema, name));
}
std::string OpEvaluation::string_attr(const std::string& name) const {
    return std::get<std::string>(*compiler::attribute_of(op, schema, name));
}
std::vector<int64_t> OpEvaluation::ints_attr(const std::string& name) const {
    return std::get<std::vector<int64_t>>(*compiler::attribute_of(op, schema, name));
}
std::vector<int64_t> OpEvaluation::ints(size_t i) const {
    std::vector<int64_t> out;
    for (double v : inputs.at(i).value) out.push_back(int64_t(v));
    return out;
}

OpReference op_reference(const std::string& kind) {
    const auto it = kReferences.find(kind);
    return it == kReferences.end() ? nullptr : it->second;
}

bool evaluate(OpEvaluation& e) {
    e.output_dtypes.resize(e.output_shapes.size(), hw::DType::Float32);
    e.output_quants.resize(e.output_shapes.size());
    if (is_quantized_product(e)) {
        ref_quantized_product(e);
        return true;
    }
    const OpReference reference = op_reference(e.op.kind);
    if (!reference) return false;
    // A layout op (a view, or a copy the movers make) of integer tensors moves their stored
    // integers: no quantization is applied on either side.
    static const std::set<std::string> kLayoutCopies = {"Transpose", "Concat", "Slice", "Split", "Gather"};
    const bool layout = e.schema.view || kLayoutCopies.count(e.op.kind);
    if (layout && !e.output_dtypes.empty() && (e.output_dtypes[0] == hw::DType::Int8 || e.output_dtypes[0] == hw::DType::Int32) &&
        e.inputs.at(0).dtype == e.output_dtypes[0]) {
        reference(e);
        for (size_t i = 0; i < e.outputs.size(); ++i) {
            e.outputs[i].type = e.output_dtypes[i];
            e.outputs[i].below.assign(e.outputs[i].value.size(), 0.0);
        }
        return true;
    }
    // An integer output without a quantization stores under its first operand of the same
    // type that has one: what copying the bytes (a layout op) amounts to.
    for (size_t i = 0; i < e.output_quants.size(); ++i)
        for (const RefOperand& x : e.inputs)
            if (!e.output_quants[i] && hw::is_integer(e.output_dtypes[i]) && x.present && x.quant &&
                !x.quant->per_channel() && x.dtype == e.output_dtypes[i])
                e.output_quants[i] = x.quant;
    for (RefOperand& x : e.inputs)
        if (x.present && x.quant && hw::is_integer(x.dtype)) read_as_real(x);
    reference(e);
    for (size_t i = 0; i < e.outputs.size(); ++i)
        if (!e.output_shapes[i].empty() || !e.outputs[i].value.empty())
            store_as(e.outputs[i], e.output_shapes[i], e.output_dtypes[i], e.output_quants[i]);
    return true;
}

void store_as(ReferenceTensor& t, const std::vector<uint64_t>& shape, hw::DType type,
              const std::optional<compiler::Quantization>& quant) {
    t.type = type;
    switch (type) {
        case hw::DType::Float32:
        case hw::DType::Int64: return;
        case hw::DType::BFloat16:
        case hw::DType::Float16: {
            // Rounding to the type's nearest, ties to even: u_t relative (bfloat16 2^-8, float16
            // 2^-11) and, float16's subnormals, half its smallest step (2^-25) absolute.
            const bool half = type == hw::DType::Float16;
            const double unit = std::ldexp(1.0, half ? -11 : -8), absolute = half ? std::ldexp(1.0, -25) : 0.0;
            for (uint64_t i = 0; i < t.value.size(); ++i) t.bound[i] += unit * std::fabs(t.value[i]) + absolute;
            return;
        }
        case hw::DType::Int8:
        case hw::DType::Int32: {
            // The hardware's y lies in [value - bound, value + bound] and its stored integer is
            // monotone in y: it lies between those of the float32 ends of that interval.
            t.below.resize(t.value.size());
            const uint32_t axis = quant ? quant->axis : 0;
            const uint64_t inner = count(shape, axis + 1), dim = axis < shape.size() ? shape[axis] : 1;
            for (uint64_t i = 0; i < t.value.size(); ++i) {
                const double v = t.value[i], e = t.bound[i];
                const uint64_t channel = (i / inner) % dim;
                const double nearest = stored_integer(float(v), type, quant, channel);
                const double low = std::isnan(e) ? -INFINITY : stored_integer(float_below(v - e), type, quant, channel);
                const double high = std::isnan(e) ? INFINITY : stored_integer(float_above(v + e), type, quant, channel);
                t.value[i] = nearest;
                t.bound[i] = std::max(0.0, high - nearest);
                t.below[i] = std::max(0.0, nearest - low);
            }
            return;
        }
    }
}

void drain_scale(double& x, double& e, double s, double es) {
    e = e * std::fabs(s) + es * (std::fabs(x) + e);
    x *= s;
    e += kUnit * std::fabs(x);
}

void drain_residual(double& x, double& e, double r, double er) {
    x += r;
    e += er + kUnit * std::fabs(x);
}

double drain_activate(double x, compiler::Activation activation) {
    switch (activation) {
        case compiler::Activation::None: return x;
        case compiler::Activation::Relu: return x > 0 ? x : 0;
        case compiler::Activation::Gelu: {
            const double kSqrt2OverPi = std::sqrt(2.0 / M_PI);
            return 0.5 * x * (1.0 + std::tanh(kSqrt2OverPi * (x + 0.044715 * x * x * x)));
        }
        case compiler::Activation::GeluErf: return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
        case compiler::Activation::Sigmoid: return 1 / (1 + std::exp(-x));
        case compiler::Activation::Silu: return x / (1 + std::exp(-x));
        case compiler::Activation::Tanh: return std::tanh(x);
    }
    return x;
}

double drain_activation_bound(double e, double x, double y, compiler::Activation activation) {
    const double unit = std::ldexp(1.0, -24);
    switch (activation) {
        case compiler::Activation::None:
        case compiler::Activation::Relu: return e;
        case compiler::Activation::Gelu:
        case compiler::Activation::GeluErf: return 1.2 * e + 4.0 * unit * std::fabs(x);
        case compiler::Activation::Silu: return 1.1 * e + 7.0 * unit * std::fabs(y);
        case compiler::Activation::Sigmoid: return e + 7.0 * unit * std::fabs(y);
        case compiler::Activation::Tanh: return e + 3.0 * unit * std::fabs(y);
    }
    return e;
}

}  // namespace kpu::cli
