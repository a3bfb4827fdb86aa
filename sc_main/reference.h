// The independent reference that `kpu-sim --check` compares the simulated outputs with: a
// plain evaluation of the source graph on the host, in double precision, sharing no code
// with the fabric model or the compiler's tiling. The matmuls the fabric executes (the fused
// form, a rank-2 MatMul, a Gemm that is one plus a bias row) take the blocked loops below;
// every other op kind its function in reference_ops.cpp, whose header gives each kind's
// tolerance.
//
// Tolerance: an element's `bound`, how far an fp32 evaluation of the graph may lie from the
// reference value, carried from op to op. For C = act(A B + bias) with K products per element,
// u = 2^-24, M = sum_k |a||b| and P = sum_k (|a| + e_a)(|b| + e_b), where a and b are the
// reference's values and e_a, e_b their bounds (0 for the graph's inputs, which are exact):
//   before the activation  2 K u P  +  (P - M)  +  e_bias  +  u |a b + bias|
// (fp32 products and sums in any order, the bias added after the sum as the fabric's drain
// does: Higham's gamma_K, doubled; the operands' own errors
// carried through the sum; the bias add's rounding); relu keeps it (it is 1-Lipschitz), gelu
// (either form) multiplies it by 1.2 (|gelu'| <= 1.13) and adds 4 u |x| for its fp32 tanh or
// erf; tanh keeps it and adds 3 u |c|, sigmoid keeps it and SiLU multiplies it by 1.1
// (|silu'| <= 1.1), both adding 7 u |c| (exp, the add, the division); storing the result in
// fp32 adds u |c|. A conv_nhwc's activation (fuse-epilogue) is bounded the same way
// (drain_activation_bound, reference_ops.h). The check allows |sim - ref| <= bound + 1e-30.
// Assumed: K below 2^23 (where 2 K u still bounds gamma_K) and fp32 tanh, erf and exp within
// 2 ulp (glibc's on x86-64) in the fabric's activations. Carried through
// a chain, bounds grow with depth much faster than the values (12 random layers: an all-zero
// output passes), so kpu-sim gives the reference the hardware's intermediates: then every
// op's operands are exact and every op is checked with one op's tolerance
// (Reference.GivenTheIntermediatesEachOpIsCheckedWithItsOwnTolerance). Tensors of int8,
// bfloat16 and float16: reference_ops.h, "Element types" (a quantized matmul bit-exact, a
// bfloat16 or float16 C's rounding added to its bound); the check compares an integer tensor
// in stored integers, exactly or within its interval of integers.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "compiler/graph.h"

namespace kpu::cli {

struct ReferenceTensor {
    std::vector<double> value;
    std::vector<double> bound;  ///< per element: how far an fp32 evaluation may lie from value
    /// The largest bound over elements, in average products of the op's last sum (M / K):
    /// from 1 on, a single missing or doubled product could pass the check.
    double bound_in_products = 0;
    /// Whether the op sums (a matmul's, a reduction's, an attention's sums): then an fp32
    /// result beyond range where the reference is within it comes from a partial sum.
    bool sums = true;
    /// The tensor's element type; int8 and int32 values and bounds are in stored integers.
    hw::DType type = hw::DType::Float32;
    /// Integer types, per element: how far below `value` the hardware's may lie (`bound` then
    /// says how far above). Empty: `bound` both ways.
    std::vector<double> below;
};

/// Side of the blocks the reference's loops take B in: a 256 x 256 block (512 KiB of
/// doubles: the values, then the magnitudes, then for computed operands the magnitudes
/// padded with their bounds) stays in a host core's L2 while the rows of A pass over it,
/// four at a time.
constexpr uint64_t kReferenceBlock = 256;

/// What run_reference throws once `*cancel` is set (checked every block of B it takes, and
/// before every op that is not a fabric matmul).
struct ReferenceCancelled : std::runtime_error {
    ReferenceCancelled() : std::runtime_error("reference evaluation cancelled") {}
};

/// Evaluates every op of `graph` (checked) from `inputs` (fp32, by tensor name: every input
/// and constant; a constant not given is read from its inline values). Returns every tensor the ops compute. A computed tensor given in `inputs`
/// too is what the ops that read it use, as exact operands, instead of the reference's own
/// value: kpu-sim passes the simulated intermediates, so that each op is checked on the
/// operands the hardware used, with one op's tolerance, however deep the chain. Inputs are
/// read in place, never copied to double: at 8192^3 that saves 2 GiB. Touches nothing but
/// its arguments, so it may run on another thread while the simulation runs (kpu-sim does
/// when no op reads another's result). `cancel` (optional): set it from another thread to
/// stop the evaluation early.
std::map<std::string, ReferenceTensor> run_reference(const compiler::Graph& graph,
                                                     const std::map<std::string, std::vector<float>>& inputs,
                                                     const std::atomic<bool>* cancel = nullptr);

struct CheckResult {
    bool ok = true;
    uint64_t worst_index = 0;      ///< flat index of the element with the largest error / tolerance
    std::vector<uint64_t> worst_at;  ///< the same as coordinates
    double got = 0, expected = 0, error = 0, tolerance = 0;
    uint64_t mismatches = 0;       ///< elements outside the tolerance
    uint64_t non_finite = 0;       ///< elements NaN (or the same infinity) in both, counted as matching
    double bound_in_products = 0;  ///< ReferenceTensor::bound_in_products: >= 1, the check is weak
    bool sums = true;              ///< ReferenceTensor::sums
    hw::DType type = hw::DType::Float32;  ///< ReferenceTensor::type: the units of got, expected and error
    double below = 0;              ///< the worst element's ReferenceTensor::below (integer types)
};

/// Compares simulated `got` with the reference; the worst element is reported even on success.
/// Where the reference is NaN or an infinity (the inputs held one), the simulated element
/// matches when it is NaN too, or the same infinity (numpy's equal_nan); those elements are
/// counted in `non_finite` and have no error. Anywhere else a NaN or an infinity is a
/// mismatch, and the worst one.
CheckResult check_tensor(const std::vector<float>& got, const ReferenceTensor& expected,
                         const std::vector<uint64_t>& shape);

/// What `kpu-sim --check` says of one computed tensor, `name` of `shape` (`intermediate`: it
/// says so) with `elements` elements, that check_tensor() compared into `r`: "ok (...)" with
/// the worst error, where it is and the tolerance (and whether the check is weak), or
/// "MISMATCH in ..." with the worst element and, when the hardware's result is NaN or
/// infinite, why that happens in fp32.
std::string check_message(const std::string& name, const std::vector<uint64_t>& shape, bool intermediate,
                          const CheckResult& r, uint64_t elements);

}  // namespace kpu::cli
