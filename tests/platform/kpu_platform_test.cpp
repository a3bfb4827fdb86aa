// The platform as a whole: module tree and names from the config, byte-exact data through
// every level and back, the backdoor, DMI through the interconnect, L1 pointers for the
// fabric, the vector engine on its tile's memories, and two platforms in one simulation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "hardware/vector_timing.h"
#include "tests/support/config.h"
#include "tests/support/platform_driver.h"
#include "tests/support/random_floats.h"
#include "tests/support/report_catcher.h"
#include "tests/support/scripted_initiator.h"

namespace kpu::platform {
namespace {

using model::Completion;
using test::Driver;
using test::linear;
using test::transfer;

TEST(KpuPlatform, ModuleTreeFollowsTheConfigAndNamesMirrorTheHardware) {
    KpuPlatform kpu("kpu", test::config("t64"));
    // Every module of the tree, counted by walking it: chip level, then per tile.
    const ModuleCounts c = kpu.counts();
    const std::map<std::string, uint64_t> expected = {
        {"kpu_platform", 1},     {"host_interface", 1},   {"sequencer", 1},       {"dram_channel", 8},
        {"dma_engine", 16},      {"interconnect", 1},     {"compute_tile", 64},   {"tile_switch", 64},
        {"l3_tile", 64},         {"l2_bank", 64 * 8},     {"l1_buffer", 64 * 128}, {"l1_fanout", 64},
        {"block_mover", 64 * 2}, {"streamer", 64 * 4},    {"systolic_fabric", 64}, {"vector_engine", 64},
    };
    const std::map<std::string, uint64_t> counted(c.kinds.begin(), c.kinds.end());
    EXPECT_EQ(counted, expected);
    EXPECT_EQ(c.of("protocol_checker"), 0u);
    EXPECT_EQ(c.total(), 1 + 1 + 1 + 8 + 16 + 1 + 64 * (1 + 1 + 1 + 8 + 128 + 1 + 2 + 4 + 1 + 1u));
    EXPECT_EQ(c.kinds.front().first, "kpu_platform") << "breadth-first: the top first";
    EXPECT_EQ(&kpu.tile(3).l2(5), sc_core::sc_find_object("kpu.tile_3.l2_5"));
    EXPECT_STREQ(kpu.block_mover(63, 1).name(), "kpu.tile_63.bm_1");
    EXPECT_STREQ(kpu.streamer(2, 3).name(), "kpu.tile_2.streamer_3");
    EXPECT_STREQ(kpu.dma(15).name(), "kpu.dma_15");
    EXPECT_STREQ(kpu.dram_channel(7).name(), "kpu.dram_7");
    EXPECT_STREQ(kpu.tile(0).l1(127).name(), "kpu.tile_0.l1_127");
    EXPECT_STREQ(kpu.tile(5).fabric().name(), "kpu.tile_5.fabric");
    EXPECT_STREQ(kpu.tile(5).vector().name(), "kpu.tile_5.vector");
    sc_core::sc_start(sc_core::SC_ZERO_TIME);  // binding completes without errors
    EXPECT_EQ(kpu.tile(0).l1(0).storage().pages_allocated(), 0u);
}

TEST(KpuPlatform, AccessorsReportAnIndexOutsideTheConfig) {
    KpuPlatform kpu("kpu", test::config("minimal"));
    EXPECT_THROW(kpu.dma(2), sc_core::sc_report);
    try {
        kpu.streamer(0, 2);
    } catch (const sc_core::sc_report& r) {
        EXPECT_NE(std::string(r.what()).find("kpu.tile_0: no Streamer 2 (this config has 2)"), std::string::npos);
    }
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = uint8_t(rng());
    return v;
}

// A 24 x 20 fp32 tile out of a 48 x 80 row-major matrix travels DRAM -> L3 -> L2
// (transposed) -> L1 (spanning three L1 buffers) -> L2 -> L3 (transposed back) -> DRAM,
// one b_transport per burst through protocol checkers (the DMI path is held to the same
// bytes by Movers.DmiFastPathGivesTheSameTimesAndBytesAsOneTransactionPerBurst).
TEST(KpuPlatform, RoundTripThroughEveryLevelIsByteExactIncludingTranspose) {
    KpuPlatform kpu("kpu", test::config("minimal"), [] {
        PlatformOptions o;
        o.check_protocol = true;
        o.mover_dmi = false;
        return o;
    }());
    const hw::AddressMap& map = kpu.address_map();
    EXPECT_EQ(kpu.counts().of("protocol_checker"), kpu.checkers().size()) << "checkers are modules of the tree too";
    constexpr uint32_t kRows = 48, kCols = 80, kTileRows = 24, kTileCols = 20, kR0 = 5, kC0 = 7;
    const uint64_t matrix = 0x10000, back = 0x300000;  // DRAM
    const std::vector<uint8_t> data = random_bytes(kRows * kCols * 4, 42);
    ASSERT_TRUE(kpu.write(matrix, data.data(), data.size()));

    const uint64_t l3 = map.l3_base(0) + 1000, l2 = map.l2_base(0, 1) + 64, l1 = map.l1_base(0, 2) + 200,
                   l2_back = map.l2_base(0, 3), l3_back = map.l3_base(0) + 100000;
    const uint32_t tile_bytes = kTileCols * 4, t_bytes = kTileRows * 4;  // 80 B rows; 96 B transposed rows
    std::vector<Completion> steps;
    std::vector<uint8_t> in_l1(kTileCols * t_bytes);
    Driver driver("driver", [&](Driver& d) {
        steps.push_back(d.run(kpu.dma(0), transfer(1, matrix + (kR0 * kCols + kC0) * 4, l3, kTileRows, tile_bytes,
                                                   kCols * 4, 88)));
        hw::Transfer t = transfer(2, l3, l2, kTileRows, tile_bytes, 88, 128, hw::Transform::Transpose);
        steps.push_back(d.run(kpu.block_mover(0, 0), t));
        steps.push_back(d.run(kpu.streamer(0, 0), transfer(3, l2, l1, kTileCols, t_bytes, 128, t_bytes)));
        kpu.read(l1, in_l1.data(), in_l1.size());
        steps.push_back(d.run(kpu.streamer(0, 1), transfer(4, l1, l2_back, kTileCols, t_bytes, t_bytes, 100)));
        t = transfer(5, l2_back, l3_back, kTileCols, t_bytes, 100, tile_bytes, hw::Transform::Transpose);
        steps.push_back(d.run(kpu.block_mover(0, 0), t));
        steps.push_back(d.run(kpu.dma(1), transfer(6, l3_back, back, kTileRows, tile_bytes, tile_bytes, 512)));
    });
    sc_core::sc_start();

    ASSERT_EQ(steps.size(), 6u);
    for (const Completion& c : steps) {
        EXPECT_TRUE(c.ok()) << c.id;
        EXPECT_EQ(c.bytes, kTileRows * tile_bytes) << c.id;
    }
    auto element = [&](uint32_t r, uint32_t c) {  // fp32 (r, c) of the tile, as bytes
        return std::vector<uint8_t>(data.begin() + ((kR0 + r) * kCols + kC0 + c) * 4,
                                    data.begin() + ((kR0 + r) * kCols + kC0 + c) * 4 + 4);
    };
    for (uint32_t c = 0; c < kTileCols; ++c)  // L1 holds the transpose: row c = column c
        for (uint32_t r = 0; r < kTileRows; ++r)
            ASSERT_EQ(std::vector<uint8_t>(in_l1.begin() + c * t_bytes + r * 4, in_l1.begin() + c * t_bytes + r * 4 + 4),
                      element(r, c))
                << r << "," << c;
    for (uint32_t r = 0; r < kTileRows; ++r) {
        std::vector<uint8_t> row(tile_bytes);
        kpu.read(back + r * 512, row.data(), row.size());
        ASSERT_EQ(row, std::vector<uint8_t>(data.begin() + ((kR0 + r) * kCols + kC0) * 4,
                                            data.begin() + ((kR0 + r) * kCols + kC0) * 4 + tile_bytes))
            << "row " << r;
    }
    std::vector<uint8_t> gap(512 - tile_bytes, 0xEE), zeros(512 - tile_bytes, 0);
    kpu.read(back + tile_bytes, gap.data(), gap.size());
    EXPECT_EQ(gap, zeros);  // the stride's gap was never written
    EXPECT_EQ(test::checker_violations(kpu), "");
    uint64_t checked = 0;
    for (const auto* c : kpu.checkers()) checked += c->checked();
    // Every burst passes two checkers on the way to its memory (mover side and memory side),
    // three when it crosses the network (DMA: plus the tile downlink).
    EXPECT_GT(checked, 2 * (kpu.dma(0).stats().transactions + kpu.block_mover(0, 0).stats().transactions));
}

TEST(KpuPlatform, BackdoorSpansChannelsAndInstancesAndReportsUnmappedRanges) {
    test::ReportCatcher catcher;
    KpuPlatform kpu("kpu", test::config("minimal"));
    const std::vector<uint8_t> data = random_bytes(5000, 7);
    std::vector<uint8_t> out(5000);
    EXPECT_TRUE(kpu.write(700, data.data(), data.size()));  // five interleave blocks, both channels
    EXPECT_TRUE(kpu.read(700, out.data(), out.size()));
    EXPECT_EQ(out, data);
    EXPECT_EQ(kpu.dram_channel(0).stats().bytes_written + kpu.dram_channel(1).stats().bytes_written, 0u);  // untimed
    const uint64_t l2_end = kpu.address_map().l2_base(0, 3) + 16384;
    EXPECT_TRUE(kpu.write(l2_end - 3000, data.data(), 3000));  // banks 2 and 3
    EXPECT_FALSE(kpu.read(l2_end - 100, out.data(), 200));     // runs off the last bank
    EXPECT_EQ(test::ReportCatcher::count({"kpu/platform", "kpu: backdoor read stopped at 0x20000010000", "is not mapped"}), 1);
}

TEST(KpuPlatform, L1PointerIsADirectViewOfTheBufferAndRefusesOtherRanges) {
    test::ReportCatcher catcher;
    KpuPlatform kpu("kpu", test::config("minimal"));
    const uint64_t at = kpu.address_map().l1_base(0, 9) + 16;
    uint8_t* p = kpu.l1_pointer(at, 1000);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p[999], 0);  // fresh buffer reads as zeros
    p[0] = 0xAB;
    p[999] = 0xCD;
    uint8_t b[1000];
    kpu.read(at, b, sizeof b);
    EXPECT_EQ(b[0], 0xAB);
    EXPECT_EQ(b[999], 0xCD);
    EXPECT_EQ(kpu.l1_pointer(at + 10, 4), p + 10);  // same buffer, same memory
    EXPECT_EQ(kpu.l1_pointer(at, 1024), nullptr);   // would cross into buffer 10
    EXPECT_EQ(kpu.l1_pointer(kpu.address_map().l2_base(0, 0), 64), nullptr);
    EXPECT_EQ(test::ReportCatcher::count({"kpu/platform", "l1_pointer", "is in L2, not inside one L1 buffer"}), 1);
    EXPECT_EQ(test::ReportCatcher::count({"kpu/platform", "l1_pointer"}), 2);
}

// A host-side initiator at chip level: DMI into DRAM comes back clipped to one interleave
// block, in device addresses; into L1 it covers the whole buffer.
TEST(KpuPlatform, DmiThroughTheInterconnectIsInDeviceAddresses) {
    KpuPlatform kpu("kpu", test::config("minimal"));
    tlm::tlm_dmi dram, l1;
    bool ok_dram = false, ok_l1 = false;
    const uint64_t l1_addr = kpu.address_map().l1_base(0, 5) + 100;
    test::ScriptedInitiator host("host", [&](test::ScriptedInitiator& i) {
        tlm::tlm_generic_payload t;
        t.set_address(3 * 1024 + 10);  // block 3: channel 1
        ok_dram = i.socket->get_direct_mem_ptr(t, dram);
        t.set_address(l1_addr);
        ok_l1 = i.socket->get_direct_mem_ptr(t, l1);
    });
    kpu.connect_initiator(host.socket);
    sc_core::sc_start();
    ASSERT_TRUE(ok_dram);
    EXPECT_EQ(dram.get_start_address(), 3u * 1024);
    EXPECT_EQ(dram.get_end_address(), 4u * 1024 - 1);
    dram.get_dmi_ptr()[10] = 0x5A;
    uint8_t b = 0;
    kpu.read(3 * 1024 + 10, &b, 1);
    EXPECT_EQ(b, 0x5A);
    ASSERT_TRUE(ok_l1);
    EXPECT_EQ(l1.get_start_address(), kpu.address_map().l1_base(0, 5));
    EXPECT_EQ(l1.get_end_address(), kpu.address_map().l1_base(0, 6) - 1);
    EXPECT_EQ(l1.get_dmi_ptr(), kpu.l1_pointer(kpu.address_map().l1_base(0, 5), 1));
}

// The host writes a tile into L2 (across two banks) and a bias row into L1; the tile's vector
// engine adds them into L1 and normalizes that back into L2, every link behind a protocol
// checker, the arithmetic on the platform's compute helper. Each command takes its
// vector_cycles at the fabric clock.
TEST(KpuPlatform, VectorEngineReadsAndWritesItsTilesL1AndL2) {
    KpuPlatform kpu("kpu", test::config("minimal"), [] {
        PlatformOptions o;
        o.check_protocol = true;
        return o;
    }());
    const hw::AddressMap& map = kpu.address_map();
    constexpr uint32_t kRows = 12, kCols = 50;  // ragged on minimal's 8 lanes
    const uint64_t x_at = map.l2_base(0, 2) - 1000;  // 2400 bytes: banks 1 and 2
    const uint64_t bias_at = map.l1_base(0, 3) + 8, sum_at = map.l1_base(0, 10), y_at = map.l2_base(0, 0) + 64;
    const std::vector<float> x = test::random_floats(kRows * kCols, 1, -2, 2), bias = test::random_floats(kCols, 2, -2, 2);
    ASSERT_TRUE(kpu.write(x_at, x.data(), x.size() * 4));
    ASSERT_TRUE(kpu.write(bias_at, bias.data(), bias.size() * 4));

    model::VectorEngine& engine = kpu.tile(0).vector();
    std::vector<std::pair<bool, sc_core::sc_time>> done;
    engine.on_complete(
        [&](uint64_t, bool ok, const sc_core::sc_time&) { done.emplace_back(ok, sc_core::sc_time_stamp()); });
    hw::VectorCommand add;
    add.function = hw::VectorFunction::Add;
    add.rows = kRows, add.cols = kCols;
    add.a = {x_at, kCols};
    add.has_b = true;
    add.b = {bias_at, 0, hw::Broadcast::Row};
    add.y = {sum_at, kCols};
    hw::VectorCommand norm;
    norm.function = hw::VectorFunction::RmsNorm;
    norm.rows = kRows, norm.cols = kCols;
    norm.a = {sum_at, kCols};
    norm.y = {y_at, kCols};
    norm.epsilon = 1e-5f;
    engine.submit({1, add});
    engine.submit({2, norm});
    sc_core::sc_start();

    ASSERT_EQ(done.size(), 2u);
    EXPECT_TRUE(done[0].first);
    EXPECT_TRUE(done[1].first);
    const hw::VectorUnit& unit = kpu.config().vector;
    const sc_core::sc_time ns(1, sc_core::SC_NS);  // minimal's fabric clock: 1 GHz
    EXPECT_EQ(done[0].second, double(hw::vector_cycles(add, unit)) * ns);
    EXPECT_EQ(done[1].second, double(hw::vector_cycles(add, unit) + hw::vector_cycles(norm, unit)) * ns);
    EXPECT_EQ(test::checker_violations(kpu), "");

    std::vector<float> sum(kRows * kCols), y(kRows * kCols);
    ASSERT_TRUE(kpu.read(sum_at, sum.data(), sum.size() * 4));
    ASSERT_TRUE(kpu.read(y_at, y.data(), y.size() * 4));
    for (uint32_t r = 0; r < kRows; ++r) {
        double square = 0;
        for (uint32_t c = 0; c < kCols; ++c) {
            EXPECT_EQ(sum[r * kCols + c], x[r * kCols + c] + bias[c]) << r << "," << c;
            square += double(sum[r * kCols + c]) * sum[r * kCols + c];
        }
        const double rstd = 1 / std::sqrt(square / kCols + 1e-5);
        for (uint32_t c = 0; c < kCols; ++c)
            EXPECT_NEAR(y[r * kCols + c], sum[r * kCols + c] * rstd, 1e-5) << r << "," << c;
    }
}

// The sequencer dispatches a bound vector op to its tile's engine and hears its completion:
// a block mover brings the input into L2, the vector engine works on it there.
TEST(KpuPlatform, SequencerPlaysVectorOpsOnTheirTile) {
    KpuPlatform kpu("kpu", test::config("minimal"));
    const hw::AddressMap& map = kpu.address_map();
    constexpr uint32_t kRows = 3, kCols = 11;
    const uint64_t x3 = map.l3_base(0), x2 = map.l2_base(0, 0), y2 = map.l2_base(0, 1);
    const std::vector<float> x = test::random_floats(kRows * kCols, 3, -2, 2);
    ASSERT_TRUE(kpu.write(x3, x.data(), x.size() * 4));
    compiler::BoundProgram program;
    compiler::BoundOp move;
    move.engine = compiler::EngineKind::BlockMover;
    move.move = linear(0, x3, x2, kRows * kCols * 4);
    compiler::BoundOp relu;
    relu.id = 1;
    relu.kind = compiler::BoundOp::Kind::Vector;
    relu.engine = compiler::EngineKind::Vector;
    relu.vector.function = hw::VectorFunction::Relu;
    relu.vector.rows = kRows, relu.vector.cols = kCols;
    relu.vector.a = {x2, kCols};
    relu.vector.y = {y2, kCols};
    relu.deps = {0};
    program.ops = {move, relu};
    kpu.sequencer().start(program);
    sc_core::sc_start();
    ASSERT_TRUE(kpu.sequencer().succeeded()) << kpu.sequencer().error();
    const auto& records = kpu.sequencer().records();
    EXPECT_EQ(records[1].completed - records[1].started,
              double(hw::vector_cycles(relu.vector, kpu.config().vector)) * sc_core::sc_time(1, sc_core::SC_NS));
    std::vector<float> y(kRows * kCols);
    ASSERT_TRUE(kpu.read(y2, y.data(), y.size() * 4));
    for (size_t i = 0; i < y.size(); ++i) EXPECT_EQ(y[i], std::max(x[i], 0.0f)) << i;
}

// An operand outside every memory is reported by the engine (and the router), not a crash.
TEST(KpuPlatform, VectorEngineReportsAnOperandOutsideEveryMemory) {
    test::ReportCatcher catcher;
    KpuPlatform kpu("kpu", test::config("minimal"));
    const uint64_t unmapped = kpu.address_map().l2_base(0, 0) + 4 * 16384;  // past the last L2 bank
    hw::VectorCommand exp;
    exp.function = hw::VectorFunction::Exp;
    exp.rows = 2, exp.cols = 3;
    exp.a = {unmapped, 3};
    exp.y = {kpu.address_map().l1_base(0, 0), 3};
    bool ok = true;
    kpu.tile(0).vector().on_complete([&](uint64_t, bool result, const sc_core::sc_time&) { ok = result; });
    kpu.tile(0).vector().submit({1, exp});
    sc_core::sc_start();
    EXPECT_FALSE(ok);
    EXPECT_EQ(test::ReportCatcher::count({"kpu/noc", "from kpu.tile_0.vector.socket", "is not mapped"}), 2)
        << "the DMI request and the debug access";
    EXPECT_EQ(test::ReportCatcher::count(
                  {"kpu/vector", "kpu.tile_0.vector: cannot read input a at 0x20000010000 (24 bytes)"}),
              1);
}

// Two platforms with their own names, memories and timing in one simulation.
TEST(KpuPlatform, TwoPlatformsLiveInOneSimulation) {
    KpuPlatform a("kpu_a", test::config("minimal"));
    KpuPlatform b("kpu_b", test::config("edge"));
    EXPECT_EQ(count_modules().total(), a.counts().total() + b.counts().total()) << "each counts its own tree";
    const std::vector<uint8_t> da = random_bytes(4096, 1), db = random_bytes(4096, 2);
    a.write(0, da.data(), da.size());
    b.write(0, db.data(), db.size());
    Completion ca, cb;
    Driver driver("driver", [&](Driver& d) {
        a.dma(0).submit(linear(1, 0, hw::kL3Base, 4096));
        ca = d.run(b.dma(1), linear(1, 0, hw::kL3Base, 4096));  // same id, other platform
        d.watch(a.dma(0));
        d.done.erase(1);
        cb = d.run(a.dma(0), linear(2, 0, hw::kL3Base + 8192, 4096));
    });
    sc_core::sc_start();
    std::vector<uint8_t> ra(4096), rb(4096), ra2(4096);
    a.read(hw::kL3Base, ra.data(), ra.size());
    b.read(hw::kL3Base, rb.data(), rb.size());
    a.read(hw::kL3Base + 8192, ra2.data(), ra2.size());
    EXPECT_EQ(ra, da);
    EXPECT_EQ(rb, db);
    EXPECT_EQ(ra2, da);
    EXPECT_TRUE(ca.ok());
    EXPECT_TRUE(cb.ok());
    EXPECT_STREQ(a.tile(0).l3().name(), "kpu_a.tile_0.l3");
    EXPECT_STREQ(b.tile(3).l3().name(), "kpu_b.tile_3.l3");
    EXPECT_EQ(a.dma(0).stats().bytes, 8192u);
    EXPECT_EQ(b.dma(1).stats().bytes, 4096u);
    EXPECT_EQ(b.dma(0).stats().bytes, 0u);
}

}  // namespace
}  // namespace kpu::platform
