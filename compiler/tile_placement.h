// The binder's placement policy: which compute tile each task runs on, and where each
// logical buffer's slots sit in that tile's L3, L2 banks and L1 buffers. Both are pure
// functions of the program and the config (docs/compiler.md, "Tasks" and "Buffers").
#pragma once

#include <cstdint>
#include <vector>

#include "compiler/dfx.h"
#include "hardware/config.h"

namespace kpu::compiler {

/// The compute tile each task runs on: task i of a kernel on tile (first + i) mod T, where
/// first is 0 for the first kernel, the previous kernel's first for a kernel that reads its
/// results, and the tile after the previous kernel's last for one that does not
/// (independent ops side by side).
std::vector<uint32_t> task_tiles(const Program& program, const hw::Config& config);

/// Where each slot of each logical buffer of one kernel sits, relative to its level's
/// per-tile base; the same on every compute tile.
struct BufferLayout {
    uint64_t offset[kBufferCount][kMaxSlots] = {};  ///< bytes from the level's base, per buffer and slot
    uint32_t pitch[kBufferCount] = {};              ///< row pitch in elements, per buffer
    uint32_t elem_bytes[kBufferCount] = {};         ///< bytes of one element, per buffer (its tensor's dtype)
};

/// The layout of `kernel`'s buffers, sized for its largest task. L2 and L1: one bank
/// (buffer) per slot when everything fits that way, so that A and B traffic use separate
/// ports; packed otherwise. L3 (one instance per tile): packed. Throws CompileError naming
/// the op, the tensor, the level and the numbers when a level is too small.
BufferLayout place_buffers(const Program& program, uint32_t kernel, const hw::Config& config);

}  // namespace kpu::compiler
