// A tile's L1 buffers behind their fanout: every access reaches the buffer its address
// selects, at that buffer's offset and on that buffer's own port; DMI ranges come back in
// the fanout's offsets; an address past the last buffer is an error response, not a crash.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "hardware/address_map.h"
#include "hardware/config.h"
#include "models/l1_buffer.h"
#include "models/l1_fanout.h"
#include "models/protocol_checker.h"
#include "tests/support/config.h"
#include "tests/support/report_catcher.h"
#include "tests/support/scripted_initiator.h"

namespace kpu::model {
namespace {

using sc_core::sc_time;
using test::ScriptedInitiator;

/// initiator -> checker -> fanout -> the first four L1 buffers of tile 0 of minimal.json
/// (1 KiB each, one port of 8 GB/s).
struct Bench {
    hw::Config config = test::config("minimal");
    hw::AddressMap map{config};
    std::vector<std::unique_ptr<L1Buffer>> buffers;
    std::unique_ptr<L1Fanout> fanout;
    ProtocolChecker checker{"checker"};
    ScriptedInitiator initiator;

    explicit Bench(std::function<void(ScriptedInitiator&)> script) : initiator("initiator", std::move(script)) {
        std::vector<Memory*> memories;
        for (uint32_t b = 0; b < 4; ++b) {
            buffers.push_back(std::make_unique<L1Buffer>(("l1_" + std::to_string(b)).c_str(), config, map, 0u, b));
            memories.push_back(buffers.back().get());
        }
        fanout = std::make_unique<L1Fanout>("l1_fanout", memories, config.l1.capacity_bytes);
        initiator.socket.bind(checker.target_socket);
        checker.initiator_socket.bind(fanout->socket);
    }
    uint64_t kib() const { return config.l1.capacity_bytes; }
};

TEST(L1Fanout, AccessesReachTheSelectedBufferAtItsOffsetOnItsOwnPort) {
    std::vector<uint8_t> in(16), out(16);
    for (size_t i = 0; i < in.size(); ++i) in[i] = uint8_t(i + 1);
    sc_time to_2, to_3, to_2_again, read_back;
    tlm::tlm_response_status status[4] = {}, nb_response = tlm::TLM_INCOMPLETE_RESPONSE;
    tlm::tlm_sync_enum nb_status = tlm::TLM_ACCEPTED;
    Bench bench([&](ScriptedInitiator& i) {
        // Three writes annotated at the same time: buffers 2 and 3 do not wait for each
        // other; the second write to buffer 2 queues behind the first on its port.
        to_2 = to_3 = to_2_again = read_back = sc_core::SC_ZERO_TIME;
        status[0] = i.access(tlm::TLM_WRITE_COMMAND, 2 * 1024 + 100, in.data(), 16, to_2);
        status[1] = i.access(tlm::TLM_WRITE_COMMAND, 3 * 1024 + 100, in.data(), 16, to_3);
        status[2] = i.access(tlm::TLM_WRITE_COMMAND, 2 * 1024 + 200, in.data(), 16, to_2_again);
        status[3] = i.access(tlm::TLM_READ_COMMAND, 2 * 1024 + 100, out.data(), 16, read_back);
        // The non-blocking path completes at once, like the buffers themselves (a payload on
        // that path needs a memory manager; this one lives on the stack).
        struct StackPayload : tlm::tlm_mm_interface {
            void free(tlm::tlm_generic_payload*) override {}
        } mm;
        tlm::tlm_generic_payload t(&mm);
        t.acquire();
        t.set_write();
        t.set_address(1 * 1024 + 8);
        t.set_data_ptr(in.data());
        t.set_data_length(4);
        t.set_streaming_width(4);
        tlm::tlm_phase phase = tlm::BEGIN_REQ;
        sc_time d = sc_core::SC_ZERO_TIME;
        nb_status = i.socket->nb_transport_fw(t, phase, d);
        nb_response = t.get_response_status();
        t.release();
    });
    ASSERT_EQ(bench.kib(), 1024u);
    sc_core::sc_start();
    for (auto s : status) EXPECT_EQ(s, tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(out, in);
    EXPECT_EQ(std::memcmp(bench.buffers[2]->direct_pointer(100, 16), in.data(), 16), 0);
    EXPECT_EQ(std::memcmp(bench.buffers[3]->direct_pointer(100, 16), in.data(), 16), 0);
    EXPECT_EQ(bench.buffers[0]->storage().pages_allocated(), 0u);
    EXPECT_EQ(nb_status, tlm::TLM_COMPLETED);
    EXPECT_EQ(nb_response, tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(std::memcmp(bench.buffers[1]->direct_pointer(8, 4), in.data(), 4), 0);
    EXPECT_EQ(to_3, to_2);
    const sc_time occupancy(16.0 / bench.config.l1.bandwidth_bytes_per_s, sc_core::SC_SEC);  // 2 ns
    EXPECT_EQ(to_2_again, to_2 + occupancy);
    EXPECT_EQ(bench.buffers[2]->stats().writes, 2u);
    EXPECT_EQ(bench.buffers[3]->stats().writes, 1u);
    EXPECT_TRUE(bench.checker.violations().empty());
}

TEST(L1Fanout, DmiRangeIsTheWholeSelectedBufferInFanoutOffsets) {
    tlm::tlm_dmi dmi;
    bool granted = false;
    Bench bench([&](ScriptedInitiator& i) {
        tlm::tlm_generic_payload t;
        t.set_address(3 * 1024 + 5);
        t.set_read();
        granted = i.socket->get_direct_mem_ptr(t, dmi);
    });
    sc_core::sc_start();
    ASSERT_TRUE(granted);
    EXPECT_EQ(dmi.get_start_address(), 3u * 1024);
    EXPECT_EQ(dmi.get_end_address(), 4u * 1024 - 1);
    EXPECT_EQ(dmi.get_dmi_ptr() + 5, bench.buffers[3]->direct_pointer(5, 1));
}

TEST(L1Fanout, AnAddressPastTheLastBufferIsAnAddressErrorWithAReport) {
    test::ReportCatcher catcher;
    uint8_t data[4] = {};
    tlm::tlm_response_status status = tlm::TLM_OK_RESPONSE;
    unsigned debug_bytes = 1;
    bool granted = true;
    Bench bench([&](ScriptedInitiator& i) {
        sc_time d = sc_core::SC_ZERO_TIME;
        status = i.access(tlm::TLM_WRITE_COMMAND, 4 * 1024, data, 4, d);
        tlm::tlm_generic_payload t;
        t.set_read();
        t.set_address(4 * 1024 + 8);
        t.set_data_ptr(data);
        t.set_data_length(4);
        debug_bytes = i.socket->transport_dbg(t);
        tlm::tlm_dmi dmi;
        granted = i.socket->get_direct_mem_ptr(t, dmi);
    });
    sc_core::sc_start();
    EXPECT_EQ(status, tlm::TLM_ADDRESS_ERROR_RESPONSE);
    EXPECT_EQ(debug_bytes, 0u);
    EXPECT_FALSE(granted);
    EXPECT_EQ(test::ReportCatcher::count({"l1_fanout", "write at offset 0x1000", "past the last of 4 L1 buffers of 1024 bytes"}), 1);
    EXPECT_EQ(test::ReportCatcher::count({"l1_fanout", "debug access at offset 0x1008"}), 1);
    EXPECT_EQ(test::ReportCatcher::count({"l1_fanout", "DMI request"}), 1);
    for (const auto& b : bench.buffers) EXPECT_EQ(b->storage().pages_allocated(), 0u);
}

}  // namespace
}  // namespace kpu::model
