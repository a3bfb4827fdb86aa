// The binder's move elision: an on-chip move that would copy bytes already in place is
// dropped (docs/compiler.md, "Dependencies"). Double-buffered slots make this common: an A
// block lands in the same slot for every strip when the chunk parity repeats.
#pragma once

#include <cstdint>
#include <optional>
#include <unordered_map>

#include "compiler/hazard_tracker.h"
#include "hardware/transfer.h"

namespace kpu::compiler {

class MoveElision {
public:
    /// For on-chip move `x` of DFX op `dfx_id`, reading space `src_space` and writing space
    /// `dst_space` of `tracker` (which has seen every earlier op): the earlier move M whose
    /// copy it repeats, when it is the same transfer as M, no byte of its source was written
    /// since M and every byte of its destination was last written by M. Then whoever depends
    /// on it may depend on M instead. Otherwise none, and `x` becomes the latest move of its
    /// transfer.
    std::optional<uint32_t> earlier_copy(uint32_t dfx_id, const hw::Transfer& x, const HazardTracker& tracker,
                                         uint64_t src_space, uint64_t dst_space);

private:
    /// What makes two moves the same transfer.
    struct MoveKey {
        uint64_t src, dst;
        uint32_t rows, row_bytes;
        uint64_t src_stride, dst_stride;
        bool operator==(const MoveKey& o) const {
            return src == o.src && dst == o.dst && rows == o.rows && row_bytes == o.row_bytes &&
                   src_stride == o.src_stride && dst_stride == o.dst_stride;
        }
    };
    struct MoveKeyHash {
        size_t operator()(const MoveKey& k) const;
    };
    std::unordered_map<MoveKey, uint32_t, MoveKeyHash> last_move_;  ///< per transfer: its latest DFX op
};

}  // namespace kpu::compiler
