// The precision passes (docs/quantization.md): a checked float32 source graph (ONNX kinds)
// rewritten to run its matmuls and convolutions in bfloat16, float16 or int8. They run before
// compile(); the graph they return is checked by it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "compiler/graph.h"
#include "hardware/config.h"

namespace kpu::compiler {

/// Calibrated quantizations by tensor name: per tensor for activations, per output channel
/// (along the weight's output-channel axis, zero points 0) for the weights the MAC ops read.
using QuantTable = std::map<std::string, Quantization>;

/// Per tensor of the checked `graph`: whether it follows from the constants alone (a constant,
/// or what ops compute from such tensors only): a weight, not an activation.
std::vector<bool> constant_derived(const Graph& graph);

/// `graph` with its activations in `type` (bfloat16 or float16): every float32 tensor an op
/// computes from the graph's inputs becomes `type`; each float32 graph input is read through a
/// Cast to `type` ("<input>.cast") and each graph output written by a Cast from a `type` tensor
/// ("<op>.<output>"), so that inputs and outputs stay float32. The A / X and B / W operands of
/// every Conv, MatMul and Gemm become `type`: a constant one (inline or in `weights`) has its
/// values rounded to nearest even (Weight::dtype set, values the rounded floats); one computed
/// from constants alone is read through a Cast. The biases of Conv and Gemm stay float32 (the
/// drain adds them in float32); a float32 constant another op reads beside an activation of
/// the type (an Add's bias, a norm's scale, a Clip's bounds) is converted the same way, since
/// a vector op's float operands are of one type; compile-time inputs (shapes, Resize's scales)
/// are left as they are. CompileError (hw::Config::fabric_type's) when `config`'s fabric does
/// not list `type`.
Graph to_float_precision(const Graph& graph, Weights& weights, DType type, const hw::Config& config);

/// `graph` with QuantizeLinear / DequantizeLinear pairs as ONNX's QDQ quantizers place them:
/// - the X / A operand of every Conv, MatMul and Gemm, and the activation inputs of every
///   Add with two computed inputs and every pool, read as x -> QuantizeLinear (the tensor's
///   calibrated quantization from `table`) -> DequantizeLinear, one pair per tensor;
/// - the weight (a constant) as an int8 constant "<op>.W_int8", round_half_even(w / s_c) per
///   output channel c (symmetric, the table's scales), -> DequantizeLinear;
/// - a Conv's or Gemm's 1-D bias (Gemm only with beta 1) as an int32 constant "<op>.B_int32",
///   round_half_even(b / (s_x s_w[c])), scale s_x s_w[c], zero point 0, -> DequantizeLinear;
/// - the output of each such op (after the Relu that alone reads it, when there is one) ->
///   QuantizeLinear -> DequantizeLinear for its readers, unless it is a graph output.
/// The float32 weights and biases nothing reads any more leave `weights`. CompileError when
/// `config`'s fabric does not list int8, or `table` has no entry for a tensor it needs.
Graph quantize_int8(const Graph& graph, Weights& weights, const QuantTable& table, const hw::Config& config);

}  // namespace kpu::compiler
