// The command the vector engine of a compute tile executes: one function over a rows x cols
// fp32 tile in device memory (L1 or L2 of the tile). Shared by the compiler's binder (which
// will emit it) and the VectorEngine model (which executes it). No SystemC.
//
// Element-wise functions write y[r][c] = f(a[r][c], b[r][c]). Reductions, softmax and the
// norms work along each row (over its cols elements): a reduction writes one value per row,
// softmax and the norms a whole rows x cols tile. Window functions (pooling, the depthwise
// convolution, nearest resize) see each row as a plane of in_h x in_w elements and write a
// plane of out_h x out_w per row (VectorWindow). docs/models.md (Vector engine) gives each
// function's formula and its timing (hardware/vector_timing.h).
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include "hardware/enum_names.h"
#include "hardware/numeric.h"

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
    // Over each row seen as a plane (VectorWindow): a plane of out_h x out_w per row.
    MaxPool,        ///< max of the window's taps inside the plane (ONNX MaxPool)
    AveragePool,    ///< sum of the taps inside the plane / their count (count_include_pad: / taps inside the padded plane)
    DepthwiseConv,  ///< sum of tap x the row's channel's kH x kW weight (+ the channel's bias); pads read 0
    ResizeNearest,  ///< y[oh][ow] = a[oh / scale_h][ow / scale_w] (ONNX Resize, nearest, integer scales)
    // Flash attention's online softmax (a block of scores at a time), with per-row statistics
    // at `state`: the running max m, the running sum l and the correction c, `rows` values each.
    OnlineSoftmax,     ///< x = scale a (+ b) (masked: see causal); m' = max(m, max x); c = e^(m - m'); l = c l + sum e^(x - m'); y = e^(x - m')
    OnlineAccumulate,  ///< y = c y + a (c per row, from state); online_first: y = a
    OnlineFinish,      ///< y = a / l (l per row, from state); a row whose l is 0 (every score masked) gives zeros
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
    {VectorFunction::MaxPool, "max_pool"},
    {VectorFunction::AveragePool, "average_pool"},
    {VectorFunction::DepthwiseConv, "depthwise_conv"},
    {VectorFunction::ResizeNearest, "resize_nearest"},
    {VectorFunction::OnlineSoftmax, "online_softmax"},
    {VectorFunction::OnlineAccumulate, "online_accumulate"},
    {VectorFunction::OnlineFinish, "online_finish"},
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
    Window,       ///< y is rows x (out_h out_w), each row a plane from the row's plane (VectorWindow)
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
        case VectorFunction::MaxPool: case VectorFunction::AveragePool: case VectorFunction::ResizeNearest:
            return {VectorShape::Window, false, false, false};
        case VectorFunction::DepthwiseConv: return {VectorShape::Window, false, false, true};
        case VectorFunction::OnlineSoftmax: return {VectorShape::RowWise, true, false, false};
        case VectorFunction::OnlineAccumulate: case VectorFunction::OnlineFinish:
            return {VectorShape::RowWise, false, false, false};
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

/// One input or the output of a VectorCommand in device memory. Inputs are read into float32
/// by their encoding, the function computes in float32, the output is stored by its encoding
/// (hardware/numeric.h load_element / store_element).
struct VectorOperand {
    /// {addr, ld} and the like: the fields in order, the rest their defaults.
    VectorOperand(uint64_t addr_ = 0, uint32_t ld_ = 0, Broadcast broadcast_ = Broadcast::None, Encoding encoding_ = {})
        : addr(addr_), ld(ld_), broadcast(broadcast_), encoding(encoding_) {}
    uint64_t addr = 0;  ///< device address (L1 or L2 of the engine's tile) of its first element
    uint32_t ld = 0;    ///< elements between rows (None: >= cols; Column: between values, >= 1)
    Broadcast broadcast = Broadcast::None;  ///< inputs only; the output is never broadcast
    Encoding encoding;  ///< element type (and int8 quantization) in memory
};

/// The geometry of a window function: row r of the tile is a plane of in_h x in_w elements
/// (cols = in_h in_w, row-major), row r of y a plane of out_h x out_w. Output (oh, ow) looks
/// at the taps (oh stride_h - pad_top + i dilation_h, ow stride_w - pad_left + j dilation_w),
/// i < kernel_h, j < kernel_w; taps outside the plane are padding (ONNX's pads).
struct VectorWindow {
    uint32_t in_h = 0, in_w = 0;    ///< the input plane
    uint32_t out_h = 0, out_w = 0;  ///< the output plane
    uint32_t kernel_h = 1, kernel_w = 1;
    uint32_t stride_h = 1, stride_w = 1;
    uint32_t dilation_h = 1, dilation_w = 1;
    uint32_t pad_top = 0, pad_left = 0;     ///< padding before the plane (the first tap's offset)
    uint32_t pad_bottom = 0, pad_right = 0; ///< after it: bounds the padded plane average_pool counts
    bool count_include_pad = false;  ///< average_pool: divide by the taps inside the padded plane (else inside the plane)
    /// depthwise_conv: the weight holds `channels` kernel_h x kernel_w planes and the bias
    /// `channels` values; row r uses channel (first_plane + r) mod channels (planes are N C in order).
    uint32_t channels = 1;
    uint32_t first_plane = 0;  ///< depthwise_conv: the plane index of the tile's row 0
    uint32_t scale_h = 1, scale_w = 1;  ///< resize_nearest: out_h = in_h scale_h, out_w = in_w scale_w
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
    bool has_weight = false;  ///< LayerNorm, RmsNorm: multiply by a per-column weight; DepthwiseConv: required
    uint64_t weight = 0;      ///< weight_elements() contiguous values when has_weight
    bool has_bias = false;    ///< LayerNorm, RmsNorm: add a per-column bias; DepthwiseConv: a per-channel bias
    uint64_t bias = 0;        ///< bias_elements() contiguous values when has_bias
    VectorWindow window;      ///< window functions (VectorShape::Window): the planes' geometry
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
    /// The online functions (flash attention): the row statistics, 3 rows contiguous values
    /// (m, then l, then c), read and written in place. OnlineSoftmax with online_first starts
    /// from m = -infinity, l = 0 instead of reading them; OnlineAccumulate with it writes a.
    uint64_t state = 0;
    bool online_first = false;
};

/// Whether `function` reads (and OnlineSoftmax writes) the row statistics at VectorCommand::state.
inline constexpr bool uses_state(VectorFunction function) {
    return function == VectorFunction::OnlineSoftmax || function == VectorFunction::OnlineAccumulate ||
           function == VectorFunction::OnlineFinish;
}

/// Elements of one row of y: 1 for a reduction, out_h out_w for a window function, else cols.
inline uint64_t y_cols(const VectorCommand& c) {
    switch (traits_of(c.function).shape) {
        case VectorShape::Reduction: return 1;
        case VectorShape::Window: return uint64_t(c.window.out_h) * c.window.out_w;
        default: return c.cols;
    }
}
/// Values of the weight: channels kernel_h kernel_w for depthwise_conv, else cols.
inline uint64_t weight_elements(const VectorCommand& c) {
    if (c.function != VectorFunction::DepthwiseConv) return c.cols;
    return uint64_t(c.window.channels) * c.window.kernel_h * c.window.kernel_w;
}
/// Values of the bias: channels for depthwise_conv, else cols.
inline uint64_t bias_elements(const VectorCommand& c) {
    return c.function == VectorFunction::DepthwiseConv ? c.window.channels : c.cols;
}

namespace detail {

/// Why window function `c`'s geometry does not hold, "" when it does.
inline std::string window_problem(const VectorCommand& c) {
    const VectorWindow& w = c.window;
    const auto n = [](uint64_t v) { return std::to_string(v); };
    if (w.in_h == 0 || w.in_w == 0 || w.out_h == 0 || w.out_w == 0)
        return "an empty plane (" + n(w.in_h) + " x " + n(w.in_w) + " in, " + n(w.out_h) + " x " + n(w.out_w) + " out)";
    if (uint64_t(w.in_h) * w.in_w != c.cols)
        return "cols " + n(c.cols) + " is not the plane's " + n(w.in_h) + " x " + n(w.in_w);
    if (c.function == VectorFunction::ResizeNearest) {
        if (w.scale_h == 0 || w.scale_w == 0 || uint64_t(w.in_h) * w.scale_h != w.out_h ||
            uint64_t(w.in_w) * w.scale_w != w.out_w)
            return "the output plane " + n(w.out_h) + " x " + n(w.out_w) + " is not the input's " + n(w.in_h) + " x " +
                   n(w.in_w) + " times the scales " + n(w.scale_h) + " x " + n(w.scale_w);
        return "";
    }
    if (w.kernel_h == 0 || w.kernel_w == 0 || w.stride_h == 0 || w.stride_w == 0 || w.dilation_h == 0 ||
        w.dilation_w == 0)
        return "a kernel, stride or dilation of 0 (kernel " + n(w.kernel_h) + " x " + n(w.kernel_w) + ", strides " +
               n(w.stride_h) + " x " + n(w.stride_w) + ", dilations " + n(w.dilation_h) + " x " + n(w.dilation_w) + ")";
    // Every output's window starts inside the plane or its leading padding.
    if (uint64_t(w.out_h - 1) * w.stride_h >= uint64_t(w.in_h) + w.pad_top ||
        uint64_t(w.out_w - 1) * w.stride_w >= uint64_t(w.in_w) + w.pad_left)
        return "the output plane " + n(w.out_h) + " x " + n(w.out_w) + " has windows that start past the input's " +
               n(w.in_h) + " x " + n(w.in_w) + " (pads " + n(w.pad_top) + ", " + n(w.pad_left) + ")";
    if (c.function == VectorFunction::DepthwiseConv) {
        if (!c.has_weight) return "depthwise_conv needs a weight (has_weight is not set)";
        if (w.channels == 0) return "depthwise_conv with 0 channels";
    }
    return "";
}

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
    const uint64_t out_cols = y_cols(c);
    if (c.y.ld < out_cols) return "y.ld " + std::to_string(c.y.ld) + " < " + std::to_string(out_cols);
    if ((c.has_weight || c.has_bias) && !traits.takes_weight_bias)
        return std::string("weight and bias are for layer_norm and rms_norm, not ") + function;
    if (traits.shape == VectorShape::Window)
        if (std::string why = detail::window_problem(c); !why.empty()) return why;
    if (c.causal && c.function != VectorFunction::Softmax && c.function != VectorFunction::OnlineSoftmax)
        return std::string("causal is for softmax, not ") + function;
    return "";
}

}  // namespace kpu::hw
