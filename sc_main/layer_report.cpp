#include "sc_main/layer_report.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "hardware/output_file.h"
#include "hardware/vector_timing.h"

namespace kpu::cli {

std::string source_layer(const std::string& op_name) {
    const size_t slash = op_name.rfind('/');
    const size_t dot = op_name.find('.', slash == std::string::npos ? 0 : slash + 1);
    return dot == std::string::npos || dot == 0 ? op_name : op_name.substr(0, dot);
}

double LayerReport::roofline_sum_s() const {
    double sum = 0;
    for (const auto& l : layers) sum += l.roofline_s();
    return sum;
}

double LayerReport::roofline_ratio() const {
    const double sum = roofline_sum_s();
    return sum > 0 ? total_s / sum : 0;
}

namespace {

/// The layer of every kernel: kernel index -> index into LayerReport::layers (program order).
std::vector<uint32_t> kernel_layers(const compiler::Program& program, LayerReport& out) {
    std::map<std::string, uint32_t> index;
    std::vector<uint32_t> of(program.kernels.size());
    for (size_t k = 0; k < program.kernels.size(); ++k) {
        const compiler::Op& op = program.graph.ops().at(program.kernels[k].op);
        auto [it, added] = index.emplace(source_layer(op.name), uint32_t(out.layers.size()));
        if (added) out.layers.push_back({}), out.layers.back().name = it->first;
        LayerRow& row = out.layers[it->second];
        row.parts.push_back(op.name);
        if (std::find(row.kinds.begin(), row.kinds.end(), op.kind) == row.kinds.end()) row.kinds.push_back(op.kind);
        of[k] = it->second;
    }
    return of;
}

/// Charges every picosecond of [start, end) to one layer (the header's rule).
void attribute_time(const RunReport& report, const std::vector<uint32_t>& op_layer, LayerReport& out) {
    struct Event {
        uint64_t t;
        int delta;
        uint32_t layer;
    };
    std::vector<Event> events;
    events.reserve(2 * report.ops.size());
    for (size_t i = 0; i < report.ops.size(); ++i) {
        const OpActivity& a = report.ops[i];
        if (a.end > a.start) events.push_back({a.start, +1, op_layer[i]}), events.push_back({a.end, -1, op_layer[i]});
    }
    // Ends before starts at the same time: a layer ending as another begins is not active.
    std::sort(events.begin(), events.end(),
              [](const Event& a, const Event& b) { return a.t != b.t ? a.t < b.t : a.delta < b.delta; });
    std::vector<uint64_t> active_ops(out.layers.size());
    std::set<uint32_t> active;  // layers with an op in progress
    uint64_t t = report.start, idle = 0;
    uint32_t last = 0;
    auto account = [&](uint64_t until) {
        until = std::min(until, report.end);
        if (until <= t) return;
        if (active.empty()) {
            idle += until - t;  // to the layer that starts next
        } else {
            last = *active.begin();
            out.layers[last].time_ps += until - t;
        }
        t = until;
    };
    for (const Event& e : events) {
        account(e.t);
        if (e.delta > 0) {
            if (idle) out.layers[e.layer].time_ps += idle, idle = 0;
            if (active_ops[e.layer]++ == 0) active.insert(e.layer);
        } else if (--active_ops[e.layer] == 0) {
            active.erase(e.layer);
        }
    }
    account(report.end);
    if (!out.layers.empty()) out.layers[events.empty() ? 0 : last].time_ps += idle;

    // Picoseconds -> cycles by largest remainder: the cycles add up to total_cycles.
    const uint64_t span = report.end - report.start;
    if (span == 0) return;
    std::vector<std::pair<double, size_t>> remainders;
    uint64_t assigned = 0;
    for (size_t i = 0; i < out.layers.size(); ++i) {
        const double exact = double(out.layers[i].time_ps) / double(span) * double(out.total_cycles);
        out.layers[i].cycles = uint64_t(std::floor(exact));
        assigned += out.layers[i].cycles;
        remainders.push_back({exact - std::floor(exact), i});
    }
    std::stable_sort(remainders.begin(), remainders.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    for (size_t i = 0; assigned < out.total_cycles && !remainders.empty(); ++i, ++assigned)
        ++out.layers[remainders[i % remainders.size()].second].cycles;
}

}  // namespace

LayerReport make_layer_report(const RunReport& report, const hw::Config& config, const compiler::BoundProgram& bound,
                              const compiler::Program& program) {
    LayerReport out;
    out.total_cycles = report.total_cycles;
    out.total_s = report.total_s();
    out.fabric_hz = report.fabric_hz;
    const std::vector<uint32_t> kernel_layer = kernel_layers(program, out);

    // Bound op -> DFX op -> task -> kernel -> layer.
    std::map<uint32_t, uint32_t> task_of;
    for (const auto& a : report.ops) task_of[bound.ops[a.id].dfx_op];
    compiler::for_each_op(program, [&](const compiler::DfxOp& d) {
        auto it = task_of.find(d.id);
        if (it != task_of.end()) it->second = d.task;
    });
    const uint64_t dram_size = uint64_t(config.dram.count) * config.dram.capacity_bytes;
    std::vector<uint32_t> op_layer(report.ops.size());
    std::vector<bool> seen(out.layers.size());
    for (size_t i = 0; i < report.ops.size(); ++i) {
        const OpActivity& a = report.ops[i];
        const compiler::BoundOp& op = bound.ops[a.id];
        op_layer[i] = kernel_layer.at(program.tasks.at(task_of.at(op.dfx_op)).kernel);
        LayerRow& row = out.layers[op_layer[i]];
        const uint64_t start = a.start - report.start, end = a.end - report.start;
        row.start_ps = seen[op_layer[i]] ? std::min(row.start_ps, start) : start;
        row.end_ps = std::max(row.end_ps, end);
        seen[op_layer[i]] = true;
        ++row.engine_ops;
        switch (op.kind) {
            case compiler::BoundOp::Kind::Matmul:
                row.macs += uint64_t(op.matmul.m) * op.matmul.n * op.matmul.k;
                break;
            case compiler::BoundOp::Kind::Vector:
                row.vector_cycles += hw::vector_cycles(op.vector, config.vector);
                for (const hw::VectorPass& p : hw::vector_passes(op.vector, config.vector)) row.vector_elements += p.elements;
                break;
            case compiler::BoundOp::Kind::Move:
                // DRAM is the device's lowest addresses; a DRAM-to-DRAM copy reads and writes it.
                row.dram_bytes += (op.move.src < dram_size ? a.bytes : 0) + (op.move.dst < dram_size ? a.bytes : 0);
                if (op.engine == compiler::EngineKind::BlockMover) row.block_mover_bytes += a.bytes;
                if (op.engine == compiler::EngineKind::Streamer) row.streamer_bytes += a.bytes;
                break;
            case compiler::BoundOp::Kind::Drain: break;
        }
    }

    // Each part of the work at the config's peak: the fabric's MACs, every tile's vector
    // engine in parallel, the memory roof (as the stats' roofline), the movers' aggregates.
    const hw::Derived d = hw::derive(config);
    const double tiles = std::max<uint32_t>(config.compute_tiles, 1);
    for (LayerRow& row : out.layers) {
        row.bound_s[size_t(LayerBound::Fabric)] = d.peak_macs_per_s > 0 ? double(row.macs) / d.peak_macs_per_s : 0;
        row.bound_s[size_t(LayerBound::Vector)] = double(row.vector_cycles) / tiles / config.clocks.fabric_hz;
        row.bound_s[size_t(LayerBound::Dram)] = d.dma_bandwidth > 0 ? double(row.dram_bytes) / d.dma_bandwidth : 0;
        row.bound_s[size_t(LayerBound::BlockMover)] =
            d.l3_l2_bandwidth > 0 ? double(row.block_mover_bytes) / d.l3_l2_bandwidth : 0;
        row.bound_s[size_t(LayerBound::Streamer)] = d.l2_l1_bandwidth > 0 ? double(row.streamer_bytes) / d.l2_l1_bandwidth : 0;
        row.bound_by = LayerBound(std::max_element(std::begin(row.bound_s), std::end(row.bound_s)) - std::begin(row.bound_s));
    }
    attribute_time(report, op_layer, out);
    return out;
}

void write_layer_csv(const LayerReport& layers, const std::string& path) {
    hw::OutputFile file(path);
    if (!file.is_open()) throw std::runtime_error(path + ": cannot write the layer report");
    std::ostream& out = file.stream();
    auto quoted = [](const std::string& text) {
        std::string q = "\"";
        for (char c : text) q += c == '"' ? std::string("\"\"") : std::string(1, c);
        return q + "\"";
    };
    auto join = [](const std::vector<std::string>& items, const char* sep) {
        std::string s;
        for (const auto& item : items) s += (s.empty() ? "" : sep) + item;
        return s;
    };
    const double hz = layers.fabric_hz;
    out << "layer,kinds,parts,cycles,share_pct,time_us,flops,macs,dram_bytes,roofline_cycles,efficiency,bound_by,"
           "fabric_cycles,vector_cycles,dram_cycles,block_mover_cycles,streamer_cycles,start_us,end_us,engine_ops\n";
    out << std::setprecision(6);
    for (const LayerRow& l : layers.layers) {
        const double time_s = double(l.cycles) / hz;
        out << quoted(l.name) << "," << quoted(join(l.kinds, "+")) << "," << quoted(join(l.parts, " ")) << ","
            << l.cycles << ","
            << (layers.total_cycles ? 100.0 * double(l.cycles) / double(layers.total_cycles) : 0.0) << ","
            << time_s * 1e6 << "," << l.flops() << "," << l.macs << "," << l.dram_bytes << ","
            << l.roofline_s() * hz << "," << (time_s > 0 ? l.roofline_s() / time_s : 0.0) << ","
            << to_string(l.bound_by);
        for (double s : l.bound_s) out << "," << s * hz;
        out << "," << double(l.start_ps) * 1e-6 << "," << double(l.end_ps) * 1e-6 << "," << l.engine_ops << "\n";
    }
    if (const std::string problem = file.close(); !problem.empty()) throw std::runtime_error(path + ": " + problem);
}

std::string layer_summary_line(const LayerReport& layers) {
    std::ostringstream out;
    out << "  layers            " << layers.layers.size() << " source layers; the sum of their roofline bounds is "
        << std::setprecision(4) << layers.roofline_sum_s() * 1e6 << " us, the run " << std::fixed << std::setprecision(2)
        << layers.roofline_ratio() << " x that\n";
    return out.str();
}

nlohmann::json layer_summary_json(const LayerReport& layers) {
    return {{"layers", layers.layers.size()},
            {"roofline_sum_us", layers.roofline_sum_s() * 1e6},
            {"roofline_ratio", layers.roofline_ratio()}};
}

}  // namespace kpu::cli
