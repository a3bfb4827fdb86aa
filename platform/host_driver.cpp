#include "platform/host_driver.h"

#include <sstream>

namespace kpu::platform {

HostDriver::HostDriver(sc_core::sc_module_name name, HostJob& job, bool launch_at_start)
    : sc_core::sc_module(name), socket("socket"), irq("irq"), job_(job), memory_(socket) {
    socket.register_invalidate_direct_mem_ptr(this, &HostDriver::invalidate_direct_mem_ptr);
    SC_HAS_PROCESS(HostDriver);
    if (launch_at_start) SC_THREAD(launch);
}

void HostDriver::invalidate_direct_mem_ptr(sc_dt::uint64 start, sc_dt::uint64 end) { memory_.invalidate(start, end); }

void HostDriver::access_register(tlm::tlm_command command, HostRegister reg, uint64_t& value) {
    tlm::tlm_generic_payload trans;
    sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
    trans.set_command(command);
    trans.set_address(uint64_t(reg));
    trans.set_data_ptr(reinterpret_cast<unsigned char*>(&value));
    trans.set_data_length(8);
    trans.set_streaming_width(8);
    socket->b_transport(trans, delay);
    if (trans.is_response_error())
        result_.failure = std::string("register ") + (command == tlm::TLM_READ_COMMAND ? "read" : "write") +
                          " failed: " + trans.get_response_string();
}

uint64_t HostDriver::read_register(HostRegister reg) {
    uint64_t value = 0;
    access_register(tlm::TLM_READ_COMMAND, reg, value);
    return value;
}

void HostDriver::write_register(HostRegister reg, uint64_t value) { access_register(tlm::TLM_WRITE_COMMAND, reg, value); }

bool HostDriver::copy(HostBuffer& buffer, bool to_device) {
    const uint64_t host_addr = kMemoryWindow + buffer.device_addr;
    const bool ok = to_device ? memory_.write(host_addr, buffer.bytes.data(), buffer.bytes.size())
                              : memory_.read(host_addr, buffer.bytes.data(), buffer.bytes.size());
    if (!ok) {
        std::ostringstream msg;
        msg << "cannot " << (to_device ? "write " : "read ") << buffer.name << " (" << buffer.bytes.size()
            << " bytes) at device address 0x" << std::hex << buffer.device_addr;
        result_.failure = msg.str();
    }
    return ok;
}

void HostDriver::launch() {
    result_ = HostResult{};
    for (auto& input : job_.inputs)
        if (!copy(input, true)) return;
    // A member, not a local: a thread still suspended when the simulation ends never unwinds.
    image_ = {"the program image", job_.image_addr, std::vector<uint8_t>(job_.image.begin(), job_.image.end())};
    if (!copy(image_, true)) return;
    write_register(HostRegister::ProgramAddr, job_.image_addr);
    write_register(HostRegister::ProgramSize, job_.image.size());
    write_register(HostRegister::Control, kControlStart);
    while (!irq.read()) wait(irq.value_changed_event());
    result_.interrupted = true;
    result_.status = static_cast<HostStatus>(read_register(HostRegister::Status));
    result_.error = static_cast<HostError>(read_register(HostRegister::Error));
    result_.cycles = read_register(HostRegister::Cycles);
    if (result_.status == HostStatus::Done)
        for (auto& output : job_.outputs)
            if (!copy(output, false)) break;
    write_register(HostRegister::Control, kControlIrqAck);
}

}  // namespace kpu::platform
