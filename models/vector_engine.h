// VectorEngine: the vector unit of one compute tile (`lanes` fp32 ALU lanes and a
// special-function unit). It executes VectorCommand (hardware/vector_command.h): element-wise
// functions, reductions, softmax and the norms over a rows x cols tile in its tile's L1 or L2.
// Sockets: `socket` (TLM initiator) into its tile's switch; operands and results move through
// DMI, falling back to transport_dbg, and cost no time there: the engine's own time covers
// reading and writing the tile (the Streamers and BlockMovers charge moving it into L1 / L2).
// Time: an analytic number of fabric cycles per command (vector_timing.h); it never steps lanes.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <iterator>
#include <optional>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>

#include "hardware/config.h"
#include "hardware/vector_command.h"
#include "models/dmi_cache.h"
#include "models/helper_thread.h"

namespace kpu::model {

class VectorEngine : public sc_core::sc_module {
public:
    struct Command {
        uint64_t id = 0;  ///< reported back on completion
        hw::VectorCommand vector;
    };
    /// Called at the simulated time a command finishes (`started`: when it began), from an
    /// SC_METHOD: it must not wait. ok is false when the command was refused or an address
    /// could not be read or written (each reported with SC_REPORT_WARNING, type kpu/vector).
    using Completion = std::function<void(uint64_t id, bool ok, const sc_core::sc_time& started)>;

    tlm_utils::simple_initiator_socket<VectorEngine> socket;

    VectorEngine(sc_core::sc_module_name name, const hw::Config& config);

    /// Queues a command; the engine runs its queue in order, one command at a time.
    void submit(const Command& command);
    void on_complete(Completion completion) { completion_ = std::move(completion); }
    /// Computes each command on `helper` while the simulation goes on and waits for it before
    /// the command's results are written and it completes (exact for the reasons
    /// helper_thread.h gives); nullptr (the default): inline, when the command starts.
    /// Destroy the helper before the engine, as KpuPlatform does.
    void set_helper(HelperThread* helper) { helper_ = helper; }

    sc_core::sc_time busy_time() const { return busy_; }  ///< sum of command durations
    uint64_t commands() const { return commands_; }       ///< completed, refused ones included
    uint64_t elements() const { return elements_; }       ///< rows x cols of the commands that ran
    double energy_pj() const { return energy_pj_; }       ///< hw::vector_energy_pj of the commands that ran
    /// What the commands on operand a's element type did.
    struct TypeCounts {
        uint64_t alu_ops = 0;   ///< elements through ALU passes (hw::vector_alu_ops)
        uint64_t elements = 0;  ///< rows x cols
        double energy_pj = 0;   ///< hw::vector_energy_pj
    };
    /// The counts of the commands whose operand a is of element type `type` (they add up to
    /// elements() and energy_pj()).
    const TypeCounts& counts(hw::DType type) const { return by_type_[size_t(type)]; }
    uint64_t bytes_read() const { return bytes_read_; }        ///< inputs, weights and biases read
    uint64_t bytes_written() const { return bytes_written_; }  ///< results written
    sc_core::sc_time cycle() const { return cycle_; }

private:
    /// The one process: starts the next command, and at its end writes its results and
    /// reports it. An SC_METHOD, so an idle engine (on every tile of a large SKU) costs no
    /// coroutine stack.
    void step();
    void begin_next();
    /// Checks, reads the inputs and computes (inline or on the helper); false when refused or
    /// an input was unreadable.
    bool start(const hw::VectorCommand& c);
    /// Writes the results of the command that started; false if an address was unwritable.
    bool finish(const hw::VectorCommand& c);
    /// Reads an input in its compact form (rows x cols, cols, rows or 1 values) into `out`.
    bool read_input(const char* what, const hw::VectorOperand& in, uint32_t rows, uint32_t cols,
                    std::vector<float>& out);
    /// Reads `count` elements stored as `encoding` into float32 `out`.
    bool read_vector(const char* what, uint64_t addr, uint64_t count, std::vector<float>& out,
                     const hw::Encoding& encoding = {});
    bool refuse(const hw::VectorCommand& c, const std::string& why);
    void invalidate_direct_mem_ptr(sc_dt::uint64 start, sc_dt::uint64 end);

    const hw::VectorUnit unit_;
    const uint64_t max_tile_bytes_;  ///< a tile's L1 and L2: no operand can be larger
    const double period_s_;          ///< of the fabric clock, which the engine runs on
    sc_core::sc_time cycle_;
    DmiCache memory_;             ///< the socket's DMI regions: where operands and results are copied
    std::deque<Command> queue_;   ///< submitted, not yet started
    sc_core::sc_event queued_;    ///< a submit: wakes an idle step()
    Completion completion_;
    HelperThread* helper_ = nullptr;
    std::optional<HelperThread::Ticket> pending_;  ///< the running command's arithmetic on helper_

    // The running command.
    bool running_ = false;
    Command current_;
    bool ok_ = false;  ///< its inputs were read and its arithmetic started
    sc_core::sc_time started_, duration_;
    std::vector<float> a_, b_, weight_, bias_, y_;  ///< staging, reused
    std::vector<float> state_;  ///< the online functions' row statistics (m, l, c), staged
    std::vector<uint8_t> raw_;  ///< an operand or the result as stored, when not float32

    sc_core::sc_time busy_ = sc_core::SC_ZERO_TIME;
    uint64_t commands_ = 0, elements_ = 0;
    double energy_pj_ = 0;
    TypeCounts by_type_[std::size(hw::kDTypeNames)];  ///< indexed by hw::DType of operand a
    uint64_t bytes_read_ = 0, bytes_written_ = 0;
};

}  // namespace kpu::model
