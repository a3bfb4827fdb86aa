#include "compiler/move_elision.h"

namespace kpu::compiler {

size_t MoveElision::MoveKeyHash::operator()(const MoveKey& k) const {
    uint64_t h = k.src * 0x9E3779B97F4A7C15ull ^ k.dst;
    h = h * 0x9E3779B97F4A7C15ull ^ (uint64_t(k.rows) << 32 | k.row_bytes);
    h = h * 0x9E3779B97F4A7C15ull ^ (k.src_stride << 24 ^ k.dst_stride);
    return size_t(h ^ h >> 29);
}

std::optional<uint32_t> MoveElision::earlier_copy(uint32_t dfx_id, const hw::Transfer& x,
                                                  const HazardTracker& tracker, uint64_t src_space,
                                                  uint64_t dst_space) {
    const MoveKey key{x.src, x.dst, x.rows, x.row_bytes, x.src_stride, x.dst_stride};
    const auto [it, fresh] = last_move_.try_emplace(key, dfx_id);
    if (fresh) return std::nullopt;
    const uint32_t m = it->second;
    if (tracker.written_after(src_space, x.src, hull_end(x.src, x.rows, x.row_bytes, x.src_stride), m) ||
        !tracker.written_by(dst_space, x.dst, hull_end(x.dst, x.rows, x.row_bytes, x.dst_stride), m)) {
        it->second = dfx_id;
        return std::nullopt;
    }
    return m;
}

}  // namespace kpu::compiler
