#include "platform/host_interface.h"

#include <algorithm>
#include <cstring>
#include <sstream>

namespace kpu::platform {

namespace {
const char* kMsgType = "kpu/host";
}

HostInterface::HostInterface(sc_core::sc_module_name name, uint64_t dram_size, uint64_t block_bytes, Start start)
    : sc_core::sc_module(name),
      socket("socket"),
      device_socket("device_socket"),
      irq("irq"),
      dram_size_(dram_size),
      block_bytes_(block_bytes),
      start_(std::move(start)) {
    socket.register_b_transport(this, &HostInterface::b_transport);
    socket.register_transport_dbg(this, &HostInterface::transport_dbg);
    socket.register_get_direct_mem_ptr(this, &HostInterface::get_direct_mem_ptr);
    device_socket.register_invalidate_direct_mem_ptr(this, &HostInterface::invalidate_direct_mem_ptr);
    SC_HAS_PROCESS(HostInterface);
    SC_METHOD(drive_irq);
    sensitive << irq_changed_;
}

void HostInterface::drive_irq() {
    if (irq.size() > 0) irq->write(irq_level_);
    lowering_ = false;
    if (raise_next_) {  // a run ended in the delta that lowered irq: rise one delta later
        raise_next_ = false;
        irq_level_ = true;
        irq_changed_.notify(sc_core::SC_ZERO_TIME);
    }
}

void HostInterface::set_irq(bool level) {
    if (!level) {
        if (irq_level_) lowering_ = true;
        irq_level_ = raise_next_ = false;
    } else if (lowering_) {
        // irq was high and is being lowered in this delta (IRQ_ACK or START), not yet driven:
        // raising it now would leave the wire high with no edge to wait for.
        raise_next_ = true;
        return;
    } else {
        irq_level_ = true;
    }
    irq_changed_.notify(sc_core::SC_ZERO_TIME);
}

bool HostInterface::to_device(tlm::tlm_generic_payload& trans) const {
    const uint64_t addr = trans.get_address();
    if (addr < kMemoryWindow || addr - kMemoryWindow >= dram_size_) return false;
    if (addr - kMemoryWindow + trans.get_data_length() > dram_size_) return false;
    trans.set_address(addr - kMemoryWindow);
    if (helper_) helper_->wait_all();
    return true;
}

void HostInterface::b_transport(tlm::tlm_generic_payload& trans, sc_core::sc_time& delay) {
    if (trans.get_address() < kRegisterSpace) return access_register(trans);
    const uint64_t host_addr = trans.get_address();
    if (!to_device(trans)) {
        std::ostringstream msg;
        msg << name() << ": host access at 0x" << std::hex << host_addr << std::dec << " (" << trans.get_data_length()
            << " bytes) is outside the register space and the DRAM window";
        SC_REPORT_WARNING(kMsgType, msg.str().c_str());
        trans.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
        return;
    }
    // A CPU's memcpy, a loader's block write or an unaligned store may cross a DRAM block:
    // split it there, so that any access inside the window works.
    for_each_block(trans, [&](tlm::tlm_generic_payload& piece) {
        device_socket->b_transport(piece, delay);
        return piece.is_response_ok();
    });
    trans.set_address(host_addr);
}

template <typename Access>
bool HostInterface::for_each_block(tlm::tlm_generic_payload& trans, Access access) {
    const uint64_t addr = trans.get_address();
    const unsigned len = trans.get_data_length();
    const unsigned width = trans.get_streaming_width();
    // The usual case; and streaming or byte-enabled accesses, which device memory refuses
    // whole (docs/models.md), go as they are.
    if ((addr % block_bytes_) + len <= block_bytes_ || width < len || trans.get_byte_enable_ptr())
        return access(trans);
    unsigned char* const data = trans.get_data_ptr();
    bool ok = true;
    for (unsigned done = 0; done < len && ok;) {
        const uint64_t at = addr + done;
        const unsigned n = unsigned(std::min<uint64_t>(len - done, block_bytes_ - at % block_bytes_));
        trans.set_address(at);
        trans.set_data_ptr(data + done);
        trans.set_data_length(n);
        trans.set_streaming_width(n);
        ok = access(trans);
        done += n;
    }
    trans.set_address(addr);
    trans.set_data_ptr(data);
    trans.set_data_length(len);
    trans.set_streaming_width(width);
    return ok;
}

unsigned HostInterface::transport_dbg(tlm::tlm_generic_payload& trans) {
    const uint64_t host_addr = trans.get_address();
    if (host_addr < kRegisterSpace) {
        // A debugger or memory viewer may read the registers (no side effects); writes, which
        // could START a program, are not debug accesses.
        if (!trans.is_read()) return 0;
        access_register(trans);
        return trans.is_response_ok() ? trans.get_data_length() : 0;
    }
    if (!to_device(trans)) return 0;
    unsigned served = 0;
    for_each_block(trans, [&](tlm::tlm_generic_payload& piece) {
        const unsigned n = device_socket->transport_dbg(piece);
        served += n;
        return n == piece.get_data_length();
    });
    trans.set_address(host_addr);
    return served;
}

bool HostInterface::get_direct_mem_ptr(tlm::tlm_generic_payload& trans, tlm::tlm_dmi& dmi) {
    const uint64_t host_addr = trans.get_address();
    if (!to_device(trans)) return false;
    const bool granted = device_socket->get_direct_mem_ptr(trans, dmi);
    trans.set_address(host_addr);
    if (granted) {
        // Device addresses back to host addresses, clipped to the window.
        dmi.set_start_address(dmi.get_start_address() + kMemoryWindow);
        dmi.set_end_address(std::min<uint64_t>(dmi.get_end_address(), dram_size_ - 1) + kMemoryWindow);
    }
    return granted;
}

void HostInterface::invalidate_direct_mem_ptr(sc_dt::uint64 start, sc_dt::uint64 end) {
    if (start >= dram_size_) return;
    socket->invalidate_direct_mem_ptr(start + kMemoryWindow, std::min<uint64_t>(end, dram_size_ - 1) + kMemoryWindow);
}

void HostInterface::access_register(tlm::tlm_generic_payload& trans) {
    const uint64_t offset = trans.get_address();
    const unsigned len = trans.get_data_length();
    if (trans.get_byte_enable_ptr() != nullptr)
        return refuse_register_access(trans, tlm::TLM_BYTE_ENABLE_ERROR_RESPONSE, "registers take no byte enables");
    if ((len != 4 && len != 8) || offset % len != 0)
        return refuse_register_access(trans, tlm::TLM_BURST_ERROR_RESPONSE,
                                      "registers take aligned 4- or 8-byte accesses");
    const uint64_t reg = offset & ~uint64_t(7);
    const unsigned shift = unsigned(offset - reg) * 8;  // the upper half of a 64-bit register
    const auto id = static_cast<HostRegister>(reg);
    uint64_t value = 0;
    if (trans.is_read()) {
        switch (id) {
            case HostRegister::Id: value = kKpuId; break;
            case HostRegister::ProgramAddr: value = program_addr_; break;
            case HostRegister::ProgramSize: value = program_size_; break;
            case HostRegister::Status: value = uint64_t(status_); break;
            case HostRegister::Error: value = uint64_t(error_); break;
            case HostRegister::Cycles: value = cycles_; break;
            case HostRegister::Control: value = 0; break;
            default: return refuse_register_access(trans, tlm::TLM_ADDRESS_ERROR_RESPONSE, "no register there");
        }
        value >>= shift;
        std::memcpy(trans.get_data_ptr(), &value, len);
        trans.set_response_status(tlm::TLM_OK_RESPONSE);
        return;
    }
    std::memcpy(&value, trans.get_data_ptr(), len);
    auto store = [&](uint64_t& reg_value) {
        const uint64_t mask = (len == 8 ? ~uint64_t(0) : 0xffffffffull) << shift;
        reg_value = (reg_value & ~mask) | ((value << shift) & mask);
    };
    trans.set_response_status(tlm::TLM_OK_RESPONSE);
    switch (id) {
        case HostRegister::ProgramAddr: store(program_addr_); return;
        case HostRegister::ProgramSize: store(program_size_); return;
        case HostRegister::Control:
            if (shift != 0) return;  // the upper half of CONTROL has no bits
            if (value & kControlIrqAck) {
                set_irq(false);
            }
            if (value & kControlStart) {
                if (status_ == HostStatus::Running) {
                    // Refused; the running program goes on and will report its own end.
                    error_ = HostError::Busy;
                    return;
                }
                status_ = HostStatus::Running;
                error_ = HostError::None;
                // A new run supersedes the last one's interrupt: a driver that starts again
                // without IRQ_ACK still sees irq rise at this run's end.
                set_irq(false);
                message_.clear();
                cycles_ = 0;
                start_(program_addr_, program_size_);
            }
            return;
        default:
            return refuse_register_access(trans, tlm::TLM_ADDRESS_ERROR_RESPONSE,
                                          "not a writable register (ID, STATUS, ERROR and CYCLES are read-only)");
    }
}

void HostInterface::refuse_register_access(tlm::tlm_generic_payload& trans, tlm::tlm_response_status status,
                                           const char* why) {
    std::ostringstream msg;
    msg << name() << ": register " << (trans.is_read() ? "read" : "write") << " at 0x" << std::hex
        << trans.get_address() << std::dec << " (" << trans.get_data_length() << " bytes) refused: " << why;
    SC_REPORT_WARNING(kMsgType, msg.str().c_str());
    trans.set_response_status(status);
}

void HostInterface::finish(HostError error, const std::string& message, uint64_t cycles) {
    status_ = error == HostError::None ? HostStatus::Done : HostStatus::Error;
    error_ = error;
    message_ = message;
    cycles_ = cycles;
    if (error != HostError::None) SC_REPORT_WARNING(kMsgType, (std::string(name()) + ": " + message).c_str());
    set_irq(true);
}

}  // namespace kpu::platform
