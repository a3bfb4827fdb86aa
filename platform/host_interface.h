// HostInterface: the KPU's face to a host CPU. One TLM target socket carries both the
// control/status registers and a window onto device DRAM; `irq` rises when a program ends.
// The window forwards b_transport, transport_dbg and DMI (address-translated) to the device
// through `device_socket`, so a co-simulated CPU reads and writes device memory at DMI speed.
// Time: register accesses cost nothing; window accesses cost what the device path charges.
//
// Register map (offsets in the host socket; 32- or 64-bit aligned accesses):
//   0x00 ID            RO  0x4B505531 ("KPU1")
//   0x08 PROGRAM_ADDR  RW  device DRAM address of the .kpu program image
//   0x10 PROGRAM_SIZE  RW  bytes of the image
//   0x18 CONTROL       WO  bit 0 START, bit 1 IRQ_ACK (lowers irq)
//   0x20 STATUS        RO  0 IDLE, 1 RUNNING, 2 DONE, 3 ERROR
//   0x28 ERROR         RO  HostError code of the last run (0 when none)
//   0x30 CYCLES        RO  fabric cycles from START to the end of the last run
//   kMemoryWindow + a      device DRAM address a, for a < DRAM size
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "models/helper_thread.h"

namespace kpu::platform {

enum class HostRegister : uint64_t {
    Id = 0x00,
    ProgramAddr = 0x08,
    ProgramSize = 0x10,
    Control = 0x18,
    Status = 0x20,
    Error = 0x28,
    Cycles = 0x30,
};

enum class HostStatus : uint64_t { Idle = 0, Running = 1, Done = 2, Error = 3 };

enum class HostError : uint64_t {
    None = 0,
    BadImage = 1,    ///< the program image is not a valid .kpu (or its range is not in DRAM)
    DoesNotFit = 2,  ///< the program does not bind to this config
    OpFailed = 3,    ///< an op hit an illegal address or operand at run time
    Stuck = 4,       ///< ops remained that could not progress
    Busy = 5,        ///< START while a program was running
};

constexpr uint64_t kKpuId = 0x4B505531;
constexpr uint64_t kControlStart = 1;
constexpr uint64_t kControlIrqAck = 2;
constexpr uint64_t kRegisterSpace = 0x1000;
constexpr uint64_t kMemoryWindow = 1ull << 40;  ///< host offset of device DRAM address 0

/// The interrupt output. Optional, like the host socket: a platform nobody drives (a test of
/// its movers, --elaborate-only) elaborates without binding either.
using IrqPort = sc_core::sc_port<sc_core::sc_signal_inout_if<bool>, 1, sc_core::SC_ZERO_OR_MORE_BOUND>;
using HostSocket = tlm::tlm_target_socket<32, tlm::tlm_base_protocol_types, 1, sc_core::SC_ZERO_OR_MORE_BOUND>;

class HostInterface : public sc_core::sc_module {
public:
    /// Starts a program whose image is [addr, addr + size) in device DRAM. The owner answers
    /// later with finish(); an error found at once may call finish() from inside start.
    using Start = std::function<void(uint64_t addr, uint64_t size)>;

    tlm_utils::simple_target_socket_optional<HostInterface> socket;  ///< from the host
    tlm_utils::simple_initiator_socket<HostInterface> device_socket;  ///< into device memory
    IrqPort irq;

    /// `block_bytes`: the DRAM interleave; a window access that crosses one is split there
    /// (each block is served by one channel, which takes no access across its own edge).
    HostInterface(sc_core::sc_module_name name, uint64_t dram_size, uint64_t block_bytes, Start start);

    /// The running program ended: sets STATUS/ERROR/CYCLES and raises irq.
    void finish(HostError error, const std::string& message, uint64_t cycles);

    /// Window accesses by b_transport and transport_dbg (and DMI grants) first wait until
    /// `helper` has moved every transfer's bytes handed to it, so they see device memory as
    /// the simulated time has it. nullptr: the movers move their bytes inline.
    void set_helper(model::HelperThread* helper) { helper_ = helper; }

    HostStatus status() const { return status_; }
    const std::string& error_message() const { return message_; }  ///< of the last run

private:
    void b_transport(tlm::tlm_generic_payload& trans, sc_core::sc_time& delay);
    unsigned transport_dbg(tlm::tlm_generic_payload& trans);
    bool get_direct_mem_ptr(tlm::tlm_generic_payload& trans, tlm::tlm_dmi& dmi);
    void invalidate_direct_mem_ptr(sc_dt::uint64 start, sc_dt::uint64 end);
    /// Translates a window access to a device address; false if it is not in the window.
    bool to_device(tlm::tlm_generic_payload& trans) const;
    void access_register(tlm::tlm_generic_payload& trans);
    void drive_irq();
    /// Sets the level drive_irq writes next; a raise right after a lowering in the same delta
    /// is held for one delta, so that the wire falls and rises (a waiter sees the edge).
    void set_irq(bool level);

    /// Runs `access` on each piece of a window access [addr, addr + len) that stays inside
    /// one DRAM block (address, data pointer and length set); stops at the first piece
    /// `access` returns false for. Restores the transaction. False if some piece failed.
    template <typename Access>
    bool for_each_block(tlm::tlm_generic_payload& trans, Access access);
    void refuse_register_access(tlm::tlm_generic_payload& trans, tlm::tlm_response_status status, const char* why);

    uint64_t dram_size_;
    uint64_t block_bytes_;
    Start start_;
    model::HelperThread* helper_ = nullptr;
    uint64_t program_addr_ = 0, program_size_ = 0, cycles_ = 0;
    HostStatus status_ = HostStatus::Idle;
    HostError error_ = HostError::None;
    std::string message_;
    bool irq_level_ = false;
    bool lowering_ = false;    ///< irq_level_ went high -> low and drive_irq has not run since
    bool raise_next_ = false;  ///< raise irq once the lowering has been driven
    sc_core::sc_event irq_changed_;
};

}  // namespace kpu::platform
