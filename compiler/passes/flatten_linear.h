// Linear layers as exported ONNX spells them, a MatMul of a [..., K] activation by a [K, N]
// matrix (part of the fuse-epilogue pass; docs/compiler.md, "Passes"), made a matmul of two
// matrices between views, so that fuse-epilogue and fuse-ffn, which take matrices, take them.
// Runs on the lowered graph, before fuse-epilogue.
#pragma once

#include "compiler/graph.h"

namespace kpu::compiler {

/// The checked, lowerable `graph` with each float32 MatMul of A [d0, ..., K] (rank 3 or more) by
/// B [K, N] made Reshape A to [P, K] (P = d0 d1 ..., a view) -> MatMul [P, N] -> Reshape back
/// (a view): the same sums in the same order, the same bits. The ops after it that read only
/// their predecessor move onto the 2-D result with it, before the view back: an Add of a row
/// vector [N] (the bias; at most one), then activations the drain computes (Relu, Gelu,
/// Sigmoid, Silu, Tanh).
/// A result that is a graph output stops the move there. A linear is left as it is when
/// nothing moves onto its matrix, it reads no flattened linear's result and no linear reads its
/// own: no fusion would take it.
Graph flatten_linear(const Graph& graph);

/// Every MatMul of an int8 A [d0, ..., K] (rank 3 or more) by a [K, N] matrix made the same
/// views around an int8 product of two matrices, the only int8 MatMul the fabric lowers; at
/// every level (a lowering, not an optimization), before require_lowerable.
Graph flatten_quantized_linears(const Graph& graph);

}  // namespace kpu::compiler
