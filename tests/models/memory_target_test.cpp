// A memory target alone behind a protocol checker: real bytes, exact timing, errors as
// responses with a report, DMI and debug transport.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <numeric>

#include "hardware/address_map.h"
#include "hardware/config.h"
#include "models/dram_channel.h"
#include "models/l2_bank.h"
#include "models/protocol_checker.h"
#include "tests/support/config.h"
#include "tests/support/report_catcher.h"
#include "tests/support/scripted_initiator.h"

namespace kpu::model {
namespace {

using sc_core::SC_NS;
using sc_core::sc_time;
using test::ScriptedInitiator;

/// initiator -> checker -> memory `kpu_test.mem`.
struct Bench {
    hw::Config config = test::config("minimal");
    hw::AddressMap map{config};
    std::unique_ptr<MemoryTarget> memory;
    ProtocolChecker checker{"checker"};
    ScriptedInitiator initiator;

    template <class Make>
    Bench(Make make, std::function<void(ScriptedInitiator&)> script) : initiator("initiator", std::move(script)) {
        memory = make(config, map);
        initiator.socket.bind(checker.target_socket);
        checker.initiator_socket.bind(memory->socket);
    }
};

auto l2_bank(uint32_t bank) {
    return [bank](const hw::Config& c, const hw::AddressMap& m) { return std::make_unique<L2Bank>("mem", c, m, 0u, bank); };
}
auto dram_channel(uint32_t channel) {
    return [channel](const hw::Config& c, const hw::AddressMap& m) {
        return std::make_unique<DramChannel>("mem", c, m, channel);
    };
}

// minimal.json L2: 16 GB/s at 1 GHz (16 B/cycle), 4 cycles latency, 16 KiB, one port.
TEST(MemoryTarget, BurstTimingIsLatencyPlusSizeOverBandwidthAndBackToBackSerialises) {
    sc_time first, second, idle;
    std::vector<uint8_t> in(64), out(64);
    std::iota(in.begin(), in.end(), 0);
    Bench bench(l2_bank(1),
        [&](ScriptedInitiator& i) {
            sc_time d = sc_core::SC_ZERO_TIME;
            EXPECT_EQ(i.access(tlm::TLM_WRITE_COMMAND, 128, in.data(), 64, d), tlm::TLM_OK_RESPONSE);
            first = d;
            d = sc_core::SC_ZERO_TIME;
            EXPECT_EQ(i.access(tlm::TLM_READ_COMMAND, 128, out.data(), 64, d), tlm::TLM_OK_RESPONSE);
            second = d;
            d = sc_time(100, SC_NS);
            i.access(tlm::TLM_READ_COMMAND, 0, out.data(), 32, d);
            idle = d;
        });
    sc_core::sc_start();
    EXPECT_EQ(first, sc_time(8, SC_NS));    // 4 cycles + 64 B / 16 B per cycle
    EXPECT_EQ(second, sc_time(12, SC_NS));  // waits 4 ns for the port, then the same
    EXPECT_EQ(idle, sc_time(106, SC_NS));   // idle port: 100 + 4 + 32 / 16
    std::vector<uint8_t> back(64);
    bench.memory->storage().read(128, back.data(), 64);
    EXPECT_EQ(back, in);
    EXPECT_EQ(bench.memory->stats().bytes_written, 64u);
    EXPECT_EQ(bench.memory->stats().bytes_read, 96u);
    EXPECT_TRUE(bench.checker.violations().empty());
}

TEST(MemoryTarget, OutOfRangeAccessGetsAddressErrorAndAReportNamingModuleAddressAndLength) {
    test::ReportCatcher catcher;
    tlm::tlm_response_status past_end = tlm::TLM_OK_RESPONSE, straddling = tlm::TLM_OK_RESPONSE;
    std::vector<uint8_t> buf(64);
    Bench bench(l2_bank(2),
        [&](ScriptedInitiator& i) {
            sc_time d = sc_core::SC_ZERO_TIME;
            past_end = i.access(tlm::TLM_READ_COMMAND, 16384, buf.data(), 4, d);
            straddling = i.access(tlm::TLM_WRITE_COMMAND, 16384 - 32, buf.data(), 64, d);
        });
    sc_core::sc_start();
    EXPECT_EQ(past_end, tlm::TLM_ADDRESS_ERROR_RESPONSE);
    EXPECT_EQ(straddling, tlm::TLM_ADDRESS_ERROR_RESPONSE);
    EXPECT_EQ(test::ReportCatcher::count({"kpu/memory", "mem", "read of 4 bytes at offset 0x4000",
                                          "device address 0x2000000c000"}),
              1);
    EXPECT_EQ(test::ReportCatcher::count({"kpu/memory", "write of 64 bytes at offset 0x3fe0"}), 1);
    EXPECT_EQ(bench.memory->stats().errors, 2u);
    EXPECT_EQ(bench.memory->storage().pages_allocated(), 0u);
    EXPECT_TRUE(bench.checker.violations().empty());
}

TEST(MemoryTarget, ByteEnablesAreRefusedWithTheirOwnResponse) {
    test::ReportCatcher catcher;
    tlm::tlm_response_status status = tlm::TLM_OK_RESPONSE;
    Bench bench(l2_bank(0),
        [&](ScriptedInitiator& i) {
            uint8_t data[8] = {}, enables[8] = {0xff, 0, 0xff, 0, 0xff, 0, 0xff, 0};
            tlm::tlm_generic_payload t;
            t.set_write();
            t.set_address(0);
            t.set_data_ptr(data);
            t.set_data_length(8);
            t.set_streaming_width(8);
            t.set_byte_enable_ptr(enables);
            t.set_byte_enable_length(8);
            sc_time d = sc_core::SC_ZERO_TIME;
            i.socket->b_transport(t, d);
            status = t.get_response_status();
        });
    sc_core::sc_start();
    EXPECT_EQ(status, tlm::TLM_BYTE_ENABLE_ERROR_RESPONSE);
    EXPECT_EQ(test::ReportCatcher::count({"byte enables are not supported"}), 1);
}

TEST(MemoryTarget, DmiGrantsAPageAndWritesThroughItAreSeenByTransactions) {
    tlm::tlm_dmi dmi;
    bool granted = false;
    uint32_t word = 0;
    Bench bench(l2_bank(0),
        [&](ScriptedInitiator& i) {
            tlm::tlm_generic_payload t;
            t.set_address(5000);
            t.set_read();
            granted = i.socket->get_direct_mem_ptr(t, dmi);
            if (!granted) return;
            const uint32_t v = 0xC0FFEE;
            std::memcpy(dmi.get_dmi_ptr() + (5000 - dmi.get_start_address()), &v, 4);
            sc_time d = sc_core::SC_ZERO_TIME;
            i.access(tlm::TLM_READ_COMMAND, 5000, reinterpret_cast<uint8_t*>(&word), 4, d);
        });
    sc_core::sc_start();
    ASSERT_TRUE(granted);
    EXPECT_EQ(dmi.get_start_address(), 0u);
    EXPECT_EQ(dmi.get_end_address(), 16383u);  // a 16 KiB bank is one page
    EXPECT_TRUE(dmi.is_read_write_allowed());
    EXPECT_EQ(dmi.get_read_latency(), sc_time(4, SC_NS));
    EXPECT_EQ(word, 0xC0FFEEu);
    EXPECT_TRUE(bench.checker.violations().empty());
}

TEST(MemoryTarget, DebugTransportMovesBytesWithoutTimeAndRefusesOutOfRange) {
    unsigned ok_count = 1, bad_count = 1;
    sc_time after;
    uint8_t data[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    test::ReportCatcher catcher;
    Bench bench(l2_bank(0),
        [&](ScriptedInitiator& i) {
            tlm::tlm_generic_payload t;
            t.set_write();
            t.set_address(1000);
            t.set_data_ptr(data);
            t.set_data_length(16);
            ok_count = i.socket->transport_dbg(t);
            t.set_address(16380);  // L2 in minimal is 16 KiB
            bad_count = i.socket->transport_dbg(t);
            after = sc_core::sc_time_stamp();
        });
    sc_core::sc_start();
    EXPECT_EQ(ok_count, 16u);
    EXPECT_EQ(bad_count, 0u);
    EXPECT_EQ(after, sc_core::SC_ZERO_TIME);
    EXPECT_EQ(bench.memory->direct_pointer(1000, 16)[15], 16);
    EXPECT_EQ(test::ReportCatcher::count({"debug access out of range", "16 bytes at offset 0x3ffc"}), 1);
}

TEST(MemoryTarget, DramChannelReportsTheInterleavedDeviceAddress) {
    test::ReportCatcher catcher;
    uint8_t buf[4];
    Bench bench(dram_channel(1),
        [&](ScriptedInitiator& i) {
            sc_time d = sc_core::SC_ZERO_TIME;
            i.access(tlm::TLM_READ_COMMAND, 64ull << 20, buf, 4, d);  // channel 1, just past its end
        });
    sc_core::sc_start();
    // Channel offset 64 MiB is row 65536 of channel 1. minimal hashes its 2 channels: row
    // 65536 has one set bit, so it is rotated by one and channel 1 holds its first block,
    // device block 2 x 65536 = 131072.
    EXPECT_EQ(test::ReportCatcher::count({"DRAM channel", "device address 0x8000000"}), 1);
}

}  // namespace
}  // namespace kpu::model
