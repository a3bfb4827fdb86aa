// The CNN ops that are not Conv: MaxPool, AveragePool, GlobalAveragePool, BatchNormalization
// (inference), Resize (nearest, integer scales) and our depthwise_conv (X NCHW, W [C, 1, kH,
// kW], B [C], ONNX Conv's attributes). The window ops run on the vector engine's window
// functions (hw::VectorWindow), a plane of the NCHW input per row of the engine's tile;
// GlobalAveragePool expands into a ReduceMean over H W and BatchNormalization into a per-channel
// scale and shift computed on the engine and applied as a 1 x 1 depthwise_conv
// (docs/compiler.md, "Window ops").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "compiler/graph.h"
#include "hardware/config.h"
#include "hardware/vector_command.h"

namespace kpu::compiler {

/// Whether `kind` is a window op that lowers onto the vector engine's window functions
/// (MaxPool, AveragePool, depthwise_conv, Resize).
bool is_window_kind(const std::string& kind);

/// The window of a checked MaxPool, AveragePool or depthwise_conv over its rank-4 input
/// (kernel, strides, dilations, pads as resolved from auto_pad and ceil_mode, the planes' in
/// and out sizes), or of a Resize (scales and planes); "" or why not in `problem` (one line
/// naming the attribute and the numbers).
hw::VectorWindow window_of(const Graph& graph, const Op& op, std::string& problem);

/// The vector engine's function for a window op's kind.
hw::VectorFunction window_function(const std::string& kind);

/// The tiler's estimate of depthwise_conv on the vector engine for X [n, c, h, w], a kernel
/// of kernel_h x kernel_w (pads [top, left, bottom, right], strides, dilations) with or
/// without a bias: the engine cycles of the busiest compute tile (choose_vector_tiling's
/// TilingChoice::cycles), what the fabric's estimate of the same convolution is compared to.
double depthwise_conv_vector_cycles(const hw::Config& config, const std::vector<uint64_t>& x, uint64_t kernel_h,
                                    uint64_t kernel_w, const std::vector<int64_t>& pads,
                                    const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations,
                                    bool bias);

}  // namespace kpu::compiler
