#include "sc_main/reference.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iomanip>
#include <limits>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "compiler/ffn_fusion.h"
#include "compiler/ops/matmul.h"
#include "compiler/ops/op_schema.h"
#include "sc_main/reference_ops.h"

namespace kpu::cli {

namespace {

/// What the loops read of an operand: its values, their magnitudes, or magnitudes padded
/// with the operand's error bound (|v| + e).
enum class Load { Value, Magnitude, Padded };

/// A tensor as the loops read it: a computed one (doubles), or a graph input read in place.
struct Operand {
    const ReferenceTensor* computed = nullptr;
    const std::vector<float>* input = nullptr;

    /// Inputs are exact; a computed tensor carries its bound.
    bool exact() const { return computed == nullptr; }
    double value(uint64_t at) const { return computed ? computed->value[at] : double((*input)[at]); }
    double bound(uint64_t at) const { return computed ? computed->bound[at] : 0.0; }
    /// Elements [at, at + count) as `load` says.
    void load(uint64_t at, uint64_t count, Load load, double* out) const {
        if (computed) {
            const double* v = &computed->value[at];
            const double* e = &computed->bound[at];
            if (load == Load::Value) std::copy_n(v, count, out);
            else if (load == Load::Magnitude) for (uint64_t i = 0; i < count; ++i) out[i] = std::fabs(v[i]);
            else for (uint64_t i = 0; i < count; ++i) out[i] = std::fabs(v[i]) + e[i];
            return;
        }
        const float* v = &(*input)[at];  // exact: padded magnitudes are the magnitudes
        if (load == Load::Value) for (uint64_t i = 0; i < count; ++i) out[i] = double(v[i]);
        else for (uint64_t i = 0; i < count; ++i) out[i] = std::fabs(double(v[i]));
    }
};

/// Rows of C the kernel updates together, so that every element of B it loads serves them all.
constexpr uint64_t kKernelRows = 4;
/// Columns of C the kernel keeps in registers while it runs down the block's depth.
constexpr uint64_t kKernelColumns = 8;

/// kKernelRows rows of C (`rows` of them real, pitch kReferenceBlock) += the same rows of A
/// (pitch kReferenceBlock, `depth` elements) times a block of B (`depth` rows of `width`).
/// Each element adds its products one by one in p order, one rounding per multiply and one
/// per add. A strip of kKernelColumns columns of every row stays in registers down the whole
/// depth: each B element loaded serves kKernelRows products. A function of its own (with
/// clones for wider vector units) so that the compiler sees the restrict pointers.
__attribute__((target_clones("avx512f", "avx2", "default"))) void add_products(
    double* __restrict c, const double* __restrict a, const double* __restrict b, uint64_t rows, uint64_t depth,
    uint64_t width) {
    // GCC's vector extension: kKernelColumns doubles, lowered to whatever the clone's target
    // has; moved in and out with memcpy (no alignment or aliasing assumed).
    typedef double Strip __attribute__((vector_size(kKernelColumns * sizeof(double))));
    uint64_t j0 = 0;
    for (; j0 + kKernelColumns <= width && rows == kKernelRows; j0 += kKernelColumns) {
        Strip acc[kKernelRows];
        for (uint64_t r = 0; r < kKernelRows; ++r) std::memcpy(&acc[r], c + r * kReferenceBlock + j0, sizeof acc[r]);
        for (uint64_t p = 0; p < depth; ++p) {
            Strip bp;
            std::memcpy(&bp, b + p * width + j0, sizeof bp);
            for (uint64_t r = 0; r < kKernelRows; ++r) acc[r] += a[r * kReferenceBlock + p] * bp;
        }
        for (uint64_t r = 0; r < kKernelRows; ++r) std::memcpy(c + r * kReferenceBlock + j0, &acc[r], sizeof acc[r]);
    }
    // The columns left over (and a last group of fewer rows): plainly, in the same order.
    for (uint64_t r = 0; r < rows; ++r)
        for (uint64_t p = 0; p < depth; ++p) {
            const double ar = a[r * kReferenceBlock + p];
            const double* bp = b + p * width;
            double* cr = c + r * kReferenceBlock;
            for (uint64_t j = j0; j < width; ++j) cr[j] += ar * bp[j];
        }
}

/// One sum the loops form: C's values (A B), magnitudes (|A| |B|) or padded magnitudes.
struct Pass {
    Load load;
    std::vector<double>* sums;  ///< m x n, zeroed
};

/// C += A B for each pass, in double: every element adds its products in p order, one
/// rounding per multiply and one per add, which is what makes this a reference. The loops
/// are blocked for the host's cache: a kReferenceBlock-square block of B is copied to a
/// contiguous buffer that stays in L2 while the rows of A pass over it kKernelRows at a time
/// (add_products), through small buffers of their own as are the rows of C; one pass after
/// the other. None of this changes the order of any element's additions, so the results are
/// the plain i-p-j loop's bits (Reference.BlockedLoopsGiveThePlainLoopsBits).
void accumulate(const Operand& a, const Operand& b, const std::vector<Pass>& passes, uint64_t m, uint64_t n, uint64_t k,
                const std::atomic<bool>* cancel) {
    std::vector<double> block(kReferenceBlock * kReferenceBlock);
    std::vector<double> rows_a(kKernelRows * kReferenceBlock), rows_c(kKernelRows * kReferenceBlock);
    for (uint64_t j0 = 0; j0 < n; j0 += kReferenceBlock) {
        const uint64_t width = std::min(n - j0, kReferenceBlock);
        for (uint64_t p0 = 0; p0 < k; p0 += kReferenceBlock) {
            if (cancel && cancel->load(std::memory_order_relaxed)) throw ReferenceCancelled();
            const uint64_t depth = std::min(k - p0, kReferenceBlock);
            for (const Pass& pass : passes) {
                std::vector<double>& sums = *pass.sums;
                for (uint64_t p = 0; p < depth; ++p) b.load((p0 + p) * n + j0, width, pass.load, &block[p * width]);
                for (uint64_t i0 = 0; i0 < m; i0 += kKernelRows) {
                    // Through small buffers: at 4096^3 the tensors' rows lie 32 KiB apart and
                    // would conflict in the same cache sets if read in place.
                    const uint64_t rows = std::min(m - i0, kKernelRows);
                    for (uint64_t r = 0; r < rows; ++r) {
                        a.load((i0 + r) * k + p0, depth, pass.load, &rows_a[r * kReferenceBlock]);
                        std::copy_n(&sums[(i0 + r) * n + j0], width, &rows_c[r * kReferenceBlock]);
                    }
                    add_products(rows_c.data(), rows_a.data(), block.data(), rows, depth, width);
                    for (uint64_t r = 0; r < rows; ++r)
                        std::copy_n(&rows_c[r * kReferenceBlock], width, &sums[(i0 + r) * n + j0]);
                }
            }
        }
    }
}

/// Whether `op` is one row-major matmul the fabric's drain executes (the fused form, a MatMul
/// with one B matrix, an untransposed, unscaled Gemm plus a bias row): those take the blocked
/// loops above.
bool on_the_fabric(const compiler::Graph& graph, const compiler::Op& op) {
    if (op.kind != "matmul" && op.kind != "MatMul" && op.kind != "Gemm") return false;
    // A quantized one (int8 A) is evaluated in integers (reference_ops.h).
    if (graph.tensor(op.inputs.at(0)).dtype == compiler::DType::Int8) return false;
    if (op.kind == "matmul") return true;
    const compiler::OpSchema& schema = compiler::schema_of(op);
    if (!schema.lowering_problem || !schema.lowering_problem(graph, op).empty()) return false;
    // Batched and transposed ones are not one row-major m x n x k: reference_ops.cpp's loops.
    const compiler::MatmulOperands mm = compiler::matmul_operands(graph, op);
    return mm.batch == 1 && !mm.trans_a && !mm.trans_b && mm.alpha == 1.0f && mm.beta == 1.0f;
}

/// Any other op: its reference in reference_ops.cpp on copies of its operands, in double.
void evaluate_op(const compiler::Graph& graph, const compiler::Op& op,
                 const std::map<std::string, std::vector<float>>& inputs,
                 std::map<std::string, ReferenceTensor>& tensors) {
    OpEvaluation e{op, compiler::schema_of(op), {}, {}, {}, {}, {}};
    for (uint32_t index : op.inputs) {
        RefOperand operand;
        if (index != compiler::kNoTensor) {
            const compiler::Tensor& t = graph.tensor(index);
            operand.present = true;
            operand.shape = t.shape;
            operand.dtype = t.dtype;
            operand.quant = t.quant;
            if (const auto it = inputs.find(t.name); it != inputs.end()) {
                operand.value.assign(it->second.begin(), it->second.end());
            } else if (const auto c = tensors.find(t.name); c != tensors.end()) {
                operand.value = c->second.value, operand.bound = c->second.bound;
                for (size_t i = 0; i < c->second.below.size(); ++i)  // an interval: its wider side
                    operand.bound[i] = std::max(operand.bound[i], c->second.below[i]);
            } else if (const auto* ints = std::get_if<std::vector<int64_t>>(&t.value)) {
                operand.value.assign(ints->begin(), ints->end());
            } else if (const auto* reals = std::get_if<std::vector<double>>(&t.value)) {
                for (double v : *reals) operand.value.push_back(double(float(v)));  // stored in fp32
            } else {
                throw std::runtime_error("reference: no value for tensor '" + t.name + "'");
            }
            operand.bound.resize(operand.value.size(), 0.0);
        }
        e.inputs.push_back(std::move(operand));
    }
    for (uint32_t index : op.outputs) {
        const bool omitted = index == compiler::kNoTensor;
        e.output_shapes.push_back(omitted ? std::vector<uint64_t>() : graph.tensor(index).shape);
        e.output_dtypes.push_back(omitted ? hw::DType::Float32 : graph.tensor(index).dtype);
        e.output_quants.push_back(omitted ? std::nullopt : graph.tensor(index).quant);
    }
    e.outputs.resize(op.outputs.size());
    if (!evaluate(e)) throw std::runtime_error("reference: no reference for op '" + op.name + "' (" + op.kind + ")");
    for (size_t i = 0; i < op.outputs.size(); ++i)
        if (op.outputs[i] != compiler::kNoTensor) tensors[graph.tensor(op.outputs[i]).name] = std::move(e.outputs[i]);
}

/// act((A[m, k] @ B[k, n] (+ bias)) (* scale) (+ residual)) as the fabric computes it: the
/// value in double and its error bound (what a fabric matmul's and each of an ffn op's two
/// matmuls' results carry).
ReferenceTensor fabric_matmul(const Operand& a, const Operand& b, const std::optional<Operand>& bias,
                              compiler::Activation activation, uint64_t m, uint64_t n, uint64_t k,
                              const std::atomic<bool>* cancel, const std::optional<Operand>& scale = std::nullopt,
                              const std::optional<Operand>& residual = std::nullopt) {
    const double unit = std::ldexp(1.0, -24);
    ReferenceTensor c;
    c.value.assign(m * n, 0.0);
    std::vector<double> magnitude(m * n, 0.0), padded;
    std::vector<Pass> passes{{Load::Value, &c.value}, {Load::Magnitude, &magnitude}};
    if (!a.exact() || !b.exact()) padded.assign(m * n, 0.0), passes.push_back({Load::Padded, &padded});
    accumulate(a, b, passes, m, n, k, cancel);
    // The bounds are written over P (= M for exact operands): no third m x n array of
    // doubles for a single op (at 8192^3, 512 MiB).
    std::vector<double>& inflated = padded.empty() ? magnitude : padded;
    const double gamma = 2.0 * double(k) * unit;
    for (uint64_t i = 0; i < m; ++i)
        for (uint64_t j = 0; j < n; ++j) {
            const uint64_t e = i * n + j;
            const double sum_of_magnitudes = magnitude[e];
            double x = c.value[e];
            double bound = gamma * inflated[e] + (padded.empty() ? 0.0 : inflated[e] - sum_of_magnitudes);
            if (bias) x += bias->value(j), bound += bias->bound(j);
            bound += unit * std::fabs(x);
            if (scale) drain_scale(x, bound, scale->value(j), scale->bound(j));
            if (residual) drain_residual(x, bound, residual->value(e), residual->bound(e));
            double y = drain_activate(x, activation);
            bound = drain_activation_bound(bound, x, y, activation) + unit * std::fabs(y);
            c.value[e] = y;
            inflated[e] = bound;
            // The bound in average products of this sum (M / K): elements whose sum is 0
            // have no products to miss.
            if (sum_of_magnitudes > 0)
                c.bound_in_products = std::max(c.bound_in_products, bound * double(k) / sum_of_magnitudes);
        }
    c.bound = std::move(inflated);
    return c;
}

}  // namespace

std::map<std::string, ReferenceTensor> run_reference(const compiler::Graph& graph,
                                                     const std::map<std::string, std::vector<float>>& inputs,
                                                     const std::atomic<bool>* cancel) {
    std::map<std::string, ReferenceTensor> tensors;
    auto get = [&](uint32_t index) {
        const auto& name = graph.tensor(index).name;
        if (const auto it = inputs.find(name); it != inputs.end()) return Operand{nullptr, &it->second};
        if (const auto it = tensors.find(name); it != tensors.end()) return Operand{&it->second, nullptr};
        throw std::runtime_error("reference: no value for tensor '" + name + "'");
    };
    for (uint32_t id : graph.topological_order("reference")) {
        const compiler::Op& graph_op = graph.ops().at(id);
        if (compiler::is_ffn_op(graph_op)) {  // H as the fabric computes it (with its bound), then Y from it
            const compiler::FfnOperands f = compiler::ffn_operands(graph, id);
            std::optional<Operand> b1, b2;
            if (f.b1) b1 = get(*f.b1);
            if (f.b2) b2 = get(*f.b2);
            const ReferenceTensor h = fabric_matmul(get(f.x), get(f.w1), b1, f.activation, f.m, f.hidden, f.k, cancel);
            tensors[graph.tensor(f.y).name] = fabric_matmul(Operand{&h, nullptr}, get(f.w2), b2,
                                                            compiler::Activation::None, f.m, f.n, f.hidden, cancel);
            continue;
        }
        if (!on_the_fabric(graph, graph_op)) {
            if (cancel && cancel->load(std::memory_order_relaxed)) throw ReferenceCancelled();
            evaluate_op(graph, graph_op, inputs, tensors);
            continue;
        }
        const compiler::MatmulOperands op = compiler::matmul_operands(graph, id);
        std::optional<Operand> bias, scale, residual;
        if (op.bias) bias = get(*op.bias);
        if (op.scale) scale = get(*op.scale);
        if (op.residual) residual = get(*op.residual);
        const compiler::Tensor& c = graph.tensor(op.c);
        ReferenceTensor& result = tensors[c.name] =
            fabric_matmul(get(op.a), get(op.b), bias, op.activation, op.m, op.n, op.k, cancel, scale, residual);
        store_as(result, c.shape, c.dtype, c.quant);  // a bfloat16 or float16 C: its rounding
    }
    return tensors;
}

CheckResult check_tensor(const std::vector<float>& got, const ReferenceTensor& expected,
                         const std::vector<uint64_t>& shape) {
    CheckResult r;
    const bool integers = hw::is_integer(expected.type);
    double worst_ratio = -1;
    for (uint64_t i = 0; i < got.size(); ++i) {
        const double want = expected.value[i];
        if (!std::isfinite(want)) {
            // NaN or Inf from the inputs: the hardware matches when it computed the same
            // class (NaN for NaN, an infinity of the same sign for an infinity).
            const bool same = std::isnan(want) ? std::isnan(got[i]) : double(got[i]) == want;
            if (same) {
                ++r.non_finite;
                continue;
            }
        }
        // Integer types: exact or within [want - below, want + bound], in stored integers.
        const bool under = double(got[i]) < want && !expected.below.empty();
        const double tolerance = (under ? expected.below[i] : expected.bound[i]) + (integers ? 0.0 : 1e-30);
        const double error = std::fabs(double(got[i]) - want);
        // A NaN anywhere, or an infinite reference not matched above, is out of any tolerance
        // (the tolerance of an infinite reference is infinite too).
        const bool outside = !(error <= tolerance) || !std::isfinite(want);
        const double ratio = std::isnan(error) || !std::isfinite(want) ? INFINITY
                             : tolerance > 0                          ? error / tolerance
                             : error > 0                              ? INFINITY
                                                                      : 0.0;
        if (outside) ++r.mismatches;
        if (ratio > worst_ratio) {
            worst_ratio = ratio;
            r.worst_index = i, r.got = got[i], r.expected = want, r.error = error, r.tolerance = tolerance;
            r.below = expected.below.empty() ? 0.0 : expected.below[i];
            if (integers) r.tolerance = expected.bound[i];  // the interval's upper side; below its lower
        }
    }
    r.ok = r.mismatches == 0;
    r.bound_in_products = expected.bound_in_products;
    r.sums = expected.sums;
    r.type = expected.type;
    r.worst_at.resize(shape.size());
    uint64_t rest = r.worst_index;
    for (size_t d = shape.size(); d-- > 0;) r.worst_at[d] = rest % shape[d], rest /= shape[d];
    return r;
}

namespace {

/// The stored integers an integer check allowed at its worst element: "exact" or "allowed 3 to 5".
std::string allowed(const CheckResult& r) {
    if (r.tolerance == 0 && r.below == 0) return "exact";
    std::ostringstream text;
    text << std::setprecision(12) << "allowed " << r.expected - r.below << " to " << r.expected + r.tolerance;
    return text.str();
}

}  // namespace

std::string check_message(const std::string& name, const std::vector<uint64_t>& shape, bool intermediate,
                          const CheckResult& r, uint64_t elements) {
    using compiler::shape_string;
    std::ostringstream line;
    line << std::setprecision(9) << name << " " << shape_string(shape) << (intermediate ? " (intermediate)" : "")
         << ": ";
    if (r.ok && r.non_finite == elements) {
        line << "ok (all " << r.non_finite << " elements NaN or Inf in both)";
    } else if (r.ok && hw::is_integer(r.type)) {
        line << "ok (" << hw::to_string(r.type) << ", in stored integers: worst error " << r.error << " at "
             << shape_string(r.worst_at) << ", " << allowed(r) << ")";
        if (r.non_finite > 0) line << "; " << r.non_finite << " elements NaN or Inf in both";
    } else if (r.ok) {
        line << "ok (" << (r.type == hw::DType::Float32 ? "" : std::string(hw::to_string(r.type)) + ": ")
             << "worst error " << std::setprecision(3) << r.error << " at " << shape_string(r.worst_at)
             << ", tolerance " << r.tolerance << ")";
        if (r.non_finite > 0) line << "; " << r.non_finite << " elements NaN or Inf in both";
        if (r.bound_in_products >= 1)
            line << "; weak: the tolerance reaches " << std::setprecision(2) << r.bound_in_products
                 << " x an average product of the op's sums, so a missing product could pass";
    } else if (hw::is_integer(r.type)) {
        line << "MISMATCH in " << r.mismatches << " elements; worst at " << shape_string(r.worst_at)
             << ": simulated " << r.got << ", reference " << r.expected << " (" << hw::to_string(r.type)
             << ", in stored integers: " << allowed(r) << ")";
    } else {
        line << "MISMATCH in " << r.mismatches << " elements; worst at " << shape_string(r.worst_at)
             << ": simulated " << r.got << ", reference " << r.expected
             << (r.type == hw::DType::Float32 ? "" : " (" + std::string(hw::to_string(r.type)) + ")") << ", error "
             << r.error << " > tolerance " << r.tolerance;
        // From finite operands a GEMM's fp32 result is NaN or infinite only where a product
        // or a partial sum passed fp32's range (an inf - inf is a NaN); another op's where an
        // intermediate of its evaluation did.
        if (!std::isfinite(r.got) && std::isfinite(r.expected))
            line << (std::fabs(r.expected) > double(std::numeric_limits<float>::max())
                         ? " (the reference is beyond fp32's range: the fp32 hardware overflowed)"
                     : r.sums ? " (a product or partial sum passed fp32's range, 3.4e38: the fp32 hardware "
                                "overflowed, in this order of summation)"
                              : " (an intermediate value passed fp32's range, 3.4e38: the fp32 hardware overflowed)");
        if (r.non_finite > 0) line << "; " << r.non_finite << " more elements NaN or Inf in both";
    }
    return line.str();
}

}  // namespace kpu::cli
