// The on-chip im2col of a convolution (docs/compiler.md, "Convolution"): which transfers put a
// tile of the implicit patch matrix A into L2 from the input rows a task keeps in L3. Each is
// one hw::Transfer with an outer dimension and zero fill: per kernel tap and run of output
// pixels, the rows are output columns (stride_w Cg elements apart in the input), the outer
// dimension output rows (stride_h input rows apart), and the pixels whose tap falls outside
// the image are written as zeros without a read. Shared by the binder and the tests.
#pragma once

#include <cstdint>
#include <vector>

#include "compiler/ops/matmul.h"
#include "hardware/transfer.h"

namespace kpu::compiler {

/// The transfers that assemble A's tile of output pixels [p0, p0 + pixels) (of one image and
/// group) by K columns [k0, k0 + kn) (K ordered (kh, kw, c)): from the region at `src` holding
/// input rows [region.first, region.first + region.count) (each W pixels of Cg elements of
/// `elem` bytes, contiguous), into the tile at `dst` whose rows are `dst_pitch` bytes apart.
/// The pixels must lie in the task whose region it is.
std::vector<hw::Transfer> conv_gather(const ConvGeometry& g, ConvGeometry::Rows region, uint64_t p0, uint64_t pixels,
                                      uint64_t k0, uint64_t kn, uint64_t src, uint64_t dst, uint64_t dst_pitch,
                                      uint32_t elem);

}  // namespace kpu::compiler
