#include "compiler/conv_gather.h"

#include <algorithm>

namespace kpu::compiler {
namespace {

/// Indices [first, first + count) along one output axis whose input coordinate
/// i stride + offset (offset = tap dilation - pad) lies in [0, size): the window of `dim`.
void window(hw::TransferDim& dim, uint64_t first, uint64_t count, uint64_t stride, int64_t offset, uint64_t size,
            uint64_t& valid_first) {
    const int64_t s = int64_t(stride);
    // lo: the first index with i s + offset >= 0; hi: the first with i s + offset >= size.
    const auto first_at_least = [&](int64_t bound) { return bound <= 0 ? int64_t(0) : (bound + s - 1) / s; };
    const int64_t lo = std::max<int64_t>(int64_t(first), first_at_least(-offset));
    const int64_t hi = std::min<int64_t>(int64_t(first + count), first_at_least(int64_t(size) - offset));
    dim.count = uint32_t(count);
    if (hi <= lo) {
        dim.pad_before = uint32_t(count), dim.pad_after = 0;
        valid_first = first;
        return;
    }
    dim.pad_before = uint32_t(lo - int64_t(first));
    dim.pad_after = uint32_t(int64_t(first + count) - hi);
    valid_first = uint64_t(lo);
}

}  // namespace

std::vector<hw::Transfer> conv_gather(const ConvGeometry& g, ConvGeometry::Rows region, uint64_t p0, uint64_t pixels,
                                      uint64_t k0, uint64_t kn, uint64_t src, uint64_t dst, uint64_t dst_pitch,
                                      uint32_t elem) {
    std::vector<hw::Transfer> out;
    const uint64_t pixel_bytes = g.cg * elem, row_bytes = g.w * pixel_bytes;
    for (uint64_t k = k0; k < k0 + kn;) {  // a run of one tap's channels
        const uint64_t tap = k / g.cg, c = k % g.cg, run = std::min(g.cg - c, k0 + kn - k);
        const int64_t off_h = int64_t((tap / g.kw) * g.dilation_h) - int64_t(g.pad_top);
        const int64_t off_w = int64_t((tap % g.kw) * g.dilation_w) - int64_t(g.pad_left);
        for (uint64_t p = p0; p < p0 + pixels;) {  // whole output rows, or a part of one
            const uint64_t oh = p / g.ow, ow = p % g.ow, left = p0 + pixels - p;
            const uint64_t rows = ow == 0 && left >= g.ow ? left / g.ow : 1;
            const uint64_t cols = rows > 1 || (ow == 0 && left >= g.ow) ? g.ow : std::min(g.ow - ow, left);
            hw::Transfer t;
            t.row_bytes = uint32_t(run * elem);
            t.dst = dst + (p - p0) * dst_pitch + (k - k0) * elem;
            t.dst_stride = dst_pitch;
            t.src_stride = g.stride_w * pixel_bytes;
            hw::TransferDim cols_dim, rows_dim;
            uint64_t ow_first = 0, oh_first = 0;
            window(cols_dim, ow, cols, g.stride_w, off_w, g.w, ow_first);
            window(rows_dim, oh, rows, g.stride_h, off_h, g.h, oh_first);
            t.rows = cols_dim.count;
            t.row_pad_before = cols_dim.pad_before, t.row_pad_after = cols_dim.pad_after;
            if (rows > 1 || rows_dim.pad_before) {
                rows_dim.src_stride = g.stride_h * row_bytes;
                rows_dim.dst_stride = cols * dst_pitch;
                t.outer[0] = rows_dim;
            }
            t.src = src;  // no valid row: any address of the region
            if (t.valid_rows()) {
                const uint64_t ih = uint64_t(int64_t(oh_first * g.stride_h) + off_h);
                const uint64_t iw = uint64_t(int64_t(ow_first * g.stride_w) + off_w);
                t.src = src + (ih - region.first) * row_bytes + iw * pixel_bytes + c * elem;
            }
            out.push_back(t);
            p += rows * cols;
        }
        k += run;
    }
    return out;
}

}  // namespace kpu::compiler
