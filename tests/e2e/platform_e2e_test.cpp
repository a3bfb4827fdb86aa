// The KPU as a virtual platform sees it: one .kpu on two configs, two KPUs in one
// simulation, and a register-level test bench that drives the device without HostDriver.
#include <algorithm>
#include <cstring>

#include <tlm_utils/simple_initiator_socket.h>

#include "compiler/kpu_format.h"
#include "compiler/replay.h"
#include "compiler/tiler.h"

#include "tests/e2e/e2e_support.h"

namespace kpu::test {
namespace {

using platform::HostError;
using platform::HostRegister;
using platform::HostStatus;

TEST(SameProgram, RunsOnTwoConfigsWithIdenticalOutputsAndCyclesInTheConfigsDirection) {
    // Compiled once (for minimal); bound at START by each device. Three KPUs share one
    // simulation: minimal, minimal with a quarter of its DRAM bandwidth, and edge (4 tiles
    // of 16x16).
    const hw::Config minimal = config("minimal");
    const hw::Config slow_dram = config("minimal", {hw::parse_override("dram.bandwidth_gb_per_s=2")});
    const hw::Config edge = config("edge");
    const compiler::Program program = compile(matmul_json(192, 160, 96), minimal);
    const hw::Config* configs[] = {&minimal, &slow_dram, &edge};
    std::vector<cli::Prepared> prepared;
    std::vector<cli::Session*> sessions;
    for (int i = 0; i < 3; ++i) {
        prepared.push_back(cli::prepare(*configs[i], program, "", 3));
        sessions.push_back(new cli::Session);
        sessions.back()->job = prepared.back().job;
        sessions.back()->build(*configs[i], "kpu" + std::to_string(i));
    }
    sc_core::sc_start();
    for (int i = 0; i < 3; ++i) expect_outputs_match_reference(program, prepared[i], *sessions[i]);
    const auto reference_outputs = sessions[0]->outputs();
    for (int i = 1; i < 3; ++i)
        EXPECT_EQ(sessions[i]->outputs(), reference_outputs) << "same tiles, same summation order: bit-identical";
    const uint64_t cycles[] = {sessions[0]->host->result().cycles, sessions[1]->host->result().cycles,
                               sessions[2]->host->result().cycles};
    EXPECT_GT(cycles[1], cycles[0]) << "a quarter of the DRAM bandwidth costs cycles";
    EXPECT_LT(cycles[2], cycles[0]) << "edge has 4 tiles of 16x16 against 1 of 8x8";
}

// The compiler's cost model against the platform: datacenter 512^3 as the tiler compiles it
// (one pass) and as the closed form ranked first (64 x 128 tiles, K in 2 passes), side by
// side in one simulation. The replay must be close to each, and its choice faster.
TEST(Replay, TracksTheSimulatorAndItsChoiceRunsFaster) {
    using namespace compiler;
    const hw::Config dc = config("datacenter");
    const Program chosen = compile(matmul_json(512, 512, 512), dc);
    TilingChoice two;
    ASSERT_TRUE(evaluate_tiling(dc, chosen.graph, 0, Dataflow::OutputStationary, {64, 128, 0}, 1, 1, two, 2));
    const Program passes = tiling_program(dc, chosen.graph, 0, Dataflow::OutputStationary, two);
    ASSERT_EQ(chosen.kernels[0].tile.kc, 0u);
    ASSERT_GT(passes.kernels[0].tile.kc, 0u);
    const Program* programs[] = {&chosen, &passes};
    std::vector<cli::Prepared> prepared;
    std::vector<cli::Session*> sessions;
    for (int i = 0; i < 2; ++i) {
        prepared.push_back(cli::prepare(dc, *programs[i], "", 5));
        sessions.push_back(new cli::Session);
        sessions.back()->job = prepared.back().job;
        sessions.back()->build(dc, "kpu" + std::to_string(i));
    }
    sc_core::sc_start();
    double simulated[2];
    for (int i = 0; i < 2; ++i) {
        expect_outputs_match_reference(*programs[i], prepared[i], *sessions[i]);
        simulated[i] = double(sessions[i]->host->result().cycles);
        const double replayed = replay_cycles(prepared[i].bound, dc);
        EXPECT_NEAR(replayed, simulated[i], 0.1 * simulated[i]) << "program " << i;
    }
    EXPECT_LT(simulated[0] * 1.2, simulated[1]) << "the replay's choice runs faster than the closed form's";
}

// The movers' timing granularity (PlatformOptions::train_bytes) is a simulation choice,
// not hardware: trains of 1 KiB and per-burst booking give the same bytes, and cycles
// within 3 % of each other on a program where 176 movers contend (t64).
TEST(TrainBytes, TrainsAndPerBurstBookingGiveTheSameOutputsAndCloseCycles) {
    const hw::Config t64 = config("t64");
    const compiler::Program program = compile(matmul_json(256, 384, 320), t64);
    std::vector<cli::Prepared> prepared;
    std::vector<cli::Session*> sessions;
    for (uint32_t train_bytes : {0u, 1024u}) {
        prepared.push_back(cli::prepare(t64, program, "", 5));
        sessions.push_back(new cli::Session);
        sessions.back()->job = prepared.back().job;
        platform::PlatformOptions options;
        options.train_bytes = train_bytes;
        sessions.back()->build(t64, "kpu_train" + std::to_string(train_bytes), options);
    }
    sc_core::sc_start();
    for (int i = 0; i < 2; ++i) expect_outputs_match_reference(program, prepared[i], *sessions[i]);
    EXPECT_EQ(sessions[1]->outputs(), sessions[0]->outputs());
    const double per_burst = double(sessions[0]->host->result().cycles), trains = double(sessions[1]->host->result().cycles);
    EXPECT_NEAR(trains, per_burst, 0.03 * per_burst);
    EXPECT_EQ(sessions[0]->kpu->dma(0).stats().trains * 2, sessions[0]->kpu->dma(0).stats().dmi_accesses);
    EXPECT_LT(sessions[1]->kpu->dma(0).stats().trains * 2, sessions[1]->kpu->dma(0).stats().dmi_accesses);
}

TEST(TwoPlatforms, RunIndependentProgramsInOneSimulation) {
    const hw::Config minimal = config("minimal");
    const compiler::Program first = compile(matmul_json(64, 48, 80), minimal);
    const compiler::Program second = compile(example("mlp.json"), minimal);
    cli::Prepared a = cli::prepare(minimal, first, "", 1), b = cli::prepare(minimal, second, "", 2);
    auto* sa = new cli::Session;
    auto* sb = new cli::Session;
    sa->job = a.job, sb->job = b.job;
    sa->build(minimal, "left");
    sb->build(minimal, "right");
    sc_core::sc_start();
    expect_outputs_match_reference(first, a, *sa);
    expect_outputs_match_reference(second, b, *sb);
    EXPECT_STREQ(sa->kpu->name(), "left");
    EXPECT_EQ(std::string(sb->kpu->tile(0).fabric().name()), "right.tile_0.fabric");
}

/// A virtual platform's CPU in miniature: plain TLM transactions to the registers (32-bit
/// halves, as a 32-bit core would) and to the DRAM window, and an interrupt input.
struct TestBench : sc_core::sc_module {
    tlm_utils::simple_initiator_socket<TestBench> socket{"socket"};
    sc_core::sc_in<bool> irq{"irq"};
    std::function<void(TestBench&)> script;
    uint64_t status_after_start = 0;  ///< STATUS read right after START

    TestBench(sc_core::sc_module_name n, std::function<void(TestBench&)> s) : sc_module(n), script(std::move(s)) {
        SC_HAS_PROCESS(TestBench);
        SC_THREAD(run);
    }
    void run() { script(*this); }

    tlm::tlm_response_status access(tlm::tlm_command cmd, uint64_t addr, void* data, unsigned len) {
        tlm::tlm_generic_payload t;
        sc_core::sc_time delay = sc_core::SC_ZERO_TIME;
        t.set_command(cmd), t.set_address(addr), t.set_data_ptr(static_cast<unsigned char*>(data));
        t.set_data_length(len), t.set_streaming_width(len);
        socket->b_transport(t, delay);
        wait(delay);
        return t.get_response_status();
    }
    void write32(HostRegister reg, uint64_t value) {
        uint32_t lo = uint32_t(value), hi = uint32_t(value >> 32);
        ASSERT_EQ(access(tlm::TLM_WRITE_COMMAND, uint64_t(reg), &lo, 4), tlm::TLM_OK_RESPONSE);
        ASSERT_EQ(access(tlm::TLM_WRITE_COMMAND, uint64_t(reg) + 4, &hi, 4), tlm::TLM_OK_RESPONSE);
    }
    uint64_t read32(HostRegister reg) {
        uint32_t lo = 0, hi = 0;
        EXPECT_EQ(access(tlm::TLM_READ_COMMAND, uint64_t(reg), &lo, 4), tlm::TLM_OK_RESPONSE);
        EXPECT_EQ(access(tlm::TLM_READ_COMMAND, uint64_t(reg) + 4, &hi, 4), tlm::TLM_OK_RESPONSE);
        return lo | (uint64_t(hi) << 32);
    }
    /// Device memory through the window, one timed 64-byte transaction at a time.
    void copy(uint64_t device_addr, uint8_t* data, size_t len, bool to_device) {
        for (size_t off = 0; off < len; off += 64) {
            const unsigned n = unsigned(std::min<size_t>(64, len - off));
            ASSERT_EQ(access(to_device ? tlm::TLM_WRITE_COMMAND : tlm::TLM_READ_COMMAND,
                             platform::kMemoryWindow + device_addr + off, data + off, n),
                      tlm::TLM_OK_RESPONSE);
        }
    }
    /// Writes a job's inputs and image through the window, STARTs it and waits for irq.
    void run(platform::HostJob& job) {
        for (auto& input : job.inputs) copy(input.device_addr, input.bytes.data(), input.bytes.size(), true);
        std::vector<uint8_t> image(job.image.begin(), job.image.end());
        copy(job.image_addr, image.data(), image.size(), true);
        start_and_wait(job.image_addr, image.size());
    }
    void start_and_wait(uint64_t image_addr, uint64_t image_size) {
        write32(HostRegister::ProgramAddr, image_addr);
        write32(HostRegister::ProgramSize, image_size);
        write32(HostRegister::Control, platform::kControlStart);
        status_after_start = read32(HostRegister::Status);
        if (!irq.read()) wait(irq.posedge_event());
    }
};

/// The register-level tests' job: a 40 x 24 x 56 matmul prepared for minimal.
struct SmallMatmul {
    hw::Config minimal = config("minimal");
    compiler::Program program = compile(matmul_json(40, 24, 56), minimal);
    cli::Prepared prepared = cli::prepare(minimal, program, "", 5);
};

// Any access inside the window works, split at the DRAM interleave blocks (a CPU's memcpy
// crosses them), and the registers read by debug transport (a debugger reads them).
TEST(RegisterLevel, WindowAccessesOfAnyLengthAndAlignmentWork) {
    const hw::Config minimal = config("minimal");
    const uint64_t block = minimal.dram.interleave_bytes;
    platform::KpuPlatform kpu("kpu", minimal);
    std::vector<uint8_t> written(3 * block + 100), read_back(written.size()), debug(written.size());
    for (size_t i = 0; i < written.size(); ++i) written[i] = uint8_t(i * 7 + 3);
    const uint64_t at = 5 * block - 13;  // unaligned, across four blocks
    tlm::tlm_response_status write_status{}, read_status{};
    unsigned debug_served = 0, id_served = 0;
    uint64_t id = 0;
    TestBench bench("bench", [&](TestBench& tb) {
        write_status = tb.access(tlm::TLM_WRITE_COMMAND, platform::kMemoryWindow + at, written.data(),
                                 unsigned(written.size()));
        read_status = tb.access(tlm::TLM_READ_COMMAND, platform::kMemoryWindow + at, read_back.data(),
                                unsigned(read_back.size()));
        tlm::tlm_generic_payload t;
        t.set_command(tlm::TLM_READ_COMMAND), t.set_address(platform::kMemoryWindow + at);
        t.set_data_ptr(debug.data()), t.set_data_length(unsigned(debug.size())), t.set_streaming_width(unsigned(debug.size()));
        debug_served = tb.socket->transport_dbg(t);
        tlm::tlm_generic_payload r;
        r.set_command(tlm::TLM_READ_COMMAND), r.set_address(uint64_t(HostRegister::Id));
        r.set_data_ptr(reinterpret_cast<unsigned char*>(&id)), r.set_data_length(8), r.set_streaming_width(8);
        id_served = tb.socket->transport_dbg(r);
    });
    sc_core::sc_signal<bool> irq("irq");
    bench.socket.bind(kpu.host_socket);
    kpu.irq(irq);
    bench.irq(irq);
    sc_core::sc_start();
    EXPECT_EQ(write_status, tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(read_status, tlm::TLM_OK_RESPONSE);
    EXPECT_EQ(read_back, written);
    EXPECT_EQ(debug_served, unsigned(debug.size()));
    EXPECT_EQ(debug, written);
    EXPECT_EQ(id_served, 8u);
    EXPECT_EQ(id, platform::kKpuId);
}

TEST(RegisterLevel, TestBenchProgramsTheDeviceGetsTheInterruptAndReadsCorrectResults) {
    SmallMatmul job;
    const hw::Config& minimal = job.minimal;
    const compiler::Program& program = job.program;
    cli::Prepared& prepared = job.prepared;
    platform::KpuPlatform kpu("kpu", minimal);
    sc_core::sc_signal<bool> irq("irq");
    std::vector<float> result;
    uint64_t cycles = 0, status = 0, error = 0;
    bool irq_low_after_ack = false;
    TestBench bench("bench", [&](TestBench& tb) {
        EXPECT_EQ(tb.read32(HostRegister::Id), platform::kKpuId);
        tb.run(prepared.job);
        status = tb.read32(HostRegister::Status);
        error = tb.read32(HostRegister::Error);
        cycles = tb.read32(HostRegister::Cycles);
        const platform::HostBuffer& out = prepared.job.outputs.at(0);
        result.resize(out.bytes.size() / 4);
        tb.copy(out.device_addr, reinterpret_cast<uint8_t*>(result.data()), out.bytes.size(), false);
        tb.write32(HostRegister::Control, platform::kControlIrqAck);
        sc_core::wait(sc_core::SC_ZERO_TIME);
        sc_core::wait(sc_core::SC_ZERO_TIME);
        irq_low_after_ack = !tb.irq.read();
    });
    bench.socket.bind(kpu.host_socket);
    kpu.irq(irq);
    bench.irq(irq);
    sc_core::sc_start();

    EXPECT_EQ(bench.status_after_start, uint64_t(HostStatus::Running));
    EXPECT_EQ(status, uint64_t(HostStatus::Done));
    EXPECT_EQ(error, uint64_t(HostError::None));
    EXPECT_TRUE(irq_low_after_ack);
    const double fabric_cycles = (kpu.finished_at() - kpu.started_at()).to_seconds() * minimal.clocks.fabric_hz;
    EXPECT_EQ(cycles, uint64_t(std::llround(fabric_cycles)));
    EXPECT_GT(cycles, 0u);
    const auto reference = cli::run_reference(program.graph, prepared.inputs);
    const cli::CheckResult r = cli::check_tensor(result, reference.at("C"), {40, 24});
    EXPECT_TRUE(r.ok) << r.mismatches << " mismatches, worst " << r.got << " vs " << r.expected;
}

TEST(RegisterLevel, BadImageAndProgramsThatDoNotFitLandInStatusAndError) {
    const hw::Config minimal = config("minimal");
    sc_core::sc_report_handler::set_actions("kpu/host", sc_core::SC_WARNING, sc_core::SC_DO_NOTHING);
    platform::KpuPlatform kpu("kpu", minimal);
    sc_core::sc_signal<bool> irq("irq");
    uint64_t garbage_status = 0, garbage_error = 0, big_status = 0, big_error = 0, empty_error = 0, outside_error = 0;
    std::string garbage_message, big_message, outside_message;
    bool empty_edge = false;
    // A softmax row of 16384 floats fits datacenter's L2 with its double buffers but not
    // minimal's 64 KiB in any row tiling (a matmul's tiles the device would re-block to fit).
    const compiler::Program big = compile(R"({"tensors": [{"name": "x", "shape": [64, 16384], "role": "input"},
        {"name": "y"}], "ops": [{"op": "Softmax", "name": "softmax", "inputs": ["x"], "outputs": ["y"]}]})",
                                          config("datacenter"));
    const std::string big_image = compiler::write_kpu(big);
    TestBench bench("bench", [&](TestBench& tb) {
        std::string text = "{\"format\": \"kpu\", \"version\": 99}";
        std::vector<uint8_t> image(text.begin(), text.end());
        tb.copy(0x1000, image.data(), image.size(), true);
        tb.start_and_wait(0x1000, image.size());
        garbage_status = tb.read32(HostRegister::Status);
        garbage_error = tb.read32(HostRegister::Error);
        garbage_message = kpu.host_error_message();
        tb.write32(HostRegister::Control, platform::kControlIrqAck);
        sc_core::wait(sc_core::SC_ZERO_TIME);

        std::vector<uint8_t> big_bytes(big_image.begin(), big_image.end());
        tb.copy(0x10000, big_bytes.data(), big_bytes.size(), true);
        tb.start_and_wait(0x10000, big_bytes.size());
        big_status = tb.read32(HostRegister::Status);
        big_error = tb.read32(HostRegister::Error);
        big_message = kpu.host_error_message();

        const sc_core::sc_time started = sc_core::sc_time_stamp();
        // An empty image, STARTed without acknowledging the last run: it fails inside the
        // START write, in the delta that lowers irq; irq must still fall and rise again (a
        // driver waits for the edge, and would hang if irq stayed high).
        tb.write32(HostRegister::ProgramSize, 0);
        tb.write32(HostRegister::Control, platform::kControlStart);
        sc_core::wait(sc_core::sc_time(1, sc_core::SC_US), tb.irq.posedge_event());
        empty_edge = tb.irq.read() && sc_core::sc_time_stamp() < started + sc_core::sc_time(1, sc_core::SC_US);
        empty_error = tb.read32(HostRegister::Error);
        tb.write32(HostRegister::Control, platform::kControlIrqAck);
        sc_core::wait(sc_core::SC_ZERO_TIME);

        // The host's address of the image instead of the device's: the message says that
        // PROGRAM_ADDR is a device address, and where the host sees it.
        tb.start_and_wait(platform::kMemoryWindow + 0x1000, 64);
        outside_error = tb.read32(HostRegister::Error);
        outside_message = kpu.host_error_message();
    });
    bench.socket.bind(kpu.host_socket);
    kpu.irq(irq);
    bench.irq(irq);
    sc_core::sc_start();

    EXPECT_EQ(garbage_status, uint64_t(HostStatus::Error));
    EXPECT_EQ(garbage_error, uint64_t(HostError::BadImage));
    EXPECT_NE(garbage_message.find("version"), std::string::npos) << garbage_message;
    EXPECT_EQ(big_status, uint64_t(HostStatus::Error));
    EXPECT_EQ(big_error, uint64_t(HostError::DoesNotFit)) << big_message;
    EXPECT_NE(big_message.find("L2"), std::string::npos) << big_message;
    EXPECT_EQ(empty_error, uint64_t(HostError::BadImage));
    EXPECT_TRUE(empty_edge) << "no rising edge of irq after a START that failed at once";
    EXPECT_EQ(outside_error, uint64_t(HostError::BadImage));
    EXPECT_EQ(outside_message, "program image [0x10000001000, 0x10000001040) (64 bytes) is not inside device DRAM "
                               "[0, 0x8000000) (PROGRAM_ADDR is a device address; the host writes that address at "
                               "0x10000000000 + it)");
}

// A driver that STARTs again without IRQ_ACK: the new START lowers irq (else waiting for its
// rising edge would wait for ever), and the second run ends as usual.
TEST(RegisterLevel, AStartWithoutIrqAckLowersIrqUntilTheNewRunEnds) {
    SmallMatmul small;
    platform::KpuPlatform kpu("kpu", small.minimal);
    sc_core::sc_signal<bool> irq("irq");
    bool low_after_second_start = false, high_at_second_end = false;
    uint64_t first_cycles = 0, second_cycles = 0, second_status = 0;
    TestBench bench("bench", [&](TestBench& tb) {
        tb.run(small.prepared.job);
        first_cycles = tb.read32(HostRegister::Cycles);
        tb.write32(HostRegister::Control, platform::kControlStart);  // no IRQ_ACK before
        sc_core::wait(sc_core::SC_ZERO_TIME);
        sc_core::wait(sc_core::SC_ZERO_TIME);
        low_after_second_start = !tb.irq.read();
        if (!tb.irq.read()) sc_core::wait(tb.irq.posedge_event());
        high_at_second_end = tb.irq.read();
        second_status = tb.read32(HostRegister::Status);
        second_cycles = tb.read32(HostRegister::Cycles);
    });
    bench.socket.bind(kpu.host_socket);
    kpu.irq(irq);
    bench.irq(irq);
    sc_core::sc_start();
    EXPECT_TRUE(low_after_second_start);
    EXPECT_TRUE(high_at_second_end);
    EXPECT_EQ(second_status, uint64_t(HostStatus::Done));
    EXPECT_EQ(second_cycles, first_cycles);
    EXPECT_GT(first_cycles, 0u);
}

// A virtual platform's driver runs job after job on one device: each program's results are
// right, and a program's cycles do not depend on what ran before it (the device returns to
// idle: no queue, port calendar or accumulator state leaks into the next run).
TEST(RegisterLevel, ProgramsRunBackToBackOnOneDeviceWithTheirOwnResultsAndCycles) {
    const hw::Config minimal = config("minimal");
    const compiler::Program matmul = compile(matmul_json(40, 24, 56), minimal);
    const compiler::Program mlp = compile(example("mlp.json"), minimal);
    const compiler::Program* order[] = {&matmul, &mlp, &matmul};
    std::vector<cli::Prepared> prepared;
    for (int i = 0; i < 3; ++i) prepared.push_back(cli::prepare(minimal, *order[i], "", uint64_t(11 + i)));
    platform::KpuPlatform kpu("kpu", minimal);
    sc_core::sc_signal<bool> irq("irq");
    std::vector<std::vector<float>> results(3);
    uint64_t cycles[3] = {}, status[3] = {};
    TestBench bench("bench", [&](TestBench& tb) {
        for (int i = 0; i < 3; ++i) {
            platform::HostJob& job = prepared[size_t(i)].job;
            tb.run(job);
            status[i] = tb.read32(HostRegister::Status);
            cycles[i] = tb.read32(HostRegister::Cycles);
            // The host reads the outputs and, for --check, the intermediates: take the output.
            const auto& tensors = prepared[size_t(i)].bound.tensors;
            const auto out = std::find_if(tensors.begin(), tensors.end(), [](const auto& t) { return t.role == "output"; });
            ASSERT_NE(out, tensors.end());
            results[size_t(i)].resize(out->bytes / 4);
            tb.copy(out->dram_addr, reinterpret_cast<uint8_t*>(results[size_t(i)].data()), out->bytes, false);
            tb.write32(HostRegister::Control, platform::kControlIrqAck);
            sc_core::wait(sc_core::SC_ZERO_TIME);
        }
    });
    bench.socket.bind(kpu.host_socket);
    kpu.irq(irq);
    bench.irq(irq);
    sc_core::sc_start();

    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(status[i], uint64_t(HostStatus::Done)) << "run " << i;
        const compiler::BoundProgram& bound = prepared[size_t(i)].bound;
        const auto out = std::find_if(bound.tensors.begin(), bound.tensors.end(),
                                      [](const auto& t) { return t.role == "output"; });
        ASSERT_NE(out, bound.tensors.end());
        const auto reference = cli::run_reference(order[i]->graph, prepared[size_t(i)].inputs);
        const cli::CheckResult r = cli::check_tensor(results[size_t(i)], reference.at(out->name), out->shape);
        EXPECT_TRUE(r.ok) << "run " << i << ": " << r.mismatches << " mismatches, worst " << r.got << " vs "
                          << r.expected;
    }
    EXPECT_GT(cycles[0], 0u);
    EXPECT_NE(cycles[1], cycles[0]) << "a different program";
    EXPECT_EQ(cycles[2], cycles[0]) << "the same program again, after another one";
}

}  // namespace
}  // namespace kpu::test
