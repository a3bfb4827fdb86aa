#include "sc_main/vcd.h"

#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <stdexcept>

#include "hardware/output_file.h"

namespace kpu::cli {

namespace {

/// VCD identifiers: printable characters '!'..'~' in base 94.
std::string vcd_id(size_t n) {
    std::string id;
    do {
        id += char('!' + n % 94);
        n /= 94;
    } while (n);
    return id;
}

std::string binary(uint64_t v) {
    if (v == 0) return "0";
    std::string s;
    for (; v; v >>= 1) s += char('0' + (v & 1));
    std::reverse(s.begin(), s.end());
    return s;
}

struct Signal {
    std::string scope;  ///< dotted, under kpu
    std::string name;
    int width;          ///< 1: wire, 0: real, else integer
    std::string id;
    std::vector<std::pair<uint64_t, uint64_t>> changes;  ///< (time ps, value), time-ordered, may repeat times
};

/// A counter signal from +1/-1 (or +bytes) events: the value after all events at each time.
void from_events(Signal& s, std::vector<std::pair<uint64_t, int64_t>>& events) {
    std::sort(events.begin(), events.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    int64_t value = 0;
    s.changes.push_back({0, 0});
    for (size_t i = 0; i < events.size();) {
        const uint64_t t = events[i].first;
        for (; i < events.size() && events[i].first == t; ++i) value += events[i].second;
        s.changes.push_back({t, uint64_t(std::max<int64_t>(value, 0))});
    }
}

/// The glob matches the scope under kpu ("kpu.tile_0.bm_0") or as the stats name it
/// ("tile_0.bm_0"): a name copied from the stats works too.
bool matches(const std::string& scope_glob, const std::string& scope) {
    return scope_glob.empty() || fnmatch(scope_glob.c_str(), ("kpu." + scope).c_str(), 0) == 0 ||
           fnmatch(scope_glob.c_str(), scope.c_str(), 0) == 0;
}

}  // namespace

void check_vcd_scope(const std::vector<std::string>& engine_scopes, uint32_t dram_channels,
                     const std::string& scope_glob) {
    if (matches(scope_glob, "sequencer")) return;
    for (const std::string& scope : engine_scopes)
        if (matches(scope_glob, scope)) return;
    for (uint32_t c = 0; c < dram_channels; ++c)
        if (matches(scope_glob, "dram_" + std::to_string(c))) return;
    throw std::runtime_error("--vcd-scope " + scope_glob + ": no scope matches (scopes look like kpu.tile_0.bm_0)");
}

void write_vcd(const RunReport& report, const std::string& path, uint64_t from_ps, uint64_t to_ps,
               const std::string& scope_glob) {
    std::vector<std::string> engine_scopes;
    for (const EngineActivity& engine : report.engines) engine_scopes.push_back(engine.scope);
    check_vcd_scope(engine_scopes, report.dram_channels, scope_glob);
    std::vector<Signal> signals;
    auto wanted = [&](const std::string& scope) { return matches(scope_glob, scope); };
    // Per engine: busy, queue, bytes (fabric: active, queue).
    std::vector<std::vector<std::pair<uint64_t, int64_t>>> busy(report.engines.size()), queue(report.engines.size()),
        bytes(report.engines.size());
    for (const auto& op : report.ops) {
        busy[op.engine].push_back({op.start, +1});
        busy[op.engine].push_back({op.end, -1});
        queue[op.engine].push_back({op.dispatched, +1});
        queue[op.engine].push_back({op.end, -1});
        if (op.bytes) bytes[op.engine].push_back({op.end, int64_t(op.bytes)});
    }
    for (size_t e = 0; e < report.engines.size(); ++e) {
        const EngineActivity& engine = report.engines[e];
        if (!wanted(engine.scope)) continue;
        const bool fabric = engine.kind == to_string(compiler::EngineKind::Fabric);
        // The compute engines move no bytes themselves: no bytes signal.
        const bool computes = fabric || engine.kind == to_string(compiler::EngineKind::Vector);
        Signal b{engine.scope, fabric ? "active" : "busy", 1, "", {}};
        from_events(b, busy[e]);
        for (auto& [t, v] : b.changes) v = v > 0;  // overlapping ops of one engine: still one busy line
        signals.push_back(std::move(b));
        Signal q{engine.scope, "queue", 32, "", {}};
        from_events(q, queue[e]);
        signals.push_back(std::move(q));
        if (!computes) {
            Signal m{engine.scope, "bytes", 64, "", {}};
            from_events(m, bytes[e]);
            signals.push_back(std::move(m));
        }
    }
    if (wanted("sequencer")) {
        std::vector<std::pair<uint64_t, int64_t>> in_flight;
        for (const auto& op : report.ops) in_flight.push_back({op.dispatched, +1}), in_flight.push_back({op.end, -1});
        Signal s{"sequencer", "in_flight", 32, "", {}};
        from_events(s, in_flight);
        signals.push_back(std::move(s));
    }
    // DRAM channels: utilization per time bucket, each op's bytes spread evenly over the op.
    std::vector<Signal> utilization;
    std::vector<std::vector<double>> channel_bytes;
    const uint64_t span = report.end > report.start ? report.end - report.start : 1;
    const uint64_t bucket = std::max<uint64_t>(1000, span / 1000);  // ps: at least 1 ns, about 1000 points
    const size_t buckets = size_t((span + bucket - 1) / bucket);
    for (uint32_t c = 0; c < report.dram_channels; ++c) channel_bytes.emplace_back(buckets, 0.0);
    for (const DramShare& share : report.dram_shares) {
        const OpActivity& op = report.ops[share.op];
        const uint64_t s = std::max(op.start, report.start) - report.start, e = std::max(op.end, report.start) - report.start;
        if (e <= s) {
            channel_bytes[share.channel][std::min(buckets - 1, size_t(s / bucket))] += double(share.bytes);
            continue;
        }
        const double rate = double(share.bytes) / double(e - s);  // bytes per ps
        for (uint64_t b = s / bucket; b * bucket < e && b < buckets; ++b) {
            const uint64_t lo = std::max(s, b * bucket), hi = std::min(e, (b + 1) * bucket);
            channel_bytes[share.channel][b] += rate * double(hi - lo);
        }
    }
    for (uint32_t c = 0; c < report.dram_channels; ++c) {
        const std::string scope = "dram_" + std::to_string(c);
        if (!wanted(scope)) continue;
        Signal u{scope, "utilization", 0, "", {}};
        u.changes.push_back({0, 0});
        const double capacity = report.dram_channel_bandwidth * double(bucket) * 1e-12;  // bytes per bucket
        for (size_t b = 0; b < buckets; ++b) {
            // Stored as parts per million so that Signal keeps integer values.
            u.changes.push_back({report.start + b * bucket, uint64_t(std::llround(channel_bytes[c][b] / capacity * 1e6))});
        }
        u.changes.push_back({report.end, 0});
        signals.push_back(std::move(u));
    }

    for (Signal& s : signals) {  // drop changes that repeat the value before them
        std::vector<std::pair<uint64_t, uint64_t>> kept;
        for (const auto& c : s.changes)
            if (kept.empty() || kept.back().second != c.second) kept.push_back(c);
        s.changes = std::move(kept);
    }
    for (size_t i = 0; i < signals.size(); ++i) signals[i].id = vcd_id(i);

    hw::OutputFile file(path);
    if (!file.is_open()) throw std::runtime_error(path + ": cannot write VCD file");
    std::ostream& out = file.stream();
    out << "$version kpu-sim $end\n$timescale 1ps $end\n";
    // Declarations, nested by scope (signals are grouped by engine, engines sorted by scope).
    std::vector<std::string> open;
    auto split = [](const std::string& scope) {
        std::vector<std::string> parts{"kpu"};
        size_t start = 0;
        for (size_t dot; (dot = scope.find('.', start)) != std::string::npos; start = dot + 1)
            parts.push_back(scope.substr(start, dot - start));
        parts.push_back(scope.substr(start));
        return parts;
    };
    for (const Signal& s : signals) {
        const auto parts = split(s.scope);
        size_t common = 0;
        while (common < open.size() && common < parts.size() && open[common] == parts[common]) ++common;
        for (size_t i = open.size(); i > common; --i) out << "$upscope $end\n";
        open.resize(common);
        for (size_t i = common; i < parts.size(); ++i) out << "$scope module " << parts[i] << " $end\n", open.push_back(parts[i]);
        out << "$var " << (s.width == 1 ? "wire" : s.width == 0 ? "real" : "integer") << " "
            << (s.width == 0 ? 64 : s.width) << " " << s.id << " " << s.name << " $end\n";
    }
    for (size_t i = open.size(); i > 0; --i) out << "$upscope $end\n";
    out << "$enddefinitions $end\n";

    // Values at the window's start, then every change inside it, in time order.
    auto emit = [&](const Signal& s, uint64_t v) {
        if (s.width == 1)
            out << (v ? '1' : '0') << s.id << "\n";
        else if (s.width == 0)
            out << 'r' << double(v) * 1e-6 << ' ' << s.id << "\n";
        else
            out << 'b' << binary(v) << ' ' << s.id << "\n";
    };
    struct Change {
        uint64_t t;
        uint32_t signal;
        uint64_t value;
    };
    std::vector<Change> changes;
    out << "#" << from_ps << "\n$dumpvars\n";
    for (uint32_t i = 0; i < signals.size(); ++i) {
        const Signal& s = signals[i];
        uint64_t initial = 0;
        for (const auto& [t, v] : s.changes) {
            if (t <= from_ps) initial = v;
            else if (t < to_ps) changes.push_back({t, i, v});
        }
        emit(s, initial);
    }
    out << "$end\n";
    std::stable_sort(changes.begin(), changes.end(), [](const Change& a, const Change& b) { return a.t < b.t; });
    uint64_t current = UINT64_MAX;
    for (const Change& c : changes) {
        if (c.t != current) out << "#" << c.t << "\n", current = c.t;
        emit(signals[c.signal], c.value);
    }
    const uint64_t end = std::min(to_ps, report.end);
    if (end > current || current == UINT64_MAX) out << "#" << std::max(end, from_ps) << "\n";
    if (const std::string problem = file.close(); !problem.empty()) throw std::runtime_error(path + ": " + problem);
}

}  // namespace kpu::cli
