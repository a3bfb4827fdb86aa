#include "models/burst_walk.h"

namespace kpu::model {

namespace {

/// The checks of a transfer with outer dimensions or zero fill (hw::Transfer).
const char* gather_problem(const hw::Transfer& t) {
    if (t.transform != hw::Transform::Identity) return "zero fill and outer dimensions need the identity transform";
    if (uint64_t(t.row_pad_before) + t.row_pad_after > t.rows) return "row padding exceeds the rows";
    for (const hw::TransferDim& d : t.outer) {
        if (d.count == 0) return "empty transfer (an outer count is 0)";
        if (uint64_t(d.pad_before) + d.pad_after > d.count) return "outer padding exceeds its count";
    }
    // Destination: rows inside outer[0] inside outer[1], none overlapping another.
    if (t.rows > 1 && t.dst_stride < t.row_bytes) return "destination rows overlap (dst_stride < row_bytes)";
    uint64_t inside = uint64_t(t.rows - 1) * t.dst_stride + t.row_bytes;
    for (const hw::TransferDim& d : t.outer) {
        if (d.count > 1 && d.dst_stride < inside) return "destination blocks overlap (outer dst_stride < the block inside)";
        inside += uint64_t(d.count - 1) * d.dst_stride;
    }
    if (t.dst + t.dst_extent() < t.dst) return "destination range wraps around the address space";
    // Source: the valid rows only (a gather may read a row twice).
    if (t.rows - t.row_pad_before - t.row_pad_after > 1 && t.src_stride < t.row_bytes)
        return "src_stride is smaller than row_bytes";
    if (t.src + t.src_extent() < t.src) return "source range wraps around the address space";
    return nullptr;
}

}  // namespace

const char* transfer_problem(const hw::Transfer& t) {
    if (t.rows == 0 || t.row_bytes == 0) return "empty transfer (rows or row_bytes is 0)";
    if (!t.plain()) return gather_problem(t);
    if (t.rows > 1 && t.src_stride < t.row_bytes) return "src_stride is smaller than row_bytes";
    const uint64_t src_span = uint64_t(t.rows - 1) * t.src_stride + t.row_bytes;
    if (t.src + src_span < t.src) return "source range wraps around the address space";
    if (t.transform == hw::Transform::Identity) {
        if (t.rows > 1 && t.dst_stride < t.row_bytes) return "destination rows overlap (dst_stride < row_bytes)";
        if (t.dst + uint64_t(t.rows - 1) * t.dst_stride + t.row_bytes < t.dst)
            return "destination range wraps around the address space";
        return nullptr;
    }
    if (t.elem_bytes == 0 || (t.elem_bytes & (t.elem_bytes - 1)) != 0 || t.elem_bytes > 64)
        return "transpose needs elem_bytes a power of two <= 64";
    if (t.row_bytes % t.elem_bytes != 0) return "transpose needs row_bytes a multiple of elem_bytes";
    const uint64_t cols = t.row_bytes / t.elem_bytes, dst_row = uint64_t(t.rows) * t.elem_bytes;
    if (cols > 1 && t.dst_stride < dst_row) return "destination rows overlap (dst_stride < rows * elem_bytes)";
    if (t.dst + (cols - 1) * t.dst_stride + dst_row < t.dst) return "destination range wraps around the address space";
    return nullptr;
}

}  // namespace kpu::model
