// End-to-end benchmark: one matmul, compiled and simulated in this process exactly as
// kpu-compile + kpu-sim --program do it (graph -> compile -> .kpu image -> HostDriver writes
// inputs and image through the host socket -> START -> bind -> sequencer -> engines ->
// irq -> outputs), then the same product computed natively, for the ratio.
//   bench-e2e CONFIG M N K [--native-runs R] [--no-native] [--train-bytes N] [--single-thread]
// One shape per process: SystemC elaborates once per process. Prints "key value" lines that
// scripts/bench-e2e turns into a table.
//
// The native baseline is a plain fp32 GEMM: C = A B with the cache-friendly i-k-j loop
// (rows of B and C streamed, inner loop vectorised by the compiler), built with the
// project's flags (Release: -O3, no -march), single-threaded, best of R runs of each of
// three copies of the loop, each in its own output buffer (time_gemm). It sums every C
// element in the same order as the fabric (k ascending, one multiply then one add), so when
// the compiler keeps k chunks in order the simulated C equals it bit for bit, which the
// benchmark reports (`native_bit_exact`) along with the largest difference.
// The fabric's kernel runs in the host's widest vectors (`fabric_isa`); so that the ratio is
// not flattered by that alone, the same plain loop is also timed built for that instruction
// set (`native_wide_s`, `ratio_wide`). This file is built with -ffp-contract=off: neither
// loop is fused, as the fabric's is not.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <limits>
#include <map>
#include <random>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <systemc>

#include "benchmarks/bench_util.h"
#include "compiler/binder.h"
#include "compiler/generate.h"
#include "compiler/graph_json.h"
#include "compiler/kpu_format.h"
#include "hardware/address_map.h"
#include "hardware/config.h"
#include "platform/host_driver.h"
#include "platform/kpu_platform.h"

namespace {

using kpu::bench::Clock;
using kpu::bench::cpu_seconds;
using kpu::bench::page_faults;
using kpu::bench::peak_rss_mib;
using kpu::bench::seconds_since;
using kpu::bench::thread_cpu_seconds;

/// The plain native GEMM the simulator is compared with (see the header comment).
inline __attribute__((always_inline)) void plain_gemm(float* c, const float* a, const float* b, uint32_t m,
                                                      uint32_t n, uint32_t k) {
    for (uint32_t i = 0; i < m; ++i) {
        float* __restrict crow = c + size_t(i) * n;
        const float* arow = a + size_t(i) * k;
        for (uint32_t p = 0; p < k; ++p) {
            const float av = arow[p];
            const float* __restrict brow = b + size_t(p) * n;
            for (uint32_t j = 0; j < n; ++j) crow[j] += av * brow[j];
        }
    }
}

using Gemm = void (*)(float*, const float*, const float*, uint32_t, uint32_t, uint32_t);

/// Three copies of a loop, each at its own address (the empty asm keeps the linker from
/// folding them into one): where the linker places the loop can change its speed by more
/// than half, from one build to the next, with no change to the loop itself; the baseline
/// takes the best copy.
using Copies = std::array<Gemm, 3>;

template <int Copy>
__attribute__((noinline)) void native_gemm(float* c, const float* a, const float* b, uint32_t m, uint32_t n,
                                           uint32_t k) {
    asm volatile("" ::"i"(Copy));
    plain_gemm(c, a, b, m, n, k);
}
constexpr Copies kNative = {native_gemm<0>, native_gemm<1>, native_gemm<2>};

#if defined(__x86_64__) || defined(__i386__)
template <int Copy>
__attribute__((target("avx2"), noinline)) void native_gemm_avx2(float* c, const float* a, const float* b,
                                                                uint32_t m, uint32_t n, uint32_t k) {
    asm volatile("" ::"i"(Copy));
    plain_gemm(c, a, b, m, n, k);
}
template <int Copy>
__attribute__((target("avx512f"), noinline)) void native_gemm_avx512(float* c, const float* a, const float* b,
                                                                     uint32_t m, uint32_t n, uint32_t k) {
    asm volatile("" ::"i"(Copy));
    plain_gemm(c, a, b, m, n, k);
}
#endif

/// The same loop built for the instruction set the fabric's kernel uses.
Copies wide_gemm(const std::string& isa) {
#if defined(__x86_64__) || defined(__i386__)
    if (isa == "avx512") return {native_gemm_avx512<0>, native_gemm_avx512<1>, native_gemm_avx512<2>};
    if (isa == "avx2") return {native_gemm_avx2<0>, native_gemm_avx2<1>, native_gemm_avx2<2>};
#endif
    (void)isa;
    return kNative;
}

/// Best of `runs` timings of each copy of the loop into c (zeroed before each run), each copy
/// in a fresh output buffer. The loop stores rows of C while it loads rows of B; where the two
/// lie a multiple of 4 KiB apart, the core takes the loads for reloads of the stores ("4K
/// aliasing") and the loop runs much slower, so each buffer is placed half a page from B
/// rather than where malloc puts it. Even so one buffer can stay slow for all its runs while
/// the next is fast, and the linker's placement matters as much (Copies): the baseline is the
/// loop at its best, whatever the allocator, the pages it got and the linker did.
double time_gemm(const Copies& copies, std::vector<float>& c, const std::vector<float>& a, const std::vector<float>& b,
                 uint32_t m, uint32_t n, uint32_t k, int runs) {
    if (runs <= 0) return 0;  // --no-native
    constexpr size_t kPage = 4096;
    double best = std::numeric_limits<double>::infinity();
    for (const Gemm gemm : copies) {
        std::vector<float> room(c.size() + kPage / sizeof(float));
        const uintptr_t want = (reinterpret_cast<uintptr_t>(b.data()) + kPage / 2) % kPage;
        const uintptr_t have = reinterpret_cast<uintptr_t>(room.data()) % kPage;
        float* out = room.data() + ((want + kPage - have) % kPage) / sizeof(float);
        for (int r = 0; r < runs; ++r) {
            std::fill(out, out + c.size(), 0.0f);
            const auto t0 = Clock::now();
            gemm(out, a.data(), b.data(), m, n, k);
            const double s = seconds_since(t0);
            best = std::min(best, s);
        }
        if (gemm == copies.back()) std::copy(out, out + c.size(), c.begin());
    }
    return best;
}

std::vector<float> random_matrix(size_t elements, uint64_t seed) {
    std::mt19937_64 gen(seed);
    std::vector<float> data(elements);
    for (auto& v : data) v = float(double(gen() >> 11) * 0x1.0p-53 * 2.0 - 1.0);
    return data;
}

struct Args {
    std::string config;
    uint32_t m = 0, n = 0, k = 0;
    int native_runs = 3;
    std::optional<uint32_t> train_bytes;
    bool helper_threads = true;
};

Args parse(int argc, char* argv[]) {
    if (argc < 5) throw std::runtime_error("usage: bench-e2e CONFIG M N K [--native-runs R] [--no-native] [--train-bytes N] [--single-thread]");
    Args args;
    args.config = argv[1];
    args.m = uint32_t(std::stoul(argv[2]));
    args.n = uint32_t(std::stoul(argv[3]));
    args.k = uint32_t(std::stoul(argv[4]));
    for (int i = 5; i < argc; ++i) {
        const std::string flag = argv[i];
        if (flag == "--native-runs" && i + 1 < argc)
            args.native_runs = std::max(1, std::atoi(argv[++i]));
        else if (flag == "--train-bytes" && i + 1 < argc)
            args.train_bytes = uint32_t(std::stoul(argv[++i]));
        else if (flag == "--single-thread")
            args.helper_threads = false;
        else if (flag == "--no-native")
            args.native_runs = 0;
        else
            throw std::runtime_error("bench-e2e: unknown argument " + flag);
    }
    return args;
}

int run(const Args& args) {
    using namespace kpu;
    const hw::Config config = hw::load_config(args.config);
    const hw::Derived derived = hw::derive(config);
    const uint32_t M = args.m, N = args.n, K = args.k;
    const std::string graph_text = "{\"op\": \"matmul\", \"A\": {\"shape\": [" + std::to_string(M) + ", " +
                                   std::to_string(K) + "], \"dtype\": \"float32\"}, \"B\": {\"shape\": [" +
                                   std::to_string(K) + ", " + std::to_string(N) +
                                   "], \"dtype\": \"float32\"}, \"C\": {\"shape\": [" + std::to_string(M) + ", " +
                                   std::to_string(N) + "], \"dtype\": \"float32\"}}";

    // ---- compile and bind (kpu-compile, then what the platform does at START) ----
    const auto t_compile = Clock::now();
    const compiler::Graph graph = compiler::parse_graph(graph_text, "bench-e2e");
    const compiler::Program program = compiler::compile(graph, config);
    const std::string image = compiler::write_kpu(program);
    const double compile_s = seconds_since(t_compile);
    const auto t_bind = Clock::now();
    const compiler::BoundProgram bound = compiler::bind(program, config);
    const double bind_s = seconds_since(t_bind);

    // ---- inputs: A [M, K] and B [K, N], random; C is the output ----
    const std::vector<float> a = random_matrix(size_t(M) * K, 1), b = random_matrix(size_t(K) * N, 2);
    platform::HostJob job;
    for (const auto& tensor : bound.tensors) {
        if (tensor.role == "output") {
            job.outputs.push_back({tensor.name, tensor.dram_addr, std::vector<uint8_t>(tensor.bytes)});
            continue;
        }
        const std::vector<float>* data = tensor.name == "A" ? &a : tensor.name == "B" ? &b : nullptr;
        if (!data || data->size() * sizeof(float) != tensor.bytes)
            throw std::runtime_error("bench-e2e: unexpected tensor " + tensor.name);
        platform::HostBuffer buffer{tensor.name, tensor.dram_addr, std::vector<uint8_t>(tensor.bytes)};
        std::memcpy(buffer.bytes.data(), data->data(), tensor.bytes);
        job.inputs.push_back(std::move(buffer));
    }
    if (job.outputs.size() != 1) throw std::runtime_error("bench-e2e: expected one output");
    job.image = image;
    job.image_addr = compiler::image_address(bound, config, image.size());

    // ---- the simulation, timed as kpu-sim times it: elaboration + sc_start ----
    const double cpu0 = cpu_seconds(), thread0 = thread_cpu_seconds();
    const long faults0 = page_faults(), thread_faults0 = page_faults(RUSAGE_THREAD);
    const auto t_sim = Clock::now();
    // Released, not destroyed: SystemC 2.3 tears large module trees down slowly.
    platform::PlatformOptions options;
    if (args.train_bytes) options.train_bytes = *args.train_bytes;
    options.helper_threads = args.helper_threads;
    auto* kpu = new platform::KpuPlatform("kpu", config, options);
    auto* host = new platform::HostDriver("host", job);
    auto* irq = new sc_core::sc_signal<bool>("irq");
    host->socket.bind(kpu->host_socket);
    kpu->irq(*irq);
    host->irq(*irq);
    sc_core::sc_start(sc_core::SC_ZERO_TIME);
    const double elaborate_s = seconds_since(t_sim);
    sc_core::sc_start();
    const double sim_wall_s = seconds_since(t_sim);
    const double sim_cpu_s = cpu_seconds() - cpu0, sim_thread_s = thread_cpu_seconds() - thread0;
    const long sim_faults = page_faults() - faults0, sim_thread_faults = page_faults(RUSAGE_THREAD) - thread_faults0;
    const platform::HostResult& result = host->result();
    if (!result.failure.empty() || !result.interrupted || result.status != platform::HostStatus::Done)
        throw std::runtime_error("bench-e2e: the run failed: " + result.failure + kpu->stuck_report() +
                                 kpu->host_error_message());

    // ---- native GEMM of the same shape and data ----
    const std::string fabric_isa = kpu->tile(0).fabric().kernel_isa();
    std::vector<float> c_native(size_t(M) * N), c_wide(size_t(M) * N);
    const double native_s = time_gemm(kNative, c_native, a, b, M, N, K, args.native_runs);
    const double native_wide_s = time_gemm(wide_gemm(fabric_isa), c_wide, a, b, M, N, K, args.native_runs);
    std::vector<float> c_sim(size_t(M) * N);
    std::memcpy(c_sim.data(), job.outputs[0].bytes.data(), c_sim.size() * sizeof(float));
    double max_diff = 0;
    bool bit_exact = args.native_runs > 0;
    if (args.native_runs > 0) {
        bit_exact = std::memcmp(c_sim.data(), c_native.data(), c_sim.size() * sizeof(float)) == 0 &&
                    std::memcmp(c_wide.data(), c_native.data(), c_wide.size() * sizeof(float)) == 0;
        for (size_t i = 0; i < c_sim.size(); ++i) max_diff = std::max(max_diff, double(std::fabs(c_sim[i] - c_native[i])));
    }

    // ---- figures ----
    const double sim_s = (kpu->finished_at() - kpu->started_at()).to_seconds();
    const double flops = 2.0 * double(bound.macs);
    const double dram_bytes = double(bound.dram_read_bytes + bound.dram_write_bytes);
    const double compute_s = flops / derived.peak_flops, memory_s = dram_bytes / derived.dram_bandwidth;
    const double roofline_s = std::max(compute_s, memory_s);
    const double hz = config.clocks.fabric_hz;

    // Engine busy time by kind, over the engines the program used (docs/benchmarks.md).
    struct Kind {
        double busy_s = 0, max_s = 0;
        int used = 0, count = 0;
        uint64_t syncs = 0, trains = 0, bytes = 0, grants = 0;
    };
    std::map<std::string, Kind> kinds;
    uint64_t accesses = 0, transactions = 0, syncs = 0, trains = 0;
    auto add = [&](const char* kind, double busy_s) {
        Kind& k = kinds[kind];
        ++k.count;
        if (busy_s > 0) ++k.used, k.busy_s += busy_s, k.max_s = std::max(k.max_s, busy_s);
    };
    auto add_mover = [&](const char* kind, const model::Mover& mover) {
        add(kind, double(mover.stats().busy) * 1e-15);
        accesses += mover.stats().dmi_accesses;
        transactions += mover.stats().transactions;
        syncs += mover.stats().syncs;
        trains += mover.stats().trains;
        Kind& k = kinds[kind];
        k.syncs += mover.stats().syncs, k.trains += mover.stats().trains, k.bytes += mover.stats().bytes;
        k.grants += mover.stats().dmi_grants;
    };
    for (uint32_t d = 0; d < config.dma.count; ++d) add_mover("dma", kpu->dma(d));
    for (uint32_t t = 0; t < config.compute_tiles; ++t) {
        platform::ComputeTile& tile = kpu->tile(t);
        for (uint32_t u = 0; u < tile.block_mover_count(); ++u) add_mover("block_mover", tile.block_mover(u));
        for (uint32_t u = 0; u < tile.streamer_count(); ++u) add_mover("streamer", tile.streamer(u));
        add("fabric", tile.fabric().busy_time().to_seconds());
    }

    std::cout << "config " << config.name << "\nshape " << M << "x" << N << "x" << K << "\nmacs " << bound.macs
              << "\nops " << bound.ops.size() << "\ndram_bytes " << uint64_t(dram_bytes) << "\ncompile_s " << compile_s
              << "\nbind_s " << bind_s << "\nsimulated_cycles " << result.cycles << "\nsimulated_s " << sim_s
              << "\nroofline_cycles " << uint64_t(std::llround(roofline_s * hz)) << "\ncompute_cycles "
              << uint64_t(std::llround(compute_s * hz)) << "\ndram_cycles " << uint64_t(std::llround(memory_s * hz))
              << "\nbound " << (compute_s >= memory_s ? "compute" : "memory") << "\nefficiency "
              << (sim_s > 0 ? roofline_s / sim_s : 0) << "\nelaborate_s " << elaborate_s << "\nwall_s " << sim_wall_s
              << "\ncpu_s " << sim_cpu_s << "\nsim_thread_cpu_s " << sim_thread_s << "\npage_faults " << sim_faults
              << "\nsim_thread_page_faults " << sim_thread_faults << "\nnative_s " << native_s << "\nratio "
              << (native_s > 0 ? sim_wall_s / native_s : 0) << "\nfabric_isa " << fabric_isa << "\nnative_wide_s "
              << native_wide_s << "\nratio_wide " << (native_wide_s > 0 ? sim_wall_s / native_wide_s : 0)
              << "\ncycles_per_wall_s " << double(result.cycles) / sim_wall_s
              << "\nops_per_wall_s " << double(bound.ops.size()) / sim_wall_s << "\ntimed_accesses " << accesses
              << "\ntransactions " << transactions << "\nsyncs " << syncs << "\ntrains " << trains << "\naccesses_per_wall_s "
              << double(accesses + transactions) / sim_wall_s << "\nnative_bit_exact " << (bit_exact ? "yes" : "no")
              << "\nnative_max_diff " << max_diff << "\npeak_rss_mib " << peak_rss_mib() << "\n";
    for (const auto& [name, k] : kinds)
        std::cout << "busy_" << name << " " << (k.used ? k.busy_s / k.used / sim_s : 0) << " "
                  << (sim_s > 0 ? k.max_s / sim_s : 0) << " " << k.used << "/" << k.count << "\n";
    // Where the movers' simulation work goes: bytes, trains booked, kernel syncs, DMI regions
    // asked for, by kind.
    for (const auto& [name, k] : kinds)
        if (k.bytes)
            std::cout << "moves_" << name << " " << k.bytes << " bytes " << k.trains << " trains " << k.syncs
                      << " syncs " << k.grants << " grants\n";
    return 0;
}

}  // namespace

int sc_main(int argc, char* argv[]) {
    try {
        return run(parse(argc, argv));
    } catch (const std::exception& e) {
        std::cerr << e.what() << "\n";
        return 2;
    }
}

int main(int argc, char* argv[]) {
    setenv("SC_COPYRIGHT_MESSAGE", "DISABLE", 0);
    return sc_core::sc_elab_and_sim(argc, argv);
}
