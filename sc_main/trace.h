// A Chrome trace-event JSON timeline of a finished run (opens in Perfetto or
// chrome://tracing): one track per engine and fabric, grouped per compute tile, one slice per
// op with what it did as args (DFX op, kind, tensor and tile indices, bytes; a vector op's function and rows x cols). An engine with
// several ops in flight at once gets that many tracks (lanes), so slices on a track nest.
#pragma once

#include <string>

#include "compiler/bound_program.h"
#include "compiler/dfx.h"
#include "sc_main/report.h"

namespace kpu::cli {

/// Throws one line when the file cannot be written.
void write_trace(const RunReport& report, const compiler::BoundProgram& bound, const compiler::Program& program,
                 const std::string& path);

}  // namespace kpu::cli
