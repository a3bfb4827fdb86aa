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
#include <map>
#include <optional>
#include <variant>
#include <random>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <unistd.h>

#include "compiler/binder.h"
#include "compiler/reblock.h"
#include "compiler/replay.h"
#include "compiler/generate.h"
#include "compiler/kpu_format.h"
#include "compiler/keep_in_l3.h"
#include "compiler/memory_plan.h"
#include "hardware/host_memory.h"
#include "hardware/output_file.h"
#include "platform/host_driver.h"
#include "platform/kpu_platform.h"
#include "sc_main/host_budget.h"
#include "sc_main/layer_report.h"
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
    out << "  time              some fabric or vector engine computing " << percent(r.compute) << " %, else waiting on streamer "
        << percent(r.stall_streamer) << " %, block mover " << percent(r.stall_block_mover) << " %, DMA "
        << percent(r.stall_dma) << " %, dependencies " << percent(r.stall_other) << " %\n";
    out << "  energy            " << si(r.total_pj() * 1e-12, "J") << " (" << si(r.total_pj() * 1e-12 / sim_s, "W")
        << " average)\n";
    out << vector_summary(r);
    out << element_type_summary(r);
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

/// The dtype of a bound tensor (BoundTensor spells it as the graph does).
hw::DType dtype_of(const compiler::BoundTensor& tensor) {
    hw::DType type = hw::DType::Float32;
    if (!hw::parse_dtype(tensor.dtype, type))
        throw std::runtime_error("tensor '" + tensor.name + "' has an unknown dtype '" + tensor.dtype + "'");
    return type;
}

namespace {

/// Seeded data of `type` for `tensor`: random_tensor's uniform [-1, 1) reals as the type holds
/// them (float16 and bfloat16 rounded to them), int8 integers over the whole range
/// (floor(128 r), [-128, 127]), int32 ones (biases, in products of two int8 steps) of up to
/// 2^16 in magnitude (floor(2^16 r)), int64 ones in {-1, 0} (floor(r)).
std::vector<float> seeded_values(const compiler::BoundTensor& tensor, hw::DType type, uint64_t seed) {
    const uint64_t elements = tensor.bytes / hw::dtype_bytes(type);
    std::vector<float> data = random_tensor(elements, seed, tensor.name);
    if (type == hw::DType::Float32) return data;
    const float integer_range = type == hw::DType::Int8 ? 128.0f : type == hw::DType::Int32 ? 65536.0f : 1.0f;
    for (float& v : data) v = hw::is_integer(type) ? std::floor(v * integer_range) : v;
    const std::vector<uint8_t> stored = element_bytes(data.data(), elements, type);
    return element_values(stored.data(), elements, type);  // the values the type holds
}

}  // namespace

Prepared prepare(const hw::Config& config, const compiler::Program& program, const std::string& inputs_dir,
                 uint64_t seed, bool read_intermediates, const std::string& weights_dir) {
    Prepared p;
    p.bound = compiler::bind(program, config);
    for (const auto& tensor : p.bound.tensors) {
        if (is_fed(tensor)) {
            const hw::DType type = dtype_of(tensor);
            std::vector<float> data;
            std::vector<uint8_t> stored;  // the tensor's bytes in DRAM
            fs::path file = fs::path(inputs_dir) / (tensor.name + ".npy");
            if ((inputs_dir.empty() || !fs::exists(file)) && !weights_dir.empty() &&
                has_role(tensor, compiler::TensorRole::Constant) && fs::exists(fs::path(weights_dir) / (tensor.name + ".npy")))
                file = fs::path(weights_dir) / (tensor.name + ".npy");  // the program's weight
            const std::optional<uint32_t> index = program.graph.find_tensor(tensor.name);
            const auto* inline_value =
                index ? std::get_if<std::vector<double>>(&program.graph.tensor(*index).value) : nullptr;
            if (inline_value) {
                // The program's own constant: what the compiler and the reference use.
                if (!inputs_dir.empty() && fs::exists(file))
                    throw std::runtime_error(file.string() + ": tensor '" + tensor.name +
                                             "' has its value in the program (an inline constant); remove the file");
                data.assign(inline_value->begin(), inline_value->end());
            } else if (!file.parent_path().empty() && fs::exists(file)) {
                NpyData read = read_tensor_npy(file.string(), tensor.name, tensor.shape, type);
                data = npy_to_float(read);
                stored = std::move(read.bytes);
            } else {
                data = seeded_values(tensor, type, seed);
                p.seeded.push_back(tensor.name);
            }
            if (stored.empty()) {
                stored = element_bytes(data.data(), data.size(), type);
                if (type != hw::DType::Float32) data = element_values(stored.data(), data.size(), type);  // as held
            }
            platform::HostBuffer buffer{tensor.name, tensor.dram_addr, std::vector<uint8_t>(tensor.bytes)};
            std::memcpy(buffer.bytes.data(), stored.data(), std::min<uint64_t>(stored.size(), tensor.bytes));
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

std::map<std::string, std::vector<float>> Session::outputs(const std::vector<compiler::BoundTensor>* tensors) const {
    std::map<std::string, hw::DType> types;
    if (tensors)
        for (const auto& tensor : *tensors) types[tensor.name] = dtype_of(tensor);
    std::map<std::string, std::vector<float>> out;
    for (const auto& buffer : job.outputs) {
        const auto it = types.find(buffer.name);
        const hw::DType type = it == types.end() ? hw::DType::Float32 : it->second;
        out[buffer.name] = element_values(buffer.bytes.data(), buffer.bytes.size() / hw::dtype_bytes(type), type);
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
    for (const compiler::Op& op : graph.ops()) computed.insert(op.outputs.begin(), op.outputs.end());
    for (const compiler::Op& op : graph.ops())
        for (uint32_t t : op.inputs)
            if (computed.count(t)) return true;
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
        {"--stats", &options.stats_path}, {"--vcd", &options.vcd_path}, {"--trace", &options.trace_path},
        {"--report", &options.report_path}};
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
/// compiled for: say so when that is another (else a sweep could run t64's program on edge,
/// or on 4 of t64's 64 tiles, without a word).
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

/// --check reads every intermediate back after the run, so none may share DRAM with a later
/// tensor: a program whose plan-memory reuses space runs without reuse (each tensor its own
/// range, as at -O0; the dependencies reuse added stay and only order more), said on stderr.
void keep_intermediates(compiler::Program& program, const hw::Config& config, const std::string& path) {
    // keep-in-l3's tensors share L3 with later kernels' buffers: they go back to DRAM too.
    const bool in_l3 = program.memory && program.memory->l3_capacity;
    compiler::drop_keep_in_l3(program);
    if (!compiler::program_memory_plan(program, config.dram.interleave_bytes).reuse && !in_l3) return;
    program.passes.erase(std::remove(program.passes.begin(), program.passes.end(), compiler::Pass::PlanMemory),
                         program.passes.end());
    program.memory.reset();
    std::cerr << "kpu-sim: note: --check reads every intermediate back, so " << path
              << " runs without its DRAM reuse (plan-memory)" << (in_l3 ? " and with its L3 intermediates in DRAM (keep-in-l3)" : "")
              << "; its timing without --check differs\n";
}

/// Step 1, everything that can be wrong with the input is found before the simulation: the
/// paths the run reads and writes are checked, `program` is bound and its data prepared, and
/// what looks like a mistake is said on stderr. Throws one line.
Prepared prepare_run(const hw::Config& config, const Options& options, const compiler::Program& program,
                     const compiler::Target& compiled_for, std::ostream& out) {
    if (!options.inputs_dir.empty() && !fs::is_directory(options.inputs_dir))
        throw std::runtime_error("--inputs " + options.inputs_dir +
                                 (fs::exists(options.inputs_dir) ? ": not a directory" : ": no such directory"));
    check_outputs_can_be_written(options);
    Prepared prepared;
    try {
        const std::string weights =
            program.weights.empty() ? "" : (fs::path(options.program_path).parent_path() / program.weights).string();
        if (!weights.empty() && !fs::is_directory(weights))
            throw std::runtime_error("the program's weights " + weights + ": no such directory (kpu-compile writes it "
                                     "beside the .kpu: keep them together)");
        prepared = prepare(config, program, options.inputs_dir, options.seed, options.check, weights);
    } catch (const std::exception& e) {
        throw std::runtime_error(options.program_path + " on " + config.name + ": " + e.what());
    }
    warn_about_target(options.program_path, compiled_for, config);
    if (options.verbose)
        out << "kpu-sim: bound to '" << config.name << "', replayed: "
            << std::llround(compiler::replay_cycles(prepared.bound, config)) << " cycles (the compiler's estimate)\n";
    if (!options.inputs_dir.empty()) warn_about_inputs(options.inputs_dir, prepared, options.seed);
    if (!options.vcd_scope.empty()) {  // the engines the program uses, as the device binds it
        std::set<std::string> engines;
        for (const compiler::BoundOp& op : prepared.bound.ops) engines.insert(engine_scope(op));
        check_vcd_scope({engines.begin(), engines.end()}, config.dram.count, options.vcd_scope);
    }
    // The device binds the image itself at START (KpuPlatform::program()); the host keeps
    // only the tensors' layout, not a second copy of the ops (at 8192^3, 3.4 M of them).
    std::vector<compiler::BoundOp>().swap(prepared.bound.ops);
    return prepared;
}

/// A finished simulation: the platform and its host, and how long it took.
struct Simulated {
    Session& session;
    double wall_s = 0;  ///< wall time from before the elaboration to the end
};

/// Step 2, the simulation: elaborates the KPU and the host that drives it through its socket
/// and interrupt with `job`, and runs until nothing is left to happen.
Simulated simulate(const hw::Config& config, const Options& options, platform::HostJob job) {
    const auto wall_start = std::chrono::steady_clock::now();
    // Released, not destroyed: the process ends after the report, and SystemC 2.3 tears
    // large module trees down slowly (see --elaborate-only).
    auto* session = new Session;
    session->job = std::move(job);
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
    return {*session, std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count()};
}

/// Step 3: the computed tensors the host read back, by name; the host's copies of the
/// tensors are done with (at 8192^3, 768 MiB). Writes the outputs to --outputs.
std::map<std::string, std::vector<float>> collect_outputs(Session& session, const Options& options,
                                                          const std::vector<compiler::BoundTensor>& tensors) {
    std::map<std::string, std::vector<float>> outputs = session.outputs(&tensors);
    std::vector<platform::HostBuffer>().swap(session.job.inputs);
    if (!options.outputs_dir.empty()) {  // each in its tensor's dtype: the bytes the device wrote
        std::map<std::string, const platform::HostBuffer*> read_back;
        for (const auto& buffer : session.job.outputs) read_back[buffer.name] = &buffer;
        for (const auto& tensor : tensors)
            if (has_role(tensor, compiler::TensorRole::Output))
                write_npy_data((fs::path(options.outputs_dir) / (tensor.name + ".npy")).string(), tensor.shape,
                               npy_type_of(dtype_of(tensor)), read_back.at(tensor.name)->bytes.data());
    }
    std::vector<platform::HostBuffer>().swap(session.job.outputs);
    return outputs;
}

/// What --check found: one line per computed tensor (check_message()).
struct CheckOutcome {
    bool ok = true;
    std::vector<std::string> lines;
};

/// Step 4, --check: every computed tensor against the reference. With `reference` null (a
/// chain) the reference is evaluated now, on the simulated tensors, which join `inputs`
/// (moved there from `outputs`), so that each op is checked on its own operands.
CheckOutcome check_results(const compiler::Graph& graph, const std::vector<compiler::BoundTensor>& tensors,
                           BackgroundReference* reference, std::map<std::string, std::vector<float>>& inputs,
                           std::map<std::string, std::vector<float>>& outputs) {
    std::map<std::string, ReferenceTensor> expected;
    if (!reference) {
        for (auto& [name, data] : outputs) inputs[name] = std::move(data);
        outputs.clear();
        expected = run_reference(graph, inputs);
    } else {
        expected = reference->get();
    }
    const std::map<std::string, std::vector<float>>& simulated = reference ? outputs : inputs;
    CheckOutcome check;
    for (const auto& tensor : tensors) {
        const bool intermediate = has_role(tensor, compiler::TensorRole::Intermediate);
        if (!has_role(tensor, compiler::TensorRole::Output) && !intermediate) continue;
        const std::vector<float>& got = simulated.at(tensor.name);
        const CheckResult r = check_tensor(got, expected.at(tensor.name), tensor.shape);
        check.ok = check.ok && r.ok;
        check.lines.push_back(check_message(tensor.name, tensor.shape, intermediate, r, got.size()));
    }
    return check;
}

/// Step 5: the summary (and the check's lines) on `out`, then --stats, --vcd and --trace.
void report_run(const hw::Config& config, const Options& options, const compiler::Program& program,
                const Simulated& run, const std::optional<CheckOutcome>& check, std::ostream& out) {
    platform::KpuPlatform& kpu = *run.session.kpu;
    RunReport report = make_report(config, kpu, options.program_path, run.wall_s);
    print_summary(report, run.session.host->result().cycles, kpu.program(), out);
    std::optional<LayerReport> layers;
    if (!options.report_path.empty()) {
        layers = make_layer_report(report, config, kpu.program(), program);
        out << layer_summary_line(*layers);
    }
    if (check) {
        out << "  check             " << (check->ok ? "PASS" : "FAIL") << "\n";
        for (const auto& line : check->lines) out << "    " << line << "\n";
    }
    if (!options.stats_path.empty()) {
        hw::OutputFile file(options.stats_path);
        if (!file.is_open()) throw std::runtime_error(options.stats_path + ": cannot write stats file");
        nlohmann::json stats = stats_json(report, check ? nlohmann::json(check->ok ? "pass" : "fail") : nlohmann::json());
        if (layers) stats["layer_report"] = layer_summary_json(*layers);
        file.stream() << stats.dump(2) << "\n";
        if (const std::string problem = file.close(); !problem.empty())
            throw std::runtime_error(options.stats_path + ": " + problem);
    }
    if (!options.vcd_path.empty()) {
        write_vcd(report, options.vcd_path, options.vcd_from_ps, options.vcd_to_ps, options.vcd_scope);
        if (options.vcd_from_ps >= report.end)  // the end is known only now: say it, the file is written
            std::cerr << "kpu-sim: warning: --vcd-window starts at " << options.vcd_from_ps / 1e6
                      << " us, after the run ended (" << report.end / 1e6 << " us): " << options.vcd_path
                      << " holds only the values at the end\n";
    }
    if (!options.trace_path.empty()) write_trace(report, kpu.program(), program, options.trace_path);
    if (layers) write_layer_csv(*layers, options.report_path);
}

}  // namespace

int run_program(const hw::Config& config, const Options& options, std::ostream& out) {
    compiler::Program program =
        allocating("reading " + options.program_path, [&] { return compiler::read_kpu_file(options.program_path); });
    // A program whose tiles do not fit this config is re-blocked for it (reblock.h); the run,
    // its image and its trace are the re-blocked program's.
    const compiler::Target compiled_for = program.target;
    if (!compiler::fits_config(program, config)) {
        compiler::ReblockReport reblocked;
        try {
            program = compiler::reblock(program, config, &reblocked);
        } catch (const std::exception& e) {
            throw std::runtime_error(options.program_path + " on " + config.name + ": " + e.what());
        }
        if (options.verbose) out << compiler::describe(reblocked);
    }
    if (options.check) keep_intermediates(program, config, options.program_path);
    const uint64_t need = run_host_bytes(program, options.check);
    if (const std::string problem = hw::host_memory_problem(need, options.max_host_bytes); !problem.empty())
        throw std::runtime_error(options.program_path + " on " + config.name + ": " + problem);
    Prepared prepared = allocating("preparing the inputs and outputs (about " + hw::gib(need) + " estimated for the run)",
                                   [&] { return prepare_run(config, options, program, compiled_for, out); });
    const std::vector<compiler::BoundTensor>& tensors = prepared.bound.tensors;
    // The reference runs beside the simulation unless some op reads another's result: then it
    // waits for the simulated results, so that each op is checked on its own operands.
    const bool chained = reads_a_result(program.graph);
    std::optional<BackgroundReference> reference;
    if (options.check && !chained) reference.emplace(program.graph, prepared.inputs, !options.single_thread);

    const Simulated run = allocating("simulating (the device's memory and queues)",
                                     [&] { return simulate(config, options, std::move(prepared.job)); });
    if (const std::string failure = run.session.failure(); !failure.empty()) {
        std::cerr << "kpu-sim: error: " << failure << "\n";
        return kExitRunFailed;
    }
    std::map<std::string, std::vector<float>> outputs =
        allocating("reading the outputs back", [&] { return collect_outputs(run.session, options, tensors); });
    std::optional<CheckOutcome> check;
    if (options.check)
        check = check_results(program.graph, tensors, chained ? nullptr : &*reference, prepared.inputs, outputs);
    report_run(config, options, program, run, check, out);
    if (check && !check->ok) {
        for (const auto& line : check->lines)
            if (line.find("MISMATCH") != std::string::npos) std::cerr << "kpu-sim: check failed: " << line << "\n";
        return kExitCheckFailed;
    }
    return 0;
}

}  // namespace kpu::cli
