// Layout: where a graph converts between layouts with Transposes (a convolution computes in
// NHWC between two of them, docs/compiler.md "Layout"), elementwise ops move to the other side
// of the Transposes feeding them and inverse Transposes cancel, so a chain of convolutions and
// elementwise ops stays in one layout and converts only where something needs the other (the
// graph's inputs and outputs, an op that works on NCHW planes).
#pragma once

#include "compiler/graph.h"

namespace kpu::compiler {

/// The checked graph after these rewrites, to a fixed point:
/// - a Transpose of a Transpose that undoes it becomes a view (Reshape) of the first one's input;
/// - a Transpose whose result nothing reads and that is no output goes;
/// - an elementwise op whose same-shape inputs all come from Transposes of one perm, read by
///   nothing else, runs on their inputs instead, followed by that Transpose (its broadcast
///   inputs viewed in the other layout when that is a view, else it stays).
/// Values are unchanged: every rewrite moves the same elements to the same places.
Graph sink_transposes(const Graph& graph);

}  // namespace kpu::compiler
