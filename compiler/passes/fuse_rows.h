// The fuse-rows pass (docs/compiler.md, "Passes" and "Row fusion"): a LayerNormalization,
// RMSNormalization or Softmax and the elementwise vector ops that produce its input or consume
// its output become one vector_chain op, whose row tiles come on chip once, run the ops'
// VECTOR commands one after another there and go out once: the intermediates never go to
// DRAM. Runs on the lowered graph (after fuse-epilogue and fuse-ffn).
//
// A vector_chain (ours) has the inputs X (the first step's input) and every other operand of
// its steps, the output Y, and its steps as attributes, one entry per step:
//   kinds        (string) the steps' ONNX kinds, comma-separated ("Add,LayerNormalization")
//   arity        (ints)   how many inputs each step's ONNX op has
//   sources      (ints)   per step input, in order: -1 the previous step's result, -2 omitted,
//                         k >= 0 the chain's input k
//   epsilon      (floats) the norms' epsilon (0 for the other kinds)
//   approximate  (string) Gelu's approximate per step, comma-separated ("" for the other kinds)
// A step's axis is the last one (the pass fuses no other).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "compiler/graph.h"

namespace kpu::compiler {

class OpRegistry;

/// One step of a vector_chain: the op it was, its inputs the chain's tensors (kNoTensor where
/// omitted) and, at `chained`, the previous step's result (kNoTensor there too).
struct ChainStep {
    Op op;                          ///< kind, attributes (defaults made explicit), inputs
    std::optional<size_t> chained;  ///< the input that is the previous step's result (none for the first)
};

bool is_chain_op(const Op& op);

/// The steps of vector_chain `op` of a graph whose tensors `op` indexes, or why its attributes
/// do not describe a chain (`problem` set, the steps then empty).
std::vector<ChainStep> chain_steps(const Op& op, std::string& problem);

/// The vector_chain schema (op_registry.cpp's registration line).
void register_vector_chain(OpRegistry& registry);

/// The checked, lowerable `graph` with every maximal chain of vector ops that contains a
/// LayerNormalization, RMSNormalization or plain last-axis Softmax made one vector_chain
/// (the row op's name, fused_with the others' names in chain order). A link of a chain is an
/// op's only output that exactly one op reads, as its first operand after commutation (the
/// tile the vector engine streams), that is no graph output and has the reader's output
/// shape; every op of the chain is one of the kinds listed in docs/compiler.md ("Row
/// fusion") and its other operands are a tensor of the same shape, a row [cols] or a scalar.
Graph fuse_rows(const Graph& graph);

}  // namespace kpu::compiler
