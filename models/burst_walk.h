// How a data mover walks a transfer (hw::Transfer) in bursts, in plain C++: whether the
// descriptor makes sense, where bursts are cut, which rows an identity copy walks and how a
// transpose gathers its columns. The Mover times and moves what these walks give it.
//
// A burst never crosses a multiple of the burst size (a power of two) on either side: every
// memory instance and DRAM interleave boundary is such a multiple, so no burst straddles one.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "hardware/transfer.h"

namespace kpu::model {

/// What is wrong with the descriptor (nothing may be moved), or nullptr.
const char* transfer_problem(const hw::Transfer& t);

/// Each row of a transfer in walk order (outer[1], then outer[0], then the rows), as
/// `visit(zero, src, dst)`: `zero` when it reads as zeros (src is then meaningless). The
/// transfer must be legal (transfer_problem).
template <typename Visit>
void for_each_row(const hw::Transfer& t, Visit&& visit) {
    const auto valid = [](uint32_t i, uint32_t count, uint32_t before, uint32_t after) {
        return i >= before && i < count - after;
    };
    const hw::TransferDim &d0 = t.outer[0], &d1 = t.outer[1];
    for (uint32_t j = 0; j < d1.count; ++j) {
        const bool vj = valid(j, d1.count, d1.pad_before, d1.pad_after);
        for (uint32_t i = 0; i < d0.count; ++i) {
            const bool vi = vj && valid(i, d0.count, d0.pad_before, d0.pad_after);
            const uint64_t src_ij = t.src + uint64_t(j - d1.pad_before) * d1.src_stride +
                                    uint64_t(i - d0.pad_before) * d0.src_stride;
            const uint64_t dst_ij = t.dst + uint64_t(j) * d1.dst_stride + uint64_t(i) * d0.dst_stride;
            for (uint32_t r = 0; r < t.rows; ++r) {
                const bool v = vi && valid(r, t.rows, t.row_pad_before, t.row_pad_after);
                visit(!v, src_ij + uint64_t(r - t.row_pad_before) * t.src_stride, dst_ij + uint64_t(r) * t.dst_stride);
            }
        }
    }
}

/// The first burst of a copy of `left` bytes from `src` to `dst`.
inline uint32_t burst_piece(uint64_t src, uint64_t dst, uint64_t left, uint32_t burst) {
    const uint64_t mask = burst - 1;
    return uint32_t(std::min({left, burst - (src & mask), burst - (dst & mask)}));
}
/// The first burst of `left` bytes at `addr`.
inline uint32_t burst_piece(uint64_t addr, uint64_t left, uint32_t burst) {
    return uint32_t(std::min<uint64_t>(left, burst - (addr & (burst - 1))));
}

/// The rows an identity copy walks. A contiguous transfer (both strides are the row) is one
/// row; its bursts are those of the row-by-row walk when the rows are whole bursts and one
/// side starts on a burst boundary, since every row end is then a burst boundary on that side.
struct RowWalk {
    uint64_t rows = 0, row_bytes = 0;
};
inline RowWalk identity_rows(const hw::Transfer& t, uint32_t burst) {
    const uint64_t mask = burst - 1;
    if (t.src_stride == t.row_bytes && t.dst_stride == t.row_bytes && t.row_bytes % burst == 0 &&
        ((t.src & mask) == 0 || (t.dst & mask) == 0))
        return {1, uint64_t(t.rows) * t.row_bytes};
    return {t.rows, t.row_bytes};
}

/// A transpose reads a band of burst / elem_bytes source rows, then writes one destination
/// burst per source column of the band.
inline uint32_t transpose_band(const hw::Transfer& t, uint32_t burst) {
    return std::max<uint32_t>(1, burst / t.elem_bytes);
}
/// Column `c` of a band of `rows` source rows of `row_bytes` each (as read), `elem` bytes an
/// element: the destination run it becomes.
inline void gather_column(const uint8_t* band, uint64_t row_bytes, uint32_t rows, uint32_t c, uint32_t elem,
                          uint8_t* out) {
    for (uint32_t i = 0; i < rows; ++i) std::memcpy(out + uint64_t(i) * elem, band + i * row_bytes + uint64_t(c) * elem, elem);
}

}  // namespace kpu::model
