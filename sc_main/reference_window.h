// The references of the CNN ops that are not Conv (compiler/ops/window.h): plain loops in
// double over N, C, the output plane and the kernel's taps, with the window read from the
// op's attributes as ONNX defines them (nothing shared with the compiler's lowering).
//
// Tolerances, in reference_ops.h's terms (u = 2^-24; n the taps inside the window, k the
// products of a depthwise window plus its bias):
//   MaxPool, Resize (nearest)            exact: 0 (the operand's bound carried)
//   AveragePool, GlobalAveragePool       2 n u sum|x| / count + 2 u |y|  (as ReduceMean)
//   depthwise_conv                       a dot product of k terms: 2 k u P + (P - M) + 2 u |y|
//                                        (reference.h's GEMM bound)
//   BatchNormalization                   5 u (|x s| + |mean s|) + u |t| + u |y|, s = scale /
//                                        sqrt(var + epsilon) (add, sqrt, divide), t = B - mean s,
//                                        y = x s + t: what its expansion computes in fp32
#pragma once

#include "sc_main/reference_ops.h"

namespace kpu::cli {

void ref_max_pool(OpEvaluation& e);
void ref_average_pool(OpEvaluation& e);
void ref_depthwise_conv(OpEvaluation& e);
void ref_global_average_pool(OpEvaluation& e);
void ref_batch_normalization(OpEvaluation& e);
void ref_resize(OpEvaluation& e);

}  // namespace kpu::cli
