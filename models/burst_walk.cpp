#include "models/burst_walk.h"

namespace kpu::model {

const char* transfer_problem(const hw::Transfer& t) {
    if (t.rows == 0 || t.row_bytes == 0) return "empty transfer (rows or row_bytes is 0)";
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
