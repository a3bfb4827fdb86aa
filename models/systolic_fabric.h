// SystolicFabric: the R x C output-stationary systolic array of one compute tile. It executes
// MatmulCommand (C tile += A tile x B tile, C resident in its accumulators across the k steps)
// and DrainCommand (accumulators -> L1 through the bias/activation epilogue). Operands are
// float32, bfloat16 or float16 (widened exactly, float32 accumulators) or int8 (int32
// accumulators); the drain stores C as float32, bfloat16, float16 or int8 (fabric_command.h).
// Sockets: l1_socket (TLM initiator) into its tile's L1; operands move with DMI, falling back
// to transport_dbg, and cost no time there because the Streamers already charged it.
// Time: an analytic number of fabric cycles per command (fabric_timing.h); it never steps PEs.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
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
    /// The MACs of the MATMULs of element type `type` (they add up to macs()).
    uint64_t macs(hw::DType type) const { return macs_by_type_[size_t(type)]; }
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
    /// A rows x cols bfloat16 or float16 operand at addr (pitch in elements) widened exactly
    /// into `staging` (row r at r * cols), with its row pointers in `out`. False if unreadable.
    bool widened_rows(uint64_t addr, uint32_t rows, uint32_t cols, uint32_t pitch, hw::DType type,
                      std::vector<float>& staging, std::vector<const float*>& out);
    /// A rows x cols int8 operand at addr (pitch in elements) as q - zero in `out` (row r at
    /// r * cols). False if unreadable.
    bool offset_rows(uint64_t addr, uint32_t rows, uint32_t cols, uint32_t pitch, int32_t zero,
                     std::vector<int32_t>& out);
    /// MACs per PE per cycle of `type` (the config's macs_per_pe_cycle; float32: 1), or 0 when
    /// the config does not list it (then `why` holds Config::fabric_type's message).
    uint32_t macs_per_cycle(hw::DType type, std::string* why = nullptr) const;
    bool execute_int8(const hw::MatmulCommand& c);
    /// Stores drained row i (out_, n values) as `c.out_type` at its place in C.
    bool store_row(const hw::DrainCommand& c, uint32_t i);
    void invalidate_direct_mem_ptr(sc_dt::uint64 start, sc_dt::uint64 end);

    const hw::Config& config_;
    sc_core::sc_time cycle_;
    DmiCache l1_;
    std::deque<Command> queue_;
    sc_core::sc_event queued_;
    Completion completion_;
    std::vector<float> acc_;                ///< float32 accumulators, acc_rows_ x acc_cols_
    std::vector<int32_t> acc_int_;          ///< int32 accumulators (int8 MATMULs), acc_rows_ x acc_cols_
    bool int_acc_ = false;                  ///< the last MATMUL was int8: acc_int_ holds the tile
    uint32_t acc_rows_ = 0, acc_cols_ = 0;
    GemmKernel gemm_;                       ///< the arithmetic, in the host's widest vectors
    HelperThread* helper_ = nullptr;
    std::optional<HelperThread::Ticket> pending_;  ///< the running MATMUL's GEMM on helper_
    std::vector<float> a_, b_, out_;        ///< operand and drain staging, reused
    std::vector<const float*> a_rows_, b_rows_;
    std::vector<int32_t> a_int_, b_int_;     ///< int8 operands minus their zero points, reused
    std::vector<uint8_t> raw_;               ///< one row as stored (reduced-precision reads, typed stores)
    sc_core::sc_time busy_ = sc_core::SC_ZERO_TIME;
    uint64_t macs_ = 0;
    uint64_t macs_by_type_[std::size(hw::kDTypeNames)] = {};  ///< indexed by hw::DType
    uint64_t commands_ = 0;
    uint64_t l1_read_ = 0, l1_written_ = 0;
};

}  // namespace kpu::model
