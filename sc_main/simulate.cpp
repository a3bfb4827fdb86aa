#include "sc_main/simulate.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iomanip>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "compiler/binder.h"
#include "compiler/generate.h"
#include "compiler/kpu_format.h"
#include "platform/host_driver.h"
#include "platform/kpu_platform.h"
#include "sc_main/npy.h"
#include "sc_main/progress.h"
#include "sc_main/reference.h"
#include "sc_main/report.h"
#include "sc_main/trace.h"
#include "sc_main/vcd.h"

namespace kpu::cli {

namespace {

namespace fs = std::filesystem;

/// Uniform [-1, 1) data, the same for a given seed and tensor name on every machine.
std::vector<float> random_tensor(uint64_t elements, uint64_t seed, const std::string& name) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the name, then the seed: independent of std::hash
    for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
    for (int byte = 0; byte < 8; ++byte) h = (h ^ ((seed >> (8 * byte)) & 0xff)) * 1099511628211ull;
    std::mt19937_64 gen(h);
    std::vector<float> data(elements);
    for (auto& v : data) v = float(double(gen() >> 11) * 0x1.0p-53 * 2.0 - 1.0);
    return data;
}

/// Whether a bound tensor has `role` (BoundTensor spells it as the graph does).
bool has_role(const compiler::BoundTensor& tensor, compiler::TensorRole role) {
    return tensor.role == compiler::to_string(role);
}

bool is_fed(const compiler::BoundTensor& tensor) {
    return has_role(tensor, compiler::TensorRole::Input) || has_role(tensor, compiler::TensorRole::Constant);
}

std::string si(double value, const char* unit) {
    const char* prefixes[] = {"", "K", "M", "G", "T", "P"};
    int p = 0;
    while (std::fabs(value) >= 1000 && p < 5) value /= 1000, ++p;
    std::ostringstream out;
    out << std::setprecision(4) << value << " " << prefixes[p] << unit;
    return out.str();
}

void print_summary(const RunReport& r, uint64_t cycles, const compiler::BoundProgram& bound, std::ostream& out) {
    const double sim_s = r.total_s();
    const double dram_bytes = double(r.levels[0].read_bytes + r.levels[0].write_bytes);
    auto percent = [&](uint64_t part) { return sim_s > 0 ? 100.0 * double(part) * 1e-12 / sim_s : 0.0; };
    out << std::fixed;
    out << "kpu-sim: " << r.program << " on " << r.config << "\n";
    out << "  cycles            " << cycles << " (fabric clock " << si(r.fabric_hz, "Hz") << ")\n";
    out << "  simulated time    " << si(sim_s, "s") << "\n";
    out << "  ops               " << bound.ops.size() << "\n";
    out << "  achieved          " << si(sim_s > 0 ? 2.0 * double(r.macs) / sim_s : 0, "FLOP/s") << " of "
        << si(r.peak_flops, "FLOP/s") << " peak (" << std::setprecision(1)
        << (sim_s > 0 ? 100 * 2.0 * double(r.macs) / sim_s / r.peak_flops : 0) << " %)\n";
    out << "  DRAM traffic      " << si(double(r.levels[0].read_bytes), "B") << " read, "
        << si(double(r.levels[0].write_bytes), "B") << " written (" << si(dram_bytes / sim_s, "B/s") << ")\n";
    out << "  roofline bound    " << si(r.roofline_s, "s") << "  ("
        << (r.memory_bound ? "memory: DRAM bytes at " + si(r.roofline_bandwidth, "B/s") : std::string("compute: at peak"))
        << "; efficiency " << std::setprecision(1) << (sim_s > 0 ? 100 * r.roofline_s / sim_s : 0) << " %)\n";
    out << "  time              some fabric computing " << percent(r.compute) << " %, else waiting on streamer "
        << percent(r.stall_streamer) << " %, block mover " << percent(r.stall_block_mover) << " %, DMA "
        << percent(r.stall_dma) << " %, dependencies " << percent(r.stall_other) << " %\n";
    out << "  energy            " << si(r.total_pj() * 1e-12, "J") << " (" << si(r.total_pj() * 1e-12 / sim_s, "W")
        << " average)\n";
    // Busy time per engine kind, as a share of the run: mean over instances and the busiest.
    std::map<std::string, std::tuple<uint64_t, uint64_t, uint64_t, int>> kinds;  // busy sum, max, bytes, count
    for (const auto& e : r.engines) {
        auto& [sum, max, bytes, n] = kinds[e.kind];
        sum += e.busy, max = std::max(max, e.busy), bytes += e.bytes, ++n;
    }
    out << "  engines used      busy mean / max\n";
    for (const auto& [kind, k] : kinds) {
        const auto& [sum, max, bytes, n] = k;
        out << "    " << std::left << std::setw(12) << kind << std::right << std::setw(5) << n << "  " << std::setw(6)
            << percent(sum / uint64_t(n)) << " % / " << std::setw(5) << percent(max) << " %";
        if (bytes) out << "   " << si(double(bytes), "B");
        out << "\n";
    }
    // What limits the run: each used engine kind's mean busy share and DRAM's bandwidth share,
    // the largest first (the time line above only says what the fabrics waited on).
    std::vector<std::pair<double, std::string>> loads{
        {sim_s > 0 ? 100 * dram_bytes / (r.dram_bandwidth * sim_s) : 0, "DRAM bandwidth"}};
    for (const auto& [kind, k] : kinds) loads.push_back({percent(std::get<0>(k) / uint64_t(std::get<3>(k))), kind + " busy"});
    std::stable_sort(loads.begin(), loads.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    out << "  busiest          ";
    for (size_t i = 0; i < loads.size() && i < 3; ++i)
        out << (i ? ", " : " ") << loads[i].second << " " << std::setprecision(1) << loads[i].first << " %";
    out << "\n";
    out << "  wall time         " << std::setprecision(2) << r.wall_s << " s\n";
    out << std::defaultfloat;
}

}  // namespace

Prepared prepare(const hw::Config& config, const compiler::Program& program, const std::string& inputs_dir,
                 uint64_t seed, bool read_intermediates) {
    Prepared p;
    p.bound = compiler::bind(program, config);
    for (const auto& tensor : p.bound.tensors) {
        const uint64_t elements = tensor.bytes / sizeof(float);
        if (is_fed(tensor)) {
            std::vector<float> data;
            const fs::path file = fs::path(inputs_dir) / (tensor.name + ".npy");
            if (!inputs_dir.empty() && fs::exists(file)) {
                NpyArray array = read_npy(file.string(), [&](const std::vector<uint64_t>& shape) {
                    if (shape != tensor.shape)
                        throw NpyError(file.string() + ": shape " + shape_text(shape) + " does not match tensor '" +
                                       tensor.name + "' " + shape_text(tensor.shape));
                });
                data = std::move(array.data);
            } else {
                data = random_tensor(elements, seed, tensor.name);
                p.seeded.push_back(tensor.name);
            }
            platform::HostBuffer buffer{tensor.name, tensor.dram_addr, std::vector<uint8_t>(tensor.bytes)};
            std::memcpy(buffer.bytes.data(), data.data(), tensor.bytes);
            p.job.inputs.push_back(std::move(buffer));
            p.inputs[tensor.name] = std::move(data);
        } else if (has_role(tensor, compiler::TensorRole::Output) || read_intermediates) {
            p.job.outputs.push_back({tensor.name, tensor.dram_addr, std::vector<uint8_t>(tensor.bytes)});
        }
    }
    p.job.image = compiler::write_kpu(program);
    p.job.image_addr = compiler::image_address(p.bound, config, p.job.image.size());
    return p;
}

std::string Session::failure() const {
    const platform::HostResult& r = host->result();
    if (!r.failure.empty()) return "host: " + r.failure;
    if (!r.interrupted) return "the program got stuck: " + kpu->stuck_report();
    if (r.status != platform::HostStatus::Done)
        return "the device reported error " + std::to_string(uint64_t(r.error)) + ": " + kpu->host_error_message();
    return "";
}

std::map<std::string, std::vector<float>> Session::outputs() const {
    std::map<std::string, std::vector<float>> out;
    for (const auto& buffer : job.outputs) {
        std::vector<float>& data = out[buffer.name];
        data.resize(buffer.bytes.size() / sizeof(float));
        std::memcpy(data.data(), buffer.bytes.data(), buffer.bytes.size());
    }
    return out;
}

void Session::build(const hw::Config& config, const std::string& name, const platform::PlatformOptions& options) {
    const std::string host_name = name + "_host";
    kpu = std::make_unique<platform::KpuPlatform>(name.c_str(), config, options);
    host = std::make_unique<platform::HostDriver>(host_name.c_str(), job);
    irq = std::make_unique<sc_core::sc_signal<bool>>((name + "_irq").c_str());
    host->socket.bind(kpu->host_socket);
    kpu->irq(*irq);
    host->irq(*irq);
}

namespace {

/// Whether some op reads a tensor another op computes (a chain).
bool reads_a_result(const compiler::Graph& graph) {
    std::set<uint32_t> computed;
    for (const compiler::Op& op : graph.ops()) computed.insert(op.c);
    for (const compiler::Op& op : graph.ops())
        if (computed.count(op.a) || computed.count(op.b) || (op.bias && computed.count(*op.bias))) return true;
    return false;
}

/// The --check reference, evaluated on its own thread while the simulation runs (it reads
/// only the graph and the host's inputs, never the platform), or with --single-thread when
/// get() asks for it. Destroyed without get() (the run failed): cancelled, and joined.
class BackgroundReference {
public:
    BackgroundReference(const compiler::Graph& graph, const std::map<std::string, std::vector<float>>& inputs,
                        bool own_thread)
        : result_(std::async(own_thread ? std::launch::async : std::launch::deferred,
                             [&graph, &inputs, this] { return run_reference(graph, inputs, &cancel_); })) {}
    ~BackgroundReference() { cancel_ = true; }  // then result_'s destructor waits for the thread
    BackgroundReference(const BackgroundReference&) = delete;
    BackgroundReference& operator=(const BackgroundReference&) = delete;

    std::map<std::string, ReferenceTensor> get() { return result_.get(); }

private:
    std::atomic<bool> cancel_{false};  ///< before result_: outlives the thread
    std::future<std::map<std::string, ReferenceTensor>> result_;
};

/// What the run writes at its end is checked before it starts: a long run is not lost to a
/// path typed wrong. The files themselves are only created at the end.
void check_outputs_can_be_written(const Options& options) {
    const std::pair<const char*, const std::string*> files[] = {
        {"--stats", &options.stats_path}, {"--vcd", &options.vcd_path}, {"--trace", &options.trace_path}};
    for (const auto& [option, path] : files) {
        if (path->empty()) continue;
        if (fs::is_directory(*path)) throw std::runtime_error(std::string(option) + " " + *path + ": is a directory");
        const fs::path dir = fs::path(*path).parent_path().empty() ? fs::path(".") : fs::path(*path).parent_path();
        if (!fs::is_directory(dir))
            throw std::runtime_error(std::string(option) + " " + *path + ": no such directory " + dir.string());
        if (::access(dir.c_str(), W_OK) != 0)
            throw std::runtime_error(std::string(option) + " " + *path + ": directory " + dir.string() + " is not writable");
    }
    if (!options.outputs_dir.empty()) {
        std::error_code error;
        fs::create_directories(options.outputs_dir, error);
        if (error || !fs::is_directory(options.outputs_dir))
            throw std::runtime_error("--outputs " + options.outputs_dir + ": cannot create the directory" +
                                     (fs::exists(options.outputs_dir) ? " (a file of that name exists)" : ""));
    }
}

/// With --inputs, a file name typed wrong would silently give random data: say which
/// tensors got random data, and which .npy files fed nothing (with the tensor a file
/// differing only in case was probably meant for).
void warn_about_inputs(const std::string& dir, const Prepared& prepared, uint64_t seed) {
    auto lower = [](std::string s) {
        for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
        return s;
    };
    std::map<std::string, const compiler::BoundTensor*> by_name;
    for (const auto& tensor : prepared.bound.tensors) by_name[tensor.name] = &tensor;
    std::vector<std::string> unused;
    for (const auto& entry : fs::directory_iterator(dir)) {
        if (entry.path().extension() != ".npy") continue;
        const std::string stem = entry.path().stem().string();
        const auto it = by_name.find(stem);
        if (it != by_name.end() && prepared.inputs.count(stem)) continue;
        std::string why = "matches no input or constant";
        if (it != by_name.end()) {
            why = "is tensor '" + stem + "', an " + it->second->role + " (only inputs and constants are read)";
        } else {
            for (const auto& tensor : prepared.bound.tensors)
                if (prepared.inputs.count(tensor.name) && lower(tensor.name) == lower(stem))
                    why += " (did you mean " + tensor.name + ".npy?)";
        }
        unused.push_back(entry.path().filename().string() + " " + why);
    }
    std::sort(unused.begin(), unused.end());
    for (const std::string& line : unused) std::cerr << "kpu-sim: warning: --inputs " << dir << ": " << line << "\n";
    if (!prepared.seeded.empty()) {
        std::cerr << "kpu-sim: warning: --inputs " << dir << ": no file for";
        for (const std::string& name : prepared.seeded) std::cerr << " " << name;
        std::cerr << ": seeded random data (--seed " << seed << ")\n";
    }
}

/// A program runs on any config it fits, but its tiling was chosen for the one it was
/// compiled for: say so when that is another (an architect's sweep ran t64's program on edge,
/// and on 4 of t64's 64 tiles, without a word).
void warn_about_target(const std::string& path, const compiler::Target& target, const hw::Config& config) {
    const compiler::Target here = compiler::target_of(config);
    if (target == here) return;
    auto describe = [](const compiler::Target& t) {
        return "'" + t.config + "'" + hw::set_flags(t.overrides) + " (" + std::to_string(t.compute_tiles) + (t.compute_tiles == 1 ? " tile of " : " tiles of ") +
               std::to_string(t.fabric_rows) + "x" + std::to_string(t.fabric_cols) + ")";
    };
    std::cerr << "kpu-sim: note: " << path << " was compiled for " << describe(target) << ", not for "
              << describe(here) << ": it runs, with the tiling chosen for the former; recompile for this config to "
              << "compare configs\n";
}

}  // namespace

int run_program(const hw::Config& config, const Options& options, std::ostream& out) {
    // ---- everything that can be wrong with the input is found before the simulation ----
    const compiler::Program program = compiler::read_kpu_file(options.program_path);
    if (!options.inputs_dir.empty() && !fs::is_directory(options.inputs_dir))
        throw std::runtime_error("--inputs " + options.inputs_dir +
                                 (fs::exists(options.inputs_dir) ? ": not a directory" : ": no such directory"));
    check_outputs_can_be_written(options);
    Prepared prepared;
    try {
        prepared = prepare(config, program, options.inputs_dir, options.seed, options.check);
    } catch (const std::exception& e) {
        throw std::runtime_error(options.program_path + " on " + config.name + ": " + e.what());
    }
    warn_about_target(options.program_path, program.target, config);
    if (!options.inputs_dir.empty()) warn_about_inputs(options.inputs_dir, prepared, options.seed);
    if (!options.vcd_scope.empty()) {  // the engines the program uses, as the device binds it
        std::set<std::string> engines;
        for (const compiler::BoundOp& op : prepared.bound.ops) engines.insert(engine_scope(op));
        check_vcd_scope({engines.begin(), engines.end()}, config.dram.count, options.vcd_scope);
    }
    // The device binds the image itself at START (KpuPlatform::program()); the host keeps
    // only the tensors' layout, not a second copy of the ops (at 8192^3, 3.4 M of them).
    std::vector<compiler::BoundOp>().swap(prepared.bound.ops);
    const std::vector<compiler::BoundTensor>& tensors = prepared.bound.tensors;
    // The reference runs beside the simulation unless some op reads another's result: then it
    // waits for the simulated results, so that each op is checked on its own operands.
    const bool chained = reads_a_result(program.graph);
    std::optional<BackgroundReference> reference;
    if (options.check && !chained) reference.emplace(program.graph, prepared.inputs, !options.single_thread);

    // ---- the simulation: the host drives the KPU through its socket and interrupt ----
    const auto wall_start = std::chrono::steady_clock::now();
    // Released, not destroyed: the process ends after the report, and SystemC 2.3 tears
    // large module trees down slowly (see --elaborate-only).
    auto* session = new Session;
    session->job = std::move(prepared.job);
    platform::PlatformOptions platform_options;
    if (options.train_bytes) platform_options.train_bytes = *options.train_bytes;
    platform_options.helper_threads = !options.single_thread;
    session->build(config, "kpu", platform_options);
    std::optional<ProgressReporter> progress;
    if (options.progress_s) {
        const model::Sequencer* sequencer = &session->kpu->sequencer();
        progress.emplace(
            [sequencer] {
                const model::Sequencer::Progress p = sequencer->progress();
                return Progress{p.completed, p.total, p.simulated_s};
            },
            *options.progress_s, std::cerr, wall_start);  // the summary's wall time: from before elaboration
    }
    sc_core::sc_start();
    progress.reset();
    const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    platform::KpuPlatform* kpu = session->kpu.get();
    const platform::HostResult& result = session->host->result();
    if (const std::string failure = session->failure(); !failure.empty()) {
        std::cerr << "kpu-sim: error: " << failure << "\n";
        return kExitRunFailed;
    }
    // ---- outputs, check, report ----
    // The host's copies of the tensors are done with (at 8192^3, 768 MiB).
    std::map<std::string, std::vector<float>> outputs = session->outputs();
    std::vector<platform::HostBuffer>().swap(session->job.inputs);
    std::vector<platform::HostBuffer>().swap(session->job.outputs);
    if (!options.outputs_dir.empty()) {
        for (const auto& tensor : tensors)
            if (has_role(tensor, compiler::TensorRole::Output))
                write_npy((fs::path(options.outputs_dir) / (tensor.name + ".npy")).string(), tensor.shape,
                          outputs[tensor.name].data());
    }

    bool check_ok = true;
    std::vector<std::string> check_lines;
    if (options.check) {
        std::map<std::string, ReferenceTensor> expected;
        if (chained) {  // the simulated tensors join the inputs (moved: the check reads them there)
            for (auto& [name, data] : outputs) prepared.inputs[name] = std::move(data);
            outputs.clear();
            expected = run_reference(program.graph, prepared.inputs);
        } else {
            expected = reference->get();
        }
        const std::map<std::string, std::vector<float>>& simulated = chained ? prepared.inputs : outputs;
        for (const auto& tensor : tensors) {
            const bool intermediate = has_role(tensor, compiler::TensorRole::Intermediate);
            if (!has_role(tensor, compiler::TensorRole::Output) && !intermediate) continue;
            const std::vector<float>& got = simulated.at(tensor.name);
            const CheckResult r = check_tensor(got, expected.at(tensor.name), tensor.shape);
            std::ostringstream line;
            line << std::setprecision(9) << tensor.name << " " << shape_text(tensor.shape)
                 << (intermediate ? " (intermediate)" : "") << ": ";
            if (r.ok && r.non_finite == got.size()) {
                line << "ok (all " << r.non_finite << " elements NaN or Inf in both)";
            } else if (r.ok) {
                line << "ok (worst error " << std::setprecision(3) << r.error << " at " << shape_text(r.worst_at)
                     << ", tolerance " << r.tolerance << ")";
                if (r.non_finite > 0) line << "; " << r.non_finite << " elements NaN or Inf in both";
                if (r.bound_in_products >= 1)
                    line << "; weak: the tolerance reaches " << std::setprecision(2) << r.bound_in_products
                         << " x an average product of the op's sums, so a missing product could pass";
            } else {
                check_ok = false;
                line << "MISMATCH in " << r.mismatches << " elements; worst at " << shape_text(r.worst_at)
                     << ": simulated " << r.got << ", reference " << r.expected << ", error " << r.error
                     << " > tolerance " << r.tolerance;
                // From finite operands a GEMM's fp32 result is NaN or infinite only where a product
                // or a partial sum passed fp32's range (an inf - inf is a NaN).
                if (!std::isfinite(r.got) && std::isfinite(r.expected))
                    line << (std::fabs(r.expected) > double(std::numeric_limits<float>::max())
                                 ? " (the reference is beyond fp32's range: the fp32 hardware overflowed)"
                                 : " (a product or partial sum passed fp32's range, 3.4e38: the fp32 hardware "
                                   "overflowed, in this order of summation)");
                if (r.non_finite > 0) line << "; " << r.non_finite << " more elements NaN or Inf in both";
            }
            check_lines.push_back(line.str());
        }
    }

    RunReport report = make_report(config, *kpu, options.program_path, wall_s);
    print_summary(report, result.cycles, kpu->program(), out);
    if (options.check) {
        out << "  check             " << (check_ok ? "PASS" : "FAIL") << "\n";
        for (const auto& line : check_lines) out << "    " << line << "\n";
    }
    if (!options.stats_path.empty()) {
        std::ofstream file(options.stats_path);
        if (!file) throw std::runtime_error(options.stats_path + ": cannot write stats file");
        file << stats_json(report, options.check ? nlohmann::json(check_ok ? "pass" : "fail") : nlohmann::json())
                    .dump(2)
             << "\n";
    }
    if (!options.vcd_path.empty()) {
        write_vcd(report, options.vcd_path, options.vcd_from_ps, options.vcd_to_ps, options.vcd_scope);
        if (options.vcd_from_ps >= report.end)  // the end is known only now: say it, the file is written
            std::cerr << "kpu-sim: warning: --vcd-window starts at " << options.vcd_from_ps / 1e6
                      << " us, after the run ended (" << report.end / 1e6 << " us): " << options.vcd_path
                      << " holds only the values at the end\n";
    }
    if (!options.trace_path.empty()) write_trace(report, kpu->program(), program, options.trace_path);
    if (!check_ok) {
        for (const auto& line : check_lines)
            if (line.find("MISMATCH") != std::string::npos) std::cerr << "kpu-sim: check failed: " << line << "\n";
        return kExitCheckFailed;
    }
    return 0;
}

}  // namespace kpu::cli
