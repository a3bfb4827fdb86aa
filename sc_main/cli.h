// Command line of kpu-sim: parsing only, so that every flag is documented in one place and
// a bad command line fails before any model is built.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "hardware/config.h"

namespace kpu::cli {

struct Options {
    std::string config_path;                ///< --config FILE (required for every action)
    std::vector<hw::Override> overrides;    ///< --set PATH=VALUE, repeatable
    bool describe = false;                  ///< --describe: print derived figures and exit
    bool elaborate_only = false;            ///< --elaborate-only: build the platform, print module counts, exit
    std::string program_path;               ///< --program X.kpu: run it
    std::string inputs_dir;                 ///< --inputs DIR: <tensor>.npy for inputs and constants
    std::string outputs_dir;                ///< --outputs DIR: write <tensor>.npy for every output
    bool check = false;                     ///< --check: compare outputs with the reference
    std::string stats_path;                 ///< --stats FILE: JSON statistics of the run
    uint64_t seed = 1;                      ///< --seed N: random data for inputs without a file
    std::string vcd_path;                   ///< --vcd FILE: waveforms of the run
    uint64_t vcd_from_ps = 0;               ///< --vcd-window START:END (e.g. 10us:20us), in ps
    uint64_t vcd_to_ps = UINT64_MAX;
    std::string vcd_scope;                  ///< --vcd-scope PATTERN: only scopes matching the glob
    std::string trace_path;                 ///< --trace FILE: Chrome trace-event JSON (Perfetto)
    std::string report_path;                ///< --report FILE: the per-layer report as CSV (layer_report.h)
    std::optional<uint32_t> train_bytes;    ///< --train-bytes N: movers' timing granularity (0: every burst); unset: the platform's default
    std::optional<double> progress_s;       ///< --progress [SECONDS]: a progress line on stderr every SECONDS
    bool single_thread = false;             ///< --single-thread: no helper threads (GEMMs, movers' bytes, --check reference)
    bool verbose = false;                   ///< -v: how the program was bound (re-blocked tiles) and its replayed estimate
    std::optional<uint64_t> max_host_bytes;  ///< --max-host-memory GIB: the host memory a run may take; unset: what is available
    bool help = false;
    std::string help_text;
};

/// "10us:25us" -> [10e6, 25e6) ps; units ps, ns, us, ms, s (none: ns); either side may be
/// empty ("10us:" = from 10 us on). Throws one line naming the text on anything else.
std::pair<uint64_t, uint64_t> parse_time_window(const std::string& text);

/// Parses argv; throws std::runtime_error with one line on a bad command line.
Options parse(int argc, const char* const argv[]);

}  // namespace kpu::cli
