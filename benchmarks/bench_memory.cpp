// Memory-hierarchy benchmark: one measurement per process (SystemC allows one elaboration).
//   bench-memory elaborate CONFIG     elaboration wall time and peak RSS of KpuPlatform
//   bench-memory stream CONFIG MIB [burst|tlm]
//                                     a DMA stream of MIB MiB of real data DRAM -> L3 tile 0:
//                                     simulated bytes and timed accesses per wall-second, and
//                                     memcpy of the same bytes as the floor. Movers use their
//                                     DMI fast path with trains (the default); `burst`: DMI,
//                                     every burst booked on its own; `tlm`: one b_transport
//                                     per read and write.
// Prints "key value" lines that benchmarks/run_memory.sh turns into a table.
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <systemc>

#include "benchmarks/bench_util.h"
#include "platform/kpu_platform.h"

namespace {

using kpu::bench::Clock;
using kpu::bench::peak_rss_mib;
using kpu::bench::seconds_since;

int elaborate(const std::string& config_path) {
    const kpu::hw::Config config = kpu::hw::load_config(config_path);
    const auto t0 = Clock::now();
    // Never destroyed: teardown is not elaboration, and SystemC 2.3 makes it O(n^2) in the
    // module count (see docs/benchmarks.md).
    auto* platform = new kpu::platform::KpuPlatform("kpu", config);
    sc_core::sc_start(sc_core::SC_ZERO_TIME);
    const double wall = seconds_since(t0);
    std::cout << "config " << config.name << "\nmodules " << platform->counts().total() << "\nelaborate_s " << wall
              << "\npeak_rss_mib " << peak_rss_mib() << "\n";
    return 0;
}

/// Submits the whole stream from one SC_THREAD, as the sequencer will.
struct StreamDriver : sc_core::sc_module {
    kpu::platform::KpuPlatform& kpu;
    uint64_t bytes, chunk;
    uint64_t completed = 0, failed = 0;

    StreamDriver(sc_core::sc_module_name n, kpu::platform::KpuPlatform& p, uint64_t total, uint64_t chunk_bytes)
        : sc_core::sc_module(n), kpu(p), bytes(total), chunk(chunk_bytes) {
        SC_HAS_PROCESS(StreamDriver);
        SC_THREAD(run);
    }
    void run() {
        kpu::model::DmaEngine& dma = kpu.dma(0);
        dma.set_completion_callback([this](const kpu::model::Completion& c) { ++completed, failed += !c.ok(); });
        uint64_t id = 0;
        for (uint64_t at = 0; at < bytes; at += chunk) {
            kpu::hw::Transfer t;
            t.id = id++;
            t.src = at;
            t.dst = kpu.address_map().l3_base(0);
            t.rows = 1;
            t.row_bytes = uint32_t(chunk);
            t.src_stride = t.dst_stride = chunk;
            dma.submit(t);
        }
        while (completed < id) sc_core::wait(dma.completion_event());
    }
};

int stream(const std::string& config_path, uint64_t mib, const std::string& path) {
    const bool dmi = path != "tlm";
    const kpu::hw::Config config = kpu::hw::load_config(config_path);
    const uint64_t bytes = mib << 20, chunk = config.l3.capacity_bytes;
    kpu::platform::PlatformOptions options;
    options.mover_dmi = dmi;
    if (path != "trains") options.train_bytes = 0;
    auto* kpu = new kpu::platform::KpuPlatform("kpu", config, options);
    std::vector<uint8_t> data(bytes);
    std::mt19937_64 rng(1);
    for (size_t i = 0; i < bytes; i += 8) {
        const uint64_t v = rng();
        std::memcpy(&data[i], &v, 8);
    }
    kpu->write(0, data.data(), bytes);
    auto* driver = new StreamDriver("driver", *kpu, bytes, chunk);

    // Elaboration and process start-up are measured by `elaborate`; the stream's figure is
    // the transfer alone.
    sc_core::sc_start(sc_core::SC_ZERO_TIME);
    const auto t0 = Clock::now();
    sc_core::sc_start();
    const double wall = seconds_since(t0);

    // The last chunk must sit in L3, byte for byte.
    std::vector<uint8_t> l3(chunk);
    kpu->read(kpu->address_map().l3_base(0), l3.data(), chunk);
    const bool exact = std::memcmp(l3.data(), data.data() + bytes - chunk, chunk) == 0 && driver->failed == 0;

    // The floor: the same bytes copied twice in 64-byte pieces (into a staging buffer and
    // out), what one read and one write per burst cost at the least.
    std::vector<uint8_t> a(data.size()), staging(64);
    const auto m0 = Clock::now();
    for (uint64_t i = 0; i < bytes; i += 64) {
        std::memcpy(staging.data(), data.data() + i, 64);
        std::memcpy(a.data() + i, staging.data(), 64);
    }
    const double memcpy_wall = seconds_since(m0);
    const kpu::model::MoverStats& stats = kpu->dma(0).stats();
    const uint64_t accesses = stats.transactions + stats.dmi_accesses;
    const double simulated = sc_core::sc_time_stamp().to_seconds();
    std::cout << "config " << config.name << "\nbytes " << bytes << "\nexact " << (exact ? "yes" : "NO")
              << "\npath " << path << "\ntransactions " << stats.transactions << "\naccesses " << accesses
              << "\nsyncs " << stats.syncs << "\nsimulated_s " << simulated << "\nsimulated_gb_per_s "
              << bytes / simulated / 1e9 << "\nwall_s " << wall << "\nbytes_per_wall_s " << bytes / wall
              << "\naccesses_per_wall_s " << accesses / wall << "\nmemcpy_bytes_per_wall_s "
              << bytes / memcpy_wall << "\npeak_rss_mib " << peak_rss_mib() << "\n";
    return exact ? 0 : 1;
}

}  // namespace

int sc_main(int argc, char* argv[]) {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "elaborate" && argc == 3) return elaborate(argv[2]);
    const std::string path = argc == 5 ? argv[4] : "trains";
    if (mode == "stream" && (argc == 4 || (argc == 5 && (path == "tlm" || path == "burst"))))
        return stream(argv[2], std::strtoull(argv[3], nullptr, 10), path);
    std::cerr << "usage: bench-memory elaborate CONFIG | bench-memory stream CONFIG MIB [burst|tlm]\n";
    return 2;
}

int main(int argc, char* argv[]) {
    setenv("SC_COPYRIGHT_MESSAGE", "DISABLE", 0);
    return sc_core::sc_elab_and_sim(argc, argv);
}
