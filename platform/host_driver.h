// HostDriver: the host CPU and driver that kpu-sim puts in front of the KPU. It does exactly
// what a driver on a real SoC does through the host socket: writes the input tensors and the
// program image into device memory, programs PROGRAM_ADDR/SIZE, writes START, waits for irq,
// reads STATUS/ERROR/CYCLES and the outputs, and acknowledges the interrupt. A virtual
// platform replaces this module with its own CPU and driver.
// Sockets: `socket` (TLM initiator) to KpuPlatform's host socket; `irq` in.
// Time: none of its own; device memory accesses use DMI (transport_dbg where not granted).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>

#include "models/dmi_cache.h"
#include "platform/host_interface.h"

namespace kpu::platform {

/// Bytes at a device DRAM address.
struct HostBuffer {
    std::string name;  ///< tensor name, for messages
    uint64_t device_addr = 0;
    std::vector<uint8_t> bytes;
};

struct HostJob {
    std::vector<HostBuffer> inputs;   ///< written before START
    std::string image;                ///< the .kpu program image
    uint64_t image_addr = 0;          ///< device DRAM address for it
    std::vector<HostBuffer> outputs;  ///< sized by the caller, filled after the interrupt
};

struct HostResult {
    bool interrupted = false;  ///< the irq came
    HostStatus status = HostStatus::Idle;
    HostError error = HostError::None;
    uint64_t cycles = 0;
    std::string failure;       ///< a host-side access that failed, if any
};

class HostDriver : public sc_core::sc_module {
public:
    tlm_utils::simple_initiator_socket<HostDriver> socket;
    sc_core::sc_in<bool> irq;

    /// `job` must outlive the simulation; outputs are filled in place. With `launch_at_start`
    /// the driver runs `job` once at the start of the simulation (kpu-sim); without, a thread
    /// of the caller's calls launch() for each program launch (the Python runtime's worker
    /// runs many launches on one elaborated platform, changing `job` between them).
    HostDriver(sc_core::sc_module_name name, HostJob& job, bool launch_at_start = true);

    /// One program launch of `job`, as a driver does it (see above); call from an SC_THREAD.
    /// Resets result() first.
    void launch();

    const HostResult& result() const { return result_; }

    uint64_t read_register(HostRegister reg);
    void write_register(HostRegister reg, uint64_t value);

private:
    void access_register(tlm::tlm_command command, HostRegister reg, uint64_t& value);
    bool copy(HostBuffer& buffer, bool to_device);
    void invalidate_direct_mem_ptr(sc_dt::uint64 start, sc_dt::uint64 end);

    HostJob& job_;
    HostBuffer image_;
    model::DmiCache memory_;
    HostResult result_;
};

}  // namespace kpu::platform
