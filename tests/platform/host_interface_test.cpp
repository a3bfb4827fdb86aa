// HostInterface + HostDriver against a plain memory and a scripted device: the register
// protocol, the DRAM window with DMI, the interrupt, and errors landing in STATUS/ERROR.
#include "platform/host_driver.h"
#include "platform/host_interface.h"

#include <gtest/gtest.h>

#include "tests/support/test_memory.h"

namespace kpu::platform {
namespace {

using sc_core::SC_NS;
using sc_core::sc_time;

/// A device that, on START, waits 100 ns and then doubles every byte of the image into the
/// output region that follows it, or fails as told.
struct Bench : sc_core::sc_module {
    HostJob job;
    test::TestMemory dram{"dram", 0, 1 << 20};
    HostInterface host{"host", 1 << 20, 4096, [this](uint64_t addr, uint64_t size) { on_start(addr, size); }};
    HostDriver driver;
    sc_core::sc_signal<bool> irq{"irq"};
    sc_core::sc_event go;
    uint64_t started_addr = 0, started_size = 0;
    HostError fail_with = HostError::None;

    explicit Bench(sc_core::sc_module_name n) : sc_module(n), driver("driver", job) {
        host.device_socket.bind(dram.socket);
        driver.socket.bind(host.socket);
        host.irq(irq);
        driver.irq(irq);
        SC_HAS_PROCESS(Bench);
        SC_THREAD(device);
    }
    void on_start(uint64_t addr, uint64_t size) {
        started_addr = addr, started_size = size;
        if (fail_with == HostError::BadImage) return host.finish(fail_with, "bad image for the test", 0);
        go.notify(sc_core::SC_ZERO_TIME);
    }
    void device() {
        wait(go);
        wait(100, SC_NS);
        for (uint64_t i = 0; i < started_size; ++i) dram.bytes[0x8000 + i] = uint8_t(dram.bytes[started_addr + i] * 2);
        host.finish(fail_with, fail_with == HostError::None ? "" : "op failed in the test", 1234);
    }
};

TEST(HostInterface, DriverProgramsStartsWaitsForIrqAndReadsResults) {
    Bench bench("bench");
    bench.job.inputs.push_back({"x", 0x100, std::vector<uint8_t>{9, 8, 7}});
    bench.job.image = "\x01\x02\x03\x04";
    bench.job.image_addr = 0x4000;
    bench.job.outputs.push_back({"y", 0x8000, std::vector<uint8_t>(4)});
    sc_core::sc_start();
    const HostResult& r = bench.driver.result();
    EXPECT_EQ(r.failure, "");
    EXPECT_TRUE(r.interrupted);
    EXPECT_EQ(r.status, HostStatus::Done);
    EXPECT_EQ(r.error, HostError::None);
    EXPECT_EQ(r.cycles, 1234u);
    EXPECT_EQ(bench.started_addr, 0x4000u);
    EXPECT_EQ(bench.started_size, 4u);
    EXPECT_EQ(bench.dram.bytes[0x101], 8);
    EXPECT_EQ(bench.job.outputs[0].bytes, (std::vector<uint8_t>{2, 4, 6, 8}));
    EXPECT_FALSE(bench.irq.read()) << "the driver acknowledged the interrupt";
    EXPECT_EQ(sc_core::sc_time_stamp(), sc_time(100, SC_NS));
}

TEST(HostInterface, ABadImageLandsInStatusAndErrorNotACrash) {
    Bench bench("bench");
    sc_core::sc_report_handler::set_actions("kpu/host", sc_core::SC_WARNING, sc_core::SC_DO_NOTHING);
    bench.fail_with = HostError::BadImage;
    bench.job.image = "garbage";
    bench.job.outputs.push_back({"y", 0x8000, std::vector<uint8_t>(4, 0xee)});
    sc_core::sc_start();
    const HostResult& r = bench.driver.result();
    EXPECT_TRUE(r.interrupted);
    EXPECT_EQ(r.status, HostStatus::Error);
    EXPECT_EQ(r.error, HostError::BadImage);
    EXPECT_EQ(bench.host.error_message(), "bad image for the test");
    EXPECT_EQ(bench.job.outputs[0].bytes, std::vector<uint8_t>(4, 0xee)) << "outputs are not read after an error";
}

TEST(HostInterface, RegistersAnswer32And64BitAccessesAndRefuseOthers) {
    Bench bench("bench");
    bench.job.image = "x";
    sc_core::sc_start(sc_time(1, SC_NS));  // elaborate; the driver has started the job
    auto access = [&](tlm::tlm_command cmd, uint64_t addr, void* data, unsigned len) {
        tlm::tlm_generic_payload t;
        sc_time delay;
        t.set_command(cmd), t.set_address(addr), t.set_data_ptr(static_cast<unsigned char*>(data));
        t.set_data_length(len), t.set_streaming_width(len);
        bench.driver.socket->b_transport(t, delay);
        return t.get_response_status();
    };
    uint32_t lo = 0;
    EXPECT_EQ(access(tlm::TLM_READ_COMMAND, 0x00, &lo, 4), tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(lo, kKpuId);
    uint32_t hi = 0xabcd;
    EXPECT_EQ(access(tlm::TLM_WRITE_COMMAND, 0x0c, &hi, 4), tlm::TLM_OK_RESPONSE);  // PROGRAM_ADDR upper half
    uint64_t addr = 0;
    EXPECT_EQ(access(tlm::TLM_READ_COMMAND, 0x08, &addr, 8), tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(addr >> 32, 0xabcdu);
    uint16_t half = 0;
    EXPECT_EQ(access(tlm::TLM_READ_COMMAND, 0x00, &half, 2), tlm::TLM_BURST_ERROR_RESPONSE);
    EXPECT_EQ(access(tlm::TLM_READ_COMMAND, 0x04 + 8, &addr, 8), tlm::TLM_BURST_ERROR_RESPONSE) << "misaligned";
    sc_core::sc_report_handler::set_actions("kpu/host", sc_core::SC_WARNING, sc_core::SC_DO_NOTHING);
    EXPECT_EQ(access(tlm::TLM_READ_COMMAND, 0x800, &addr, 8), tlm::TLM_ADDRESS_ERROR_RESPONSE);
    // CONTROL's bits are in its low half: 1 written to its high half (0x1C) is no START (as
    // one, here with a run in progress, it would make ERROR read 5 "busy").
    uint32_t start = 1;
    EXPECT_EQ(access(tlm::TLM_WRITE_COMMAND, 0x1c, &start, 4), tlm::TLM_OK_RESPONSE);
    uint64_t error = 99;
    EXPECT_EQ(access(tlm::TLM_READ_COMMAND, 0x28, &error, 8), tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(error, 0u);
    uint8_t byte = 0;
    EXPECT_EQ(access(tlm::TLM_READ_COMMAND, kMemoryWindow + (1 << 20), &byte, 1), tlm::TLM_ADDRESS_ERROR_RESPONSE);
    bench.dram.bytes[77] = 5;
    EXPECT_EQ(access(tlm::TLM_READ_COMMAND, kMemoryWindow + 77, &byte, 1), tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(byte, 5);
}

TEST(HostInterface, DmiThroughTheWindowIsTranslatedToHostAddresses) {
    Bench bench("bench");
    tlm::tlm_generic_payload t;
    tlm::tlm_dmi dmi;
    t.set_address(kMemoryWindow + 0x10);
    t.set_command(tlm::TLM_READ_COMMAND);
    ASSERT_TRUE(bench.driver.socket->get_direct_mem_ptr(t, dmi));
    EXPECT_EQ(dmi.get_start_address(), kMemoryWindow);
    EXPECT_EQ(dmi.get_end_address(), kMemoryWindow + (1 << 20) - 1);
    EXPECT_EQ(dmi.get_dmi_ptr(), bench.dram.bytes.data());
    EXPECT_EQ(t.get_address(), kMemoryWindow + 0x10) << "the payload's address is restored";
}

}  // namespace
}  // namespace kpu::platform
