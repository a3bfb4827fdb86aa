// The commands the systolic fabric of a compute tile executes. Shared by the compiler's binder
// (which emits them) and the SystolicFabric model (which executes them). No SystemC.
#pragma once

#include <cstdint>
#include <string>

#include "hardware/enum_names.h"
#include "hardware/numeric.h"

namespace kpu::hw {

/// The drain's epilogue after the bias (DrainCommand): the vector engine's functions of the
/// same names (hardware/scalar_functions.h), so a fused activation gives the same bits. "gelu"
/// is the tanh approximation (the fused matmul's original GELU), "gelu_erf" ONNX's default Gelu.
enum class Activation : uint8_t { None, Relu, Gelu, GeluErf, Sigmoid, Silu, Tanh };
/// As graphs, bound programs and traces spell it.
inline constexpr EnumName<Activation> kActivationNames[] = {
    {Activation::None, "none"},         {Activation::Relu, "relu"},       {Activation::Gelu, "gelu"},
    {Activation::GeluErf, "gelu_erf"}, {Activation::Sigmoid, "sigmoid"}, {Activation::Silu, "silu"},
    {Activation::Tanh, "tanh"}};
inline const char* to_string(Activation activation) { return name_in(kActivationNames, activation); }
inline bool parse_activation(const std::string& name, Activation& out) { return value_in(kActivationNames, name, out); }

/// C[m x n] (+)= A[m x k] * B[k x n] on the fabric of the op's compute tile, row-major operands
/// in that tile's L1 of element type `type`: float32, bfloat16 and float16 multiply exactly
/// into float32 accumulators; int8 computes (a - a_zero)(b - b_zero) into int32 accumulators. The fabric has one accumulator set: a C tile stays in it
/// across the k steps until a Drain. The accumulators start from zero, from what they hold
/// (accumulate), or from a C tile in L1 (load_c: the partial sum of an earlier K pass).
struct MatmulCommand {
    uint64_t a = 0, b = 0;      ///< device addresses in L1
    uint32_t lda = 0, ldb = 0;  ///< row pitch in elements
    uint32_t m = 0, n = 0, k = 0;
    bool accumulate = false;    ///< keep the accumulators (false: zero, or load_c)
    bool load_c = false;        ///< start from c[m x n] in L1 (not with accumulate)
    uint64_t c = 0;             ///< device address in L1 when load_c
    uint32_t ldc = 0;           ///< its row pitch in elements
    DType type = DType::Float32;  ///< of A and B (and the accumulators: int32 for int8, else float32)
    int32_t a_zero = 0, b_zero = 0;  ///< int8: the zero points subtracted from A's and B's elements
};

/// Accumulators -> memory (L1 of the tile) through the epilogue, each stage optional, in this
/// order: t = alpha acc + beta bias[n]; t = t * scale[n] (a per-output-channel multiplier);
/// t = t + residual[m x n] (a tensor of C's shape: a skip connection); then activation (alpha
/// and beta are Gemm's; 1 leaves the sum and the bias exactly as they are). Each stage rounds to
/// fp32 as the unfused op would, so a fused Mul, Add and activation give the same bits. The
/// activations are hardware/scalar_functions.h's (GELU "gelu" is the tanh approximation
/// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), "gelu_erf" the erf form).
/// After int8 matmuls the accumulators are int32: t = float32(acc + bias[n]) (bias int32,
/// alpha and beta 1), then the scale (the requantization multiplier), residual and activation
/// stages in float32. The store writes t as `out_type`: float types round to nearest even;
/// int8 writes saturate(round_half_even(t) + out_zero) (the scale already put t in C's steps).
struct DrainCommand {
    uint64_t c = 0;        ///< device address in L1
    uint32_t ldc = 0;      ///< row pitch in elements
    uint32_t m = 0, n = 0;
    bool has_bias = false;
    uint64_t bias = 0;     ///< n values in L1 when has_bias: float32, int32 after int8 matmuls
    Activation activation = Activation::None;
    float alpha = 1.0f;    ///< scales the accumulators
    float beta = 1.0f;     ///< scales the bias
    bool has_scale = false;
    uint64_t scale = 0;    ///< n fp32 per-column multipliers in L1 when has_scale
    bool has_residual = false;
    uint64_t residual = 0; ///< m x n fp32 values in L1 added after the scale, when has_residual
    uint32_t ldr = 0;      ///< the residual's row pitch in elements
    DType out_type = DType::Float32;  ///< C's element type: float32, bfloat16, float16 or int8
    int32_t out_zero = 0;  ///< int8 C: the zero point added after rounding
};

}  // namespace kpu::hw
