// Movers inside a platform (minimal.json unless said otherwise), every link behind a
// protocol checker: exact picoseconds for short transfers, the analytic bandwidth for long
// ones, contention, DRAM interleaving, the command queue and errors.
//
// minimal.json, all clocks 1 GHz: DRAM 2 x 8 GB/s, 60 cycles, interleave 1 KiB; link
// 32 GB/s, 4 cycles; L3 32 GB/s, 10 cycles; L2 16 GB/s, 4 cycles; L1 8 GB/s, 1 cycle, 32 B
// bursts; DMA 8 GB/s (queue 4), BlockMover 32 GB/s, Streamer 32 GB/s.
#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <thread>

#include "tests/support/config.h"
#include "tests/support/platform_driver.h"
#include "tests/support/report_catcher.h"

namespace kpu::platform {
namespace {

using model::Completion;
using model::TransferStatus;
using sc_core::SC_NS;
using sc_core::sc_time;
using test::Driver;
using test::linear;
using test::transfer;

PlatformOptions checked() {
    PlatformOptions o;
    o.check_protocol = true;
    return o;
}

// One burst: every stage in turn, each latency + 64 B / its bandwidth:
// DRAM 60 + 8, link 4 + 2, L3 10 + 2 = 86 ns.
TEST(DmaEngine, SingleBurstCostsTheSumOfEachStagesLatencyPlusSizeOverBandwidth) {
    KpuPlatform kpu("kpu", test::config("minimal"), checked());
    Completion c;
    Driver driver("driver", [&](Driver& d) { c = d.run(kpu.dma(0), linear(1, 0x400, hw::kL3Base + 64, 64)); });
    sc_core::sc_start();
    EXPECT_TRUE(c.ok());
    EXPECT_EQ(c.start, sc_core::SC_ZERO_TIME);
    EXPECT_EQ(c.end, sc_time(86, SC_NS));
    EXPECT_EQ(c.bytes, 64u);
    EXPECT_EQ(test::checker_violations(kpu), "");
}

// k bursts pipeline: the first costs the sum above, each further one the slowest stage's
// time per burst (DMA engine and DRAM channel, 8 ns): 86 + 3 x 8 = 110 ns.
TEST(DmaEngine, ShortTransferPipelinesBurstsAtTheSlowestStage) {
    KpuPlatform kpu("kpu", test::config("minimal"), checked());
    Completion c;
    Driver driver("driver", [&](Driver& d) { c = d.run(kpu.dma(0), linear(1, 0, hw::kL3Base, 256)); });
    sc_core::sc_start();
    EXPECT_EQ(c.end, sc_time(110, SC_NS));
    EXPECT_EQ(kpu.dma(0).stats().dmi_accesses, 8u);  // 4 reads + 4 writes, through DMI by default
    EXPECT_EQ(kpu.dma(0).stats().transactions, 0u);
    EXPECT_EQ(kpu.dram_channel(0).stats().reads, 4u);  // 256 B: one interleave block, channel 0
    EXPECT_EQ(kpu.tile(0).l3().stats().bytes_written, 256u);
    EXPECT_EQ(kpu.interconnect().link(0).traffic().writes, 4u);
    EXPECT_EQ(kpu.dma(0).stats().busy, 110'000'000u);  // fs
}

// L3 -> L2 inside a tile: no network link. L3 10 + 2, L2 4 + 4 = 20 ns; L2 -> L1 is cut at
// L1's 32-byte bursts: L2 4 + 2, L1 1 + 4, plus one L1 burst time (4 ns) = 15 ns.
TEST(BlockMoverAndStreamer, SingleBurstTimesAreExact) {
    KpuPlatform kpu("kpu", test::config("minimal"), checked());
    const hw::AddressMap& map = kpu.address_map();
    Completion bm, st;
    Driver driver("driver", [&](Driver& d) {
        bm = d.run(kpu.block_mover(0, 0), linear(1, map.l3_base(0), map.l2_base(0, 1), 64));
        const sc_time t0 = sc_core::sc_time_stamp();
        st = d.run(kpu.streamer(0, 1), linear(2, map.l2_base(0, 1), map.l1_base(0, 3), 64));
        EXPECT_EQ(st.start, t0);
    });
    sc_core::sc_start();
    EXPECT_EQ(bm.end - bm.start, sc_time(20, SC_NS));
    EXPECT_EQ(st.end - st.start, sc_time(15, SC_NS));
    EXPECT_EQ(test::checker_violations(kpu), "");
}

struct LongCase {
    const char* name;
    char engine;  // 'd' DMA, 'b' BlockMover, 's' Streamer
    uint64_t src, dst;
    double expected;  // bytes/s: min(source, destination, network, engine)
};

// Big enough memories that one transfer runs for tens of microseconds.
hw::Config roomy() {
    return test::config("minimal", {{"l3.capacity_kib", "2048"}, {"l2.capacity_kib", "1024"}, {"l1.capacity_kib", "512"}});
}

TEST(Movers, LongTransfersRunAtTheMinimumOfSourceDestinationAndEngineBandwidth) {
    KpuPlatform kpu("kpu", roomy(), checked());
    const hw::AddressMap& map = kpu.address_map();
    const uint32_t bytes = 512 * 1024;
    const LongCase cases[] = {
        {"DMA DRAM->L3 (engine 8 GB/s)", 'd', 0, map.l3_base(0), 8e9},
        {"BlockMover L3->L2 (L2 16 GB/s)", 'b', map.l3_base(0), map.l2_base(0, 0), 16e9},
        {"Streamer L2->L1 (L1 8 GB/s)", 's', map.l2_base(0, 0), map.l1_base(0, 0), 8e9},
        {"Streamer L1->L2 (source L1 8 GB/s)", 's', map.l1_base(0, 0), map.l2_base(0, 1), 8e9},
        {"DMA L3->DRAM (engine 8 GB/s)", 'd', map.l3_base(0), 1 << 20, 8e9},
    };
    std::vector<Completion> got;
    Driver driver("driver", [&](Driver& d) {
        uint64_t id = 1;
        for (const LongCase& c : cases) {
            model::Mover& m = c.engine == 'd' ? static_cast<model::Mover&>(kpu.dma(0))
                              : c.engine == 'b' ? static_cast<model::Mover&>(kpu.block_mover(0, 0))
                                                : static_cast<model::Mover&>(kpu.streamer(0, 0));
            got.push_back(d.run(m, linear(id++, c.src, c.dst, bytes)));
        }
    });
    sc_core::sc_start();
    ASSERT_EQ(got.size(), std::size(cases));
    for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_TRUE(got[i].ok()) << cases[i].name;
        EXPECT_NEAR(test::bandwidth(got[i]), cases[i].expected, 0.02 * cases[i].expected) << cases[i].name;
    }
    EXPECT_EQ(test::checker_violations(kpu), "");
}

// A DRAM latency beyond the default 1 us quantum: the platform raises the quantum to 1.25x
// the config's mover window, so a mover's finite buffer (a quantum ahead of its completions)
// does not throttle the transfer: with a 1 us quantum each burst would wait until its
// predecessor was within a quantum of completing.
TEST(Movers, ALatencyBeyondTheDefaultQuantumDoesNotThrottleALongTransfer) {
    hw::Config config = roomy();
    config.dram.latency_cycles = 4000;  // 4 us at minimal's 1 GHz DRAM clock
    const hw::Derived derived = hw::derive(config);
    KpuPlatform kpu("kpu", config, checked());
    EXPECT_GT(derived.mover_window_s, 4e-6);
    EXPECT_EQ(kpu.options().quantum, sc_time(1.25 * derived.mover_window_s, sc_core::SC_SEC));
    const uint32_t bytes = 512 * 1024;
    std::vector<Completion> got;
    Driver driver("driver", [&](Driver& d) {
        got.push_back(d.run(kpu.dma(0), linear(1, 0, kpu.address_map().l3_base(0), bytes)));
    });
    sc_core::sc_start();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_TRUE(got[0].ok());
    // The engine's 8 GB/s, plus one burst's trip: 4 us + 8 ns of DRAM, link 4 + 2, L3 10 + 2.
    const double expected_s = bytes / 8e9 + (4000 + 8 + 4 + 2 + 10 + 2) * 1e-9;
    EXPECT_NEAR((got[0].end - got[0].start).to_seconds(), expected_s, 0.02 * expected_s);
}

// Two Streamers drain two L1 buffers (made 32 GB/s so the L2 port is the bottleneck).
hw::Config fast_l1() {
    return test::config("minimal", {{"l2.capacity_kib", "1024"}, {"l1.capacity_kib", "512"},
                                    {"l1.bandwidth_gb_per_s", "32"}});
}

void two_streamers(uint32_t bank_a, uint32_t bank_b, Completion& a, Completion& b) {
    KpuPlatform kpu("kpu", fast_l1(), checked());
    const hw::AddressMap& map = kpu.address_map();
    const uint32_t bytes = 256 * 1024;
    Driver driver("driver", [&](Driver& d) {
        d.watch(kpu.streamer(0, 0));
        d.watch(kpu.streamer(0, 1));
        kpu.streamer(0, 0).submit(linear(1, map.l1_base(0, 0), map.l2_base(0, bank_a), bytes));
        kpu.streamer(0, 1).submit(linear(2, map.l1_base(0, 1), map.l2_base(0, bank_b) + bytes, bytes));
        d.wait_all(kpu.streamer(0, 0), {1});
        d.wait_all(kpu.streamer(0, 1), {2});
        a = d.done[1], b = d.done[2];
    });
    sc_core::sc_start();
    EXPECT_EQ(test::checker_violations(kpu), "");
}

TEST(Movers, TwoMoversIntoOneL2BankPortShareItsBandwidth) {
    Completion a, b;
    two_streamers(2, 2, a, b);
    // Together they move 512 KiB through one 16 GB/s port: the later one ends at 32.8 us,
    // and each got about half the port.
    EXPECT_NEAR((std::max(a.end, b.end)).to_seconds(), 512.0 * 1024 / 16e9, 0.02 * 512.0 * 1024 / 16e9);
    EXPECT_NEAR(test::bandwidth(a), 8e9, 0.1 * 8e9);
    EXPECT_NEAR(test::bandwidth(b), 8e9, 0.1 * 8e9);
}

TEST(Movers, TwoMoversIntoDifferentL2BanksEachGetFullBandwidth) {
    Completion a, b;
    two_streamers(1, 2, a, b);
    EXPECT_NEAR(test::bandwidth(a), 16e9, 0.02 * 16e9);
    EXPECT_NEAR(test::bandwidth(b), 16e9, 0.02 * 16e9);
}

// An engine faster than the DRAM: a transfer over both channels reaches their sum. With
// modulo channel selection, one that reads every other interleave block stays on channel 0
// and reaches one channel's bandwidth; hashed, the same rows spread over both channels.
TEST(DmaEngine, TransferAcrossAllDramChannelsReachesTheirAggregateBandwidth) {
    const hw::Config cfg = test::config("minimal", {{"dma.bandwidth_gb_per_s", "64"},
                                                    {"l3.bandwidth_gb_per_s", "64"},
                                                    {"l3.capacity_kib", "1024"},
                                                    {"interconnect.bandwidth_gb_per_s", "64"},
                                                    {"dram.channel_select", "modulo"}});
    KpuPlatform kpu("kpu", cfg, checked());
    Completion both, one;
    Driver driver("driver", [&](Driver& d) {
        both = d.run(kpu.dma(0), linear(1, 0, hw::kL3Base, 512 * 1024));
        // 256 rows of one 1 KiB block every 2 KiB: all on channel 0.
        one = d.run(kpu.dma(1), transfer(2, 1 << 20, hw::kL3Base + (512 << 10), 256, 1024, 2048, 1024));
    });
    sc_core::sc_start();
    EXPECT_NEAR(test::bandwidth(both), 16e9, 0.02 * 16e9);
    EXPECT_NEAR(test::bandwidth(one), 8e9, 0.02 * 8e9);
    EXPECT_EQ(kpu.dram_channel(0).stats().bytes_read, 256u * 1024 + 256 * 1024);
    EXPECT_EQ(kpu.dram_channel(1).stats().bytes_read, 256u * 1024);
}

TEST(DmaEngine, HashedChannelsSpreadAStrideThatAliasesUnderModulo) {
    const hw::Config cfg = test::config("minimal", {{"dma.bandwidth_gb_per_s", "64"},
                                                    {"l3.bandwidth_gb_per_s", "64"},
                                                    {"l3.capacity_kib", "1024"},
                                                    {"interconnect.bandwidth_gb_per_s", "64"}});
    KpuPlatform kpu("kpu", cfg, checked());
    Completion strided;
    Driver driver("driver", [&](Driver& d) {
        // Blocks 1024, 1026, ..., 1534: rows 512..767 of 2 blocks. Half of those rows have
        // an odd number of set bits, so half the blocks are rotated onto channel 1.
        strided = d.run(kpu.dma(0), transfer(1, 1 << 20, hw::kL3Base, 256, 1024, 2048, 1024));
    });
    sc_core::sc_start();
    EXPECT_EQ(kpu.dram_channel(0).stats().bytes_read, 128u * 1024);
    EXPECT_EQ(kpu.dram_channel(1).stats().bytes_read, 128u * 1024);
    EXPECT_NEAR(test::bandwidth(strided), 16e9, 0.03 * 16e9);
}

// Trains grow for a mover that streams alone, and a train that queues behind another
// mover's bursts puts it back to the grain. Streamers copy 16 KiB from an L2 bank to an L1
// buffer (16 KiB here; one DMI region each). Alone, after two 1 KiB trains that queued
// behind nobody a Streamer books 4 KiB ones (1 + 1 + 4 + 4 + 4 + 2 KiB: six trains), and its
// times are those of per-burst booking within rounding. Two Streamers reading the one bank
// at once: the one that books second (a quantum ahead, each books its whole copy in one go)
// finds the bank's port taken by the other's bursts, so its first train queues behind them
// and it needs two more 1 KiB trains before it streams alone again (1 + 1 + 1 + 4 + 4 + 4 +
// 1 KiB: seven); the first runs as if alone.
TEST(Movers, AMoverStreamingAloneBooksLongerTrainsAndOneThatQueuesBehindAnotherDropsBack) {
    const hw::Config cfg = test::config("minimal", {{"l1.capacity_kib", "16"}});
    PlatformOptions per_burst = checked();
    per_burst.train_bytes = 0;
    KpuPlatform alone("alone", cfg, checked()), exact("exact", cfg, per_burst), shared("shared", cfg, checked());
    auto copy = [](KpuPlatform& kpu, uint64_t id, uint32_t buffer) {
        return linear(id, kpu.address_map().l2_base(0, 0), kpu.address_map().l1_base(0, buffer), 16 * 1024);
    };
    Completion a, e;
    Driver da("driver_alone", [&](Driver& d) { a = d.run(alone.streamer(0, 0), copy(alone, 1, 0)); });
    Driver de("driver_exact", [&](Driver& d) { e = d.run(exact.streamer(0, 0), copy(exact, 1, 0)); });
    Driver ds("driver_shared", [&](Driver& d) {
        d.watch(shared.streamer(0, 0));
        d.watch(shared.streamer(0, 1));
        shared.streamer(0, 0).submit(copy(shared, 1, 0));
        shared.streamer(0, 1).submit(copy(shared, 2, 1));
        d.wait_all(shared.streamer(0, 0), {1});
        d.wait_all(shared.streamer(0, 1), {2});
    });
    sc_core::sc_start();
    ASSERT_TRUE(a.ok() && e.ok() && ds.done[1].ok() && ds.done[2].ok());
    EXPECT_EQ(alone.streamer(0, 0).stats().trains, 6u);
    EXPECT_EQ(exact.streamer(0, 0).stats().trains, 16u * 1024 / 32);  // per burst (32 B into L1): one each
    const double duration = (e.end - e.start).to_seconds();
    EXPECT_NEAR((a.end - a.start).to_seconds(), duration, 0.005 * duration);
    const Completion& first = ds.done[1].end < ds.done[2].end ? ds.done[1] : ds.done[2];
    const Completion& second = ds.done[1].end < ds.done[2].end ? ds.done[2] : ds.done[1];
    const model::Streamer& later = shared.streamer(0, second.id == 1 ? 0 : 1);
    const model::Streamer& earlier = shared.streamer(0, second.id == 1 ? 1 : 0);
    EXPECT_EQ(earlier.stats().trains, 6u);
    EXPECT_EQ(later.stats().trains, 7u);
    EXPECT_NEAR((first.end - first.start).to_seconds(), duration, 0.005 * duration);  // as if alone
    EXPECT_EQ(test::checker_violations(alone), "");
}

// A mover asks the router for each DMI region once and finds it in its index afterwards:
// 512 DRAM interleave blocks of 1 KiB and 8 L3 pages of 64 KiB, swept twice. The index
// starts small and grows with what it holds; a lookup that misses costs a grant (a
// decode, a router walk, a memory's answer).
TEST(Movers, EachDmiRegionIsGrantedOnceAndFoundAgainOnTheNextSweep) {
    const hw::Config cfg = test::config("minimal", {{"l3.capacity_kib", "1024"}});
    KpuPlatform kpu("kpu", cfg, checked());
    uint64_t first = 0, second = 0;
    Completion a, b;
    Driver driver("driver", [&](Driver& d) {
        a = d.run(kpu.dma(0), linear(1, 0, hw::kL3Base, 512 * 1024));
        first = kpu.dma(0).stats().dmi_grants;
        b = d.run(kpu.dma(0), linear(2, 0, hw::kL3Base, 512 * 1024));
        second = kpu.dma(0).stats().dmi_grants - first;
    });
    sc_core::sc_start();
    EXPECT_EQ(a.status, TransferStatus::Ok);
    EXPECT_EQ(b.status, TransferStatus::Ok);
    EXPECT_EQ(kpu.dma(0).stats().transactions, 0u);  // every burst went through DMI
    EXPECT_EQ(first, 512u + 8);  // the L3 page is looked up only when a burst leaves the last one
    // An index whose slots for DRAM and L3 granules coincide (the XOR-fold hash before
    // Fibonacci hashing: L3's base bit folded onto bit 4) asked for all 520 again.
    EXPECT_LE(second, 8u);
}

// Queue depth 4: the fifth submit from a thread waits for the first completion; completions
// come in order with their ids.
TEST(Movers, SubmitWaitsForAFreeSlotWhenTheQueueIsFull) {
    KpuPlatform kpu("kpu", test::config("minimal"), checked());
    std::vector<uint64_t> order;
    sc_time fifth_accepted;
    bool could_accept_after_four = true;
    Driver driver("driver", [&](Driver& d) {
        model::DmaEngine& dma = kpu.dma(0);
        dma.set_completion_callback([&](const Completion& c) { order.push_back(c.id), d.done[c.id] = c; });
        for (uint64_t id = 1; id <= 4; ++id) EXPECT_TRUE(dma.try_submit(linear(id, id * 4096, hw::kL3Base + id * 4096, 1024)));
        could_accept_after_four = dma.can_accept() || dma.try_submit(linear(99, 0, hw::kL3Base, 64));
        dma.submit(linear(5, 5 * 4096, hw::kL3Base + 5 * 4096, 1024));
        fifth_accepted = sc_core::sc_time_stamp();
        d.wait_all(dma, {5});
    });
    sc_core::sc_start();
    EXPECT_FALSE(could_accept_after_four);
    EXPECT_EQ(order, (std::vector<uint64_t>{1, 2, 3, 4, 5}));
    EXPECT_EQ(fifth_accepted, driver.done[1].end);
    EXPECT_EQ(kpu.dma(0).in_flight(), 0u);
    EXPECT_EQ(kpu.dma(0).stats().transfers, 5u);
}

TEST(Movers, IllegalTransfersCompleteWithAnErrorAndAReportAndTheMoverCarriesOn) {
    test::ReportCatcher catcher;
    KpuPlatform kpu("kpu", test::config("minimal"), checked());
    const hw::AddressMap& map = kpu.address_map();
    Completion unmapped, crossing, empty, after;
    Driver driver("driver", [&](Driver& d) {
        unmapped = d.run(kpu.dma(0), linear(1, map.dram_size(), hw::kL3Base, 64));
        crossing = d.run(kpu.block_mover(0, 0), linear(2, map.l3_base(0), map.l2_base(0, 3) + 16384 - 32, 64));
        empty = d.run(kpu.dma(0), transfer(3, 0, hw::kL3Base, 0, 64, 64, 64));
        after = d.run(kpu.dma(0), linear(4, 0, hw::kL3Base, 64));
    });
    sc_core::sc_start();
    EXPECT_EQ(unmapped.status, TransferStatus::AccessError);
    EXPECT_EQ(unmapped.bytes, 0u);
    EXPECT_EQ(test::ReportCatcher::count({"kpu/noc", "kpu.noc", "read from kpu.dma_0", "[0x8000000, 0x8000020) (32 bytes)",
                                          "outside DRAM"}),
              1);
    EXPECT_EQ(test::ReportCatcher::count({"kpu/mover", "kpu.dma_0: transfer 1 failed", "TLM_ADDRESS_ERROR_RESPONSE"}), 1);
    EXPECT_EQ(crossing.status, TransferStatus::AccessError);
    EXPECT_EQ(crossing.bytes, 32u);  // bursts never straddle a bank: the half in the last bank made it
    EXPECT_EQ(test::ReportCatcher::count({"kpu.tile_0.switch: address error: write from kpu.tile_0.bm_0",
                                          "(32 bytes) is not mapped"}),
              1);
    EXPECT_EQ(empty.status, TransferStatus::BadDescriptor);
    EXPECT_EQ(test::ReportCatcher::count({"kpu.dma_0: transfer 3 rejected: empty transfer"}), 1);
    EXPECT_TRUE(after.ok());
    EXPECT_EQ(kpu.dma(0).stats().failed, 2u);
    EXPECT_EQ(test::checker_violations(kpu), "");
}

}  // namespace
}  // namespace kpu::platform

namespace kpu::platform {
namespace {

// The DMI fast path, booking every burst on its own, must be a pure speed-up: two
// platforms in one simulation, one moving every burst with b_transport (behind protocol
// checkers), one through DMI, run the same mix (long, strided, transposed, two movers
// contending for one bank) to the same picosecond and the same bytes. A third books the
// DMI bursts in trains (the default): the same bytes, and times within 1 % of a transfer's
// duration (trains change only how contending movers interleave, and rounding).
TEST(Movers, DmiFastPathGivesTheSameTimesAndBytesAsOneTransactionPerBurst) {
    PlatformOptions tlm_options;
    tlm_options.mover_dmi = false;
    tlm_options.check_protocol = true;
    KpuPlatform tlm("tlm", test::config("edge"), tlm_options);
    PlatformOptions per_burst;
    per_burst.train_bytes = 0;
    KpuPlatform dmi("dmi", test::config("edge"), per_burst);
    KpuPlatform trains("trains", test::config("edge"));
    std::mt19937 rng(5);
    std::vector<uint8_t> data(1 << 20);
    for (auto& b : data) b = uint8_t(rng());
    for (KpuPlatform* kpu : {&tlm, &dmi, &trains}) kpu->write(0, data.data(), data.size());

    auto script = [](KpuPlatform& kpu, std::vector<Completion>& out) {
        return [&kpu, &out](Driver& d) {
            const hw::AddressMap& map = kpu.address_map();
            out.push_back(d.run(kpu.dma(0), linear(1, 0, map.l3_base(1), 256 * 1024)));
            out.push_back(d.run(kpu.dma(1), transfer(2, 3000, map.l3_base(2) + 12, 40, 1000, 4100, 1024)));
            out.push_back(d.run(kpu.block_mover(1, 0),
                                transfer(3, map.l3_base(1) + 8, map.l2_base(1, 2), 32, 256, 512, 256,
                                         hw::Transform::Transpose)));
            d.watch(kpu.streamer(1, 0));
            d.watch(kpu.streamer(1, 1));
            kpu.streamer(1, 0).submit(linear(4, map.l1_base(1, 0), map.l2_base(1, 5), 2048));
            kpu.streamer(1, 1).submit(linear(5, map.l1_base(1, 4), map.l2_base(1, 5) + 4096, 2048));
            d.wait_all(kpu.streamer(1, 0), {4});
            d.wait_all(kpu.streamer(1, 1), {5});
            out.push_back(d.done[4]);
            out.push_back(d.done[5]);
            out.push_back(d.run(kpu.dma(0), linear(6, map.l2_base(1, 2), 5 << 20, 32 * 1024)));
        };
    };
    std::vector<Completion> a, b, c;
    Driver da("driver_tlm", script(tlm, a)), db("driver_dmi", script(dmi, b)), dc("driver_trains", script(trains, c));
    sc_core::sc_start();
    ASSERT_EQ(a.size(), 6u);
    ASSERT_EQ(b.size(), 6u);
    ASSERT_EQ(c.size(), 6u);
    for (size_t i = 0; i < a.size(); ++i) {
        EXPECT_TRUE(a[i].ok() && b[i].ok() && c[i].ok()) << a[i].id;
        EXPECT_EQ(a[i].start, b[i].start) << a[i].id;
        EXPECT_EQ(a[i].end, b[i].end) << a[i].id;
        const double duration = (a[i].end - a[i].start).to_seconds();
        EXPECT_NEAR((c[i].end - c[i].start).to_seconds(), duration, 0.01 * duration) << a[i].id;
    }
    EXPECT_LE(trains.dma(0).stats().trains * 8, trains.dma(0).stats().dmi_accesses / 2);  // 8+ bursts a train
    EXPECT_EQ(dmi.dma(0).stats().trains, dmi.dma(0).stats().dmi_accesses / 2);          // one each
    EXPECT_GT(tlm.dma(0).stats().transactions, 8000u);
    EXPECT_EQ(dmi.dma(0).stats().transactions, 0u);
    EXPECT_GT(dmi.dma(0).stats().dmi_accesses, 8000u);
    std::vector<uint8_t> ra(40 * 1024), rb(40 * 1024);
    for (uint64_t base : {hw::kL3Base + 512 * 1024, hw::kL3Base + 1024 * 1024, hw::kL2Base + 8 * 32 * 1024, uint64_t(5) << 20}) {
        tlm.read(base, ra.data(), ra.size());
        dmi.read(base, rb.data(), rb.size());
        EXPECT_EQ(ra, rb) << std::hex << base;
        trains.read(base, rb.data(), rb.size());
        EXPECT_EQ(ra, rb) << std::hex << base;
    }
    for (uint32_t c = 0; c < 2; ++c) {  // the memories count the same traffic either way
        EXPECT_EQ(tlm.dram_channel(c).stats().bytes_read, dmi.dram_channel(c).stats().bytes_read);
        EXPECT_EQ(tlm.dram_channel(c).stats().bytes_written, dmi.dram_channel(c).stats().bytes_written);
    }
    EXPECT_EQ(tlm.tile(1).l2(5).stats().writes, dmi.tile(1).l2(5).stats().writes);
    EXPECT_EQ(tlm.tile(1).l3().stats().bytes_read, dmi.tile(1).l3().stats().bytes_read);
    EXPECT_EQ(test::checker_violations(tlm), "");
}

// With a helper thread (PlatformOptions::helper_threads, the default) a transfer's bytes move
// on the helper. These tests give DMA engine 0 a helper of their own and hold it with a
// 200 ms job first, so any byte read before the helper ran would be the old one.
PlatformOptions no_helpers() {
    PlatformOptions o;
    o.helper_threads = false;
    return o;
}
struct HeldHelper {
    KpuPlatform kpu{"kpu", test::config("minimal"), no_helpers()};
    model::HelperThread helper;  // after kpu: destroyed first, running what is queued
    HeldHelper() {
        kpu.dma(0).set_helper(&helper);
        helper.submit([] { std::this_thread::sleep_for(std::chrono::milliseconds(200)); });
    }
    /// `n` random bytes, also written at DRAM address 0.
    std::vector<uint8_t> source(size_t n, unsigned seed) {
        std::mt19937 rng(seed);
        std::vector<uint8_t> data(n);
        for (auto& b : data) b = uint8_t(rng());
        kpu.write(0, data.data(), data.size());
        return data;
    }
};

// The completion is delivered once the bytes have moved.
TEST(Movers, WithAHelperTheCompletionWaitsUntilTheBytesHaveMoved) {
    HeldHelper bench;
    KpuPlatform& kpu = bench.kpu;
    const std::vector<uint8_t> data = bench.source(256, 11);
    std::vector<uint8_t> seen(256);
    Completion c;
    Driver driver("driver", [&](Driver& d) {
        c = d.run(kpu.dma(0), linear(1, 0, hw::kL3Base, 256));
        kpu.read(hw::kL3Base, seen.data(), seen.size());
    });
    sc_core::sc_start();
    EXPECT_EQ(seen, data);
    EXPECT_EQ(bench.helper.jobs_run(), 2u) << "the test's job and the transfer's bytes";
    EXPECT_EQ(kpu.dma(0).stats().transactions, 0u);
    EXPECT_EQ(c.end, sc_time(110, SC_NS)) << "the inline time (ShortTransferPipelinesBurstsAtTheSlowestStage)";
}

// A mover that reads bytes itself on the simulation thread first waits for what it handed
// over: here a transpose queued right behind the copy that fills its source, on the same
// engine, with no completion between them.
TEST(Movers, WithAHelperAMoverWaitsForItsHandedOverBytesBeforeItTouchesBytesItself) {
    HeldHelper bench;
    KpuPlatform& kpu = bench.kpu;
    const uint32_t rows = 32, cols = 8;  // 32 rows of 8 floats
    std::vector<float> a(rows * cols);
    for (uint32_t i = 0; i < a.size(); ++i) a[i] = float(i) + 0.5f;
    kpu.write(0, a.data(), a.size() * sizeof(float));
    const uint64_t staged = hw::kL3Base, transposed = hw::kL3Base + 4096;
    Driver driver("driver", [&](Driver& d) {
        d.watch(kpu.dma(0));
        kpu.dma(0).submit(linear(1, 0, staged, rows * cols * 4));
        kpu.dma(0).submit(transfer(2, staged, transposed, rows, cols * 4, cols * 4, rows * 4, hw::Transform::Transpose));
        d.wait_all(kpu.dma(0), {1, 2});
    });
    sc_core::sc_start();
    std::vector<float> t(rows * cols);
    kpu.read(transposed, t.data(), t.size() * sizeof(float));
    for (uint32_t r = 0; r < rows; ++r)
        for (uint32_t c = 0; c < cols; ++c) EXPECT_EQ(t[c * rows + r], a[r * cols + c]) << r << "," << c;
    EXPECT_EQ(bench.helper.jobs_run(), 2u) << "the test's job and the first transfer's bytes";
}

// The same through b_transport: a second transfer on the same engine, with DMI off, reads
// the first one's destination before the first one's completion is due.
TEST(Movers, WithAHelperAMoverWaitsForItsHandedOverBytesBeforeItsOwnTransactions) {
    HeldHelper bench;
    KpuPlatform& kpu = bench.kpu;
    const std::vector<uint8_t> data = bench.source(256, 12);
    const uint64_t staged = hw::kL3Base, copied = hw::kL3Base + 4096;
    sc_time second_start;
    Driver driver("driver", [&](Driver& d) {
        d.watch(kpu.dma(0));
        kpu.dma(0).submit(linear(1, 0, staged, 256));  // through DMI: its bytes go to the helper
        sc_core::wait(1, SC_NS);                       // it has executed; it completes at 110 ns
        kpu.dma(0).set_dmi(false);
        kpu.dma(0).submit(linear(2, staged, copied, 256));
        d.wait_all(kpu.dma(0), {1, 2});
        second_start = d.done[2].start;
    });
    sc_core::sc_start();
    EXPECT_LT(second_start, sc_time(110, SC_NS)) << "the second transfer read before the first completed";
    EXPECT_GT(kpu.dma(0).stats().transactions, 0u);
    std::vector<uint8_t> seen(256);
    kpu.read(copied, seen.data(), seen.size());
    EXPECT_EQ(seen, data);
    EXPECT_EQ(bench.helper.jobs_run(), 2u) << "the test's job and the first transfer's bytes";
}

// A gather with an outer dimension and zero fill (a convolution's patch rows): every
// destination row is where a plain loop over the indices puts it, the padded ones zeros
// (over stale bytes), and only the valid rows are read, through DMI and through b_transport
// alike, in the same time.
TEST(Movers, AGatherWithZeroFillPutsEveryRowWhereAPlainLoopDoesAndReadsOnlyTheValidOnes) {
    hw::Transfer t;
    t.id = 1;
    t.rows = 5, t.row_bytes = 24, t.src_stride = 64, t.dst_stride = 32;  // 5 pixels of 6 floats
    t.row_pad_before = 1, t.row_pad_after = 2;
    t.outer[0] = {3, 1024, 5 * 32, 1, 0};  // 3 rows, the first one padding
    KpuPlatform dmi("dmi", test::config("minimal"), checked()), tlm("tlm", test::config("minimal"), checked());
    const hw::AddressMap& map = dmi.address_map();
    t.src = map.l3_base(0) + 256, t.dst = map.l2_base(0, 0);
    std::vector<uint8_t> source(8192), stale(t.dst_extent(), 0xab);
    std::mt19937 rng(9);
    for (auto& b : source) b = uint8_t(rng());
    for (KpuPlatform* kpu : {&dmi, &tlm}) {
        kpu->write(map.l3_base(0), source.data(), source.size());
        kpu->write(t.dst, stale.data(), stale.size());
    }
    tlm.block_mover(0, 0).set_dmi(false);
    Completion a, b;
    Driver da("driver_dmi", [&](Driver& d) { a = d.run(dmi.block_mover(0, 0), t); });
    Driver db("driver_tlm", [&](Driver& d) { b = d.run(tlm.block_mover(0, 0), t); });
    sc_core::sc_start();
    std::vector<uint8_t> want(t.dst_extent(), 0xab);
    for (uint32_t i = 0; i < 3; ++i)
        for (uint32_t r = 0; r < 5; ++r) {
            uint8_t* row = want.data() + i * 5 * 32 + r * 32;
            const bool valid = i >= 1 && r >= 1 && r < 3;
            for (uint32_t x = 0; x < 24; ++x) row[x] = valid ? source[256 + (i - 1) * 1024 + (r - 1) * 64 + x] : 0;
        }
    for (KpuPlatform* kpu : {&dmi, &tlm}) {
        std::vector<uint8_t> got(t.dst_extent());
        kpu->read(t.dst, got.data(), got.size());
        EXPECT_EQ(got, want) << kpu->name();
        EXPECT_EQ(kpu->tile(0).l3().stats().bytes_read, 4u * 24) << "2 valid rows x 2 valid pixels";
        EXPECT_EQ(test::checker_violations(*kpu), "");
    }
    EXPECT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a.bytes, t.bytes());
    EXPECT_EQ(t.bytes(), 15u * 24);
    EXPECT_EQ(a.end - a.start, b.end - b.start);
    EXPECT_GT(tlm.block_mover(0, 0).stats().transactions, 0u);
}

// Zero fill writes Transfer::fill (an int8 tensor's zero point, so its padding is real 0):
// two gathers in turn, fill 0x85 (-123) then 0, each padded row all its own fill byte, the
// valid rows copied, in the time and bytes the same gather takes with the default fill.
TEST(Movers, ZeroFillWritesTheTransfersFillByte) {
    hw::Transfer t;
    t.rows = 4, t.row_bytes = 40, t.src_stride = 64, t.dst_stride = 48;
    t.row_pad_before = 1, t.row_pad_after = 1;
    KpuPlatform kpu("kpu", test::config("minimal"), checked()), plain("plain", test::config("minimal"), checked());
    const hw::AddressMap& map = kpu.address_map();
    t.src = map.l3_base(0), t.dst = map.l2_base(0, 0);
    std::vector<uint8_t> source(256);
    for (size_t i = 0; i < source.size(); ++i) source[i] = uint8_t(i * 7 + 1);
    for (KpuPlatform* k : {&kpu, &plain}) k->write(t.src, source.data(), source.size());
    hw::Transfer zp = t, zero = t, reference = t;
    zp.id = 1, zp.fill = 0x85;
    zero.id = 2, zero.dst = t.dst + 1024;
    reference.id = 3;
    Completion a, b, c;
    Driver driver("driver", [&](Driver& d) {
        a = d.run(kpu.block_mover(0, 0), zp);
        b = d.run(kpu.block_mover(0, 0), zero);
    });
    Driver driver_plain("driver_plain", [&](Driver& d) { c = d.run(plain.block_mover(0, 0), reference); });
    sc_core::sc_start();
    ASSERT_TRUE(a.ok() && b.ok() && c.ok());
    for (const hw::Transfer* x : {&zp, &zero}) {
        std::vector<uint8_t> got(x->dst_extent());
        kpu.read(x->dst, got.data(), got.size());
        for (uint32_t r = 0; r < 4; ++r)
            for (uint32_t i = 0; i < 40; ++i) {
                const bool valid = r >= 1 && r < 3;
                EXPECT_EQ(got[r * 48 + i], valid ? source[(r - 1) * 64 + i] : x->fill) << int(x->fill) << " " << r;
            }
    }
    EXPECT_EQ(a.bytes, c.bytes);
    EXPECT_EQ(a.end - a.start, c.end - c.start);
    EXPECT_EQ(test::checker_violations(kpu), "");
}

}  // namespace
}  // namespace kpu::platform
