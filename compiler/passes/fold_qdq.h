// The fold-qdq pass (docs/compiler.md, "Passes"; docs/graph-format.md, Quantization): a
// quantized ONNX model's QuantizeLinear / DequantizeLinear pairs (the QDQ form) folded into the
// ops between them, which then compute on the int8 tensors directly. Runs on the source ops,
// before unit choice and composite expansion.
#pragma once

#include <string>
#include <vector>

#include "compiler/graph.h"

namespace kpu::compiler {

/// The checked `graph` with:
///  (a) a Conv, MatMul or Gemm whose A is DequantizeLinear(x) (x int8, quantized per tensor) and
///      whose B is DequantizeLinear(W) (W an int8 constant quantized per tensor or per output
///      channel with equal zero points), its bias (if any) DequantizeLinear of an int32 constant
///      or a float32 constant, reading x and W directly and the bias as int32 at scale
///      s_x s_w[c] (a float bias quantized there, round half to even: a new constant
///      derived_tensor_name(op, "bias_int32"), an entry of `weights`, inline when null). When
///      its output's one reader is a QuantizeLinear, or a Relu whose one reader is one, the op
///      writes that QuantizeLinear's int8 output (the Relu stays, on int8 with that quant);
///      else it writes its float32 output (the dequantized result, int8 compute).
///  (b) every other op the vector engine runs as it is (elementwise, activations, pools, norms,
///      softmax, reductions) reading DequantizeLinear outputs of per-tensor quantized int8
///      tensors as those tensors, and writing the int8 output of a QuantizeLinear that is its
///      output's one reader.
///  (c) QuantizeLinear(DequantizeLinear(x)) with x's quant for the result read as x.
/// A DequantizeLinear whose output other ops still read stays for them; a QuantizeLinear
/// folded into its producer is listed in that op's fused_with. What it folds and what it
/// leaves and why go to `notes` when given (kpu-compile -v). The graph itself when nothing
/// folds.
Graph fold_qdq(const Graph& graph, Weights* weights, std::vector<std::string>* notes);

}  // namespace kpu::compiler
