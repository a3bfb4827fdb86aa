// The host memory a kpu-sim run needs, estimated from the program before anything is
// allocated, so that a run this machine cannot hold is refused with the two numbers instead
// of ending in std::bad_alloc or the kernel's OOM killer (hardware/host_memory.h).
#pragma once

#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>

#include "compiler/dfx.h"

namespace kpu::cli {

/// Bytes a run of `program` needs at its peak, about: the device DRAM pages its tensors
/// fill (each in its dtype, a view shares its input's), the host's two copies of each input
/// and constant (the bytes it writes, in the dtype, and the floats the check keeps), two of
/// each tensor read back (the outputs; with `check` the intermediates too), the reference's
/// tensors (floats) with `check`,
/// and the bound ops once (the host binds to lay tensors out and drops the ops before the
/// device binds again at START).
uint64_t run_host_bytes(const compiler::Program& program, bool check);

/// Runs `step`; a std::bad_alloc from it becomes std::runtime_error("out of host memory
/// while <what>"), so that the one line says which part of the run did not fit.
template <class Step>
auto allocating(const std::string& what, Step step) {
    try {
        return step();
    } catch (const std::bad_alloc&) {
        throw std::runtime_error("out of host memory while " + what);
    }
}

}  // namespace kpu::cli
