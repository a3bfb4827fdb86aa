// An initiator for SystemC tests: one SC_THREAD that runs a script of b_transport calls.
#pragma once

#include <functional>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>

namespace kpu::test {

/// An initiator whose SC_THREAD runs `script` once; helpers build a clean payload per call.
struct ScriptedInitiator : sc_core::sc_module {
    tlm_utils::simple_initiator_socket<ScriptedInitiator> socket;
    std::function<void(ScriptedInitiator&)> script;

    ScriptedInitiator(sc_core::sc_module_name name, std::function<void(ScriptedInitiator&)> body)
        : sc_core::sc_module(name), socket("socket"), script(std::move(body)) {
        SC_HAS_PROCESS(ScriptedInitiator);
        SC_THREAD(run);
    }
    void run() { script(*this); }

    /// One b_transport; returns the response and sets `delay` (in: annotation, out: answer).
    tlm::tlm_response_status access(tlm::tlm_command cmd, uint64_t addr, uint8_t* data, unsigned len,
                                    sc_core::sc_time& delay) {
        tlm::tlm_generic_payload t;
        t.set_command(cmd);
        t.set_address(addr);
        t.set_data_ptr(data);
        t.set_data_length(len);
        t.set_streaming_width(len);
        t.set_response_status(tlm::TLM_INCOMPLETE_RESPONSE);
        socket->b_transport(t, delay);
        return t.get_response_status();
    }
};

}  // namespace kpu::test
