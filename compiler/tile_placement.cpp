#include "compiler/tile_placement.h"

#include <sstream>

#include "compiler/compile_error.h"
#include "compiler/tiler.h"

namespace kpu::compiler {

std::vector<uint32_t> task_tiles(const Program& program, const hw::Config& config) {
    // A kernel that reads the previous kernel's results starts where that one started (a
    // chain's layers wait for each other anyway); one that does not starts after the previous
    // kernel's tiles, so that independent ops run side by side.
    const size_t kernels = program.kernels.size();
    std::vector<uint32_t> count(kernels, 0), first(kernels, 0);
    std::vector<bool> follows(kernels, false);
    for (const Task& task : program.tasks) {
        ++count[task.kernel];
        for (uint32_t dep : task.deps)
            if (dep < program.tasks.size() && program.tasks[dep].kernel + 1 == task.kernel) follows[task.kernel] = true;
    }
    for (size_t k = 1; k < kernels; ++k)
        first[k] = uint32_t((uint64_t(first[k - 1]) + (follows[k] ? 0 : count[k - 1])) % config.compute_tiles);
    std::vector<uint32_t> tiles(program.tasks.size()), seen(kernels, 0);
    for (size_t t = 0; t < program.tasks.size(); ++t) {
        const uint32_t k = program.tasks[t].kernel;
        tiles[t] = uint32_t((uint64_t(first[k]) + seen[k]++) % config.compute_tiles);
    }
    return tiles;
}

namespace {

/// The message of a level too small for a kernel's buffers: its biggest buffer there and
/// the totals.
[[noreturn]] void throw_level_too_small(const Program& program, uint32_t kernel, const hw::Config& config,
                                        const std::vector<BufferSpec>& plan, hw::Level level, uint64_t need,
                                        uint64_t have) {
    const Op& op = program.graph.ops()[program.kernels[kernel].op];
    const BufferSpec* biggest = nullptr;
    for (const BufferSpec& b : plan)
        if (b.level == level && (!biggest || b.slot_bytes * b.slots > biggest->slot_bytes * biggest->slots))
            biggest = &b;
    std::ostringstream msg;
    msg << "cannot bind op '" << op.name << "' to config '" << config.name << "': tensor '"
        << program.graph.tensor(biggest->tensor).name << "' needs " << biggest->slots << " x "
        << biggest->slot_bytes << " bytes in " << to_string(biggest->buffer) << "; " << hw::to_string(level)
        << " needs " << need << " bytes per compute tile in total but has " << have;
    throw CompileError(msg.str());
}

}  // namespace

BufferLayout place_buffers(const Program& program, uint32_t kernel, const hw::Config& config) {
    const auto plan = plan_buffers(program.graph, program.kernels[kernel], max_task_extent(program, kernel));
    BufferLayout layout;
    for (hw::Level level : {hw::Level::L3, hw::Level::L2, hw::Level::L1}) {
        const uint64_t need = level_bytes(plan, level), have = level_capacity(config, level);
        if (need > have) throw_level_too_small(program, kernel, config, plan, level, need, have);
        const uint64_t instance = level == hw::Level::L2   ? config.l2.capacity_bytes
                                  : level == hw::Level::L1 ? config.l1.capacity_bytes
                                                           : have;
        uint64_t spread = 0;
        for (const BufferSpec& b : plan)
            if (b.level == level) spread += b.slots * round_up(b.slot_bytes, instance);
        const uint64_t granule = (level != hw::Level::L3 && spread <= have) ? instance : kAlign;
        uint64_t next = 0;
        for (uint32_t slot = 0; slot < kMaxSlots; ++slot)
            for (const BufferSpec& b : plan) {
                if (b.level != level || slot >= b.slots) continue;
                layout.offset[int(b.buffer)][slot] = next;
                layout.pitch[int(b.buffer)] = b.pitch;
                layout.elem_bytes[int(b.buffer)] = b.elem_bytes;
                next += round_up(b.slot_bytes, granule);
            }
    }
    return layout;
}

}  // namespace kpu::compiler
