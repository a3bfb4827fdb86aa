// A plain memory target for model tests: one byte array at a base address, answering
// b_transport (no time), transport_dbg and DMI over its whole range.
#pragma once

#include <cstring>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_target_socket.h>

namespace kpu::test {

struct TestMemory : sc_core::sc_module {
    tlm_utils::simple_target_socket<TestMemory> socket;
    uint64_t base;
    std::vector<unsigned char> bytes;
    bool grant_dmi = true;

    TestMemory(sc_core::sc_module_name name, uint64_t base_addr, size_t size)
        : sc_module(name), socket("socket"), base(base_addr), bytes(size) {
        socket.register_b_transport(this, &TestMemory::b_transport);
        socket.register_transport_dbg(this, &TestMemory::transport_dbg);
        socket.register_get_direct_mem_ptr(this, &TestMemory::get_direct_mem_ptr);
    }

    bool in_range(uint64_t addr, uint64_t len) const { return addr >= base && addr + len <= base + bytes.size(); }

    void b_transport(tlm::tlm_generic_payload& t, sc_core::sc_time&) {
        t.set_response_status(transport_dbg(t) ? tlm::TLM_OK_RESPONSE : tlm::TLM_ADDRESS_ERROR_RESPONSE);
    }

    unsigned transport_dbg(tlm::tlm_generic_payload& t) {
        if (!in_range(t.get_address(), t.get_data_length())) return 0;
        unsigned char* mem = bytes.data() + (t.get_address() - base);
        if (t.is_read()) std::memcpy(t.get_data_ptr(), mem, t.get_data_length());
        else std::memcpy(mem, t.get_data_ptr(), t.get_data_length());
        return t.get_data_length();
    }

    bool get_direct_mem_ptr(tlm::tlm_generic_payload& t, tlm::tlm_dmi& dmi) {
        if (!grant_dmi || !in_range(t.get_address(), 1)) return false;
        dmi.set_dmi_ptr(bytes.data());
        dmi.set_start_address(base);
        dmi.set_end_address(base + bytes.size() - 1);
        dmi.allow_read_write();
        return true;
    }

    void put(uint64_t addr, const std::vector<float>& v) { std::memcpy(&bytes[addr - base], v.data(), v.size() * 4); }
    std::vector<float> get(uint64_t addr, size_t count) const {
        std::vector<float> v(count);
        std::memcpy(v.data(), &bytes[addr - base], count * 4);
        return v;
    }
};

}  // namespace kpu::test
