// The fold-constants pass (docs/compiler.md, "Passes"): ops whose inputs are all known at
// compile time are evaluated then (const_eval.h) and their outputs become constants. Runs on
// the source ops, before composite expansion.
#pragma once

#include "compiler/graph.h"

namespace kpu::compiler {

/// Float results up to this many elements may be inline values (a graph without weights).
constexpr uint64_t kInlineFoldedFloats = 64;

/// The checked `graph` with every op evaluated whose inputs are all known (inline values, or
/// entries of `weights`; null: none) and that const_eval.h evaluates (Reshape, Squeeze,
/// Unsqueeze, Concat and Slice of vectors, Gather, Transpose, Add, Sub, Mul, Div, ...), unless
/// its output is a graph output. Its output becomes a constant: an integer one, or a float one
/// when `weights` is null and it has at most kInlineFoldedFloats elements, an inline value;
/// another float one an entry of `weights` named by the tensor (added). Float inputs are read
/// as float32 and the results rounded to float32: each op's one rounding, as the vector engine's
/// (add, sub, mul and div evaluated in double and rounded once give float32's bits). Ops it
/// cannot evaluate stay; the tensors nothing reads any more go, and so do their entries of
/// `weights` (a folded input, or a result folded on the way to another).
Graph fold_constants(const Graph& graph, Weights* weights);

}  // namespace kpu::compiler
