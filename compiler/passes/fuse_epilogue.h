// The fuse-epilogue pass (docs/compiler.md, "Passes"): a bias Add, a per-channel Mul, a
// residual Add and an activation after a matmul or a convolution become the drain's epilogue
// of the fused op, C = act((A @ B + bias) * scale + residual), so their operand C never goes to
// DRAM and back. Runs on the lowered graph (after composite expansion, the layout pass and
// long rows).
#pragma once

#include "compiler/graph.h"

namespace kpu::compiler {

/// The checked, lowerable `graph` with each matmul or conv_nhwc whose result only one op reads
/// (a conv's through views nothing else reads), that result no graph output, and that op the
/// next stage of the drain's epilogue (hardware/fabric_command.h), in its order bias -> scale
/// -> residual -> activation after the stages the producer has:
///   - an Add of a row vector [N] (the bias; a matmul's only),
///   - a Mul by a per-channel vector (shape [.., 1, N]; a conv's only with one group, its view
///     ending in the channels): the scale,
///   - an Add of a tensor of the result's shape, in either input position: the residual,
///   - an activation the drain computes with the vector engine's own function (Relu, Gelu
///     with either approximation, Sigmoid, Silu, Tanh),
/// made one fused op writing that op's output, repeatedly (Add, Add, Relu: all three), the
/// absorbed op's name appended to `fused_with`. A matmul producer becomes the fused "matmul"
/// (the producer's name): a fused matmul, a MatMul of two matrices, or a Gemm without
/// transposes with alpha = beta = 1 (what the fused form computes bit for bit). A conv_nhwc
/// takes the stage as its "activation" attribute or its "scale" / "residual" input (viewed
/// in its own shapes), the stage's readers then reading the view. With a scale or a residual
/// the fused op takes the absorbed op's place in the order, so an operand computed after the
/// producer is ready. A matmul whose A is another such matmul's result that only it reads
/// (fuse-ffn's pair: the ffn kernel drains no scale or residual) takes no scale or residual.
/// The result is the same bits as the unfused ops.
Graph fuse_epilogue(const Graph& graph);

}  // namespace kpu::compiler
