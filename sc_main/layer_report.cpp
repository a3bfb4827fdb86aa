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
        for (const std::string& f : op.fused_with)
            if (std::find(row.fused.begin(), row.fused.end(), f) == row.fused.end()) row.fused.push_back(f);
        if (std::find(row.kinds.begin(), row.kinds.end(), op.kind) == row.kinds.end()) row.kinds.push_back(op.kind);
        of[k] = it->second;
    }
    return of;
}

}  // namespace

std::vector<uint64_t> attribute_ps(const std::vector<LayerInterval>& ops, size_t layers, uint64_t start,
                                   uint64_t end) {
    std::vector<uint64_t> out(layers);
    struct Event {
        uint64_t t;
        int delta;
        uint32_t layer;
    };
    std::vector<Event> events;
    events.reserve(2 * ops.size());
    for (const LayerInterval& op : ops)
        if (op.end > op.start) events.push_back({op.start, +1, op.layer}), events.push_back({op.end, -1, op.layer});
    // Ends before starts at the same time: a layer ending as another begins is not active.
    std::sort(events.begin(), events.end(),
              [](const Event& a, const Event& b) { return a.t != b.t ? a.t < b.t : a.delta < b.delta; });
    std::vector<uint64_t> active_ops(layers);
    std::set<uint32_t> active;  // layers with an op in progress
    uint64_t t = start, idle = 0;
    uint32_t last = 0;
    auto account = [&](uint64_t until) {
        until = std::min(until, end);
        if (until <= t) return;
        if (active.empty()) {
            idle += until - t;  // to the layer that starts next
        } else {
            last = *active.begin();
            out[last] += until - t;
        }
        t = until;
    };
    for (const Event& e : events) {
        account(e.t);
        if (e.delta > 0) {
            if (idle) out[e.layer] += idle, idle = 0;
            if (active_ops[e.layer]++ == 0) active.insert(e.layer);
        } else if (--active_ops[e.layer] == 0) {
            active.erase(e.layer);
        }
    }
    account(end);
    if (layers) out[last] += idle;  // after the last op: the last layer (none ran: the first)
    return out;
}

std::vector<uint64_t> to_cycles(const std::vector<uint64_t>& ps, uint64_t total_cycles) {
    uint64_t span = 0;
    for (uint64_t p : ps) span += p;
    std::vector<uint64_t> cycles(ps.size());
    if (span == 0) return cycles;
    std::vector<std::pair<double, size_t>> remainders;
    uint64_t assigned = 0;
    for (size_t i = 0; i < ps.size(); ++i) {
        const double exact = double(ps[i]) / double(span) * double(total_cycles);
        cycles[i] = std::min(uint64_t(std::floor(exact)), total_cycles - assigned);
        assigned += cycles[i];
        remainders.push_back({exact - double(cycles[i]), i});
    }
    std::stable_sort(remainders.begin(), remainders.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    for (size_t i = 0; assigned < total_cycles; ++i, ++assigned) ++cycles[remainders[i % remainders.size()].second];
    return cycles;
}

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
    std::vector<LayerInterval> intervals(report.ops.size());
    for (size_t i = 0; i < report.ops.size(); ++i) intervals[i] = {report.ops[i].start, report.ops[i].end, op_layer[i]};
    const std::vector<uint64_t> ps = attribute_ps(intervals, out.layers.size(), report.start, report.end);
    const std::vector<uint64_t> cycles = to_cycles(ps, out.total_cycles);
    for (size_t i = 0; i < out.layers.size(); ++i) out.layers[i].time_ps = ps[i], out.layers[i].cycles = cycles[i];
    return out;
}

namespace {

std::string joined(const std::vector<std::string>& items, const char* separator) {
    std::string s;
    for (const auto& item : items) s += (s.empty() ? "" : separator) + item;
    return s;
}

/// One layer's columns, in the CSV's order (docs/stats.md, "Per-layer report").
nlohmann::ordered_json layer_fields(const LayerReport& layers, const LayerRow& l) {
    const double hz = layers.fabric_hz, time_s = double(l.cycles) / hz;
    nlohmann::ordered_json row = {
        {"layer", l.name},
        {"kinds", joined(l.kinds, "+")},
        {"parts", joined(l.parts, " ")},
        {"fused_with", joined(l.fused, " ")},
        {"cycles", l.cycles},
        {"share_pct", layers.total_cycles ? 100.0 * double(l.cycles) / double(layers.total_cycles) : 0.0},
        {"time_us", time_s * 1e6},
        {"flops", l.flops()},
        {"macs", l.macs},
        {"dram_bytes", l.dram_bytes},
        {"roofline_cycles", l.roofline_s() * hz},
        {"efficiency", time_s > 0 ? l.roofline_s() / time_s : 0.0},
        {"bound_by", to_string(l.bound_by)}};
    for (size_t b = 0; b < std::size(kLayerBoundNames); ++b)
        row[std::string(kLayerBoundNames[b]) + "_cycles"] = l.bound_s[b] * hz;
    row["start_us"] = double(l.start_ps) * 1e-6;
    row["end_us"] = double(l.end_ps) * 1e-6;
    row["engine_ops"] = l.engine_ops;
    return row;
}

}  // namespace

void write_layer_csv(const LayerReport& layers, const std::string& path) {
    hw::OutputFile file(path);
    if (!file.is_open()) throw std::runtime_error(path + ": cannot write the layer report");
    std::ostream& out = file.stream();
    auto quoted = [](const std::string& text) {
        std::string q = "\"";
        for (char c : text) q += c == '"' ? std::string("\"\"") : std::string(1, c);
        return q + "\"";
    };
    out << std::setprecision(6);
    std::vector<std::string> names;
    const nlohmann::ordered_json columns = layer_fields(layers, LayerRow{});
    for (const auto& item : columns.items()) names.push_back(item.key());
    out << joined(names, ",") << "\n";
    for (const LayerRow& l : layers.layers) {
        const nlohmann::ordered_json row = layer_fields(layers, l);
        const char* separator = "";
        for (const auto& item : row.items()) {
            out << separator, separator = ",";
            const auto& v = item.value();
            if (v.is_string()) out << quoted(v.get<std::string>());
            else if (v.is_number_unsigned()) out << v.get<uint64_t>();
            else out << v.get<double>();
        }
        out << "\n";
    }
    if (const std::string problem = file.close(); !problem.empty()) throw std::runtime_error(path + ": " + problem);
}

nlohmann::json layer_rows_json(const LayerReport& layers) {
    nlohmann::json rows = nlohmann::json::array();
    for (const LayerRow& l : layers.layers) rows.push_back(nlohmann::json::parse(layer_fields(layers, l).dump()));
    return rows;
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
