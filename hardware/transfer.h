// The command every data mover executes (DMA engine, BlockMover, Streamer): a 2D strided copy
// between two device addresses, optionally transposing. A tile out of a row-major matrix is
// one Transfer. Shared by the compiler's binder (which emits them) and the models (which
// execute them). No SystemC.
#pragma once

#include <cstdint>

namespace kpu::hw {

enum class Transform : uint8_t {
    Identity,   ///< row r of the source lands at dst + r * dst_stride
    Transpose,  ///< element (r, c) of the source lands at element (c, r) of the destination
};

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

    uint64_t bytes() const { return uint64_t(rows) * row_bytes; }
};

}  // namespace kpu::hw
