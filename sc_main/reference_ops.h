// The reference of every op kind but the fused matmul and ffn (reference.cpp's blocked loops): plain
// loops in double over the graph's shapes, sharing no code with the models or the compiler's
// lowering (attributes are read through the op registry, which only holds ONNX's defaults).
// Each op kind is one function and one line of the table in reference_ops.cpp.
//
// Tolerance. Each function sets, per output element, how far an fp32 evaluation of the op may
// lie from the reference value: the op's own error (in u = 2^-24, relative to the magnitudes
// the op involves) plus its operands' bounds carried through it (0 for exact operands, which
// is what kpu-sim passes: every op is checked with one op's tolerance). An fp32 function is
// allowed k ulp of its result, 2 k u |y| (one ulp of y is at most 2 u |y|); libm in double is
// the reference. The budgets (x: the input, y: the output, n: a sum's length):
//   layout ops (Reshape, Flatten, Transpose, Squeeze, Unsqueeze, Concat, Slice, Split,
//     Gather), Relu, Neg, Abs, Clip, Max, Min, ReduceMax    exact: 0
//   Add, Sub, Mul, Div, Sqrt, Reciprocal                     u |y| (one rounding)
//   LeakyRelu                                                2 u |y| (alpha in fp32, the product)
//   Exp, Tanh, Erf, Pow                                      4 u |y| (2 ulp)
//   Sigmoid, Silu                                            8 u |y| (4 ulp: exp, the add, the division)
//   HardSigmoid                                              2 u |alpha x| + u |beta| + u |y|
//   HardSwish                                                u |x| (|x| / 3 + 1) + 2 u |y|
//   Gelu (none and tanh)                                     5 u |x| + 2 u |y| (erf or tanh of an
//                                                            argument with 3 roundings, 1 + t, 0.5 x ( ))
//   ReduceSum                                                2 n u sum|x|            (Higham's gamma_n, doubled)
//   ReduceMean                                               2 n u sum|x| / n + 2 u |y|
//   Softmax over n (masked_softmax: scale x and the mask's add one rounding each, carried)
//                                                            y_i u (|d_i| + sum_j y_j |d_j| + 2 n + 6),
//     d = x - max(x): the subtraction's rounding moves exp's argument by u |d|, exp 2 ulp,
//     the positive sum 2 n u, the division u
//   LayerNormalization over n (RMSNormalization: the mean 0)  mean: (2 n + 1) u mean|x|;
//     d = x - mean carries that and u |d|; variance: 2 mean(|d| e_d) + mean(e_d^2)
//     + (2 n + 2) u var; 1/sqrt(var + epsilon) 2 ulp; y = d * inv * scale + bias: each
//     product and the add one rounding (Mean and InvStdDev get their own bounds)
//   MatMul (batched), Gemm                                   as the fused matmul (reference.h):
//     2 K u P + (P - M) + 2 u |y|, Gemm's alpha, beta C and the add one rounding each
//   Attention                                                the scores as a matmul of length E
//     (times scale, plus the mask: one rounding each), softmax over Skv as above with the
//     scores' bounds carried, the output as a matmul of length Skv
//   flash_attention (online softmax)                         Attention's, plus for each
//     probability y_j u (|d_j| + sum_i y_i |d_i| + 10 n): its exponential's argument is
//     s_j - m_t (m_t the running max when its key block came, at most max, so the rounding
//     is still at most u |d_j|), and it is then rescaled by one correction e^(m_old - m_new)
//     per later block (their arguments' roundings add up to at most u |d_j|, each exp 2 ulp
//     and its product one rounding: 5 u per block, at most n blocks), in the numerator and,
//     weighted by y, in the sum l; the output as a sum of 2 Skv additions (the fabric's
//     within a key block, O's accumulation across them) and the final division by l one
//     more rounding
//   Conv, conv_nhwc                                          as the GEMM with K = kH kW C_in / group
//     (taps outside the image add nothing), the bias add one rounding
// Element types (issue 32's datapath; hardware/numeric.h's conversions). The values of int8
// and int32 tensors are their stored integers q, value and bound (a quantization says what
// they mean: (q - zero_point) * scale); bfloat16 and float16 values are the values the type
// holds, exact in float32. evaluate() applies, per op:
//   quantized MatMul, Gemm, matmul, Conv, conv_nhwc (A and B int8, bias int32, C int8 with a
//     quantization or float32)                          bit-exact: 0. acc = sum (a - za)(b - zb)
//     in int64 plus the bias, t = float32(acc) * M[n] in float32 with M[n] = float32(double(s_a)
//     * s_b[n] / s_c) (s_c = 1 for a float32 C), relu, then an int8 C's q = saturate(
//     round_half_even(t) + zc). A per-channel scale is indexed by the output channel. The
//     operands are taken as exact (kpu-sim gives the reference the hardware's)
//   any other op: an operand with a quantization is read as reals first, (q - zp) * scale
//     exactly with the float32 product's rounding, u |x| (int32: 2 u |x|, the conversion to
//     float32 too), its own bound times the scale; the op's reference as above; then each
//     output stored as its type (store_as):
//       float32                                          unchanged
//       bfloat16, float16 (matmuls and vector ops alike)  + u_t |y|, u_t = 2^-8 (bfloat16),
//                                                        2^-11 (float16, plus 2^-25 absolute:
//                                                        half its smallest subnormal step)
//       int8, int32                                      the stored integers q(y') of every y'
//                                                        in [y - e, y + e]: the hardware's q lies
//                                                        in [q(lo), q(hi)], lo and hi the float32
//                                                        ends of that interval rounded outward
//                                                        (q is monotone): exact for an exact y
//   QuantizeLinear, DequantizeLinear, Cast               the identity on values: the input read
//     through its encoding and the output stored through its (QuantizeLinear: q = saturate(
//     round_half_even(x / scale) + zp) in float32; DequantizeLinear: (q - zp) * scale with one
//     rounding; Cast: the value rounded to the target type)
// Operands' bounds e are carried: exactly for the linear ops (sums of e weighted by the
// magnitudes), through the endpoints x +- e for the monotone functions, and through a
// Lipschitz constant for the others (Gelu 1.2, Silu 1.1, HardSwish 1.5); softmax's outputs
// move by at most y (exp(2 max e) - 1). Assumed, as for the GEMM: sums shorter than 2^23,
// softmax computed in two passes after subtracting the row's maximum, fp32 functions within
// the ulp budgets above (glibc's expf, tanhf, erff, powf are within 1 ulp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "compiler/graph.h"
#include "compiler/ops/op_schema.h"
#include "sc_main/reference.h"

namespace kpu::cli {

/// One input of an op as its reference reads it (a copy, in double).
struct RefOperand {
    bool present = false;         ///< false: an omitted optional input
    std::vector<uint64_t> shape;
    std::vector<double> value;
    std::vector<double> bound;    ///< per element; 0 for the graph's inputs (exact)
    hw::DType dtype = hw::DType::Float32;          ///< the tensor's: int8 and int32 values are stored integers
    std::optional<compiler::Quantization> quant;   ///< the tensor's; evaluate() reads it as reals first
};

/// What an op's reference gets and fills.
struct OpEvaluation {
    const compiler::Op& op;
    const compiler::OpSchema& schema;
    std::vector<RefOperand> inputs;                   ///< in the schema's order
    std::vector<std::vector<uint64_t>> output_shapes; ///< the graph's (inferred) shapes; empty: omitted
    std::vector<ReferenceTensor> outputs;             ///< one per output, to fill
    std::vector<hw::DType> output_dtypes;             ///< the graph's, one per output (float32 when not given)
    std::vector<std::optional<compiler::Quantization>> output_quants;  ///< the graph's, one per output

    bool has_input(size_t i) const { return i < inputs.size() && inputs[i].present; }
    int64_t int_attr(const std::string& name) const;
    double float_attr(const std::string& name) const;
    std::string string_attr(const std::string& name) const;
    bool has_attr(const std::string& name) const;
    std::vector<int64_t> ints_attr(const std::string& name) const;
    /// Input i's values as integers (axes, shapes, indices).
    std::vector<int64_t> ints(size_t i) const;
};

using OpReference = void (*)(OpEvaluation& evaluation);

/// The drain epilogue's stages between the bias and the activation (hardware/fabric_command.h)
/// on x with bound e: times a per-channel scale s (bound es), then plus a residual r (bound
/// er), each rounded to fp32 as the unfused Mul and Add are (u |result| more).
void drain_scale(double& x, double& e, double s, double es);
void drain_residual(double& x, double& e, double r, double er);
/// The drain's activation (the fused matmul's and conv_nhwc's) of x, in double.
double drain_activate(double x, compiler::Activation activation);
/// The bound after that activation, from the bound `e` of its argument x and y = act(x): the
/// argument's carried through the function's slope (at most 1.2 for both GELUs, 1.1 for SiLU,
/// 1 for tanh and relu, 1/4 for the sigmoid, taken as 1) plus the float function's own
/// rounding (both GELUs 4 u |x|, reference.h; tanh 4 u |y|, sigmoid and SiLU 8 u |y|, as the
/// vector engine's ops of the same names), less the final rounding u |y| the caller adds.
double drain_activation_bound(double e, double x, double y, compiler::Activation activation);

/// The reference of op kind `kind` (ONNX's name), nullptr when there is none.
OpReference op_reference(const std::string& kind);

/// Evaluates `e` under its tensors' element types (this header's "Element types"): a
/// quantized matmul or convolution in integers, bit-exact; any other op on its operands' real
/// values through its kind's reference, each output then stored as its type (store_as).
/// False when the kind has no reference.
bool evaluate(OpEvaluation& e);

/// The reference of a float evaluation `t` (of `shape`) stored as `type` (under `quant`):
/// float32 and int64 unchanged; bfloat16 and float16 their rounding added to the bound; int8
/// and int32 the stored integers, value the nearest's and [value - below, value + bound] every
/// one an fp32 evaluation within the bound can give. Sets t.type.
void store_as(ReferenceTensor& t, const std::vector<uint64_t>& shape, hw::DType type,
              const std::optional<compiler::Quantization>& quant);

}  // namespace kpu::cli
