// The element-type rules the op families share (docs/graph-format.md, Quantization): which
// operand types a matmul or convolution and a vector-lowered op accept and what type they
// write. The conversions themselves (QuantizeLinear, DequantizeLinear, Cast) are registered in
// quantize.cpp.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <vector>

#include "compiler/graph.h"

namespace kpu::compiler {

class InferContext;

/// Inputs of a matmul or convolution for product_dtype().
struct ProductInputs {
    size_t a = 0, b = 1;                     ///< A (X) and B (W)
    std::vector<size_t> b_axes;              ///< B's output-channel dimensions a per-channel quant may use
    size_t bias = SIZE_MAX;                  ///< the bias input, SIZE_MAX when the op has none
};

/// The type C of a matmul or convolution gives, its operands checked: float32 A and B (bias
/// float32) give float32; bfloat16 or float16 A and B of the same type (bias float32) give
/// that type; int8 A with per-tensor quant and int8 B with quant (per tensor, or per output
/// channel along one of `b_axes` with equal zero points), bias int32, give int8 when C's
/// declared tensor has quant (per tensor; the op's activation, if any, `none` or `relu`), else
/// float32 (the dequantized result). Operands of
/// one type without any quant give that type (lowering refuses what it does not run). Fails
/// naming the tensor and the types.
DType product_dtype(const InferContext& c, const ProductInputs& in);

/// The type a vector-lowered op (elementwise, activations, pools, norms, softmax, reductions)
/// writes from its `operands` (input indices, omitted ones skipped): each is float32,
/// bfloat16, float16 or int8 with a per-tensor quant (read through it into float32); the float
/// ones of one type. int8 when the output's declared tensor has quant, else input 0's type
/// (float32 when that is int8). Without int8 operands and output quant: the float rule alone
/// (the operands of one type, input 0's type out). Fails naming the tensor and the types.
DType vector_dtype(const InferContext& c, std::initializer_list<size_t> operands);

/// Whether input i is an int8 tensor with a quant (read as reals through it).
bool quantized_operand(const InferContext& c, size_t i);

}  // namespace kpu::compiler
