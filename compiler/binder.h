// The binder: DFX Program + config -> BoundProgram (bound_program.h), the driver-side step.
// Places every tensor in DRAM (own range, aligned to the interleave granularity), every
// logical buffer at a concrete L3 / L2 bank / L1 buffer address of the compute tile its task
// runs on (tasks go round-robin over all compute tiles), every move on an engine instance,
// and adds the write-after-read / write-after-write dependencies of reused buffers and of the
// fabric's accumulator set. Deterministic and pure: same input, same addresses.
#pragma once

#include <string>
#include <vector>

#include "compiler/bound_program.h"
#include "compiler/dfx.h"
#include "hardware/config.h"

namespace kpu::compiler {

/// Throws CompileError naming the tensor, the level and the numbers when something does not fit.
BoundProgram bind(const Program& program, const hw::Config& config);

/// Where a host puts a program image of `image_bytes` for `bound`: the first DRAM interleave
/// boundary after its last tensor (kpu-sim's choice; any DRAM the inputs do not use until
/// START would do). Throws CompileError with the numbers when the image does not fit.
uint64_t image_address(const BoundProgram& bound, const hw::Config& config, uint64_t image_bytes);

/// How the binder runs one DRAM transfer (LOAD or STORE) on the DMA engines: cut into units
/// (interleave blocks of `block` bytes when source and destination are both contiguous and the
/// transfer is whole blocks, rows otherwise), unit u in slice u mod n, n = min(engines, units,
/// bytes / block) slices. The slices cover the transfer's bytes exactly once, each at the same
/// destination offset as before; n = 1 returns the transfer unchanged.
std::vector<hw::Transfer> split_dram_transfer(const hw::Transfer& transfer, uint32_t engines, uint64_t block);

/// How many DMA engines one LOAD or STORE is spread over: as many as the destination compute
/// tile's link can feed (min(interconnect link, L3 ports) / DMA engine bandwidth), at least 1,
/// at most the chip's engines. More would only queue at that tile's link while other tiles'
/// transfers wait for an engine.
uint32_t dma_slices(const hw::Config& config);

/// The compute tile each task runs on: task i of a kernel on tile (first + i) mod T, where
/// first is 0 for the first kernel, the previous kernel's first for a kernel that reads its
/// results, and the tile after the previous kernel's last for one that does not
/// (independent ops side by side).
std::vector<uint32_t> task_tiles(const Program& program, const hw::Config& config);


}  // namespace kpu::compiler
