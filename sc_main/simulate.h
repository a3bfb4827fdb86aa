// `kpu-sim --program`: loads a .kpu, prepares inputs, builds KpuPlatform plus the HostDriver,
// runs the simulation through the host interface exactly as a virtual platform would, then
// writes outputs, checks them against the reference and reports.
#pragma once

#include <iosfwd>

#include "hardware/config.h"
#include "sc_main/cli.h"

namespace kpu::cli {

/// Exit codes beyond 0 (success) and 1 (bad input: one line on stderr).
constexpr int kExitRunFailed = 3;    ///< the device reported an error or the program got stuck
constexpr int kExitCheckFailed = 4;  ///< outputs differ from the reference

/// Runs the program; prints the summary to `out`. Throws std::exception (one line) on bad
/// input found before the simulation: unreadable or invalid files, a program that does not
/// fit, input shapes that do not match.
int run_program(const hw::Config& config, const Options& options, std::ostream& out);

}  // namespace kpu::cli
