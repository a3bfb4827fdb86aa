// The matmul family: "matmul" (our fused C = activation(A @ B (+ bias)), what the fabric's
// drain executes and what the tiler, DFX and binder lower), ONNX's MatMul (numpy batch
// broadcasting: one matmul per C matrix, or one tall one when B is shared) and Gemm (either
// operand transposed, alpha and beta, plus a bias row).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "compiler/graph.h"

namespace kpu::compiler {

/// A 2-D convolution as the fabric runs it (conv_nhwc, what ONNX's Conv expands into): per
/// image and group an implicit GEMM [OH OW, kH kW Cg] x [kH kW Cg, Cog] whose A (the im2col
/// patch matrix) is never stored: A's row for output pixel (oh, ow) and column (kh, kw, c) is
/// input pixel (oh stride_h + kh dilation_h - pad_top, ow stride_w + kw dilation_w - pad_left),
/// channel c, or 0 outside the image (docs/compiler.md, "Convolution").
struct ConvGeometry {
    uint64_t h = 0, w = 0, cg = 0;   ///< input rows, columns, channels per group
    uint64_t groups = 1;
    uint64_t kh = 0, kw = 0;         ///< kernel taps
    uint64_t oh = 0, ow = 0;         ///< output rows, columns
    uint64_t stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
    uint64_t pad_top = 0, pad_left = 0;

    /// A run of input rows.
    struct Rows {
        uint64_t first = 0;  ///< the first input row
        uint64_t count = 0;  ///< rows (0: none)
    };
    /// The input rows (of one image and group) that output pixels [p0, p1) read, clamped to
    /// the image: what the task holding them keeps in L3. count 0: they read only padding.
    Rows region(uint64_t p0, uint64_t p1) const;
    /// The most input pixels the region of any `pixels` consecutive output pixels holds.
    uint64_t max_region_pixels(uint64_t pixels) const;
};

/// A lowerable matmul-family op as the tiler sees it: `batch` times C[M,N] = activation(A[M,K]
/// @ B[K,N] (+ bias[N]) (* scale[N]) (+ residual[M,N])), row-major (the drain's epilogue,
/// hardware/fabric_command.h). Each operand is seen in its 2D view (a tensor of rank 2 or
/// more as rows of its last dim, a smaller one as one row); matrix t of an operand starts at
/// row a_row(t) / b_row(t) / c_row(t) of its view. A transposed operand is stored transposed
/// (A as [K, M], B as [N, K]): its regions are read in that layout and transposed on chip.
struct MatmulOperands {
    uint32_t a = 0, b = 0, c = 0;   ///< tensor indices
    std::optional<uint32_t> bias;   ///< tensor index of bias[N]
    std::optional<uint32_t> scale;  ///< tensor index of scale[N] (a conv's [G, Cog], row bias_row()), the drain's multiplier
    std::optional<uint32_t> residual;  ///< tensor index of the residual, C's shape: added after the scale
    Activation activation = Activation::None;
    uint64_t m = 0, n = 0, k = 0;   ///< the dimensions of one matrix
    uint64_t batch = 1;             ///< C matrices (MatMul's batch dims; 1 when B is shared and A's fold into m)
    bool trans_a = false;           ///< A stored as [K, M] (Gemm's transA)
    bool trans_b = false;           ///< B stored as [N, K] (Gemm's transB)
    float alpha = 1.0f;             ///< Gemm's alpha: C = alpha A @ B + beta bias
    float beta = 1.0f;              ///< Gemm's beta
    uint32_t batch_rank = 0;        ///< batch dims of C (0: one matrix)
    std::array<uint64_t, kMaxRank> batch_shape{};  ///< C's batch dims, outermost first
    std::array<uint64_t, kMaxRank> a_step{}, b_step{};  ///< matrices of A / B one step along each skips (0: broadcast)
    /// A convolution (conv_nhwc): A is its input [N, G, H, W, Cg] (matrix t = image t / G,
    /// group t % G: H W rows of Cg), B its weights [G, kH, kW, Cg, Cog], bias [G, Cog].
    std::optional<ConvGeometry> conv;
    /// The operands' element types (a quantized matmul's int8 A and B and int32 bias; the
    /// scale row is float32): each buffer and transfer of an operand moves elements of its type.
    DType a_type = DType::Float32, b_type = DType::Float32, c_type = DType::Float32;
    DType bias_type = DType::Float32, scale_type = DType::Float32, residual_type = DType::Float32;
    /// Whether the fabric's accumulators (int32 for int8 A and B, float32 otherwise) differ
    /// from C's storage: then a C tile cannot go back to L3 as a partial sum between K passes,
    /// and K runs in one pass.
    bool one_k_pass() const { return a_type == DType::Int8 || c_type != DType::Float32; }

    /// First row of A's / B's / C's matrix for C matrix `t`, in the operand's 2D view.
    uint64_t a_row(uint64_t t) const {
        return conv ? t * conv->h * conv->w : matrix_index(t, a_step) * (trans_a ? k : m);
    }
    /// The bias row of C matrix `t` (a convolution's group; 0 otherwise).
    uint64_t bias_row(uint64_t t) const { return conv ? t % conv->groups : 0; }
    uint64_t b_row(uint64_t t) const { return matrix_index(t, b_step) * (trans_b ? n : k); }
    uint64_t c_row(uint64_t t) const { return t * m; }

private:
    uint64_t matrix_index(uint64_t t, const std::array<uint64_t, kMaxRank>& step) const {
        uint64_t index = 0;
        for (uint32_t d = batch_rank; d-- > 0; t /= batch_shape[d]) index += t % batch_shape[d] * step[d];
        return index;
    }
};

/// Op `op` of a checked graph as a matmul; throws CompileError for an op that does not lower
/// onto one (require_lowerable() has refused those before any lowering).
MatmulOperands matmul_operands(const Graph& graph, uint32_t op);
MatmulOperands matmul_operands(const Graph& graph, const Op& op);

/// A conv_nhwc as the implicit GEMM the fabric runs (ops/conv.cpp); matmul_operands() gives it too.
MatmulOperands conv_operands(const Graph& graph, const Op& op);

class InferContext;
/// Fails `c` unless the op's attribute "activation" names a drain Activation (the fused
/// matmul's and conv_nhwc's, which the fuse-epilogue pass sets).
void need_activation(InferContext& c);
/// The op's "activation" attribute (none when absent) of a checked op.
Activation activation_of(const Op& op);

/// The fused form: C = activation((A @ B (+ bias)) (* scale) (+ residual)).
Op make_matmul(std::string name, uint32_t a, uint32_t b, uint32_t c, std::optional<uint32_t> bias = std::nullopt,
               Activation activation = Activation::None, std::optional<uint32_t> scale = std::nullopt,
               std::optional<uint32_t> residual = std::nullopt);

/// The drain epilogue's operands of a matmul or conv_nhwc op: its inputs 3 (scale) and 4
/// (residual), when present.
void epilogue_operands(const Op& op, MatmulOperands& out);

}  // namespace kpu::compiler
