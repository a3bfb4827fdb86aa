#include "models/memory_target.h"

#include "models/contention.h"
#include "models/timing_path.h"

#include <sstream>

namespace kpu::model {

using tlm::tlm_generic_payload;

Memory::Memory(sc_core::sc_module_name name, const char* kind, const hw::MemoryLevel& level, double clock_hz,
               uint64_t base, uint64_t page_bytes, PageArena* arena)
    : sc_core::sc_module(name),
      kind_(kind),
      base_(base),
      storage_(level.capacity_bytes, page_bytes, arena),
      timer_(level.ports, level.bandwidth_bytes_per_s, clock_hz, level.latency_cycles) {}

MemoryStats Memory::stats() const {
    const PortTimer::Traffic& t = timer_.traffic();
    return {t.reads, t.writes, t.bytes_read, t.bytes_written, errors_};
}

void Memory::report(const tlm_generic_payload& trans, const char* problem) {
    ++errors_;
    std::ostringstream msg;
    msg << name() << ": " << problem << ": " << (trans.is_read() ? "read" : trans.is_write() ? "write" : "access")
        << " of " << trans.get_data_length() << " bytes at offset 0x" << std::hex << trans.get_address()
        << " (device address 0x" << device_address(trans.get_address()) << ")" << std::dec << ", " << kind_ << " holds "
        << capacity() << " bytes";
    SC_REPORT_WARNING("kpu/memory", msg.str().c_str());
}

bool Memory::check(tlm_generic_payload& trans) {
    const uint64_t addr = trans.get_address();
    const uint64_t len = trans.get_data_length();
    if (len == 0 || addr >= capacity() || len > capacity() - addr) {
        trans.set_response_status(tlm::TLM_ADDRESS_ERROR_RESPONSE);
        report(trans, "address out of range");
        return false;
    }
    if (trans.get_byte_enable_ptr()) {
        trans.set_response_status(tlm::TLM_BYTE_ENABLE_ERROR_RESPONSE);
        report(trans, "byte enables are not supported");
        return false;
    }
    if (trans.get_streaming_width() < len) {
        trans.set_response_status(tlm::TLM_BURST_ERROR_RESPONSE);
        report(trans, "streaming bursts are not supported");
        return false;
    }
    return true;
}

void Memory::b_transport(tlm_generic_payload& trans, sc_core::sc_time& delay) {
    if (trans.get_command() == tlm::TLM_IGNORE_COMMAND) {
        trans.set_response_status(tlm::TLM_OK_RESPONSE);
        return;
    }
    if (!check(trans)) return;
    const uint64_t addr = trans.get_address();
    const uint32_t len = trans.get_data_length();
    if (trans.is_read())
        storage_.read(addr, trans.get_data_ptr(), len);
    else
        storage_.write(addr, trans.get_data_ptr(), len);
    const Fs now = time_.now();
    const PortTimer::Booking b = timer_.book(now + time_.to_fs(delay), len, &trans, trans.is_write());
    ContentionExtension::mark(trans, b.contended);
    delay = time_.until(b.done, now);
    trans.set_dmi_allowed(true);
    trans.set_response_status(tlm::TLM_OK_RESPONSE);
}

tlm::tlm_sync_enum Memory::nb_transport_fw(tlm_generic_payload& trans, tlm::tlm_phase& phase,
                                                 sc_core::sc_time& delay) {
    // Base protocol allows a target to complete on BEGIN_REQ: the whole access is then one
    // call with the same timing as b_transport, so AT initiators see the same numbers.
    if (phase == tlm::BEGIN_REQ) {
        b_transport(trans, delay);
        phase = tlm::BEGIN_RESP;
    }
    return tlm::TLM_COMPLETED;
}

bool Memory::get_direct_mem_ptr(tlm_generic_payload& trans, tlm::tlm_dmi& dmi) {
    const uint64_t addr = trans.get_address();
    if (addr >= capacity()) {
        dmi.set_start_address(capacity());  // the denied range: everything past the end
        dmi.set_end_address(~uint64_t(0));
        return false;
    }
    uint64_t start = 0, len = 0;
    uint8_t* page = storage_.page(addr, start, len);
    dmi.set_dmi_ptr(page);
    dmi.set_start_address(start);
    dmi.set_end_address(start + len - 1);
    dmi.allow_read_write();
    dmi.set_read_latency(time_.to_time(timer_.latency()));
    dmi.set_write_latency(time_.to_time(timer_.latency()));
    TimingPath::append(trans, timer_);
    return true;
}

unsigned int Memory::transport_dbg(tlm_generic_payload& trans) {
    if (trans.get_command() == tlm::TLM_IGNORE_COMMAND) return 0;
    const uint64_t addr = trans.get_address();
    const uint64_t len = trans.get_data_length();
    if (len == 0 || addr >= capacity() || len > capacity() - addr) {
        report(trans, "debug access out of range");
        return 0;
    }
    if (trans.is_read())
        storage_.read(addr, trans.get_data_ptr(), len);
    else
        storage_.write(addr, trans.get_data_ptr(), len);
    trans.set_response_status(tlm::TLM_OK_RESPONSE);
    return unsigned(len);
}

uint8_t* Memory::direct_pointer(uint64_t offset, uint64_t len) {
    if (len == 0 || offset >= capacity() || len > capacity() - offset) return nullptr;
    uint64_t start = 0, page_len = 0;
    uint8_t* page = storage_.page(offset, start, page_len);
    if (offset + len > start + page_len) return nullptr;
    return page + (offset - start);
}

}  // namespace kpu::model
