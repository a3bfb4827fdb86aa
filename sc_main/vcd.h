// VCD waveforms of a finished run, from its RunReport (so the waveforms and the stats are
// the same numbers, and a run without --vcd pays nothing). Scopes follow the module tree
// (kpu.tile_3.bm_1); per engine: busy (1 bit), queue (ops given to it, not yet finished) and
// bytes (moved so far); per fabric: active; kpu.sequencer: in_flight (ops dispatched, not yet
// finished). Opens in GTKWave.
#pragma once

#include <cstdint>
#include <string>

#include "sc_main/report.h"

namespace kpu::cli {

/// Writes [from_ps, to_ps) of the run (values at from_ps as the initial dump) for the scopes
/// matching `scope_glob` (empty: all; matched against e.g. "kpu.tile_3.bm_1"). Throws one
/// line when the file cannot be written or no scope matches.
void write_vcd(const RunReport& report, const std::string& path, uint64_t from_ps, uint64_t to_ps,
               const std::string& scope_glob);

}  // namespace kpu::cli
