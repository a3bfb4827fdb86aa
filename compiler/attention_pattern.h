// Attention as an exported ONNX model spells it, without an Attention node (part of the
// fuse-attention pass; docs/compiler.md, "Flash attention"): MatMul(Q, K^T) -> Mul or Div by a
// scalar constant -> optional Add of a mask -> Softmax over the last axis -> MatMul(., V), or
// the importer's masked_softmax in place of the middle three. Each such chain that flash
// attention takes becomes one flash_attention op, so the Sq x Skv scores never reach DRAM.
#pragma once

#include <string>
#include <vector>

#include "compiler/graph.h"
#include "hardware/config.h"

namespace kpu::compiler {

/// Mask values at or below this weigh exactly zero after the softmax whenever the scores are
/// finite and below 1e29 in magnitude (exp underflows), like -inf and torch.finfo.min.
constexpr double kMaskedValue = -1e30;

/// The checked `graph` with each attention chain whose flash_attention flash_refusal accepts
/// on `config` made that one op (named after the chain's first MatMul, `fused_with` the other
/// ops it replaced in graph order). Q, K^T and V are 4-D [B, H, S, E] or 3-D [B, S, E] with equal
/// leading dims; K^T is a Transpose's result (K is that Transpose's input when the Transpose
/// swaps the last two axes, else a Transpose of it into [.., Skv, E]). When Q, K and V are split
/// into heads by Reshape [B, S, H, E] + Transpose (perm [0, 2, 1, 3], K^T's [0, 2, 3, 1]) and the
/// result goes back by Transpose [0, 2, 1, 3] + Reshape [B, S, H Ev], the op takes the 3-D form
/// on the unsplit tensors and the views and copies go with it. A constant mask (inline or in
/// `weights`, which may be null) that is exactly causal (Sq = Skv, 0 on and below the diagonal,
/// at or below kMaskedValue above it, in every matrix) becomes the causal flag, which skips
/// the blocks above the diagonal, and its weight entry is dropped; another mask is attn_mask
/// (a row whose keys are all -inf gets zeros, as masked_softmax gives it). With 3-D scores a
/// 3-D mask must not vary along the batch (the 3-D form aligns a mask's dims with
/// [B, H, Sq, Skv]). A chain that does not match stays as it is; `notes` (may be null) gets a
/// line per Softmax between two MatMuls left as it is, saying why.
Graph fuse_attention_patterns(const Graph& graph, const hw::Config& config, Weights* weights,
                              std::vector<std::string>* notes = nullptr);

}  // namespace kpu::compiler
