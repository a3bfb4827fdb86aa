// The fold-batchnorm pass (docs/compiler.md, "Passes"): an inference BatchNormalization after
// a Conv folded into the conv's weights and bias. Runs on the source ops, before composite
// expansion.
#pragma once

#include "compiler/graph.h"

namespace kpu::compiler {

/// The checked `graph` with each BatchNormalization (training_mode 0, only Y used) whose X is a
/// Conv's output that nothing else reads (and no graph output), whose scale, B, input_mean and
/// input_var and the conv's W and B (if any) are known (inline, or entries of `weights`), folded
/// into that Conv: with s = scale / sqrt(var + epsilon) (epsilon as float32, as the unfolded
/// graph rounds it),
///   W'[co, ...] = W[co, ...] s[co],   B'[co] = (B[co] - mean[co]) s[co] + beta[co]
/// evaluated in double and rounded once to float32: new constants named derived_tensor_name
/// (conv, "folded_W") and (conv, "folded_B"), entries of `weights`, or inline values when
/// `weights` is null (then only up to kInlineFoldedFloats elements each). The Conv writes the
/// BN's Y and lists the BN in fused_with. Different rounding from the unfolded graph: within
/// the reference's tolerance, not the same bits. Values not known: not folded (graph JSON with
/// the parameters as inputs). The weights of the folded parameters nothing else reads go.
Graph fold_batchnorm(const Graph& graph, Weights* weights);

}  // namespace kpu::compiler
