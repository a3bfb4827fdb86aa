#include "sc_main/report.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <sstream>

#include "compiler/high_water.h"

namespace kpu::cli {

namespace {

uint64_t ps(const sc_core::sc_time& t) { return uint64_t(std::llround(t.to_seconds() * 1e12)); }

/// Length of the union of intervals (sorted in place).
uint64_t union_length(std::vector<std::pair<uint64_t, uint64_t>>& intervals) {
    std::sort(intervals.begin(), intervals.end());
    uint64_t total = 0, open_start = 0, open_end = 0;
    bool open = false;
    for (const auto& [s, e] : intervals) {
        if (open && s <= open_end) {
            open_end = std::max(open_end, e);
            continue;
        }
        if (open) total += open_end - open_start;
        open = true, open_start = s, open_end = e;
    }
    return open ? total + open_end - open_start : total;
}

/// The engine kinds in the order the time line charges a moment to: a fabric or vector engine
/// computing (kFabric),
/// else the nearest engine kind that is busy (a stall on it).
enum Kind { kFabric, kStreamer, kBlockMover, kDma, kKinds };

Kind kind_of(compiler::EngineKind engine) {
    switch (engine) {
        case compiler::EngineKind::Fabric:
        case compiler::EngineKind::Vector: return kFabric;  // computing, like the fabric
        case compiler::EngineKind::Streamer: return kStreamer;
        case compiler::EngineKind::BlockMover: return kBlockMover;
        case compiler::EngineKind::Dma: return kDma;
    }
    return kDma;
}

}  // namespace

std::string engine_scope(const compiler::BoundOp& op) {
    switch (op.engine) {
        case compiler::EngineKind::Dma: return "dma_" + std::to_string(op.unit);
        case compiler::EngineKind::BlockMover: return "tile_" + std::to_string(op.tile) + ".bm_" + std::to_string(op.unit);
        case compiler::EngineKind::Streamer:
            return "tile_" + std::to_string(op.tile) + ".streamer_" + std::to_string(op.unit);
        case compiler::EngineKind::Fabric: return "tile_" + std::to_string(op.tile) + ".fabric";
        case compiler::EngineKind::Vector: return "tile_" + std::to_string(op.tile) + ".vector";
    }
    return "?";
}

uint64_t RunReport::vector_elements() const {
    uint64_t sum = 0;
    for (const auto& v : vectors) sum += v.elements;
    return sum;
}

std::string vector_summary(const RunReport& r) {
    uint64_t commands = 0;
    for (const auto& v : r.vectors) commands += v.commands;
    if (commands == 0) return "";
    const double sim_s = r.total_s();
    const double rate = sim_s > 0 ? double(r.vector_elements()) / sim_s : 0;
    std::ostringstream out;
    out << "  vector engines    " << r.vectors.size() << ": " << commands << " commands, " << r.vector_elements()
        << " elements, " << std::setprecision(4) << rate * 1e-9 << " Gelem/s of "
        << r.vector_peak_elements_per_s * 1e-9 << " Gelem/s peak (" << std::fixed << std::setprecision(1)
        << (r.vector_peak_elements_per_s > 0 ? 100 * rate / r.vector_peak_elements_per_s : 0) << " %), "
        << std::defaultfloat << std::setprecision(4) << r.vector_pj * 1e-6 << " uJ\n";
    return out.str();
}

std::string element_type_summary(const RunReport& r) {
    bool typed = false;
    for (const auto& t : r.by_element_type) typed = typed || t.type != "float32";
    if (!typed) return "";
    std::ostringstream out;
    out << "  element types    ";
    for (size_t i = 0; i < r.by_element_type.size(); ++i) {
        const ElementTypeActivity& t = r.by_element_type[i];
        out << (i ? "; " : " ") << t.type << " " << t.macs << " MACs " << std::setprecision(4) << t.mac_pj * 1e-6
            << " uJ, " << t.vector_elements << " vector elements " << t.vector_pj * 1e-6 << " uJ";
    }
    out << "\n";
    return out.str();
}

double RunReport::dynamic_pj() const {
    double sum = 0;
    for (const auto& l : levels) sum += l.energy_pj();
    return sum;
}

std::vector<ElementTypeActivity> element_type_activity(const hw::Config& config,
                                                      const compiler::BoundProgram& program,
                                                      const std::vector<const model::VectorEngine*>& vectors) {
    ElementTypeActivity by_type[std::size(hw::kDTypeNames)];
    for (const auto& op : program.ops)
        if (op.kind == compiler::BoundOp::Kind::Matmul)
            by_type[size_t(op.matmul.type)].macs += uint64_t(op.matmul.m) * op.matmul.n * op.matmul.k;
    for (const model::VectorEngine* vector : vectors)
        for (const auto& entry : hw::kDTypeNames) {
            const model::VectorEngine::TypeCounts& counts = vector->counts(entry.value);
            ElementTypeActivity& t = by_type[size_t(entry.value)];
            t.vector_elements += counts.elements, t.vector_alu_ops += counts.alu_ops, t.vector_pj += counts.energy_pj;
        }
    // Each type's MACs at its energy (float32: energy_pj_per_mac, all the MACs of a float32
    // program); a type the config does not list did no MACs (the fabric refused its commands).
    std::vector<ElementTypeActivity> out;
    for (const auto& entry : hw::kDTypeNames) {
        ElementTypeActivity& t = by_type[size_t(entry.value)];
        t.type = entry.name;
        if (entry.value == hw::DType::Float32)
            t.mac_pj = double(t.macs) * config.fabric.energy_pj_per_mac;
        else if (t.macs && config.supports(entry.name))
            t.mac_pj = double(t.macs) * config.fabric_type(entry.name).energy_pj_per_op;
        if (t.macs || t.vector_elements) out.push_back(t);
    }
    return out;
}

RunReport make_report(const hw::Config& config, platform::KpuPlatform& kpu, const std::string& program_path,
                      double wall_s) {
    RunReport r;
    r.program = program_path;
    r.config = config.name;
    r.start = ps(kpu.started_at());
    r.end = ps(kpu.finished_at());
    r.fabric_hz = config.clocks.fabric_hz;
    r.total_cycles = uint64_t(std::llround(double(r.end - r.start) * 1e-12 * r.fabric_hz));
    r.wall_s = wall_s;
    const compiler::BoundProgram& program = kpu.program();
    r.macs = program.macs;

    // ---- ops and engines, from the sequencer's records ----
    const auto& records = kpu.sequencer().records();
    std::map<std::string, uint32_t> engine_index;
    std::vector<std::vector<std::pair<uint64_t, uint64_t>>> engine_intervals;
    std::vector<std::pair<uint64_t, uint64_t>> kind_intervals[kKinds];
    r.ops.reserve(program.ops.size());
    for (const auto& op : program.ops) {
        const auto& rec = records.at(op.id);
        if (rec.state != model::Sequencer::OpRecord::State::Done) continue;
        const std::string scope = engine_scope(op);
        auto [it, added] = engine_index.emplace(scope, uint32_t(r.engines.size()));
        if (added) {
            r.engines.push_back({scope, to_string(op.engine), 0, 0, 0});
            engine_intervals.emplace_back();
        }
        OpActivity a;
        a.id = op.id, a.engine = it->second;
        a.dispatched = ps(rec.dispatched), a.start = ps(rec.started), a.end = ps(rec.completed);
        a.bytes = op.kind == compiler::BoundOp::Kind::Move ? op.move.bytes() : 0;
        EngineActivity& e = r.engines[a.engine];
        e.bytes += a.bytes;
        ++e.ops;
        engine_intervals[a.engine].push_back({a.start, a.end});
        kind_intervals[kind_of(op.engine)].push_back({a.start, a.end});
        r.ops.push_back(a);
    }
    for (size_t i = 0; i < r.engines.size(); ++i) r.engines[i].busy = union_length(engine_intervals[i]);
    std::sort(r.engines.begin(), r.engines.end(),
              [](const EngineActivity& a, const EngineActivity& b) { return a.scope < b.scope; });
    // Re-point ops at the sorted engines.
    std::map<std::string, uint32_t> sorted;
    for (size_t i = 0; i < r.engines.size(); ++i) sorted[r.engines[i].scope] = uint32_t(i);
    for (auto& a : r.ops) a.engine = sorted.at(engine_scope(program.ops[a.id]));

    std::vector<bool> done(program.ops.size());
    for (const auto& op : program.ops) done[op.id] = records.at(op.id).state == model::Sequencer::OpRecord::State::Done;
    const compiler::HighWater marks = compiler::high_water(program, kpu.address_map(), &done);
    std::copy(std::begin(marks.bytes), std::end(marks.bytes), std::begin(r.high_water));

    // ---- which DRAM channels each op's bytes went through (the address interleave) ----
    r.dram_channels = config.dram.count;
    r.dram_channel_bandwidth = double(config.dram.ports) * config.dram.bandwidth_bytes_per_s;
    const uint64_t dram_size = uint64_t(config.dram.count) * config.dram.capacity_bytes;
    const uint64_t block = config.dram.interleave_bytes;
    std::vector<uint64_t> per_channel(config.dram.count);
    for (uint32_t i = 0; i < r.ops.size(); ++i) {
        const compiler::BoundOp& op = program.ops[r.ops[i].id];
        if (op.kind != compiler::BoundOp::Kind::Move) continue;
        const hw::Transfer& t = op.move;
        std::fill(per_channel.begin(), per_channel.end(), 0);
        bool touched = false;
        // The DRAM side is the source (a load) or the destination (a store) of an identity
        // copy; rows are split at interleave blocks.
        for (const auto& [base, stride] : {std::make_pair(t.src, t.src_stride), std::make_pair(t.dst, t.dst_stride)}) {
            if (base >= dram_size || t.transform != hw::Transform::Identity) continue;
            for (uint32_t row = 0; row < t.rows; ++row) {
                for (uint64_t a = base + row * stride, left = t.row_bytes; left;) {
                    const uint64_t piece = std::min(left, block - a % block);
                    per_channel[kpu.address_map().dram_channel(a / block)] += piece;
                    a += piece, left -= piece;
                }
            }
            touched = true;
        }
        if (!touched) continue;
        for (uint32_t c = 0; c < config.dram.count; ++c)
            if (per_channel[c]) r.dram_shares.push_back({i, c, per_channel[c]});
    }

    // ---- where the time went: sweep the kinds' activity over [start, end] ----
    struct Event {
        uint64_t t;
        int kind, delta;
    };
    std::vector<Event> events;
    for (int k = 0; k < kKinds; ++k)
        for (const auto& [s, e] : kind_intervals[k])
            if (e > s) events.push_back({s, k, +1}), events.push_back({e, k, -1});
    std::sort(events.begin(), events.end(), [](const Event& a, const Event& b) { return a.t < b.t; });
    int active[kKinds] = {0, 0, 0, 0};
    uint64_t* bucket[kKinds + 1] = {&r.compute, &r.stall_streamer, &r.stall_block_mover, &r.stall_dma, &r.stall_other};
    uint64_t t = r.start;
    auto account = [&](uint64_t until) {
        if (until <= t) return;
        int k = 0;
        while (k < kKinds && active[k] == 0) ++k;
        *bucket[k] += until - t;
        t = until;
    };
    for (const Event& ev : events) {
        account(std::min(ev.t, r.end));
        active[ev.kind] += ev.delta;
    }
    account(r.end);

    std::vector<const model::VectorEngine*> vector_engines;  // those that ran a command

    // ---- traffic per level, counted by the memories' ports and the fabrics ----
    r.levels = {{"dram", 0, 0, config.dram.energy_pj_per_byte},
                {"l3", 0, 0, config.l3.energy_pj_per_byte},
                {"l2", 0, 0, config.l2.energy_pj_per_byte},
                {"l1", 0, 0, config.l1.energy_pj_per_byte}};
    auto add = [](LevelTraffic& level, const model::MemoryStats& s) {
        level.read_bytes += s.bytes_read;
        level.write_bytes += s.bytes_written;
    };
    for (uint32_t c = 0; c < config.dram.count; ++c) add(r.levels[0], kpu.dram_channel(c).stats());
    for (uint32_t i = 0; i < config.compute_tiles; ++i) {
        platform::ComputeTile& tile = kpu.tile(i);
        add(r.levels[1], tile.l3().stats());
        for (uint32_t b = 0; b < tile.l2_count(); ++b) add(r.levels[2], tile.l2(b).stats());
        for (uint32_t l = 0; l < tile.l1_count(); ++l) add(r.levels[3], tile.l1(l).stats());
        r.levels[3].read_bytes += tile.fabric().l1_bytes_read();
        r.levels[3].write_bytes += tile.fabric().l1_bytes_written();
        const model::VectorEngine& vector = tile.vector();
        if (vector.commands() == 0) continue;
        r.vectors.push_back({"tile_" + std::to_string(i) + ".vector", vector.commands(), vector.elements(),
                             ps(vector.busy_time()), vector.bytes_read(), vector.bytes_written(), vector.energy_pj()});
        r.vector_pj += vector.energy_pj();
        vector_engines.push_back(&vector);
    }
    std::sort(r.vectors.begin(), r.vectors.end(),
              [](const VectorActivity& a, const VectorActivity& b) { return a.scope < b.scope; });

    // ---- energy and roofline ----
    r.by_element_type = element_type_activity(config, program, vector_engines);
    r.mac_pj = 0;
    for (const ElementTypeActivity& t : r.by_element_type) r.mac_pj += t.mac_pj;
    r.static_pj = config.static_power_w * r.total_s() * 1e12;
    const hw::Derived derived = hw::derive(config);
    r.peak_flops = derived.peak_flops;
    r.vector_peak_elements_per_s = derived.vector_elements_per_s;
    r.dram_bandwidth = derived.dram_bandwidth;
    r.roofline_bandwidth = derived.dma_bandwidth;
    r.config_overrides = config.overrides;
    const double dram_bytes = double(r.levels[0].read_bytes + r.levels[0].write_bytes);
    const double compute_s = 2.0 * double(r.macs) / r.peak_flops, memory_s = dram_bytes / r.roofline_bandwidth;
    r.memory_bound = memory_s > compute_s;
    r.roofline_s = std::max(compute_s, memory_s);
    return r;
}

nlohmann::json stats_json(const RunReport& r, const nlohmann::json& check) {
    using nlohmann::json;
    const double total_s = r.total_s();
    auto cycles = [&](uint64_t ps_value) { return uint64_t(std::llround(double(ps_value) * 1e-12 * r.fabric_hz)); };
    const LevelTraffic& dram = r.levels[0];
    uint64_t sram_reads = 0, sram_writes = 0;
    for (size_t i = 1; i < r.levels.size(); ++i) sram_reads += r.levels[i].read_bytes, sram_writes += r.levels[i].write_bytes;
    const uint64_t compute_cycles = cycles(r.compute);
    // Rounded cumulatively, so that compute + stalls + other is exactly total_cycles.
    const uint64_t stall_cycles =
        cycles(r.compute + r.stall_streamer + r.stall_block_mover + r.stall_dma) - compute_cycles;
    const double total_pj = r.total_pj();

    std::map<std::string, const VectorActivity*> vector_of;
    for (const auto& v : r.vectors) vector_of[v.scope] = &v;
    json engines = json::array();
    for (const auto& e : r.engines) {
        engines.push_back({{"name", e.scope},
                           {"kind", e.kind},
                           {"busy_time_us", double(e.busy) * 1e-6},
                           {"utilization", total_s > 0 ? double(e.busy) * 1e-12 / total_s : 0},
                           {"bytes", e.bytes},
                           {"ops", e.ops}});
        if (auto it = vector_of.find(e.scope); it != vector_of.end()) {
            const VectorActivity& v = *it->second;
            json& entry = engines.back();
            entry["commands"] = v.commands;
            entry["elements"] = v.elements;
            entry["bytes_read"] = v.bytes_read;
            entry["bytes_written"] = v.bytes_written;
            entry["energy_uj"] = v.energy_pj * 1e-6;
        }
    }
    json vector;
    {
        uint64_t commands = 0, busy = 0, bytes_read = 0, bytes_written = 0;
        for (const auto& v : r.vectors)
            commands += v.commands, busy += v.busy, bytes_read += v.bytes_read, bytes_written += v.bytes_written;
        const double elements = double(r.vector_elements());
        const double engines_s = double(r.vectors.size()) * total_s;
        vector = {{"engines", r.vectors.size()},
                  {"commands", commands},
                  {"elements", r.vector_elements()},
                  {"busy_time_us", double(busy) * 1e-6},
                  {"utilization", engines_s > 0 ? double(busy) * 1e-12 / engines_s : 0},
                  {"bytes_read", bytes_read},
                  {"bytes_written", bytes_written},
                  {"energy_uj", r.vector_pj * 1e-6},
                  {"achieved_elements_per_s", total_s > 0 ? elements / total_s : 0},
                  {"peak_elements_per_s", r.vector_peak_elements_per_s}};
    }
    json levels = json::object();
    for (const auto& l : r.levels)
        levels[l.level] = {{"read_bytes", l.read_bytes}, {"write_bytes", l.write_bytes}, {"energy_uj", l.energy_pj() * 1e-6}};
    json op_metrics = json::object();
    {
        std::map<std::string, std::pair<uint64_t, uint64_t>> by_kind;  // kind -> (ops, busy ps)
        std::map<std::string, uint64_t> bytes;
        for (const auto& a : r.ops) {
            auto& k = by_kind[r.engines[a.engine].kind];
            ++k.first;
            k.second += a.end - a.start;
            bytes[r.engines[a.engine].kind] += a.bytes;
        }
        for (const auto& [kind, v] : by_kind)
            op_metrics[kind] = {{"count", v.first}, {"total_time_us", double(v.second) * 1e-6}, {"bytes", bytes[kind]}};
    }
    json by_element_type = json::object();
    for (const ElementTypeActivity& t : r.by_element_type)
        by_element_type[t.type] = {{"macs", t.macs},
                                   {"mac_energy_uj", t.mac_pj * 1e-6},
                                   {"vector_elements", t.vector_elements},
                                   {"vector_alu_ops", t.vector_alu_ops},
                                   {"vector_energy_uj", t.vector_pj * 1e-6}};
    const double dram_bytes = double(dram.read_bytes + dram.write_bytes);
    return {
        // KPUPerformanceMetrics (seed 4), same names
        {"total_cycles", r.total_cycles},
        {"total_time_us", total_s * 1e6},
        {"compute_cycles", compute_cycles},
        {"memory_stall_cycles", stall_cycles},
        {"other_cycles", r.total_cycles - std::min(r.total_cycles, compute_cycles + stall_cycles)},
        {"dram_reads_bytes", dram.read_bytes},
        {"dram_writes_bytes", dram.write_bytes},
        {"sram_reads_bytes", sram_reads},
        {"sram_writes_bytes", sram_writes},
        {"l1_hits", nullptr},
        {"l1_misses", nullptr},
        {"l2_hits", nullptr},
        {"l2_misses", nullptr},
        {"average_power_watts", total_s > 0 ? total_pj * 1e-12 / total_s : 0},
        {"total_energy_uj", total_pj * 1e-6},
        {"compute_utilization", total_s > 0 ? double(r.macs) / (r.peak_flops / 2 * total_s) : 0},
        {"memory_bandwidth_utilization", total_s > 0 ? dram_bytes / (r.dram_bandwidth * total_s) : 0},
        {"op_metrics", op_metrics},
        // beyond seed 4
        {"program", r.program},
        {"config", r.config},
        {"config_overrides", r.config_overrides},
        {"fabric_clock_hz", r.fabric_hz},
        {"macs", r.macs},
        {"ops", r.ops.size()},
        {"achieved_flops", total_s > 0 ? 2.0 * double(r.macs) / total_s : 0},
        {"peak_flops", r.peak_flops},
        {"arithmetic_intensity", dram_bytes > 0 ? 2.0 * double(r.macs) / dram_bytes : 0},
        {"roofline_bandwidth", r.roofline_bandwidth},
        {"roofline_bound", r.memory_bound ? "memory" : "compute"},
        {"roofline_time_us", r.roofline_s * 1e6},
        {"roofline_efficiency", total_s > 0 ? r.roofline_s / total_s : 0},
        {"memory_high_water_bytes",
         {{"dram", r.high_water[int(hw::Level::Dram)]},
          {"l3", r.high_water[int(hw::Level::L3)]},
          {"l2", r.high_water[int(hw::Level::L2)]},
          {"l1", r.high_water[int(hw::Level::L1)]}}},
        {"stall_breakdown_cycles",
         {{"streamer", cycles(r.stall_streamer)},
          {"block_mover", cycles(r.stall_block_mover)},
          {"dma", cycles(r.stall_dma)},
          {"dependencies", cycles(r.stall_other)}}},
        {"energy_uj",
         {{"dram", dram.energy_pj() * 1e-6},
          {"l3", r.levels[1].energy_pj() * 1e-6},
          {"l2", r.levels[2].energy_pj() * 1e-6},
          {"l1", r.levels[3].energy_pj() * 1e-6},
          {"mac", r.mac_pj * 1e-6},
          {"vector", r.vector_pj * 1e-6},
          {"static", r.static_pj * 1e-6}}},
        {"levels", levels},
        {"by_element_type", by_element_type},
        {"engines", engines},
        {"vector", vector},
        {"wall_time_s", r.wall_s},
        {"check", check},
    };
}

}  // namespace kpu::cli
