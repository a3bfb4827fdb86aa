// SystolicFabric: the R x C output-stationary systolic array of one compute tile. It executes
// MatmulCommand (C tile += A tile x B tile, C resident in its accumulators across the k steps)
// and DrainCommand (accumulators -> L1 through the bias/activation epilogue).
// Sockets: l1_socket (TLM initiator) into its tile's L1; operands move with DMI, falling back
// to transport_dbg, and cost no time there because the Streamers already charged it.
// Time: an analytic number of fabric cycles per command (fabric_timing.h); it never steps PEs.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>

#include "hardware/config.h"
#include "hardware/fabric_command.h"
#include "models/helper_thread.h"
#include "models/dmi_cache.h"
#include "models/fabric_kernel.h"

namespace kpu::model {

class SystolicFabric : public sc_core::sc_module {
public:
    struct Command {
        uint64_t id = 0;        ///< reported back on completion
        bool drain = false;     ///< false: `matmul`, true: `drain_command`
        hw::MatmulCommand matmul;
        hw::DrainCommand drain_command;
    };
    /// Called at the simulated time a command finishes (`started`: when it began); ok is
    /// false when an operand address was not readable (reported with SC_REPORT_WARNING
    /// naming the address).
    using Completion = std::function<void(uint64_t id, bool ok, const sc_core::sc_time& started)>;

    tlm_utils::simple_initiator_socket<SystolicFabric> l1_socket;

    SystolicFabric(sc_core::sc_module_name name, const hw::Config& config);

    /// Queues a command; the fabric runs its queue in order.
    void submit(const Command& command);
    void on_complete(Completion completion) { completion_ = std::move(completion); }
    /// Runs the GEMM of each MATMUL on `helper` while the simulation goes on, and waits for
    /// it before the MATMUL completes (helper_thread.h says why that is exact); nullptr
    /// (the default): inline, when the MATMUL starts. A job may still be queued when the
    /// simulation stops mid-MATMUL: destroy the helper (which runs it) before the fabric, as
    /// KpuPlatform does.
    void set_helper(HelperThread* helper) { helper_ = helper; }

    sc_core::sc_time busy_time() const { return busy_; }  ///< sum of command durations
    uint64_t macs() const { return macs_; }               ///< useful multiply-accumulates
    uint64_t commands() const { return commands_; }
    uint64_t l1_bytes_read() const { return l1_read_; }      ///< operands (and bias) read from L1
    uint64_t l1_bytes_written() const { return l1_written_; }  ///< drained results written to L1
    sc_core::sc_time cycle() const { return cycle_; }
    const char* kernel_isa() const { return gemm_.isa(); }  ///< the vectors its arithmetic runs in

private:
    void run();
    bool execute_matmul(const hw::MatmulCommand& c);
    bool execute_drain(const hw::DrainCommand& c);
    /// Row pointers of a rows x cols operand at addr (pitch in floats): in place in L1 where
    /// DMI grants it, else copied into `staging`. False if a row is not readable.
    bool operand_rows(uint64_t addr, uint32_t rows, uint32_t cols, uint32_t pitch, std::vector<float>& staging,
                      std::vector<const float*>& out);
    void invalidate_direct_mem_ptr(sc_dt::uint64 start, sc_dt::uint64 end);

    const hw::Config& config_;
    sc_core::sc_time cycle_;
    DmiCache l1_;
    std::deque<Command> queue_;
    sc_core::sc_event queued_;
    Completion completion_;
    std::vector<float> acc_;                ///< accumulators, acc_rows_ x acc_cols_
    uint32_t acc_rows_ = 0, acc_cols_ = 0;
    GemmKernel gemm_;                       ///< the arithmetic, in the host's widest vectors
    HelperThread* helper_ = nullptr;
    std::optional<HelperThread::Ticket> pending_;  ///< the running MATMUL's GEMM on helper_
    std::vector<float> a_, b_, out_;        ///< operand and drain staging, reused
    std::vector<const float*> a_rows_, b_rows_;
    sc_core::sc_time busy_ = sc_core::SC_ZERO_TIME;
    uint64_t macs_ = 0;
    uint64_t commands_ = 0;
    uint64_t l1_read_ = 0, l1_written_ = 0;
};

}  // namespace kpu::model
