// Catches the SystemC warnings a test provokes, to count them. Each TEST runs in its own
// process (ctest), so the catcher's process-wide handler is safe.
#pragma once

#include <string>
#include <vector>

#include <systemc>

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

}  // namespace kpu::test
