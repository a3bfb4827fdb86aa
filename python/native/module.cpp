// kpu._native: the C++ side of the Python package `kpu` (docs/python.md). Configs, the
// compiler (graph JSON and ONNX in, a Program out), the .kpu format, the reference
// evaluation (FUNCTIONAL mode) and a platform that stays elaborated and runs one program
// launch per run() through the host interface, as a driver does (CYCLE_ACCURATE mode).
// Errors cross into Python as RuntimeError carrying the C++ message; kpu/errors.py turns
// them into the package's exception types.
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <systemc>

#include "compiler/binder.h"
#include "compiler/compile_error.h"
#include "compiler/generate.h"
#include "compiler/graph_json.h"
#include "compiler/kpu_format.h"
#include "compiler/memory_plan.h"
#include "compiler/onnx_import.h"
#include "compiler/ops/op_schema.h"
#include "compiler/replay.h"
#include "hardware/address_map.h"
#include "hardware/config.h"
#include "platform/host_driver.h"
#include "platform/kpu_platform.h"
#include "sc_main/calibration.h"
#include "sc_main/layer_report.h"
#include "sc_main/npy.h"
#include "sc_main/reference.h"
#include "sc_main/report.h"
#include "sc_main/simulate.h"

namespace py = pybind11;

namespace kpu::python {

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

std::vector<hw::Override> parse_overrides(const std::vector<std::string>& texts) {
    std::vector<hw::Override> overrides;
    for (const auto& text : texts) overrides.push_back(hw::parse_override(text));
    return overrides;
}

/// A config as the Python side describes it: what seed 4's KPUConfig holds.
py::dict config_info(const std::string& path, const std::vector<std::string>& overrides) {
    const hw::Config c = hw::load_config(path, parse_overrides(overrides));
    const hw::Derived d = hw::derive(c);
    py::dict memory, compute, info;
    memory["dram_bytes"] = d.dram_capacity;
    memory["l3_bytes"] = d.l3_capacity;
    memory["l2_bytes"] = d.l2_capacity;
    memory["l1_bytes"] = d.l1_capacity;
    memory["sram_bytes"] = d.l3_capacity + d.l2_capacity + d.l1_capacity;
    memory["dram_bandwidth_bytes_per_s"] = d.dram_bandwidth;
    compute["compute_tiles"] = c.compute_tiles;
    compute["fabric_rows"] = c.fabric.rows;
    compute["fabric_cols"] = c.fabric.cols;
    compute["fabric_hz"] = c.clocks.fabric_hz;
    compute["peak_flops"] = d.peak_flops;
    compute["peak_tops"] = d.peak_flops * 1e-12;
    py::dict element_types;  // the fabric's rate and energy per element type (docs/config.md)
    for (size_t i = 0; i < d.fabric_peaks.size(); ++i) {
        py::dict type;
        type["macs_per_pe_cycle"] = c.fabric.element_types[i].ops_per_cycle;
        type["energy_pj_per_mac"] = d.fabric_peaks[i].energy_pj_per_op;
        type["peak_macs_per_s"] = d.fabric_peaks[i].ops_per_s;
        element_types[py::str(d.fabric_peaks[i].name)] = type;
    }
    compute["element_types"] = element_types;
    compute["vector_lanes"] = c.vector.lanes;
    info["name"] = c.name;
    info["description"] = c.description;
    info["memory"] = memory;
    info["compute"] = compute;
    info["static_power_w"] = c.static_power_w;
    py::dict energy;  // what the compiler's estimates charge (docs/stats.md, Energy model)
    energy["dram_pj_per_byte"] = c.dram.energy_pj_per_byte;
    energy["pj_per_mac"] = c.fabric.energy_pj_per_mac;
    energy["static_power_w"] = c.static_power_w;
    info["energy"] = energy;
    std::vector<std::string> precisions;
    for (const char* type : {"float32", "float16", "bfloat16", "int8"})
        if (c.supports(type)) precisions.push_back(type);
    info["precisions"] = precisions;
    info["describe"] = hw::describe(c);
    return info;
}

/// A compiled program and the weights that travel with it (an ONNX model's initializers).
struct NativeProgram {
    compiler::Program program;                         ///< as the .kpu holds it
    std::map<std::string, compiler::Weight> weights;   ///< by constant: values not inline in the graph
    std::vector<std::pair<std::string, std::string>> renamed;  ///< ONNX names -> graph names
};

/// The model at `path` (.onnx or graph .json) as a graph and its weights.
compiler::ImportedModel read_model(const std::string& path) {
    if (compiler::is_onnx_path(path)) return compiler::import_onnx(path);
    compiler::ImportedModel model;
    model.graph = compiler::load_graph(path);
    return model;
}

/// Python's calibration samples: each a dict of arrays by input name.
using PySamples = std::vector<std::map<std::string, FloatArray>>;

std::vector<cli::CalibrationSample> calibration_samples(const PySamples& samples) {
    std::vector<cli::CalibrationSample> out;
    for (size_t i = 0; i < samples.size(); ++i) {
        cli::CalibrationSample s;
        s.source = "calibration sample " + std::to_string(i);
        for (const auto& [name, array] : samples[i]) {
            s.values[name].assign(array.data(), array.data() + array.size());
            s.shapes[name].assign(array.shape(), array.shape() + array.ndim());
        }
        out.push_back(std::move(s));
    }
    return out;
}

NativeProgram compile_model(const std::string& path, const std::string& config_path,
                            const std::vector<std::string>& overrides, int opt_level,
                            const std::vector<std::string>& disabled_passes, const std::string& precision,
                            const PySamples& samples, const std::string& method) {
    const hw::Config config = hw::load_config(config_path, parse_overrides(overrides));
    compiler::CompileOptions options;
    if (opt_level < 0 || opt_level > compiler::kMaxOptLevel)
        throw compiler::CompileError("opt_level " + std::to_string(opt_level) + ": unknown optimization level (0 to " +
                                     std::to_string(compiler::kMaxOptLevel) + ")");
    options.passes.level = opt_level;
    for (const std::string& name : disabled_passes) {
        compiler::Pass pass;
        if (!compiler::parse_pass(name, pass))
            throw compiler::CompileError("disable_passes: unknown pass '" + name + "' (" +
                                         hw::names_in(compiler::kPassNames) + ")");
        options.passes.disabled.push_back(pass);
    }
    compiler::DType type;
    if (!hw::parse_dtype(precision, type)) throw compiler::CompileError("precision '" + precision + "': not an element type");
    const cli::CalibrationMethod calibration_method = cli::parse_calibration_method(method);
    compiler::ImportedModel model = read_model(path);
    if (type != compiler::DType::Float32) {
        std::vector<cli::CalibrationSample> given = calibration_samples(samples);
        std::vector<std::string> inputs;  // a sample's value named "": the graph's only input
        for (const compiler::Tensor& t : model.graph.tensors())
            if (t.role == compiler::TensorRole::Input) inputs.push_back(t.name);
        for (cli::CalibrationSample& s : given)
            if (s.values.count("")) {
                if (inputs.size() != 1)
                    throw cli::CalibrationError(s.source + ": the graph has " + std::to_string(inputs.size()) +
                                                " inputs: give each sample as a dict by input name");
                s.values[inputs[0]] = std::move(s.values[""]), s.shapes[inputs[0]] = s.shapes[""];
                s.values.erase(""), s.shapes.erase("");
            }
        model.graph =
            cli::apply_precision(model.graph, model.weights, type, config, given, calibration_method, options.passes);
    }
    NativeProgram p;
    p.program = compiler::compile(model.graph, config, options, &model.weights);
    compiler::record_sram_marks(p.program, config);
    p.weights = std::move(model.weights);
    p.renamed = std::move(model.renamed);
    return p;
}

/// Only imports (and checks) the model: the quick validation of KPUCompiler.validate_model.
void check_model(const std::string& path) { read_model(path); }

std::vector<float> to_vector(const FloatArray& array) { return {array.data(), array.data() + array.size()}; }

/// numpy's dtype for a tensor of `type` (bfloat16: uint16 bit patterns, numpy having none).
py::dtype numpy_dtype(hw::DType type) {
    switch (type) {
        case hw::DType::Float32: return py::dtype("float32");
        case hw::DType::Float16: return py::dtype("float16");
        case hw::DType::BFloat16: return py::dtype("uint16");
        case hw::DType::Int8: return py::dtype("int8");
        case hw::DType::Int32: return py::dtype("int32");
        case hw::DType::Int64: return py::dtype("int64");
    }
    return py::dtype("float32");
}

/// A numpy array of `type` (numpy_dtype) and `shape` holding `bytes`, the stored elements.
py::array typed_array(const std::vector<uint64_t>& shape, hw::DType type, const uint8_t* bytes) {
    std::vector<py::ssize_t> dims(shape.begin(), shape.end());
    py::array array(numpy_dtype(type), dims);
    std::memcpy(array.mutable_data(), bytes, size_t(array.nbytes()));
    return array;
}

/// `values` (cli::element_values' units) as a numpy array of `type`.
py::array values_array(const std::vector<uint64_t>& shape, hw::DType type, const std::vector<float>& values) {
    const std::vector<uint8_t> bytes = cli::element_bytes(values.data(), values.size(), type);
    return typed_array(shape, type, bytes.data());
}

/// `array`'s elements stored as a tensor of `type` (`what` names it in a message): a float32
/// tensor takes any numeric array (cast, as before the types), the others their own numpy
/// dtype only (bfloat16: uint16 bit patterns).
std::vector<uint8_t> typed_bytes(const py::array& array, hw::DType type, const std::string& what) {
    if (type == hw::DType::Float32) {
        const FloatArray floats = FloatArray::ensure(array);
        if (!floats) throw std::runtime_error(what + " is float32: its array cannot be read as float32");
        std::vector<uint8_t> bytes(size_t(floats.size()) * sizeof(float));
        std::memcpy(bytes.data(), floats.data(), bytes.size());
        return bytes;
    }
    const py::dtype want = numpy_dtype(type);
    if (array.dtype().kind() != want.kind() || array.dtype().itemsize() != want.itemsize())
        throw std::runtime_error(what + " is " + hw::to_string(type) + ": give a numpy array of " +
                                 want.attr("name").cast<std::string>() +
                                 (type == hw::DType::BFloat16 ? " (bfloat16 bit patterns)" : "") + ", not " +
                                 array.dtype().attr("name").cast<std::string>());
    const py::array contiguous = py::array::ensure(array, py::array::c_style);
    std::vector<uint8_t> bytes(size_t(contiguous.nbytes()));
    std::memcpy(bytes.data(), contiguous.data(), bytes.size());
    return bytes;
}

/// A weight from a numpy array: its dtype the array's (uint16: bfloat16 bit patterns), any
/// other array as float32.
compiler::Weight weight_of(const py::array& array) {
    compiler::Weight w;
    w.shape.assign(array.shape(), array.shape() + array.ndim());
    for (hw::DType type : {hw::DType::Float16, hw::DType::BFloat16, hw::DType::Int8, hw::DType::Int32}) {
        const py::dtype d = numpy_dtype(type);
        if (array.dtype().kind() != d.kind() || array.dtype().itemsize() != d.itemsize()) continue;
        const std::vector<uint8_t> bytes = typed_bytes(array, type, "the weight");
        const std::vector<float> values = cli::element_values(bytes.data(), bytes.size() / hw::dtype_bytes(type), type);
        w.dtype = type;
        if (hw::is_integer(type)) w.integers.assign(values.begin(), values.end());
        else w.values = values;
        return w;
    }
    w.values = to_vector(FloatArray::ensure(array));
    return w;
}

/// FUNCTIONAL mode: the reference evaluation of the graph (sc_main/reference.h) on `inputs`
/// and the program's weights; every computed tensor, by name.
/// Inputs and outputs are numpy arrays of their tensors' dtypes (numpy_dtype).
std::map<std::string, py::array> reference(const NativeProgram& p, const std::map<std::string, py::array>& inputs) {
    std::map<std::string, std::vector<float>> given;
    for (const auto& [name, array] : inputs) {
        const auto index = p.program.graph.find_tensor(name);
        const hw::DType type = index ? p.program.graph.tensor(*index).dtype : hw::DType::Float32;
        const std::vector<uint8_t> bytes = typed_bytes(array, type, "input '" + name + "'");
        given[name] = cli::element_values(bytes.data(), bytes.size() / hw::dtype_bytes(type), type);
    }
    for (const auto& [name, w] : p.weights)
        if (!given.count(name)) given[name] = cli::weight_values(w);
    std::map<std::string, cli::ReferenceTensor> computed;
    {
        py::gil_scoped_release release;
        computed = cli::run_reference(p.program.graph, given);
    }
    std::map<std::string, py::array> out;
    for (const auto& [name, tensor] : computed) {
        const compiler::Tensor& t = p.program.graph.tensor(*p.program.graph.find_tensor(name));
        std::vector<float> values(tensor.value.begin(), tensor.value.end());
        out.emplace(name, values_array(t.shape, t.dtype, values));
    }
    return out;
}

/// The compiler's cost model of the whole program on `config` (kpu-compile's "whole program
/// replayed"), in fabric cycles.
double replayed_cycles(const NativeProgram& p, const std::string& config_path, const std::vector<std::string>& overrides) {
    const hw::Config config = hw::load_config(config_path, parse_overrides(overrides));
    return compiler::replay_cycles(compiler::bind(p.program, config), config);
}

/// estimate_memory (docs/compiler.md, "Memory planning") of the program on `config`: its DRAM
/// granule plans a program that did not run plan-memory (one that did keeps its own).
py::dict estimate_memory(const NativeProgram& p, const std::string& config_path, const std::vector<std::string>& overrides) {
    const hw::Config config = hw::load_config(config_path, parse_overrides(overrides));
    const compiler::MemoryEstimate e = compiler::estimate_memory(p.program, config);
    py::dict levels, out;
    levels["L3"] = e.l3, levels["L2"] = e.l2, levels["L1"] = e.l1;
    out["weights"] = e.weights;
    out["activations"] = e.activations;
    out["peak_sram"] = e.l3 + e.l2 + e.l1;
    out["peak_dram"] = e.dram;
    out["peak_sram_by_level"] = levels;
    return out;
}

/// Binds the program on the config: throws the binder's message when it does not fit.
void check_fits(const NativeProgram& p, const std::string& config_path, const std::vector<std::string>& overrides) {
    const hw::Config config = hw::load_config(config_path, parse_overrides(overrides));
    compiler::bind(p.program, config);
}

/// The counters of a RunReport that keep counting over the platform's life (memory ports,
/// vector engines) made the run's own by subtracting those after the previous launch; the
/// figures derived from them follow.
void subtract_earlier(cli::RunReport& now, const cli::RunReport& before) {
    for (size_t i = 0; i < now.levels.size() && i < before.levels.size(); ++i) {
        now.levels[i].read_bytes -= before.levels[i].read_bytes;
        now.levels[i].write_bytes -= before.levels[i].write_bytes;
    }
    std::map<std::string, const cli::VectorActivity*> earlier;
    for (const auto& v : before.vectors) earlier[v.scope] = &v;
    std::vector<cli::VectorActivity> kept;
    now.vector_pj = 0;
    for (cli::VectorActivity v : now.vectors) {
        if (auto it = earlier.find(v.scope); it != earlier.end()) {
            v.commands -= it->second->commands, v.elements -= it->second->elements, v.busy -= it->second->busy;
            v.bytes_read -= it->second->bytes_read, v.bytes_written -= it->second->bytes_written;
            v.energy_pj -= it->second->energy_pj;
        }
        if (v.commands == 0) continue;
        now.vector_pj += v.energy_pj;
        kept.push_back(v);
    }
    now.vectors = std::move(kept);
    const double dram_bytes = double(now.levels[0].read_bytes + now.levels[0].write_bytes);
    const double compute_s = 2.0 * double(now.macs) / now.peak_flops, memory_s = dram_bytes / now.roofline_bandwidth;
    now.memory_bound = memory_s > compute_s;
    now.roofline_s = std::max(compute_s, memory_s);
}

/// One launch's results.
struct RunResult {
    std::map<std::string, py::array> outputs;  ///< the graph's outputs, by name, each of its dtype (numpy_dtype)
    uint64_t cycles = 0;                        ///< the CYCLES register
    std::string stats;  ///< the stats JSON (docs/stats.md) of this launch alone
    /// Per graph op (by name): first start and last end of its engine ops (us of simulated
    /// time from START), bytes moved, engine ops.
    std::map<std::string, std::map<std::string, double>> op_metrics;
};

class Platform;

/// The host CPU's thread: waits for a launch request, then lets the driver run the job.
class Launcher : public sc_core::sc_module {
public:
    Launcher(sc_core::sc_module_name name, platform::HostDriver& host) : sc_core::sc_module(name), host_(host) {
        SC_HAS_PROCESS(Launcher);
        SC_THREAD(loop);
    }
    /// Asks for one launch; the caller then runs the simulation until it has no events left.
    void request() {
        pending_ = true, done_ = false;
        requested_.notify(sc_core::SC_ZERO_TIME);
    }
    bool done() const { return done_; }

private:
    void loop() {
        for (;;) {
            while (!pending_) wait(requested_);
            pending_ = false;
            host_.launch();
            done_ = true;
        }
    }
    platform::HostDriver& host_;
    sc_core::sc_event requested_;
    bool pending_ = false;  ///< a launch is requested, not yet begun
    bool done_ = false;     ///< the last requested launch has ended
};

/// Counts the elaborations in this process (tests check that a second run does not add one).
std::atomic<int> elaborations{0};

/// One KPU of one config and the host that drives it, elaborated once; each run() is one
/// program launch through the host interface. SystemC allows one module tree per process,
/// built before the first sc_start: a process holds at most one Platform (kpu/runtime.py
/// runs each config's in a worker process of its own).
class Platform {
public:
    Platform(const std::string& config_path, const std::vector<std::string>& overrides)
        : config_(hw::load_config(config_path, parse_overrides(overrides))) {
        if (elaborations > 0)
            throw std::runtime_error("this process has elaborated a platform already (SystemC builds one module tree "
                                     "per process): use a worker process per config");
        ++elaborations;
        platform::PlatformOptions options;
        kpu_ = std::make_unique<platform::KpuPlatform>("kpu", config_, options);
        host_ = std::make_unique<platform::HostDriver>("kpu_host", job_, false);
        irq_ = std::make_unique<sc_core::sc_signal<bool>>("kpu_irq");
        host_->socket.bind(kpu_->host_socket);
        kpu_->irq(*irq_);
        host_->irq(*irq_);
        launcher_ = std::make_unique<Launcher>("kpu_launcher", *host_);
    }

    /// Prepares `program` (bound, its tensors laid out) with its weights in place.
    void load(const NativeProgram& p) {
        cli::Prepared prepared = cli::prepare(config_, p.program, "", 0);
        for (auto& buffer : prepared.job.inputs) {
            auto it = p.weights.find(buffer.name);
            if (it == p.weights.end()) continue;
            const std::vector<uint8_t> bytes = cli::weight_bytes(it->second);  // in the weight's dtype
            std::memcpy(buffer.bytes.data(), bytes.data(), std::min(bytes.size(), buffer.bytes.size()));
        }
        job_ = std::move(prepared.job);
        program_ = p.program;
        weights_.clear();
        for (const auto& [name, w] : p.weights) weights_.insert(name);
        loaded_ = true;
    }

    RunResult run(const std::map<std::string, py::array>& inputs) {
        begin(inputs);
        return finish();
    }

    /// Starts a launch with `inputs` (numpy arrays of their tensors' dtypes, numpy_dtype);
    /// nothing is simulated until advance() or finish().
    void begin(const std::map<std::string, py::array>& inputs) {
        if (!loaded_) throw std::runtime_error("no program loaded");
        if (launched_ && !launcher_->done()) throw std::runtime_error("a launch is running: finish it first");
        for (auto& buffer : job_.inputs) {
            auto it = inputs.find(buffer.name);
            if (it == inputs.end()) {
                if (weights_.count(buffer.name) || is_inline_constant(buffer.name)) continue;
                throw std::runtime_error("no data for input '" + buffer.name + "'");
            }
            const compiler::Tensor& t = program_.graph.tensor(*program_.graph.find_tensor(buffer.name));
            const std::vector<uint8_t> bytes = typed_bytes(it->second, t.dtype, "input '" + buffer.name + "'");
            if (bytes.size() != buffer.bytes.size())
                throw std::runtime_error("input '" + buffer.name + "' has " + std::to_string(it->second.size()) +
                                         " elements, the program's tensor " +
                                         std::to_string(buffer.bytes.size() / hw::dtype_bytes(t.dtype)));
            std::memcpy(buffer.bytes.data(), bytes.data(), buffer.bytes.size());
        }
        wall_start_ = std::chrono::steady_clock::now();
        launch_time_ = sc_core::sc_time_stamp();
        launcher_->request();
        launched_ = true;
    }

    /// Simulates `cycles` more fabric cycles of the launch (less when it ends before).
    void advance(uint64_t cycles) {
        if (!launched_) throw std::runtime_error("no launch begun");
        py::gil_scoped_release release;
        const sc_core::sc_time step(double(cycles) / config_.clocks.fabric_hz, sc_core::SC_SEC);
        // To the time exactly (SC_RUN_TO_TIME): the next event may lie beyond it.
        sc_core::sc_start(step);
    }

    /// Where the launch is: fabric cycles since it began, whether it is done, device ops done.
    py::dict state() const {
        py::dict d;
        // Before this launch's START the sequencer still counts the previous one.
        const bool started = launched_ && kpu_->started_at() >= launch_time_;
        const model::Sequencer::Progress p = started ? kpu_->sequencer().progress() : model::Sequencer::Progress{};
        d["cycle"] = uint64_t(std::llround((sc_core::sc_time_stamp() - launch_time_).to_seconds() * config_.clocks.fabric_hz));
        d["done"] = launched_ && launcher_->done();
        d["ops_completed"] = p.completed;
        d["ops_total"] = p.total;
        d["simulated_time_s"] = sc_core::sc_time_stamp().to_seconds();
        return d;
    }

    /// Simulates the launch to its end and returns its results.
    RunResult finish() {
        if (!launched_) throw std::runtime_error("no launch begun");
        {
            py::gil_scoped_release release;
            sc_core::sc_start();
        }
        const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start_).count();
        const platform::HostResult& r = host_->result();
        std::string failure;
        if (!r.failure.empty()) failure = "host: " + r.failure;
        else if (!launcher_->done() || !r.interrupted) failure = "the program got stuck: " + kpu_->stuck_report();
        else if (r.status != platform::HostStatus::Done)
            failure = "the device reported error " + std::to_string(uint64_t(r.error)) + ": " + kpu_->host_error_message();
        if (!failure.empty()) throw std::runtime_error(failure);

        RunResult result;
        result.cycles = r.cycles;
        for (const auto& buffer : job_.outputs) {
            const compiler::Tensor& t = program_.graph.tensor(*program_.graph.find_tensor(buffer.name));
            result.outputs.emplace(buffer.name, typed_array(t.shape, t.dtype, buffer.bytes.data()));
        }
        cli::RunReport report = cli::make_report(config_, *kpu_, "program", wall_s);
        const cli::RunReport cumulative = report;
        if (previous_) subtract_earlier(report, *previous_);
        previous_ = std::make_unique<cli::RunReport>(cumulative);
        nlohmann::json stats = cli::stats_json(report, nullptr);
        const cli::LayerReport layers = cli::make_layer_report(report, config_, kpu_->program(), program_);
        stats["layer_report"] = cli::layer_summary_json(layers);
        stats["layers"] = cli::layer_rows_json(layers);  // KPUPerformanceMetrics.layer_metrics
        result.stats = stats.dump();
        result.op_metrics = per_graph_op(report);
        return result;
    }

    static int elaboration_count() { return elaborations; }

    /// The memory traffic of the launch so far, by completed move: (cycle, level, address,
    /// bytes) for the read of its source when it started and the write of its destination when
    /// it completed, in time order; cycles from the launch's START.
    std::vector<std::tuple<uint64_t, std::string, uint64_t, uint64_t>> memory_trace() const {
        std::vector<std::tuple<uint64_t, std::string, uint64_t, uint64_t>> out;
        const compiler::BoundProgram& bound = kpu_->program();
        const auto& records = kpu_->sequencer().records();
        const double start = kpu_->started_at().to_seconds(), hz = config_.clocks.fabric_hz;
        auto level = [&](uint64_t addr) {
            hw::Location where;
            return kpu_->address_map().decode(addr, 1, where) ? std::string(hw::to_string(where.level)) : std::string("?");
        };
        for (const compiler::BoundOp& op : bound.ops) {
            if (op.kind != compiler::BoundOp::Kind::Move || op.id >= records.size()) continue;
            const auto& rec = records[op.id];
            if (rec.state != model::Sequencer::OpRecord::State::Done) continue;
            const uint64_t bytes = op.move.bytes();
            out.emplace_back(uint64_t(std::llround((rec.started.to_seconds() - start) * hz)), level(op.move.src), op.move.src, bytes);
            out.emplace_back(uint64_t(std::llround((rec.completed.to_seconds() - start) * hz)), level(op.move.dst), op.move.dst, bytes);
        }
        std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return std::get<0>(a) < std::get<0>(b); });
        return out;
    }

private:
    bool is_inline_constant(const std::string& name) const {
        const auto index = program_.graph.find_tensor(name);
        return index && std::holds_alternative<std::vector<double>>(program_.graph.tensor(*index).value);
    }

    /// The engine ops' records gathered by the graph op they belong to (bound op -> DFX op ->
    /// task -> kernel -> graph op).
    std::map<std::string, std::map<std::string, double>> per_graph_op(const cli::RunReport& report) const {
        const compiler::BoundProgram& bound = kpu_->program();
        std::map<uint32_t, uint32_t> task_of;  // DFX op -> task
        for (const auto& op : bound.ops) task_of[op.dfx_op];
        compiler::for_each_op(program_, [&](const compiler::DfxOp& d) {
            auto it = task_of.find(d.id);
            if (it != task_of.end()) it->second = d.task;
        });
        std::map<std::string, std::map<std::string, double>> out;
        for (const cli::OpActivity& a : report.ops) {
            const compiler::BoundOp& op = bound.ops[a.id];
            const uint32_t kernel = program_.tasks.at(task_of.at(op.dfx_op)).kernel;
            const std::string& name = program_.graph.ops()[program_.kernels[kernel].op].name;
            auto [it, added] = out.emplace(name, std::map<std::string, double>{});
            auto& m = it->second;
            const double start_us = double(a.start - report.start) * 1e-6, end_us = double(a.end - report.start) * 1e-6;
            if (added) m = {{"start_us", start_us}, {"end_us", end_us}, {"bytes", 0.0}, {"engine_ops", 0.0}};
            m["start_us"] = std::min(m["start_us"], start_us);
            m["end_us"] = std::max(m["end_us"], end_us);
            m["bytes"] += double(a.bytes);
            m["engine_ops"] += 1;
        }
        for (auto& [name, m] : out) {
            m["time_us"] = m["end_us"] - m["start_us"];
            m["cycles"] = std::round(m["time_us"] * 1e-6 * config_.clocks.fabric_hz);
        }
        return out;
    }

    hw::Config config_;
    platform::HostJob job_;  ///< the loaded program's: image, inputs and weights, outputs read back
    std::unique_ptr<platform::KpuPlatform> kpu_;
    std::unique_ptr<platform::HostDriver> host_;
    std::unique_ptr<sc_core::sc_signal<bool>> irq_;
    std::unique_ptr<Launcher> launcher_;  ///< the host CPU's thread that starts each launch
    compiler::Program program_;           ///< the loaded program
    std::set<std::string> weights_;       ///< its constants whose values came with it
    std::unique_ptr<cli::RunReport> previous_;  ///< cumulative counters after the last launch
    bool loaded_ = false;
    bool launched_ = false;  ///< a launch has begun (and maybe ended)
    sc_core::sc_time launch_time_;  ///< when the last launch was requested
    std::chrono::steady_clock::time_point wall_start_;
};

/// Python's Calibrator: the native one over a graph given as JSON text and its weights.
struct NativeCalibrator {
    NativeCalibrator(const std::string& graph_json, const std::map<std::string, FloatArray>& weights)
        : calibrator(compiler::parse_graph(graph_json, "calibration graph"), to_weights(weights)) {}

    static compiler::Weights to_weights(const std::map<std::string, FloatArray>& arrays) {
        compiler::Weights out;
        for (const auto& [name, array] : arrays) {
            compiler::Weight w;
            w.shape.assign(array.shape(), array.shape() + array.ndim());
            w.values = to_vector(array);
            out[name] = std::move(w);
        }
        return out;
    }

    void collect(const std::map<std::string, FloatArray>& sample) {
        const std::vector<cli::CalibrationSample> s = calibration_samples({sample});
        const std::string source = "calibration sample " + std::to_string(calibrator.samples());
        py::gil_scoped_release release;
        calibrator.collect(s[0].values, s[0].shapes, source);
    }

    cli::Calibrator calibrator;  ///< the statistics so far
};

using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;
using CountArray = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

}  // namespace

}  // namespace kpu::python

/// libsystemc refers to the sc_main an executable defines; a Python extension has none, and
/// never calls it (the platform is built and run by the calls above).
extern "C" __attribute__((visibility("default"))) int sc_main(int, char**) { return 1; }

using namespace kpu::python;  // NOLINT: the module's definitions below name them
namespace compiler = kpu::compiler;
namespace cli = kpu::cli;

PYBIND11_MODULE(_native, m) {
    m.doc() = "kpu-sim's compiler, reference and platform for the Python package kpu";
    m.def("config_info", &config_info, py::arg("path"), py::arg("overrides") = std::vector<std::string>{});
    m.def("check_model", &check_model, py::arg("path"));
    m.def("op_kinds", [] { return compiler::op_registry().kinds(); }, "the graph op kinds the compiler takes, sorted");

    // Calibration (sc_main/calibration.h): kpu.calibration wraps these.
    py::register_exception<cli::CalibrationError>(m, "CalibrationError", PyExc_RuntimeError);
    m.attr("MIN_CALIBRATION_SAMPLES") = cli::kMinCalibrationSamples;
    m.attr("HISTOGRAM_BINS") = cli::kHistogramBins;
    m.attr("QUANTIZED_BINS") = cli::kQuantizedBins;
    m.attr("DEFAULT_PERCENTILE") = cli::kDefaultPercentile;
    py::class_<cli::TensorStats>(m, "TensorStats")
        .def(py::init<uint32_t>(), py::arg("bins") = cli::kHistogramBins)
        .def("add", [](cli::TensorStats& s, const DoubleArray& values) { s.add(values.data(), uint64_t(values.size())); })
        .def_readwrite("min", &cli::TensorStats::min)
        .def_readwrite("max", &cli::TensorStats::max)
        .def_readwrite("abs_max", &cli::TensorStats::abs_max)
        .def_readwrite("count", &cli::TensorStats::count)
        .def_readwrite("range", &cli::TensorStats::range)
        .def_property(
            "counts",
            [](const cli::TensorStats& s) {
                CountArray out(py::ssize_t(s.counts.size()));
                std::memcpy(out.mutable_data(), s.counts.data(), s.counts.size() * sizeof(int64_t));
                return out;
            },
            [](cli::TensorStats& s, const CountArray& counts) { s.counts.assign(counts.data(), counts.data() + counts.size()); })
        .def_property_readonly("bin_width", &cli::TensorStats::bin_width);
    m.def(
        "calibration_threshold",
        [](const cli::TensorStats& s, const std::string& method, double percentile) {
            return cli::choose_threshold(s, cli::parse_calibration_method(method), percentile);
        },
        py::arg("stats"), py::arg("method"), py::arg("percentile") = cli::kDefaultPercentile);
    m.def("kl_divergence_curve", [](const CountArray& counts, uint32_t quantized_bins) {
        return cli::kl_divergence_curve(std::vector<int64_t>(counts.data(), counts.data() + counts.size()), quantized_bins);
    });
    m.def("activation_scale", &cli::activation_scale, py::arg("stats"), py::arg("threshold"), py::arg("symmetric") = true);
    m.def("weight_scales", [](const DoubleArray& rows, uint64_t channels) {
        return cli::weight_scales(std::vector<double>(rows.data(), rows.data() + rows.size()), channels);
    });
    py::class_<NativeCalibrator>(m, "Calibrator")
        .def(py::init<const std::string&, const std::map<std::string, FloatArray>&>(), py::arg("graph_json"),
             py::arg("weights"))
        .def("collect", &NativeCalibrator::collect, py::arg("sample"))
        .def_property_readonly("samples", [](const NativeCalibrator& c) { return c.calibrator.samples(); })
        .def(
            "table_json",
            [](const NativeCalibrator& c, const std::string& method, bool symmetric, double percentile, uint64_t min_samples) {
                return cli::calibration_table_json(
                    c.calibrator.table(cli::parse_calibration_method(method), symmetric, percentile, min_samples));
            },
            py::arg("method"), py::arg("symmetric"), py::arg("percentile"), py::arg("min_samples"));

    py::class_<NativeProgram>(m, "Program")
        .def_static("compile", &compile_model, py::arg("path"), py::arg("config_path"),
                    py::arg("overrides") = std::vector<std::string>{}, py::arg("opt_level") = compiler::kDefaultOptLevel,
                    py::arg("disabled_passes") = std::vector<std::string>{}, py::arg("precision") = "float32",
                    py::arg("calibration") = PySamples{}, py::arg("calibration_method") = "entropy")
        .def_property_readonly("passes",
                               [](const NativeProgram& p) {
                                   std::vector<std::string> names;
                                   for (compiler::Pass pass : p.program.passes) names.push_back(compiler::to_string(pass));
                                   return names;
                               })
        .def_static("from_kpu",
                    [](const std::string& text, const std::string& source) {
                        NativeProgram p;
                        p.program = compiler::read_kpu(text, source);
                        return p;
                    })
        .def("kpu_text", [](const NativeProgram& p) { return compiler::write_kpu(p.program); })
        .def_property(
            "weights_dir", [](const NativeProgram& p) { return p.program.weights; },
            [](NativeProgram& p, const std::string& dir) { p.program.weights = dir; })
        .def("weights",
             [](const NativeProgram& p) {  // each of its dtype (numpy_dtype)
                 std::map<std::string, py::array> out;
                 for (const auto& [name, w] : p.weights) {
                     const std::vector<uint8_t> bytes = kpu::cli::weight_bytes(w);
                     out.emplace(name, typed_array(w.shape, w.dtype, bytes.data()));
                 }
                 return out;
             })
        .def("set_weight",
             [](NativeProgram& p, const std::string& name, const py::array& array) {
                 p.weights[name] = weight_of(array);
             })
        .def_readonly("renamed", &NativeProgram::renamed)
        .def("reference", &reference, py::arg("inputs"))
        .def("replayed_cycles", &replayed_cycles, py::arg("config_path"),
             py::arg("overrides") = std::vector<std::string>{})
        .def("check_fits", &check_fits, py::arg("config_path"), py::arg("overrides") = std::vector<std::string>{})
        .def("estimate_memory", &estimate_memory, py::arg("config_path"),
             py::arg("overrides") = std::vector<std::string>{});

    py::class_<RunResult>(m, "RunResult")
        .def_readonly("outputs", &RunResult::outputs)
        .def_readonly("cycles", &RunResult::cycles)
        .def_readonly("stats", &RunResult::stats)
        .def_readonly("op_metrics", &RunResult::op_metrics);

    py::class_<Platform>(m, "Platform")
        .def(py::init<const std::string&, const std::vector<std::string>&>(), py::arg("config_path"),
             py::arg("overrides") = std::vector<std::string>{})
        .def("load", &Platform::load)
        .def("run", &Platform::run)
        .def("begin", &Platform::begin)
        .def("advance", &Platform::advance)
        .def("finish", &Platform::finish)
        .def("state", &Platform::state)
        .def("memory_trace", &Platform::memory_trace)
        .def_static("elaborations", &Platform::elaboration_count);
}
