// The matmul family: "matmul" (our fused C = activation(A @ B (+ bias)), what the fabric's
// drain executes and what the tiler, DFX and binder lower), ONNX's MatMul (numpy batch
// broadcasting; lowers at rank 2) and Gemm (lowers when it is a matmul plus a bias row).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "compiler/graph.h"

namespace kpu::compiler {

/// A lowerable matmul-family op as the tiler sees it: C[M,N] = activation(A[M,K] @ B[K,N]
/// (+ bias[N])), row-major.
struct MatmulOperands {
    uint32_t a = 0, b = 0, c = 0;   ///< tensor indices
    std::optional<uint32_t> bias;   ///< tensor index of bias[N]
    Activation activation = Activation::None;
    uint64_t m = 0, n = 0, k = 0;   ///< the dimensions
};

/// Op `op` of a checked graph as a matmul; throws CompileError for an op that does not lower
/// onto one (require_lowerable() has refused those before any lowering).
MatmulOperands matmul_operands(const Graph& graph, uint32_t op);
MatmulOperands matmul_operands(const Graph& graph, const Op& op);

/// The fused form: C = activation(A @ B (+ bias)).
Op make_matmul(std::string name, uint32_t a, uint32_t b, uint32_t c, std::optional<uint32_t> bias = std::nullopt,
               Activation activation = Activation::None);

}  // namespace kpu::compiler
