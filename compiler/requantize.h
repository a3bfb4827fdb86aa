// Element types in lowering (docs/compiler.md, "Element types"): which dtypes each lowerable
// op takes (element_type_problem, for require_lowerable), whether the target config computes
// them (require_config_types), and the requantization multipliers of quantized matmuls and
// convolutions (add_requantization), materialised before tiling.
#pragma once

#include <string>

#include "compiler/graph.h"
#include "hardware/config.h"

namespace kpu::compiler {

/// What is wrong with the element types of op `op` of `graph` (whose lowering_problem is
/// empty), or "" if nothing. A matmul or convolution takes float32, bfloat16 or float16 A and
/// B with C of their type (a float32 bias), or int8 A and B with quantization (A per tensor,
/// B per tensor or per output channel with one zero point) into an int8 C with per-tensor
/// quantization or a float32 C without (an int32 bias, activation none or relu for an int8
/// C); a vector op float32, bfloat16, float16 or per-tensor int8 operands (a norm's weight and
/// bias float32); a copy or view op any of those types, its output as its input. Anything
/// else float32 only.
std::string element_type_problem(const Graph& graph, const Op& op);

/// Throws CompileError naming the op and the config's list when a matmul or convolution's A
/// type is not one of the target's fabric element types, or a vector op's operand type not
/// one of its vector engine's (hw::Config::fabric_type / vector_type).
void require_config_types(const Graph& graph, const hw::Config& config);

/// Wires into every matmul and conv_nhwc with int8 A and B its requantization multipliers
/// M[n] = float32(double(s_a) * double(s_b[n]) / double(s_c)) (s_c = 1 for a float32 C) as a
/// constant float32 tensor (a weight when `weights` is given, else inline values) at its
/// `scale` input: the drain's per-column scale stage. An int8 MatMul or Gemm becomes the fused
/// matmul that has that input. Other ops are unchanged.
Graph add_requantization(const Graph& graph, Weights* weights);

/// The multiplier of output channel `n` of a quantized matmul (add_requantization).
float requantization_multiplier(float a_scale, float b_scale, float c_scale);

}  // namespace kpu::compiler
