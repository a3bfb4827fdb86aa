// Layout ops lowered as copies by the movers: Transpose (any perm but a swap of the last two
// axes, which vector_op.h lowers), Concat, Slice, Split and Gather with constant indices. Each
// op is a list of copies computed from the graph op alone (so a .kpu stays kernels and tasks):
// a copy moves a strided block of rows of one tensor's 2D view [product of the leading dims,
// last dim] to a strided block of rows of another's, transposed when the op moves the last
// axis. docs/compiler.md, "Layout ops".
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "compiler/graph.h"

namespace kpu::compiler {

/// rows x cols of `src` starting at (src_row, src_col), its rows src_step view rows apart, to
/// `dst` at (dst_row, dst_col) with rows dst_step apart; transposed, dst receives cols rows of
/// `rows` elements (element (r, c) of the block lands at (c, r)).
struct Copy {
    uint32_t src = 0, dst = 0;  ///< graph tensors
    uint64_t src_row = 0, src_col = 0, src_step = 1;
    uint64_t dst_row = 0, dst_col = 0, dst_step = 1;
    uint64_t rows = 0, cols = 0;  ///< of the source block
    bool transpose = false;
    bool operator==(const Copy& o) const;
};

/// A kernel's piece of work: a chunk of at most tn rows and tk columns of one copy, as moved by
/// one LOAD (and STORE). `copy` holds the chunk (rows, cols and both corners).
struct CopyPiece {
    uint32_t index = 0;  ///< the copy's index in copy_list()
    Copy copy;
};

/// A Transpose's perm: its attribute, else ONNX's default (every axis reversed).
std::vector<int64_t> transpose_perm(const Graph& graph, const Op& op);
/// Whether `perm` swaps the last two axes and keeps the others (vector_op.h lowers that one).
bool swaps_last_two_axes(const std::vector<int64_t>& perm);

/// Whether `op` lowers as copies (a Transpose that swaps the last two axes lowers through
/// vector_op.h; call this before is_vector_op()).
bool is_copy_op(const Graph& graph, const Op& op);

/// Why copy op `op` of a checked graph does not lower, "" when it does; the lowering hook of
/// Transpose, Concat, Slice, Split and Gather (a last-two-axes Transpose: vector_lowering_problem).
std::string copy_lowering_problem(const Graph& graph, const Op& op);

/// The op's copies, in order; throws CompileError when it does not lower. Consecutive rows
/// that continue each other at one step on both sides are one copy.
std::vector<Copy> copy_list(const Graph& graph, uint32_t op);

/// The copies and their extents, as the kernel's tile grid sees them: a grid row per copy
/// (tm = 1 copy), a grid column per chunk of tn rows; tk chunks the columns.
struct CopyOperands {
    std::vector<Copy> copies;
    uint64_t max_rows = 0, max_cols = 0;  ///< the longest copy's rows and the widest's cols
    bool transposes = false;              ///< some copy transposes (it goes through L2)
};
CopyOperands copy_operands(const Graph& graph, uint32_t op);

/// The pieces of tile rows [r0, r1) x tile columns [c0, c1) of a kernel with tile (tm, tn, tk)
/// over `copies`, in the order its ops move them.
void for_each_piece(const std::vector<Copy>& copies, uint32_t tm, uint32_t tn, uint32_t tk, uint32_t r0, uint32_t r1,
                    uint32_t c0, uint32_t c1, const std::function<void(const CopyPiece&)>& visit);

/// The rows of a tensor's 2D view a copy's rows span: [first, first + (rows - 1) step + 1).
inline uint64_t row_span(uint64_t rows, uint64_t step) { return rows ? (rows - 1) * step + 1 : 0; }

}  // namespace kpu::compiler
