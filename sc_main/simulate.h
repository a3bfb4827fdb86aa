// `kpu-sim --program`: loads a .kpu, prepares inputs, builds KpuPlatform plus the HostDriver,
// runs the simulation through the host interface exactly as a virtual platform would, then
// writes outputs, checks them against the reference and reports.
#pragma once

#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compiler/bound_program.h"
#include "compiler/dfx.h"
#include "hardware/config.h"
#include "platform/host_driver.h"
#include "platform/kpu_platform.h"
#include "sc_main/cli.h"

namespace kpu::cli {

/// Exit codes beyond 0 (success) and 1 (bad input: one line on stderr).
constexpr int kExitRunFailed = 3;    ///< the device reported an error or the program got stuck
constexpr int kExitCheckFailed = 4;  ///< outputs differ from the reference

/// A program made ready for one config: bound, its input data chosen and laid out for the
/// host, what it reads back sized (`job.outputs`: the outputs, and with `read_intermediates`
/// the intermediates too, so that --check can verify each op on the operands the hardware
/// used).
struct Prepared {
    compiler::BoundProgram bound;
    platform::HostJob job;
    std::map<std::string, std::vector<float>> inputs;  ///< what the host writes, by tensor (its values, npy.h)
    std::vector<std::string> seeded;                   ///< inputs and constants given random data
};

/// The dtype of a bound tensor; throws on a name that is none.
hw::DType dtype_of(const compiler::BoundTensor& tensor);

/// Binds `program` and prepares its data: <inputs_dir>/<tensor>.npy where present, else a
/// constant's <weights_dir>/<tensor>.npy (the program's weights, Program::weights), else
/// seeded uniform [-1, 1) data (the same for a seed and tensor name everywhere; the integer
/// types get integers). Every file must hold its tensor's shape and dtype (bfloat16 as uint16
/// bit patterns); DRAM gets the tensor's bytes in its dtype, `inputs` its values as
/// element_values() (npy.h) gives them. Throws one line on a program that does not fit or an
/// input file that does not match.
Prepared prepare(const hw::Config& config, const compiler::Program& program, const std::string& inputs_dir,
                 uint64_t seed, bool read_intermediates = false, const std::string& weights_dir = "");

/// One KPU and the host that drives it, as kpu-sim builds them; several can share a
/// simulation (distinct names).
struct Session {
    platform::HostJob job;
    std::unique_ptr<platform::KpuPlatform> kpu;
    std::unique_ptr<platform::HostDriver> host;
    std::unique_ptr<sc_core::sc_signal<bool>> irq;

    /// Elaborates the platform `name` and its host `<name>_host`, wired by socket and irq.
    void build(const hw::Config& config, const std::string& name = "kpu", const platform::PlatformOptions& options = {});
    /// After the simulation: empty, or one line on what went wrong (host, stuck, device).
    std::string failure() const;
    /// The computed tensors the host read back, by name, as element_values() (npy.h) gives them:
    /// each in its dtype as `tensors` (the bound program's) says, float32 without them.
    std::map<std::string, std::vector<float>> outputs(
        const std::vector<compiler::BoundTensor>* tensors = nullptr) const;
};

/// Runs the program; prints the summary to `out`. Throws std::exception (one line) on bad
/// input found before the simulation: unreadable or invalid files, a program that does not
/// fit, input shapes that do not match.
int run_program(const hw::Config& config, const Options& options, std::ostream& out);

}  // namespace kpu::cli
