#include "models/systolic_fabric.h"

#include <cmath>
#include <cstring>
#include <chrono>
#include <random>
#include <thread>

#include <gtest/gtest.h>
#include <tlm_utils/simple_target_socket.h>

#include "hardware/fabric_timing.h"
#include "tests/support/config.h"
#include "tests/support/random_floats.h"
#include "tests/support/test_memory.h"

namespace kpu::model {
namespace {

hw::MatmulCommand mm(uint32_t m, uint32_t n, uint32_t k) {
    hw::MatmulCommand c;
    c.m = m, c.n = n, c.k = k;
    return c;
}

TEST(FabricTiming, MatmulCyclesMatchHandComputedValues) {
    // one block: k steps + fill of R + C - 2
    EXPECT_EQ(matmul_cycles(mm(8, 8, 8), 8, 8), 8u + 14);
    // ragged: 3 x 2 blocks of k = 5 steps, fill over the full 8 x 8 array
    EXPECT_EQ(matmul_cycles(mm(20, 9, 5), 8, 8), 30u + 14);
    // a 1x1x1 product on a 16x16 array costs one cycle
    EXPECT_EQ(matmul_cycles(mm(1, 1, 1), 16, 16), 1u);
    // smaller than the array: the wavefront crosses only the PEs in use
    EXPECT_EQ(matmul_cycles(mm(3, 5, 7), 16, 16), 7u + 3 + 5 - 2);
    // 64 x 64 x 64 on 16 x 16: 16 blocks of 64 steps
    EXPECT_EQ(matmul_cycles(mm(64, 64, 64), 16, 16), 16u * 64 + 30);
    EXPECT_EQ(matmul_cycles(mm(0, 4, 4), 8, 8), 0u);
    // starting from a C tile in L1 first shifts it in: m rows per column block
    hw::MatmulCommand resume = mm(20, 9, 5);
    resume.load_c = true;
    EXPECT_EQ(matmul_cycles(resume, 8, 8), 2u * 20 + 30 + 14);
}

TEST(FabricTiming, DrainCyclesShiftOneRowPerCyclePerColumnBlock) {
    hw::DrainCommand d;
    d.m = 5, d.n = 20;
    EXPECT_EQ(drain_cycles(d, 8, 8), 15u);
    d.m = 16, d.n = 16;
    EXPECT_EQ(drain_cycles(d, 16, 16), 16u);
}

struct Bench : sc_core::sc_module {
    static constexpr uint64_t kBase = 0x1000;
    hw::Config config = test::config("minimal");
    SystolicFabric fabric{"fabric", config};
    test::TestMemory l1{"l1", kBase, 64 * 1024};
    std::vector<std::pair<uint64_t, bool>> done;
    std::vector<sc_core::sc_time> done_at;

    explicit Bench(sc_core::sc_module_name n) : sc_module(n) {
        fabric.l1_socket.bind(l1.socket);
        fabric.on_complete([this](uint64_t id, bool ok, const sc_core::sc_time&) {
            done.emplace_back(id, ok);
            done_at.push_back(sc_core::sc_time_stamp());
        });
    }
};

using test::random_floats;  // in [-1, 1)

TEST(SystolicFabric, SplitKMatmulWithBiasReluMatchesReferenceAndAnalyticTime) {
    Bench bench("bench");
    const uint32_t m = 13, n = 11, k = 19, k1 = 12;  // ragged on the 8x8 minimal fabric
    const uint64_t a = Bench::kBase, b = a + 4096, bias = b + 4096, c = bias + 256;
    std::vector<float> A = random_floats(m * k, 1), B = random_floats(k * n, 2), bias_v = random_floats(n, 3);
    bench.l1.put(a, A);
    bench.l1.put(b, B);
    bench.l1.put(bias, bias_v);

    SystolicFabric::Command first, second, drain;
    first.id = 1, first.matmul = {a, b, k, n, m, n, k1, false};
    second.id = 2, second.matmul = {a + k1 * 4, b + k1 * n * 4, k, n, m, n, k - k1, true};
    drain.id = 3, drain.drain = true;
    drain.drain_command = {c, n, m, n, true, bias, hw::Activation::Relu};
    bench.fabric.submit(first);
    bench.fabric.submit(second);
    bench.fabric.submit(drain);
    sc_core::sc_start();

    ASSERT_EQ(bench.done.size(), 3u);
    for (auto& [id, ok] : bench.done) EXPECT_TRUE(ok) << id;
    std::vector<float> C = bench.l1.get(c, m * n);
    for (uint32_t i = 0; i < m; ++i)
        for (uint32_t j = 0; j < n; ++j) {
            double ref = bias_v[j];
            for (uint32_t p = 0; p < k; ++p) ref += double(A[i * k + p]) * B[p * n + j];
            ref = std::max(ref, 0.0);
            EXPECT_NEAR(C[i * n + j], ref, 1e-5) << i << "," << j;
        }
    // 1 GHz: cycles are nanoseconds. 2x2 blocks of 12 and 7 k-steps, fill 8+8-2 each; drain 2 x 13.
    EXPECT_EQ(bench.done_at[0], sc_core::sc_time(4 * 12 + 14, sc_core::SC_NS));
    EXPECT_EQ(bench.done_at[1], sc_core::sc_time(62 + 4 * 7 + 14, sc_core::SC_NS));
    EXPECT_EQ(bench.done_at[2], sc_core::sc_time(104 + 26, sc_core::SC_NS));
    EXPECT_EQ(bench.fabric.busy_time(), sc_core::sc_time(130, sc_core::SC_NS));
    EXPECT_EQ(bench.fabric.macs(), uint64_t(m) * n * k);
}

/// L1 that grants DMI in 256-byte regions, each in its own allocation with poison after it:
/// a pointer used past its region's end reads the poison, not the next region's bytes.
struct RegionedL1 : sc_core::sc_module {
    static constexpr uint64_t kBase = 0x1000, kRegion = 256, kBytes = 16 * 1024;
    tlm_utils::simple_target_socket<RegionedL1> socket;
    std::vector<std::vector<unsigned char>> regions;
    int grants = 0;
    explicit RegionedL1(sc_core::sc_module_name name) : sc_module(name), socket("socket") {
        socket.register_b_transport(this, &RegionedL1::b_transport);
        socket.register_transport_dbg(this, &RegionedL1::transport_dbg);
        socket.register_get_direct_mem_ptr(this, &RegionedL1::get_direct_mem_ptr);
        regions.assign(kBytes / kRegion, std::vector<unsigned char>(kRegion + 64, 0xff));  // 0xff..: NaN
    }
    unsigned char& byte(uint64_t addr) { return regions[(addr - kBase) / kRegion][(addr - kBase) % kRegion]; }
    void put(uint64_t addr, const std::vector<float>& v) {
        for (size_t i = 0; i < v.size() * 4; ++i) byte(addr + i) = reinterpret_cast<const unsigned char*>(v.data())[i];
    }
    std::vector<float> get(uint64_t addr, size_t n) {
        std::vector<float> v(n);
        for (size_t i = 0; i < n * 4; ++i) reinterpret_cast<unsigned char*>(v.data())[i] = byte(addr + i);
        return v;
    }
    unsigned transport_dbg(tlm::tlm_generic_payload& t) {
        const uint64_t addr = t.get_address();
        if (addr < kBase || addr + t.get_data_length() > kBase + kBytes) return 0;
        for (unsigned i = 0; i < t.get_data_length(); ++i)
            t.is_read() ? void(t.get_data_ptr()[i] = byte(addr + i)) : void(byte(addr + i) = t.get_data_ptr()[i]);
        return t.get_data_length();
    }
    void b_transport(tlm::tlm_generic_payload& t, sc_core::sc_time&) {
        t.set_response_status(transport_dbg(t) ? tlm::TLM_OK_RESPONSE : tlm::TLM_ADDRESS_ERROR_RESPONSE);
    }
    bool get_direct_mem_ptr(tlm::tlm_generic_payload& t, tlm::tlm_dmi& dmi) {
        const uint64_t addr = t.get_address();
        if (addr < kBase || addr >= kBase + kBytes) return false;
        const uint64_t start = kBase + (addr - kBase) / kRegion * kRegion;
        ++grants;
        dmi.set_dmi_ptr(&byte(start));
        dmi.set_start_address(start);
        dmi.set_end_address(start + kRegion - 1);
        dmi.allow_read_write();
        return true;
    }
};

// Operand rows in small DMI regions: most rows lie in the region of the row before (read in
// place without a lookup), some in the next one, some across two (copied). A row read past
// its region would pick up the NaN poison.
TEST(SystolicFabric, OperandRowsAcrossSmallDmiRegionsGiveExactProducts) {
    const hw::Config config = test::config("minimal");
    SystolicFabric fabric("fabric", config);
    RegionedL1 l1("l1");
    fabric.l1_socket.bind(l1.socket);
    std::vector<bool> ok;
    fabric.on_complete([&](uint64_t, bool good, const sc_core::sc_time&) { ok.push_back(good); });
    const uint32_t m = 13, n = 11, k = 19;  // rows of 76 and 44 bytes: some straddle 256-byte regions
    const uint64_t a = RegionedL1::kBase + 40, b = a + 4096, c = b + 4096;
    const std::vector<float> A = random_floats(m * k, 4), B = random_floats(k * n, 5);
    l1.put(a, A);
    l1.put(b, B);
    SystolicFabric::Command matmul, drain;
    matmul.id = 1, matmul.matmul = {a, b, k, n, m, n, k, false};
    drain.id = 2, drain.drain = true;
    drain.drain_command = {c, n, m, n, false, 0, hw::Activation::None};
    fabric.submit(matmul);
    fabric.submit(drain);
    sc_core::sc_start();
    ASSERT_EQ(ok, (std::vector<bool>{true, true}));
    const std::vector<float> C = l1.get(c, m * n);
    for (uint32_t i = 0; i < m; ++i)
        for (uint32_t j = 0; j < n; ++j) {
            float ref = 0;  // the fabric's order: k ascending, multiply then add
            for (uint32_t p = 0; p < k; ++p) ref += A[i * k + p] * B[p * n + j];
            EXPECT_EQ(C[i * n + j], ref) << i << "," << j;
        }
    // Operands span [a, b + k * n * 4) and C [c, c + m * n * 4): each region granted once.
    const auto regions = [](uint64_t lo, uint64_t hi) { return (hi - 1 - RegionedL1::kBase) / 256 - (lo - RegionedL1::kBase) / 256 + 1; };
    EXPECT_EQ(uint64_t(l1.grants), regions(a, a + m * k * 4) + regions(b, b + k * n * 4) + regions(c, c + m * n * 4));
}

// With a helper thread (HelperThread) the GEMM runs off the simulation thread, and the
// fabric must wait for it before the MATMUL completes. The test holds the helper with a job
// of its own for 200 ms of host time: if the fabric did not wait, the DRAIN (microseconds
// of host time later) would read accumulators the GEMM has not filled yet.
TEST(SystolicFabric, WaitsForItsGemmOnTheHelperThreadBeforeTheMatmulCompletes) {
    Bench bench("bench");
    HelperThread helper;
    bench.fabric.set_helper(&helper);
    helper.submit([] { std::this_thread::sleep_for(std::chrono::milliseconds(200)); });
    const uint32_t m = 13, n = 11, k = 19;
    const uint64_t a = Bench::kBase, b = a + 4096, c = b + 4096;
    std::vector<float> A = random_floats(m * k, 4), B = random_floats(k * n, 5);
    bench.l1.put(a, A);
    bench.l1.put(b, B);
    SystolicFabric::Command mmc, drain;
    mmc.id = 1, mmc.matmul = {a, b, k, n, m, n, k, false};
    drain.id = 2, drain.drain = true, drain.drain_command = {c, n, m, n, false, 0, hw::Activation::None};
    bench.fabric.submit(mmc);
    bench.fabric.submit(drain);
    sc_core::sc_start();
    ASSERT_EQ(bench.done.size(), 2u);
    EXPECT_EQ(helper.jobs_run(), 2u) << "the test's job and the fabric's GEMM";
    std::vector<float> C = bench.l1.get(c, m * n);
    for (uint32_t i = 0; i < m; ++i)
        for (uint32_t j = 0; j < n; ++j) {
            float ref = 0;  // the fabric's order: k ascending, multiply then add
            for (uint32_t p = 0; p < k; ++p) ref += A[i * k + p] * B[p * n + j];
            EXPECT_EQ(C[i * n + j], ref) << i << "," << j;
        }
    // Host time does not show in simulated time: the analytic cycles as inline.
    EXPECT_EQ(bench.done_at[0], sc_core::sc_time(2 * 2 * 19 + 14, sc_core::SC_NS));
}

TEST(SystolicFabric, WorksThroughTransportDbgWhenNoDmiIsGranted) {
    Bench bench("bench");
    bench.l1.grant_dmi = false;
    const uint64_t a = Bench::kBase, b = a + 1024, c = b + 1024;
    bench.l1.put(a, {1, 2, 3, 4});  // 2x2
    bench.l1.put(b, {5, 6, 7, 8});
    SystolicFabric::Command mmc, drain;
    mmc.id = 7, mmc.matmul = {a, b, 2, 2, 2, 2, 2, false};
    drain.id = 8, drain.drain = true, drain.drain_command = {c, 2, 2, 2, false, 0, hw::Activation::Gelu};
    bench.fabric.submit(mmc);
    bench.fabric.submit(drain);
    sc_core::sc_start();
    std::vector<float> C = bench.l1.get(c, 4);
    const float expected[4] = {19, 22, 43, 50};  // gelu(x) ~ x for these
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(C[i], expected[i], 1e-4);
}

TEST(SystolicFabric, UnreadableOperandCompletesWithErrorNotACrash) {
    Bench bench("bench");
    sc_core::sc_report_handler::set_actions("kpu/fabric", sc_core::SC_WARNING, sc_core::SC_DO_NOTHING);
    SystolicFabric::Command bad;
    bad.id = 42, bad.matmul = {0xdead0000, Bench::kBase, 4, 4, 4, 4, 4, false};
    bench.fabric.submit(bad);
    sc_core::sc_start();
    ASSERT_EQ(bench.done.size(), 1u);
    EXPECT_EQ(bench.done[0], std::make_pair(uint64_t(42), false));
    EXPECT_EQ(sc_core::sc_report_handler::get_count("kpu/fabric"), 1);
}

}  // namespace
}  // namespace kpu::model

namespace kpu::model {
namespace {

TEST(SystolicFabric, AKPassResumesFromItsPartialSumInL1WithTheSameBits) {
    // K = 19 as 12 + 7 twice: the accumulators carried across (accumulate), and the partial
    // sum drained to L1 and loaded back (load_c, as between K passes). Same bits, and the
    // resumed matmul costs its shift-in on top.
    Bench bench("bench");
    const uint32_t m = 13, n = 11, k = 19, k1 = 12;
    const uint64_t a = Bench::kBase, b = a + 4096, bias = b + 4096, carried = bias + 256, partial = carried + 1024,
                   resumed = partial + 1024;
    const std::vector<float> A = random_floats(m * k, 4), B = random_floats(k * n, 5), bias_v = random_floats(n, 6);
    bench.l1.put(a, A);
    bench.l1.put(b, B);
    bench.l1.put(bias, bias_v);
    auto matmul = [&](uint64_t id, uint32_t k_first, uint32_t steps, bool accumulate) {
        SystolicFabric::Command c;
        c.id = id;
        c.matmul = {a + k_first * 4, b + uint64_t(k_first) * n * 4, k, n, m, n, steps, accumulate};
        return c;
    };
    auto drain = [&](uint64_t id, uint64_t to, bool epilogue) {
        SystolicFabric::Command c;
        c.id = id, c.drain = true;
        c.drain_command = {to, n, m, n, epilogue, bias, epilogue ? hw::Activation::Gelu : hw::Activation::None};
        return c;
    };
    SystolicFabric::Command resume = matmul(6, k1, k - k1, false);
    resume.matmul.load_c = true, resume.matmul.c = partial, resume.matmul.ldc = n;
    for (const SystolicFabric::Command& c : {matmul(1, 0, k1, false), matmul(2, k1, k - k1, true),
                                             drain(3, carried, true), matmul(4, 0, k1, false),
                                             drain(5, partial, false), resume, drain(7, resumed, true)})
        bench.fabric.submit(c);
    sc_core::sc_start();

    ASSERT_EQ(bench.done.size(), 7u);
    for (auto& [id, ok] : bench.done) EXPECT_TRUE(ok) << id;
    const std::vector<float> want = bench.l1.get(carried, m * n), got = bench.l1.get(resumed, m * n);
    for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(std::memcmp(&want[i], &got[i], 4), 0) << i;
    // 1 GHz: the resumed matmul is 2 x 13 shift-in cycles + 4 blocks x 7 k-steps + 14 fill.
    const sc_core::sc_time resume_time = bench.done_at[5] - bench.done_at[4];
    EXPECT_EQ(resume_time, sc_core::sc_time(26 + 4 * 7 + 14, sc_core::SC_NS));
}

TEST(SystolicFabric, LoadCTogetherWithAccumulateIsRefused) {
    Bench bench("bench");
    SystolicFabric::Command c;
    c.id = 1;
    c.matmul = {Bench::kBase, Bench::kBase + 4096, 8, 8, 8, 8, 8, true};
    c.matmul.load_c = true, c.matmul.c = Bench::kBase + 8192, c.matmul.ldc = 8;
    bench.fabric.submit(c);
    sc_core::sc_start();
    ASSERT_EQ(bench.done.size(), 1u);
    EXPECT_FALSE(bench.done[0].second);
}

}  // namespace
}  // namespace kpu::model
