#include "models/protocol_checker.h"

#include <cstring>
#include <sstream>

namespace kpu::model {

using tlm::tlm_generic_payload;

ProtocolChecker::ProtocolChecker(sc_core::sc_module_name name)
    : sc_core::sc_module(name), target_socket("target_socket"), initiator_socket("initiator_socket") {
    target_socket.bind(*this);
    initiator_socket.bind(*this);
}

void ProtocolChecker::violation(const tlm_generic_payload& trans, const char* clause, const std::string& what) {
    std::ostringstream msg;
    msg << name() << ": " << what << " (IEEE 1666-2011 " << clause << "); address 0x" << std::hex
        << trans.get_address() << std::dec << ", " << trans.get_data_length() << " bytes";
    violations_.push_back(msg.str());
    SC_REPORT_WARNING("kpu/protocol", msg.str().c_str());
}

void ProtocolChecker::check_initial_state(const tlm_generic_payload& trans, const char* where) {
    const std::string at = std::string(", detected in ") + where;
    const bool ignore = trans.get_command() == tlm::TLM_IGNORE_COMMAND;
    if (trans.has_mm() && trans.get_ref_count() == 0)
        violation(trans, "14.5 t)", "transaction with a memory manager and reference count 0" + at);
    if (!trans.get_data_ptr() && !ignore) violation(trans, "14.11 e)", "data pointer is null" + at);
    if (trans.get_data_length() == 0 && !ignore) violation(trans, "14.12 d)", "data length is 0" + at);
    if (trans.get_byte_enable_ptr() && trans.get_byte_enable_length() == 0)
        violation(trans, "14.14 f)", "byte enable pointer set with byte enable length 0" + at);
    if (trans.get_streaming_width() == 0) violation(trans, "14.15 f)", "streaming width is 0" + at);
    if (trans.is_dmi_allowed()) violation(trans, "14.16", "DMI hint set by the initiator" + at);
    if (trans.get_response_status() != tlm::TLM_INCOMPLETE_RESPONSE)
        violation(trans, "14.17 e)", "response status is not TLM_INCOMPLETE_RESPONSE" + at);
    if (trans.get_gp_option() != tlm::TLM_MIN_PAYLOAD) violation(trans, "14.8 g)", "gp_option is not TLM_MIN_PAYLOAD" + at);
}

ProtocolChecker::Snapshot ProtocolChecker::snapshot(const tlm_generic_payload& trans) const {
    Snapshot s{trans.get_command(),          trans.get_data_ptr(),        trans.get_data_length(),
               trans.get_byte_enable_ptr(),  trans.get_byte_enable_length(), trans.get_streaming_width(),
               {}};
    if (trans.is_write() && trans.get_data_ptr())
        s.write_data.assign(trans.get_data_ptr(), trans.get_data_ptr() + trans.get_data_length());
    return s;
}

void ProtocolChecker::check_not_modified(const tlm_generic_payload& trans, const Snapshot& before, const char* where) {
    const std::string at = std::string(", detected in ") + where;
    if (trans.get_command() != before.command) violation(trans, "14.7", "command modified" + at);
    if (trans.get_data_ptr() != before.data) violation(trans, "14.7", "data pointer modified" + at);
    if (trans.get_data_length() != before.length) violation(trans, "14.7", "data length modified" + at);
    if (trans.get_byte_enable_ptr() != before.byte_enable) violation(trans, "14.7", "byte enable pointer modified" + at);
    if (trans.get_byte_enable_length() != before.byte_enable_length)
        violation(trans, "14.7", "byte enable length modified" + at);
    if (trans.get_streaming_width() != before.streaming_width) violation(trans, "14.7", "streaming width modified" + at);
    if (!before.write_data.empty() && trans.get_data_ptr() == before.data &&
        std::memcmp(trans.get_data_ptr(), before.write_data.data(), before.write_data.size()) != 0)
        violation(trans, "14.7", "write data array modified" + at);
}

void ProtocolChecker::b_transport(tlm_generic_payload& trans, sc_core::sc_time& delay) {
    ++checked_;
    const sc_core::sc_process_handle process = sc_core::sc_get_current_process_handle();
    if (process.valid() && process.proc_kind() == sc_core::SC_METHOD_PROC_)
        violation(trans, "11.1.1.4 b)", "b_transport called from a method process");
    if (!in_flight_.insert(&trans).second)
        violation(trans, "14.5 x)", "transaction object passed to b_transport while already in use");
    check_initial_state(trans, "b_transport");
    const Snapshot before = snapshot(trans);
    const sc_core::sc_time sent = delay;

    initiator_socket->b_transport(trans, delay);

    in_flight_.erase(&trans);
    check_not_modified(trans, before, "b_transport");
    if (trans.get_response_status() == tlm::TLM_INCOMPLETE_RESPONSE)
        violation(trans, "14.17 f)", "target returned from b_transport without setting the response status");
    if (delay < sent) violation(trans, "11.1.3.2", "b_transport returned a smaller timing annotation than it was given");
}

tlm::tlm_sync_enum ProtocolChecker::nb_transport_fw(tlm_generic_payload& trans, tlm::tlm_phase& phase,
                                                    sc_core::sc_time& delay) {
    ++checked_;
    if (!trans.has_mm()) violation(trans, "14.5 i)", "nb_transport_fw without a memory manager");
    if (phase == tlm::BEGIN_REQ) check_initial_state(trans, "nb_transport_fw");
    if (phase != tlm::BEGIN_REQ && phase != tlm::END_RESP && phase != tlm::END_REQ && phase != tlm::BEGIN_RESP)
        violation(trans, "15.2.3 c)", "uninitialized phase on the forward path");
    if (phase == tlm::END_REQ || phase == tlm::BEGIN_RESP)
        violation(trans, "15.2.3 c)", "backward-path phase sent on the forward path");
    const Snapshot before = snapshot(trans);
    const tlm::tlm_phase sent_phase = phase;
    const sc_core::sc_time sent = delay;
    const tlm::tlm_sync_enum status = initiator_socket->nb_transport_fw(trans, phase, delay);
    check_not_modified(trans, before, "nb_transport_fw");
    if (status == tlm::TLM_COMPLETED && sent_phase == tlm::BEGIN_REQ &&
        trans.get_response_status() == tlm::TLM_INCOMPLETE_RESPONSE)
        violation(trans, "14.17 f)", "nb_transport_fw completed without setting the response status");
    if (delay < sent) violation(trans, "15.2.7 c)", "nb_transport_fw returned a smaller timing annotation");
    return status;
}

bool ProtocolChecker::get_direct_mem_ptr(tlm_generic_payload& trans, tlm::tlm_dmi& dmi) {
    ++checked_;
    if (dmi.get_dmi_ptr()) violation(trans, "11.2.5 f)", "DMI descriptor not initialized: dmi_ptr != 0");
    if (!dmi.is_none_allowed()) violation(trans, "11.2.5 a)", "DMI descriptor not initialized: access granted");
    if (dmi.get_start_address() != 0 || dmi.get_end_address() != ~sc_dt::uint64(0))
        violation(trans, "11.2.5 u)", "DMI descriptor not initialized: address range");
    if (dmi.get_read_latency() != sc_core::SC_ZERO_TIME || dmi.get_write_latency() != sc_core::SC_ZERO_TIME)
        violation(trans, "11.2.5 ac)", "DMI descriptor not initialized: latencies");
    const uint64_t addr = trans.get_address();
    const bool granted = initiator_socket->get_direct_mem_ptr(trans, dmi);
    if (trans.get_address() != addr) violation(trans, "11.2.5", "address modified by get_direct_mem_ptr");
    if (granted) {
        if (!dmi.get_dmi_ptr()) violation(trans, "11.2.5 f)", "DMI granted with a null pointer");
        if (dmi.is_none_allowed()) violation(trans, "11.2.5 a)", "DMI granted with no access rights");
        if (addr < dmi.get_start_address() || addr > dmi.get_end_address())
            violation(trans, "11.2.5 u)", "DMI granted for a range that does not contain the requested address");
    }
    return granted;
}

unsigned int ProtocolChecker::transport_dbg(tlm_generic_payload& trans) {
    ++checked_;
    if (trans.get_data_length() > 0 && !trans.get_data_ptr())
        violation(trans, "11.3.4 l)", "debug transaction with a null data pointer");
    const Snapshot before = snapshot(trans);
    const unsigned int count = initiator_socket->transport_dbg(trans);
    check_not_modified(trans, before, "transport_dbg");
    if (count > trans.get_data_length())
        violation(trans, "11.3.4 n)", "transport_dbg returned more bytes than the data length");
    return count;
}

tlm::tlm_sync_enum ProtocolChecker::nb_transport_bw(tlm_generic_payload& trans, tlm::tlm_phase& phase,
                                                    sc_core::sc_time& delay) {
    ++checked_;
    if (phase == tlm::BEGIN_REQ || phase == tlm::END_RESP)
        violation(trans, "15.2.3 c)", "forward-path phase sent on the backward path");
    return target_socket->nb_transport_bw(trans, phase, delay);
}

void ProtocolChecker::invalidate_direct_mem_ptr(sc_dt::uint64 start, sc_dt::uint64 end) {
    target_socket->invalidate_direct_mem_ptr(start, end);
}

}  // namespace kpu::model
