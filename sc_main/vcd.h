// VCD waveforms of a finished run, from its RunReport (so the waveforms and the stats are
// the same numbers, and a run without --vcd pays nothing). Scopes follow the module tree
// (kpu.tile_3.bm_1); per engine: busy (1 bit), queue (ops given to it, not yet finished) and
// bytes (moved so far); per fabric: active; per vector engine: busy and queue;
// kpu.sequencer: in_flight (ops dispatched, not yet finished). Opens in GTKWave.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sc_main/report.h"

namespace kpu::cli {

/// Writes [from_ps, to_ps) of the run (values at from_ps as the initial dump) for the scopes
/// matching `scope_glob` (empty: all; matched against e.g. "kpu.tile_3.bm_1"). Throws one
/// line when the file cannot be written or no scope matches.
void write_vcd(const RunReport& report, const std::string& path, uint64_t from_ps, uint64_t to_ps,
               const std::string& scope_glob);

/// Throws the line write_vcd would ("--vcd-scope P: no scope matches ...") when `scope_glob`
/// matches none of the VCD's scopes: the engines' (`engine_scope` of each op that runs),
/// kpu.sequencer and kpu.dram_<c>. kpu-sim calls it with the bound program's engines before
/// the simulation, so a typo does not cost the whole run.
void check_vcd_scope(const std::vector<std::string>& engine_scopes, uint32_t dram_channels,
                     const std::string& scope_glob);

}  // namespace kpu::cli
