// Helpers for the SystemC tests: a report catcher and a scripted initiator. Each TEST runs
// in its own process (ctest), so the catcher's process-wide handler is safe.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>

namespace kpu::test {

/// Collects warnings (type + message) while alive; errors and fatals keep the default action.
class ReportCatcher {
public:
    ReportCatcher() {
        reports().clear();
        sc_core::sc_report_handler::set_handler(&ReportCatcher::handle);
    }
    ~ReportCatcher() { sc_core::sc_report_handler::set_handler(sc_core::sc_report_handler::default_handler); }

    static std::vector<std::string>& reports() {
        static std::vector<std::string> all;
        return all;
    }
    /// How many reports contain every one of `parts`.
    static int count(const std::vector<std::string>& parts) {
        int n = 0;
        for (const auto& r : reports()) {
            bool all = true;
            for (const auto& p : parts) all = all && r.find(p) != std::string::npos;
            n += all;
        }
        return n;
    }

private:
    static void handle(const sc_core::sc_report& report, const sc_core::sc_actions& actions) {
        if (report.get_severity() >= sc_core::SC_ERROR) return sc_core::sc_report_handler::default_handler(report, actions);
        reports().push_back(std::string(report.get_msg_type()) + ": " + report.get_msg());
    }
};

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
