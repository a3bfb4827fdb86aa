// The fuse-epilogue pass (docs/compiler.md, "Passes"): a bias Add and an activation after a
// matmul become the drain's epilogue of the fused matmul, C = act(A @ B + bias), so their
// operand C never goes to DRAM and back. Runs on the lowered graph (after composite
// expansion, the layout pass and long rows).
#pragma once

#include "compiler/graph.h"

namespace kpu::compiler {

/// The checked, lowerable `graph` with each matmul whose result only one op reads, and that
/// op is
///   - an Add of a row vector [N] (the bias, when the matmul has none and no activation yet), or
///   - an activation the drain computes with the vector engine's own function (Relu, Gelu
///     with either approximation, Sigmoid, Silu, Tanh; when the matmul has none yet),
/// made one fused matmul (kind "matmul", the producer's name, `fused_with` + the absorbed op's
/// name) writing that op's output, repeatedly (Add then Relu: both). The producer is a fused
/// matmul, a MatMul of two matrices, or a Gemm without transposes with alpha = beta = 1 (what
/// the fused form computes bit for bit). The result is the same bits as the unfused ops:
/// the drain adds the bias and applies the function in the vector engine's order. A conv_nhwc
/// likewise takes an activation that reads its result (through views nothing else reads): its
/// "activation" attribute, the activation's readers then reading the view.
Graph fuse_epilogue(const Graph& graph);

}  // namespace kpu::compiler
