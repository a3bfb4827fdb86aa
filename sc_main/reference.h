// The independent reference that `kpu-sim --check` compares the simulated outputs with: a
// plain evaluation of the source graph on the host, in double precision, sharing no code
// with the fabric model or the compiler's tiling.
//
// Tolerance: fp32 accumulation of K products in any order differs from the exact sum by at
// most about K * 2^-24 * sum_k |a_ik| |b_kj| (Higham, the gamma_K bound). The reference
// carries, for every element, that magnitude sum_k |a||b| (+ |bias|) and the total K along
// the chain of ops that produced it, and allows |sim - ref| <= 4 * K_total * 2^-24 * magnitude
// + 1e-30. The factor 4 covers the epilogue's rounding and the propagation through chains.
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
    std::vector<double> magnitude;  ///< per element: sum of |products| that formed it
    uint64_t k_total = 0;           ///< accumulation length along the producing chain
};

/// Side of the blocks the reference's loops take B in: a 256 x 256 block (512 KiB of
/// doubles, the values, then the magnitudes) stays in a host core's L2 while the rows of A
/// pass over it, four at a time.
constexpr uint64_t kReferenceBlock = 256;

/// What run_reference throws once `*cancel` is set (checked every block of B it takes).
struct ReferenceCancelled : std::runtime_error {
    ReferenceCancelled() : std::runtime_error("reference evaluation cancelled") {}
};

/// Evaluates every op of `graph` (checked) from `inputs` (fp32, by tensor name: every input
/// and constant). Returns every tensor the ops compute. Inputs are read in place (value v,
/// magnitude |v|), never copied to double: at 8192^3 that saves 2 GiB. Touches nothing but
/// its arguments, so it may run on another thread while the simulation runs (kpu-sim does).
/// `cancel` (optional): set it from another thread to stop the evaluation early.
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
    uint64_t k_total = 0;          ///< the tensor's accumulation length (see kWeakCheckK)
};

/// Above this accumulation length the tolerance, 4 K 2^-24 sum|a||b|, exceeds an average
/// single product |a||b| (4 K^2 2^-24 > 1): one missing product could pass the check.
constexpr uint64_t kWeakCheckK = 2048;

/// Compares simulated `got` with the reference; the worst element is reported even on success.
/// Where the reference is NaN or an infinity (the inputs held one), the simulated element
/// matches when it is NaN too, or the same infinity (numpy's equal_nan); those elements are
/// counted in `non_finite` and have no error. Anywhere else a NaN or an infinity is a
/// mismatch, and the worst one.
CheckResult check_tensor(const std::vector<float>& got, const ReferenceTensor& expected,
                         const std::vector<uint64_t>& shape);

}  // namespace kpu::cli
