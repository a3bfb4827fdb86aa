// The command the vector engine of a compute tile executes: one function over a rows x cols
// fp32 tile in device memory (L1 or L2 of the tile). Shared by the compiler's binder (which
// will emit it) and the VectorEngine model (which executes it). No SystemC.
//
// Element-wise functions write y[r][c] = f(a[r][c], b[r][c]). Reductions, softmax and the
// norms work along each row (over its cols elements): a reduction writes one value per row,
// softmax and the norms a whole rows x cols tile. docs/models.md (Vector engine) gives each
// function's formula and its timing (hardware/vector_timing.h).
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include "hardware/enum_names.h"

namespace kpu::hw {

/// What the vector engine computes. ONNX names the operators these implement.
enum class VectorFunction : uint8_t {
    // Element-wise, one input.
    Copy,         ///< a
    Relu,         ///< max(a, 0)
    LeakyRelu,    ///< a < 0 ? alpha a : a
    Gelu,         ///< a/2 (1 + erf(a / sqrt 2))  (ONNX Gelu, approximate = none)
    GeluTanh,     ///< a/2 (1 + tanh(sqrt(2/pi) (a + 0.044715 a^3)))  (approximate = tanh)
    Sigmoid,      ///< 1 / (1 + e^-a)
    Silu,         ///< a sigmoid(a)  (no ONNX operator: Mul(x, Sigmoid(x)))
    Tanh,         ///< tanh a
    Exp,          ///< e^a
    Erf,          ///< erf a
    Sqrt,         ///< sqrt a
    Reciprocal,   ///< 1 / a
    Neg,          ///< -a
    Abs,          ///< |a|
    Clip,         ///< min(max(a, clip_min), clip_max)
    HardSigmoid,  ///< max(0, min(1, alpha a + beta))
    HardSwish,    ///< a max(0, min(1, a/6 + 1/2))
    // Element-wise, two inputs.
    Add,  ///< a + b
    Sub,  ///< a - b
    Mul,  ///< a b
    Div,  ///< a / b
    Max,  ///< max(a, b)
    Min,  ///< min(a, b)
    Pow,  ///< a^b
    // Along each row: one value per row.
    ReduceSum,   ///< sum of the row
    ReduceMean,  ///< sum of the row / cols
    ReduceMax,   ///< largest element of the row
    // Along each row: a whole tile.
    Softmax,    ///< e^(x - max x) / sum e^(x - max x), x = scale a (+ b) (masked: see causal)
    LayerNorm,  ///< (a - mean) / sqrt(variance + epsilon) (x weight) (+ bias)
    RmsNorm,    ///< a / sqrt(mean(a^2) + epsilon) (x weight) (+ bias)
};
/// As bound programs, traces and messages spell it.
inline constexpr EnumName<VectorFunction> kVectorFunctionNames[] = {
    {VectorFunction::Copy, "copy"},
    {VectorFunction::Relu, "relu"},
    {VectorFunction::LeakyRelu, "leaky_relu"},
    {VectorFunction::Gelu, "gelu"},
    {VectorFunction::GeluTanh, "gelu_tanh"},
    {VectorFunction::Sigmoid, "sigmoid"},
    {VectorFunction::Silu, "silu"},
    {VectorFunction::Tanh, "tanh"},
    {VectorFunction::Exp, "exp"},
    {VectorFunction::Erf, "erf"},
    {VectorFunction::Sqrt, "sqrt"},
    {VectorFunction::Reciprocal, "reciprocal"},
    {VectorFunction::Neg, "neg"},
    {VectorFunction::Abs, "abs"},
    {VectorFunction::Clip, "clip"},
    {VectorFunction::HardSigmoid, "hard_sigmoid"},
    {VectorFunction::HardSwish, "hard_swish"},
    {VectorFunction::Add, "add"},
    {VectorFunction::Sub, "sub"},
    {VectorFunction::Mul, "mul"},
    {VectorFunction::Div, "div"},
    {VectorFunction::Max, "max"},
    {VectorFunction::Min, "min"},
    {VectorFunction::Pow, "pow"},
    {VectorFunction::ReduceSum, "reduce_sum"},
    {VectorFunction::ReduceMean, "reduce_mean"},
    {VectorFunction::ReduceMax, "reduce_max"},
    {VectorFunction::Softmax, "softmax"},
    {VectorFunction::LayerNorm, "layer_norm"},
    {VectorFunction::RmsNorm, "rms_norm"},
};
inline const char* to_string(VectorFunction function) { return name_in(kVectorFunctionNames, function); }
inline bool parse_vector_function(const std::string& name, VectorFunction& out) {
    return value_in(kVectorFunctionNames, name, out);
}

/// How a function's output relates to its input tile.
enum class VectorShape : uint8_t {
    Elementwise,  ///< y is rows x cols, y[r][c] from a[r][c] (and b[r][c])
    Reduction,    ///< y is rows x 1: one value per row
    RowWise,      ///< y is rows x cols, each row from the whole row (softmax, the norms)
};

/// What a function takes and gives.
struct VectorFunctionTraits {
    VectorShape shape = VectorShape::Elementwise;
    bool takes_b = false;  ///< a second input is allowed
    bool needs_b = false;  ///< a second input is required
    bool takes_weight_bias = false;  ///< per-column weight and bias vectors are allowed
};

inline constexpr VectorFunctionTraits traits_of(VectorFunction f) {
    switch (f) {
        case VectorFunction::Add: case VectorFunction::Sub: case VectorFunction::Mul: case VectorFunction::Div:
        case VectorFunction::Max: case VectorFunction::Min: case VectorFunction::Pow:
            return {VectorShape::Elementwise, true, true, false};
        case VectorFunction::ReduceSum: case VectorFunction::ReduceMean: case VectorFunction::ReduceMax:
            return {VectorShape::Reduction, false, false, false};
        case VectorFunction::Softmax: return {VectorShape::RowWise, true, false, false};
        case VectorFunction::LayerNorm: case VectorFunction::RmsNorm: return {VectorShape::RowWise, false, false, true};
        default: return {VectorShape::Elementwise, false, false, false};
    }
}

/// How an input's values map onto the rows x cols tile (ONNX multidirectional broadcasting,
/// after the compiler has folded the leading dimensions into rows).
enum class Broadcast : uint8_t {
    None,    ///< a rows x cols tile, rows `ld` elements apart
    Scalar,  ///< one value for every element
    Row,     ///< a row vector of cols contiguous values, the same for every row
    Column,  ///< a column vector of rows values, `ld` elements apart, one per row
};
/// As bound programs, traces and messages spell it.
inline constexpr EnumName<Broadcast> kBroadcastNames[] = {
    {Broadcast::None, "none"}, {Broadcast::Scalar, "scalar"}, {Broadcast::Row, "row"}, {Broadcast::Column, "column"}};
inline const char* to_string(Broadcast broadcast) { return name_in(kBroadcastNames, broadcast); }

/// One input or the output of a VectorCommand: fp32 values in device memory.
struct VectorOperand {
    uint64_t addr = 0;  ///< device address (L1 or L2 of the engine's tile) of its first element
    uint32_t ld = 0;    ///< elements between rows (None: >= cols; Column: between values, >= 1)
    Broadcast broadcast = Broadcast::None;  ///< inputs only; the output is never broadcast
};

/// y = function(a [, b]) over a rows x cols tile.
struct VectorCommand {
    VectorFunction function = VectorFunction::Copy;
    uint32_t rows = 0;  ///< of the tile (both >= 1)
    uint32_t cols = 0;  ///< the reduced axis of reductions, softmax and the norms
    VectorOperand a;    ///< first input; broadcast only for element-wise functions
    bool has_b = false;  ///< a second input: required by Add .. Pow, an additive mask for Softmax
    VectorOperand b;     ///< second input when has_b
    /// Where the result goes: rows x cols (Elementwise, RowWise) or rows x 1, one value per row
    /// `y.ld` elements apart (Reduction); broadcast must be None.
    VectorOperand y;
    bool has_weight = false;  ///< LayerNorm, RmsNorm: multiply by a per-column weight
    uint64_t weight = 0;      ///< cols contiguous values when has_weight
    bool has_bias = false;    ///< LayerNorm, RmsNorm: add a per-column bias
    uint64_t bias = 0;        ///< cols contiguous values when has_bias
    // Parameters: the compiler sets them from the ONNX attributes (defaults in parentheses).
    float alpha = 0;     ///< LeakyRelu's slope, HardSigmoid's alpha (ONNX defaults 0.01, 0.2)
    float beta = 0;      ///< HardSigmoid's beta (ONNX default 0.5)
    float epsilon = 0;   ///< LayerNorm, RmsNorm: added to the variance (ONNX default 1e-5)
    float clip_min = -std::numeric_limits<float>::infinity();  ///< Clip's lower bound (default none)
    float clip_max = std::numeric_limits<float>::infinity();   ///< Clip's upper bound (default none)
    float scale = 1;     ///< Softmax: the input is scale a (+ b), e.g. 1 / sqrt(head size)
    /// Softmax: element (r, c) is masked out (weight 0) where c > r + causal_offset; a row
    /// with every element masked gives zeros. A causal attention tile starting at query q0
    /// and key k0 has causal_offset = q0 - k0.
    bool causal = false;
    int64_t causal_offset = 0;  ///< with causal: the diagonal's column offset
};

namespace detail {

/// Why input `name` cannot feed `function`'s rows x cols tile, "" when it can.
inline std::string input_problem(const char* name, const VectorOperand& in, const VectorCommand& c,
                                 bool may_broadcast) {
    if (in.broadcast != Broadcast::None && !may_broadcast)
        return std::string(name) + " cannot broadcast for " + to_string(c.function) + " (it is " +
               to_string(in.broadcast) + ")";
    switch (in.broadcast) {
        case Broadcast::None:
            if (in.ld < c.cols)
                return std::string(name) + ".ld " + std::to_string(in.ld) + " < cols " + std::to_string(c.cols);
            return "";
        case Broadcast::Column:
            if (in.ld == 0)
                return std::string(name) + ".ld is 0 for a column vector (1 when its values are contiguous)";
            return "";
        case Broadcast::Scalar:
        case Broadcast::Row: return "";
    }
    return std::string(name) + ": unknown broadcast " + std::to_string(int(in.broadcast));
}

}  // namespace detail

/// Why `command` cannot run (its shape, pitches, inputs or parameters), "" when it can.
/// Addresses are not checked here: the engine finds those it cannot read or write.
inline std::string vector_command_problem(const VectorCommand& c) {
    const char* function = to_string(c.function);
    if (std::string(function) == "?") return "unknown function " + std::to_string(int(c.function));
    if (c.rows == 0 || c.cols == 0)
        return std::string("empty tile (") + std::to_string(c.rows) + " x " + std::to_string(c.cols) + ")";
    const VectorFunctionTraits traits = traits_of(c.function);
    const bool elementwise = traits.shape == VectorShape::Elementwise;
    if (std::string why = detail::input_problem("a", c.a, c, elementwise); !why.empty()) return why;
    if (c.has_b && !traits.takes_b) return std::string(function) + " takes one input (has_b is set)";
    if (!c.has_b && traits.needs_b) return std::string(function) + " needs a second input (has_b is not set)";
    // Softmax's b is an additive mask: any broadcast of it is a mask too.
    if (c.has_b)
        if (std::string why = detail::input_problem("b", c.b, c, true); !why.empty()) return why;
    if (c.y.broadcast != Broadcast::None)
        return std::string("y cannot broadcast (it is ") + to_string(c.y.broadcast) + ")";
    const uint32_t y_cols = traits.shape == VectorShape::Reduction ? 1 : c.cols;
    if (c.y.ld < y_cols) return "y.ld " + std::to_string(c.y.ld) + " < " + std::to_string(y_cols);
    if ((c.has_weight || c.has_bias) && !traits.takes_weight_bias)
        return std::string("weight and bias are for layer_norm and rms_norm, not ") + function;
    if (c.causal && c.function != VectorFunction::Softmax) return std::string("causal is for softmax, not ") + function;
    return "";
}

}  // namespace kpu::hw
