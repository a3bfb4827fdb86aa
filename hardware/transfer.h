// The command every data mover executes (DMA engine, BlockMover, Streamer): a strided copy
// between two device addresses, optionally transposing. A tile out of a row-major matrix is
// one Transfer. Like a real DMA it nests up to four dimensions (the contiguous row, the rows,
// two outer dimensions) and has a zero-padding rule: leading and trailing indices of the rows
// and of each outer dimension read as zeros, written without a source access (the border of
// a convolution's input patches: `fill` bytes, so an int8 tensor's border is its zero point).
// Shared by the compiler's binder (which emits them) and the models (which execute them).
// No SystemC.
#pragma once

#include <cstdint>

namespace kpu::hw {

enum class Transform : uint8_t {
    Identity,   ///< row r of the source lands at dst + r * dst_stride
    Transpose,  ///< element (r, c) of the source lands at element (c, r) of the destination
};

/// A dimension around the rows: everything inside it repeats `count` times. Indices below
/// `pad_before` and from `count - pad_after` on read as zeros.
struct TransferDim {
    uint32_t count = 1;       ///< repetitions (>= 1)
    uint64_t src_stride = 0;  ///< source bytes between consecutive valid indices
    uint64_t dst_stride = 0;  ///< destination bytes between consecutive indices
    uint32_t pad_before = 0;  ///< leading indices that read as zeros
    uint32_t pad_after = 0;   ///< trailing indices that read as zeros
    bool operator==(const TransferDim& o) const {
        return count == o.count && src_stride == o.src_stride && dst_stride == o.dst_stride &&
               pad_before == o.pad_before && pad_after == o.pad_after;
    }
};

/// Row (r, i, j) (r the row, i and j the indices of outer[0] and outer[1]) lands at
/// dst + r dst_stride + i outer[0].dst_stride + j outer[1].dst_stride. When every index lies in
/// its valid window it comes from src + (r - row_pad_before) src_stride + (i - outer[0].pad_before)
/// outer[0].src_stride + (j - outer[1].pad_before) outer[1].src_stride (src is the first valid
/// row's); otherwise it is row_bytes of zeros and nothing is read. Zero fill and the outer
/// dimensions take the identity transform only.
struct Transfer {
    uint64_t id = 0;          ///< reported back on completion
    uint64_t src = 0;         ///< device address of the first source byte
    uint64_t dst = 0;         ///< device address of the first destination byte
    uint32_t rows = 0;        ///< source rows
    uint32_t row_bytes = 0;   ///< contiguous bytes per source row
    uint64_t src_stride = 0;  ///< bytes between source row starts (>= row_bytes)
    uint64_t dst_stride = 0;  ///< bytes between destination row starts (Transpose: per source column)
    uint32_t elem_bytes = 4;  ///< element size, needed by Transpose
    Transform transform = Transform::Identity;
    uint32_t row_pad_before = 0;  ///< leading rows that read as zeros
    uint32_t row_pad_after = 0;   ///< trailing rows that read as zeros
    TransferDim outer[2]{};       ///< outer[0] around the rows, outer[1] around outer[0]
    uint8_t fill = 0;             ///< the byte zero fill writes (an int8 tensor's zero point)

    /// Bytes written to the destination (zero rows included).
    uint64_t bytes() const { return uint64_t(rows) * row_bytes * outer[0].count * outer[1].count; }
    /// A plain 2D transfer: no outer dimension, no zero fill.
    bool plain() const {
        return row_pad_before == 0 && row_pad_after == 0 && outer[0] == TransferDim() && outer[1] == TransferDim();
    }
    /// Bytes from dst to the end of the last destination row (identity transform).
    uint64_t dst_extent() const {
        uint64_t span = uint64_t(rows - 1) * dst_stride + row_bytes;
        for (const TransferDim& d : outer) span += uint64_t(d.count - 1) * d.dst_stride;
        return span;
    }
    /// Bytes from src to the end of the last row read (0: nothing is read).
    uint64_t src_extent() const {
        if (valid_rows() == 0) return 0;
        uint64_t span = uint64_t(rows - row_pad_before - row_pad_after - 1) * src_stride + row_bytes;
        for (const TransferDim& d : outer) span += uint64_t(d.count - d.pad_before - d.pad_after - 1) * d.src_stride;
        return span;
    }
    /// Rows read from the source (the others are zero fill).
    uint64_t valid_rows() const {
        uint64_t n = uint64_t(rows) - row_pad_before - row_pad_after;
        for (const TransferDim& d : outer) n *= uint64_t(d.count) - d.pad_before - d.pad_after;
        return n;
    }
};

}  // namespace kpu::hw
