// The checker must catch what it claims to catch, or a clean run proves nothing.
#include <gtest/gtest.h>

#include "models/protocol_checker.h"
#include "tests/support/report_catcher.h"
#include "tests/support/scripted_initiator.h"

namespace kpu::model {
namespace {

using sc_core::sc_time;
using test::ScriptedInitiator;

/// Breaks three rules: leaves the response incomplete, shrinks the data length and turns
/// the timing annotation back.
struct RudeTarget : sc_core::sc_module, tlm::tlm_fw_transport_if<> {
    tlm::tlm_target_socket<> socket{"socket"};
    explicit RudeTarget(sc_core::sc_module_name n) : sc_core::sc_module(n) { socket.bind(*this); }
    void b_transport(tlm::tlm_generic_payload& t, sc_time& delay) override {
        t.set_data_length(t.get_data_length() / 2);
        delay = sc_core::SC_ZERO_TIME;
    }
    tlm::tlm_sync_enum nb_transport_fw(tlm::tlm_generic_payload&, tlm::tlm_phase&, sc_time&) override {
        return tlm::TLM_COMPLETED;
    }
    bool get_direct_mem_ptr(tlm::tlm_generic_payload&, tlm::tlm_dmi& dmi) override {
        static uint8_t byte;
        dmi.set_dmi_ptr(&byte);
        dmi.set_start_address(100);  // does not contain the requested address
        dmi.set_end_address(200);
        dmi.allow_read();
        return true;
    }
    unsigned int transport_dbg(tlm::tlm_generic_payload& t) override { return t.get_data_length() + 1; }
};

struct Bench {
    ProtocolChecker checker{"checker"};
    RudeTarget target{"target"};
    ScriptedInitiator initiator;
    explicit Bench(std::function<void(ScriptedInitiator&)> script) : initiator("initiator", std::move(script)) {
        initiator.socket.bind(checker.target_socket);
        checker.initiator_socket.bind(target.socket);
    }
    int count(const std::string& clause) const {
        int n = 0;
        for (const auto& v : checker.violations()) n += v.find(clause) != std::string::npos;
        return n;
    }
};

TEST(ProtocolChecker, CatchesATargetThatBreaksTheBaseProtocol) {
    test::ReportCatcher catcher;
    Bench bench([](ScriptedInitiator& i) {
        uint8_t data[8] = {};
        sc_time d(10, sc_core::SC_NS);
        i.access(tlm::TLM_READ_COMMAND, 0, data, 8, d);
        tlm::tlm_generic_payload t;
        t.set_address(0);
        tlm::tlm_dmi dmi;
        i.socket->get_direct_mem_ptr(t, dmi);
        t.set_read();
        t.set_data_ptr(data);
        t.set_data_length(8);
        i.socket->transport_dbg(t);
    });
    sc_core::sc_start();
    EXPECT_EQ(bench.count("data length modified"), 1);
    EXPECT_EQ(bench.count("14.17 f)"), 1);   // response left incomplete
    EXPECT_EQ(bench.count("11.1.3.2"), 1);   // timing annotation went back
    EXPECT_EQ(bench.count("does not contain the requested address"), 1);
    EXPECT_EQ(bench.count("11.3.4 n)"), 1);  // debug count larger than the length
    EXPECT_EQ(bench.checker.violations().size(), 5u);
    EXPECT_EQ(test::ReportCatcher::count({"kpu/protocol", "checker"}), 5);
}

TEST(ProtocolChecker, CatchesAnInitiatorThatSendsADirtyPayload) {
    test::ReportCatcher catcher;
    Bench bench([](ScriptedInitiator& i) {
        uint8_t data[4] = {};
        tlm::tlm_generic_payload t;
        t.set_write();
        t.set_data_ptr(data);
        t.set_data_length(4);
        t.set_streaming_width(0);
        t.set_dmi_allowed(true);
        t.set_response_status(tlm::TLM_OK_RESPONSE);
        sc_time d = sc_core::SC_ZERO_TIME;
        i.socket->b_transport(t, d);
    });
    sc_core::sc_start();
    EXPECT_EQ(bench.count("14.15 f)"), 1);  // streaming width 0
    EXPECT_EQ(bench.count("14.16"), 1);     // DMI hint set by the initiator
    EXPECT_EQ(bench.count("14.17 e)"), 1);  // response not reset
}

}  // namespace
}  // namespace kpu::model
