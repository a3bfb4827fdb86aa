// Stats, VCD and trace of a real run agree with each other and with the op records, and
// obey the conservation laws they claim.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "hardware/vector_timing.h"
#include "sc_main/report.h"
#include "sc_main/trace.h"
#include "sc_main/vcd.h"
#include "tests/e2e/e2e_support.h"
#include "tests/support/files.h"

namespace kpu::test {
namespace {

using nlohmann::json;

/// Compiles `graph` (JSON) for `on`, runs it and keeps the session and its report.
struct Run {
    hw::Config config;
    compiler::Program program;
    cli::Prepared prepared;
    cli::Session* session = new cli::Session;  // lives until the process ends
    cli::RunReport report;

    Run(const std::string& graph, hw::Config on, const std::string& name) : config(std::move(on)) {
        program = compile(graph, config);
        prepared = cli::prepare(config, program, "", 11);
        session->job = prepared.job;
        session->build(config);
        sc_core::sc_start();
        report = cli::make_report(config, *session->kpu, name, 0.0);
    }
};

/// Runs the MLP on edge (4 tiles, two kernels, bias and relu) and returns the session.
struct MlpRun : Run {
    explicit MlpRun(hw::Config on = test::config("edge")) : Run(example("mlp.json"), std::move(on), "mlp.kpu") {}
};

/// Vector ops only, on edge, odd shapes: a bias Add, Gelu, Softmax and LayerNormalization.
struct VectorRun : Run {
    VectorRun()
        : Run(R"({"tensors": [{"name": "x", "shape": [67, 131], "role": "input"},
                  {"name": "b", "shape": [131], "role": "constant"}, {"name": "xb"}, {"name": "g"}, {"name": "s"},
                  {"name": "gamma", "shape": [131], "role": "constant"},
                  {"name": "beta", "shape": [131], "role": "constant"}, {"name": "y", "role": "output"}],
                "ops": [{"op": "Add", "name": "bias", "inputs": ["x", "b"], "outputs": ["xb"]},
                        {"op": "Gelu", "name": "act", "inputs": ["xb"], "outputs": ["g"]},
                        {"op": "Softmax", "name": "sm", "inputs": ["g"], "outputs": ["s"]},
                        {"op": "LayerNormalization", "name": "ln", "inputs": ["s", "gamma", "beta"],
                         "outputs": ["y"]}]})",
              test::config("edge"), "vector.kpu") {}

    /// The bound program's vector ops.
    std::vector<const compiler::BoundOp*> vector_ops() const {
        std::vector<const compiler::BoundOp*> ops;
        for (const auto& op : prepared.bound.ops)
            if (op.kind == compiler::BoundOp::Kind::Vector) ops.push_back(&op);
        return ops;
    }
};

TEST(Stats, BytesAreConservedBetweenTheOpStreamAndEveryLevelsPorts) {
    MlpRun run;
    ASSERT_EQ(run.session->failure(), "");
    std::map<hw::Level, uint64_t> read, written;
    const hw::AddressMap map(run.config);
    uint64_t fabric_read = 0, fabric_written = 0;
    for (const auto& op : run.prepared.bound.ops) {
        if (op.kind == compiler::BoundOp::Kind::Move) {
            hw::Location src, dst;
            ASSERT_TRUE(map.decode(op.move.src, 1, src));
            ASSERT_TRUE(map.decode(op.move.dst, 1, dst));
            read[src.level] += op.move.bytes();
            written[dst.level] += op.move.bytes();
        } else if (op.kind == compiler::BoundOp::Kind::Matmul) {
            fabric_read += (uint64_t(op.matmul.m) * op.matmul.k + uint64_t(op.matmul.k) * op.matmul.n) * 4;
        } else {
            fabric_written += uint64_t(op.drain.m) * op.drain.n * 4;
            if (op.drain.has_bias) fabric_read += op.drain.n * 4;
        }
    }
    const auto& levels = run.report.levels;
    EXPECT_EQ(levels[0].read_bytes, read[hw::Level::Dram]);
    EXPECT_EQ(levels[0].write_bytes, written[hw::Level::Dram]);
    EXPECT_EQ(levels[0].read_bytes, run.prepared.bound.dram_read_bytes) << "ports agree with the compiler's hints";
    EXPECT_EQ(levels[0].write_bytes, run.prepared.bound.dram_write_bytes);
    EXPECT_EQ(levels[1].read_bytes, read[hw::Level::L3]);
    EXPECT_EQ(levels[1].write_bytes, written[hw::Level::L3]);
    EXPECT_EQ(levels[2].read_bytes, read[hw::Level::L2]);
    EXPECT_EQ(levels[2].write_bytes, written[hw::Level::L2]);
    EXPECT_EQ(levels[3].read_bytes, read[hw::Level::L1] + fabric_read);
    EXPECT_EQ(levels[3].write_bytes, written[hw::Level::L1] + fabric_written);
    // What flows in flows out: every byte loaded into L3 came from DRAM or from L2 results.
    EXPECT_EQ(levels[1].write_bytes, levels[0].read_bytes + written[hw::Level::L3] - read[hw::Level::Dram]);
}

TEST(Stats, TimeEnergyAndBusyAddUp) {
    MlpRun run;
    const cli::RunReport& r = run.report;
    const json s = cli::stats_json(r, nullptr);
    const uint64_t total = r.end - r.start;
    EXPECT_EQ(r.compute + r.stall_streamer + r.stall_block_mover + r.stall_dma + r.stall_other, total);
    EXPECT_GT(r.compute, 0u);
    for (const auto& e : r.engines) EXPECT_LE(e.busy, total) << e.scope;
    EXPECT_EQ(s["total_cycles"].get<uint64_t>(), run.session->host->result().cycles) << "stats = CYCLES register";
    const json& parts = s["energy_uj"];
    double sum = 0;
    for (const auto& [k, v] : parts.items()) sum += v.get<double>();
    EXPECT_NEAR(s["total_energy_uj"].get<double>(), sum, 1e-9 * sum);
    EXPECT_NEAR(parts["mac"].get<double>(), double(r.macs) * run.config.fabric.energy_pj_per_mac * 1e-6, 1e-9);
    EXPECT_NEAR(parts["static"].get<double>(), run.config.static_power_w * r.total_s() * 1e6, 1e-9);
    EXPECT_NEAR(parts["dram"].get<double>(),
                double(r.levels[0].read_bytes + r.levels[0].write_bytes) * run.config.dram.energy_pj_per_byte * 1e-6, 1e-9);
    EXPECT_NEAR(s["average_power_watts"].get<double>(), sum * 1e-6 / r.total_s(), 1e-6);
    for (const char* field : {"l1_hits", "l1_misses", "l2_hits", "l2_misses"}) EXPECT_TRUE(s[field].is_null()) << field;
    EXPECT_EQ(s["compute_cycles"].get<uint64_t>() + s["memory_stall_cycles"].get<uint64_t>() +
                  s["other_cycles"].get<uint64_t>(),
              s["total_cycles"].get<uint64_t>());
    EXPECT_EQ(s["ops"].get<uint64_t>(), run.prepared.bound.ops.size());
}

// With 1 of edge's 2 DMA engines a run moves its DRAM bytes at half DRAM's bandwidth at most,
// so a roofline on DRAM alone would call it inefficient. The memory roof is the bandwidth
// DRAM bytes can move at: DRAM, the DMA engines and the tiles' links, the least.
TEST(Stats, TheMemoryRoofIsTheSlowestOfDramDmaEnginesAndTileLinks) {
    MlpRun run(test::config("edge", {{"dma.engines", "1"}}));
    const cli::RunReport& r = run.report;
    EXPECT_DOUBLE_EQ(r.dram_bandwidth, 51.2e9);
    EXPECT_DOUBLE_EQ(r.roofline_bandwidth, 25.6e9);
    const double bytes = double(r.levels[0].read_bytes + r.levels[0].write_bytes);
    EXPECT_DOUBLE_EQ(r.roofline_s, std::max(2.0 * double(r.macs) / r.peak_flops, bytes / 25.6e9));
    const json s = cli::stats_json(r, nullptr);
    EXPECT_DOUBLE_EQ(s["roofline_bandwidth"].get<double>(), 25.6e9);
    EXPECT_TRUE(r.memory_bound);
    EXPECT_EQ(s["roofline_bound"], "memory");
    EXPECT_GT(s["roofline_efficiency"].get<double>(), 0.5) << "DMA-bound, near its roof";
}

/// Integral over time (value x ps, up to `end`) of every 1-bit and real signal of a VCD, by
/// "scope.signal": for a busy wire, its high time. `rises`, when given: per 1-bit signal, how
/// often it went from 0 to 1.
std::map<std::string, double> integrals(const std::string& path, uint64_t end,
                                        std::map<std::string, int>* rises = nullptr) {
    std::ifstream in(path);
    std::map<std::string, std::string> names;  // id -> scope.name, wires and reals only
    std::vector<std::string> scopes;
    std::map<std::string, std::pair<double, uint64_t>> state;  // id -> (value, since)
    std::map<std::string, double> integral;
    auto change = [&](const std::string& id, double value, uint64_t now) {
        if (!names.count(id)) return;
        auto& [v, since] = state[id];
        if (rises && v == 0 && value == 1) ++(*rises)[names[id]];
        integral[names[id]] += v * double(now - since);
        v = value, since = now;
    };
    std::string word;
    uint64_t now = 0;
    while (in >> word) {
        if (word == "$scope") {
            std::string kind, name;
            in >> kind >> name >> word;
            scopes.push_back(name);
        } else if (word == "$upscope") {
            in >> word;
            scopes.pop_back();
        } else if (word == "$var") {
            std::string type, width, id, name;
            in >> type >> width >> id >> name >> word;
            std::string scope;
            for (const auto& s : scopes) scope += s + ".";
            if (width == "1" || type == "real") names[id] = scope + name;
        } else if (word[0] == '#') {
            now = std::stoull(word.substr(1));
        } else if (word[0] == 'r' || word[0] == 'b') {
            std::string id;
            in >> id;
            if (word[0] == 'r') change(id, std::stod(word.substr(1)), now);
        } else if (word[0] == '0' || word[0] == '1') {
            change(word.substr(1), word[0] - '0', now);
        }
    }
    for (auto& [id, st] : state) integral[names[id]] += st.first * double(end - st.second);
    return integral;
}

/// Writes the whole run's VCD to `name`.vcd and returns its path, or "" when GTKWave's vcd2fst
/// refuses it.
std::string gtkwave_readable_vcd(const Run& run, const std::string& name) {
    const std::string vcd = temp(name + ".vcd");
    cli::write_vcd(run.report, vcd, 0, UINT64_MAX, "");
    return std::system(("vcd2fst " + vcd + " " + temp(name + ".fst") + " >/dev/null 2>&1").c_str()) == 0 ? vcd : "";
}

TEST(Vcd, GtkwaveReadsItAndBusyTimesEqualTheStats) {
    MlpRun run;
    const std::string vcd = gtkwave_readable_vcd(run, "run");
    ASSERT_NE(vcd, "") << "GTKWave's vcd2fst refused the file";
    const auto high = integrals(vcd, run.report.end);
    size_t busy_lines = 0;
    for (const auto& [name, area] : high)
        busy_lines += name.size() > 5 && (name.rfind(".busy") == name.size() - 5 || name.rfind(".active") == name.size() - 7);
    ASSERT_EQ(busy_lines, run.report.engines.size());
    for (const auto& e : run.report.engines) {
        const std::string key = "kpu." + e.scope + (e.kind == "fabric" ? ".active" : ".busy");
        ASSERT_TRUE(high.count(key)) << key;
        EXPECT_EQ(uint64_t(high.at(key)), e.busy) << key;
    }
    // The fabric's active time is what the fabric model itself counted.
    const double fabric_ps = run.session->kpu->tile(0).fabric().busy_time().to_seconds() * 1e12;
    EXPECT_NEAR(double(high.at("kpu.tile_0.fabric.active")), fabric_ps, 1.0);
}

TEST(Vcd, DramChannelUtilizationAccountsForTheBytesTheChannelsCounted) {
    MlpRun run;
    const std::string vcd = temp("dram.vcd");
    cli::write_vcd(run.report, vcd, 0, UINT64_MAX, "kpu.dram_*");
    const auto areas = integrals(vcd, run.report.end);
    ASSERT_EQ(areas.size(), run.config.dram.count);
    for (uint32_t c = 0; c < run.config.dram.count; ++c) {
        const auto counted = run.session->kpu->dram_channel(c).stats();
        const double bytes = areas.at("kpu.dram_" + std::to_string(c) + ".utilization") * 1e-12 *
                             run.report.dram_channel_bandwidth;
        EXPECT_NEAR(bytes, double(counted.bytes_read + counted.bytes_written),
                    0.002 * double(counted.bytes_read + counted.bytes_written) + 64)
            << "channel " << c;
    }
}

TEST(Vcd, WindowAndScopeLimitWhatIsWritten) {
    MlpRun run;
    const std::string vcd = temp("window.vcd");
    const uint64_t from = run.report.start + (run.report.end - run.report.start) / 4;
    const uint64_t to = run.report.start + (run.report.end - run.report.start) / 2;
    cli::write_vcd(run.report, vcd, from, to, "kpu.tile_1.*");
    std::ifstream in(vcd);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    EXPECT_NE(text.find("$scope module tile_1 $end"), std::string::npos);
    EXPECT_EQ(text.find("tile_0"), std::string::npos);
    EXPECT_EQ(text.find("dma_"), std::string::npos);
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line))
        if (!line.empty() && line[0] == '#') {
            const uint64_t t = std::stoull(line.substr(1));
            EXPECT_GE(t, from);
            EXPECT_LE(t, to);
        }
    EXPECT_THROW(cli::write_vcd(run.report, temp("none.vcd"), 0, UINT64_MAX, "kpu.nothing*"), std::runtime_error);
    EXPECT_EQ(cli::parse_time_window("10us:25.5us"), std::make_pair(uint64_t(10'000'000), uint64_t(25'500'000)));
    EXPECT_EQ(cli::parse_time_window("500:"), std::make_pair(uint64_t(500'000), UINT64_MAX));
    EXPECT_THROW(cli::parse_time_window("5us:2us"), std::runtime_error);
    // 1e300s is refused, not overflowed in llround into some window.
    EXPECT_THROW(cli::parse_time_window("1e300s:"), std::runtime_error);
    EXPECT_EQ(cli::parse_time_window(":8000000s").second, uint64_t(8'000'000'000'000'000'000));
    EXPECT_THROW(cli::parse_time_window("soon:later"), std::runtime_error);
}

/// A run's trace, written to `file` and read back: its slices (of category `category`, all
/// when empty) by op id, and its threads' names by (pid, tid).
struct TraceSlices {
    std::map<uint64_t, json> slices;
    std::map<std::pair<int, int>, std::string> threads;

    TraceSlices(const Run& run, const std::string& file, const std::string& category = "") {
        const std::string path = temp(file);
        cli::write_trace(run.report, run.session->kpu->program(), run.program, path);
        std::ifstream in(path);
        const json trace = json::parse(in);
        for (const auto& e : trace["traceEvents"]) {
            if (e["ph"] == "X" && (category.empty() || e["cat"] == category))
                slices[e["args"]["op"].get<uint64_t>()] = e;
            if (e["ph"] == "M" && e["name"] == "thread_name") threads[{e["pid"], e["tid"]}] = e["args"]["name"];
        }
    }
};

TEST(Trace, HasOneSlicePerOpMatchingTheRecords) {
    MlpRun run;
    const auto [slices, threads] = TraceSlices(run, "trace.json");
    ASSERT_EQ(slices.size(), run.report.ops.size());
    for (const auto& a : run.report.ops) {
        const json& s = slices.at(a.id);
        EXPECT_NEAR(s["ts"].get<double>(), double(a.start) * 1e-6, 1e-6);
        EXPECT_NEAR(s["dur"].get<double>(), double(a.end - a.start) * 1e-6, 1e-6);
        // The engine's track, or one of its lanes ("tile_0.bm_0 #2"; see the next test).
        const std::string& thread = threads.at({s["pid"].get<int>(), s["tid"].get<int>()});
        const std::string& scope = run.report.engines[a.engine].scope;
        EXPECT_TRUE(thread == scope || thread.rfind(scope + " #", 0) == 0) << thread << " for " << scope;
        if (a.bytes) {
            EXPECT_EQ(s["args"]["bytes"].get<uint64_t>(), a.bytes);
        }
    }
    // Names say what ran: the DFX op kind, and for moves the tensor.
    std::map<std::string, int> kinds;
    for (const auto& [id, s] : slices) kinds[s["name"].get<std::string>().substr(0, s["name"].get<std::string>().find(' '))]++;
    for (const char* k : {"LOAD", "MOVE", "STORE", "MATMUL_TILE", "DRAIN"}) EXPECT_GT(kinds[k], 0) << k;
    // The fabric's slices carry their shapes (DRAIN's m, n too), enough to check each one
    // against docs/models.md by hand.
    const uint64_t R = run.config.fabric.rows, C = run.config.fabric.cols;
    const double us_per_cycle = 1e6 / run.config.clocks.fabric_hz;
    int checked = 0;
    for (const auto& [id, s] : slices) {
        const std::string name = s["name"];
        const json& a = s["args"];
        auto up = [](uint64_t x, uint64_t d) { return (x + d - 1) / d; };
        uint64_t cycles = 0;
        if (name == "DRAIN") {
            cycles = up(a["n"], C) * a["m"].get<uint64_t>();
        } else if (name == "MATMUL_TILE") {
            const uint64_t m = a["m"], n = a["n"], k = a["k_len"];
            EXPECT_EQ(a["type"], "float32") << a.dump();  // the element type, which sets the MACs per cycle
            cycles = up(m, R) * up(n, C) * k + std::min(m, R) + std::min(n, C) - 2 + (a.contains("load_c") ? up(n, C) * m : 0);
        } else {
            continue;
        }
        EXPECT_NEAR(s["dur"].get<double>(), double(cycles) * us_per_cycle, 1e-6) << name << " " << a.dump();
        ++checked;
    }
    EXPECT_EQ(checked, kinds["DRAIN"] + kinds["MATMUL_TILE"]);
}


TEST(Trace, PipelinedEnginesGetLanesSoSlicesOnOneThreadNest) {
    // DMA engines and block movers have several ops in flight at once. The trace-event format
    // wants the complete ("X") slices of one thread to nest; overlapping ones are drawn wrong
    // (Perfetto, chrome://tracing). So an engine gets as many threads (lanes) as it needs.
    MlpRun run;
    ASSERT_EQ(run.session->failure(), "");
    const cli::RunReport& r = run.report;
    // The run pipelines, or this test proves nothing: ops of one engine overlap in time.
    uint64_t overlapping = 0;
    std::map<uint32_t, std::vector<std::pair<uint64_t, uint64_t>>> by_engine;
    for (const auto& a : r.ops) by_engine[a.engine].push_back({a.start, a.end});
    std::map<std::string, uint64_t> lanes_needed;  // engine scope -> most ops in flight at once
    for (auto& [engine, ops] : by_engine) {
        std::vector<std::pair<uint64_t, int>> edges;  // (time, -1 end / +1 start): ends first
        for (const auto& [start, end] : ops) edges.push_back({start, 1}), edges.push_back({end, -1});
        std::sort(edges.begin(), edges.end());
        int64_t in_flight = 0, most = 0;
        for (const auto& [t, d] : edges) most = std::max(most, in_flight += d);
        lanes_needed[r.engines[engine].scope] = uint64_t(std::max<int64_t>(most, 1));
        if (most > 1) ++overlapping;
    }
    ASSERT_GT(overlapping, 0u) << "no engine pipelined on this run";

    const std::string path = temp("trace.json");
    cli::write_trace(r, run.session->kpu->program(), run.program, path);
    std::ifstream in(path);
    const json trace = json::parse(in);
    struct Slice {
        uint64_t start, end, op;
    };
    std::map<std::pair<int, int>, std::vector<Slice>> slices;  // per (pid, tid)
    std::map<std::pair<int, int>, std::string> names;
    std::map<std::pair<int, int>, int> sort_index;
    std::map<uint64_t, int> seen;  // op -> slices
    for (const auto& e : trace["traceEvents"]) {
        const std::pair<int, int> thread{e["pid"].get<int>(), e["tid"].get<int>()};
        if (e["ph"] == "X") {
            const auto start = uint64_t(std::llround(e["ts"].get<double>() * 1e6));  // us -> ps
            const auto dur = uint64_t(std::llround(e["dur"].get<double>() * 1e6));
            slices[thread].push_back({start, start + dur, e["args"]["op"].get<uint64_t>()});
            ++seen[e["args"]["op"].get<uint64_t>()];
        } else if (e["ph"] == "M" && e["name"] == "thread_name") {
            names[thread] = e["args"]["name"];
        } else if (e["ph"] == "M" && e["name"] == "thread_sort_index") {
            sort_index[thread] = e["args"]["sort_index"].get<int>();
        }
    }
    // Every op exactly once.
    EXPECT_EQ(seen.size(), r.ops.size());
    for (const auto& [op, n] : seen) EXPECT_EQ(n, 1) << "op " << op;

    // No two slices of one thread overlap partially (a starts, b starts, a ends, b ends).
    uint64_t partial = 0;
    std::string example;
    for (auto& [thread, list] : slices) {
        std::sort(list.begin(), list.end(), [](const Slice& a, const Slice& b) {
            return a.start != b.start ? a.start < b.start : a.end > b.end;  // parents before children
        });
        std::vector<const Slice*> open;
        for (const Slice& s : list) {
            while (!open.empty() && open.back()->end <= s.start) open.pop_back();
            if (!open.empty() && s.end > open.back()->end) {
                if (!partial++)
                    example = names[thread] + ": op " + std::to_string(open.back()->op) + " [" +
                              std::to_string(open.back()->start) + ", " + std::to_string(open.back()->end) +
                              ") and op " + std::to_string(s.op) + " [" + std::to_string(s.start) + ", " +
                              std::to_string(s.end) + ") ps";
            }
            open.push_back(&s);
        }
    }
    EXPECT_EQ(partial, 0u) << "slices overlapping partially on one thread, e.g. " << example;

    // An engine's lanes: named after it ("dma_0", "dma_0 #2", ...), as many as it had ops in
    // flight at once, sorted next to each other.
    std::map<std::string, uint64_t> lanes;  // engine scope -> threads
    std::map<int, std::vector<std::pair<int, std::string>>> order;  // pid -> (sort index, engine)
    for (const auto& [thread, name] : names) {
        const std::string engine = name.substr(0, name.find(" #"));
        ++lanes[engine];
        if (name != engine) {
            EXPECT_EQ(name, engine + " #" + std::to_string(lanes[engine])) << "lanes numbered from #2 in tid order";
        }
        ASSERT_TRUE(sort_index.count(thread)) << name;
        order[thread.first].push_back({sort_index[thread], engine});
    }
    EXPECT_EQ(lanes, lanes_needed) << "one lane per op in flight at once, no more";
    for (auto& [pid, list] : order) {
        std::sort(list.begin(), list.end());
        std::set<std::string> done;
        for (size_t i = 0; i < list.size(); ++i)
            if (i == 0 || list[i].second != list[i - 1].second) {
                EXPECT_TRUE(done.insert(list[i].second).second) << list[i].second << "'s lanes are not together";
            }
    }
}

// The vector engines in the stats: per engine its commands, elements and energy from the
// engine's counters, each the sum of the formulas (hw::vector_cycles, hw::vector_energy_pj)
// over the program's VECTOR ops; their energy is a part of the total.
TEST(Stats, VectorEnginesCountTheirCommandsElementsAndEnergyByTheFormulas) {
    VectorRun run;
    ASSERT_EQ(run.session->failure(), "");
    const cli::RunReport& r = run.report;
    const hw::VectorUnit& unit = run.config.vector;
    const double cycle_ps = 1e12 / run.config.clocks.fabric_hz;
    struct Expected {
        uint64_t commands = 0, elements = 0, cycles = 0;
        double pj = 0;
    };
    std::map<std::string, Expected> expected;  // by engine scope
    Expected all;
    for (const compiler::BoundOp* op : run.vector_ops()) {
        for (Expected* e : {&expected[cli::engine_scope(*op)], &all}) {
            ++e->commands;
            e->elements += uint64_t(op->vector.rows) * op->vector.cols;
            e->cycles += hw::vector_cycles(op->vector, unit);
            e->pj += hw::vector_energy_pj(op->vector, unit);
        }
    }
    ASSERT_GE(all.commands, 4u) << "one command per op at least";
    EXPECT_EQ(all.elements, 4u * 67 * 131) << "four ops over the whole 67 x 131 tensor";
    ASSERT_EQ(r.vectors.size(), expected.size());
    const json s = cli::stats_json(r, nullptr);
    const double total_s = r.total_s();
    for (const cli::VectorActivity& v : r.vectors) {
        const Expected& e = expected.at(v.scope);
        EXPECT_EQ(v.commands, e.commands) << v.scope;
        EXPECT_EQ(v.elements, e.elements) << v.scope;
        EXPECT_NEAR(double(v.busy), double(e.cycles) * cycle_ps, 1.0) << v.scope;
        EXPECT_NEAR(v.energy_pj, e.pj, 1e-9 * e.pj) << v.scope;
        // Its engine entry: busy from the op records (the engine runs one command at a time,
        // so the union of its ops is their sum), and the engine's counters.
        const json* entry = nullptr;
        for (const auto& engine : s["engines"])
            if (engine["name"] == v.scope) entry = &engine;
        ASSERT_NE(entry, nullptr) << v.scope;
        EXPECT_EQ((*entry)["kind"], "vector");
        EXPECT_EQ((*entry)["ops"].get<uint64_t>(), e.commands);
        EXPECT_EQ((*entry)["commands"].get<uint64_t>(), e.commands);
        EXPECT_EQ((*entry)["elements"].get<uint64_t>(), e.elements);
        EXPECT_NEAR((*entry)["busy_time_us"].get<double>(), double(e.cycles) * cycle_ps * 1e-6, 1e-6);
        EXPECT_NEAR((*entry)["utilization"].get<double>(), double(e.cycles) * cycle_ps * 1e-12 / total_s, 1e-9);
        EXPECT_NEAR((*entry)["energy_uj"].get<double>(), e.pj * 1e-6, 1e-9 * e.pj);
        EXPECT_GT((*entry)["bytes_read"].get<uint64_t>(), 0u);
        EXPECT_GT((*entry)["bytes_written"].get<uint64_t>(), 0u);
    }
    const json& vector = s["vector"];
    EXPECT_EQ(vector["engines"].get<uint64_t>(), expected.size());
    EXPECT_EQ(vector["commands"].get<uint64_t>(), all.commands);
    EXPECT_EQ(vector["elements"].get<uint64_t>(), all.elements);
    EXPECT_NEAR(vector["busy_time_us"].get<double>(), double(all.cycles) * cycle_ps * 1e-6, 1e-6);
    EXPECT_NEAR(vector["energy_uj"].get<double>(), all.pj * 1e-6, 1e-9 * all.pj);
    EXPECT_NEAR(vector["achieved_elements_per_s"].get<double>(), double(all.elements) / total_s,
                1e-9 * double(all.elements) / total_s);
    EXPECT_DOUBLE_EQ(vector["peak_elements_per_s"].get<double>(),
                     double(run.config.compute_tiles) * unit.lanes * run.config.clocks.fabric_hz);
    // The energy breakdown has the vector engines' part, and the total includes it.
    const json& parts = s["energy_uj"];
    EXPECT_NEAR(parts["vector"].get<double>(), all.pj * 1e-6, 1e-9 * all.pj);
    double sum = 0;
    for (const auto& [k, v] : parts.items()) sum += v.get<double>();
    EXPECT_NEAR(s["total_energy_uj"].get<double>(), sum, 1e-9 * sum);
    EXPECT_EQ(s["macs"].get<uint64_t>(), 0u);
    // The vector engines compute: their time is compute time, not a stall.
    EXPECT_GE(r.compute, uint64_t(double(all.cycles) * cycle_ps / double(expected.size())));
    // The summary's line says the same.
    const std::string line = cli::vector_summary(r);
    EXPECT_NE(line.find(std::to_string(all.commands) + " commands, " + std::to_string(all.elements) + " elements"),
              std::string::npos)
        << line;
}

TEST(Stats, AMatmulOnlyRunHasNoVectorWork) {
    MlpRun run;
    const json s = cli::stats_json(run.report, nullptr);
    EXPECT_TRUE(run.report.vectors.empty());
    EXPECT_EQ(s["vector"]["commands"].get<uint64_t>(), 0u);
    EXPECT_EQ(s["vector"]["elements"].get<uint64_t>(), 0u);
    EXPECT_EQ(s["energy_uj"]["vector"].get<double>(), 0.0);
    EXPECT_EQ(cli::vector_summary(run.report), "");
    for (const auto& engine : s["engines"]) EXPECT_FALSE(engine.contains("elements")) << engine.dump();
}

// A slice per vector op on its tile's vector engine track, named VECTOR and its function, with
// the function and the tile's rows x cols as args, lasting hw::vector_cycles.
TEST(Trace, VectorOpsAreSlicesWithTheirFunctionAndShape) {
    VectorRun run;
    const auto [slices, threads] = TraceSlices(run, "vector_trace.json", "vector");
    const auto ops = run.vector_ops();
    ASSERT_EQ(slices.size(), ops.size());
    const double us_per_cycle = 1e6 / run.config.clocks.fabric_hz;
    std::map<std::string, int> functions;
    for (const compiler::BoundOp* op : ops) {
        const json& s = slices.at(op->id);
        const std::string function = hw::to_string(op->vector.function);
        ++functions[function];
        EXPECT_EQ(s["name"], "VECTOR " + function);
        EXPECT_EQ(s["args"]["function"], function);
        EXPECT_EQ(s["args"]["rows"].get<uint32_t>(), op->vector.rows);
        EXPECT_EQ(s["args"]["cols"].get<uint32_t>(), op->vector.cols);
        EXPECT_NEAR(s["dur"].get<double>(), double(hw::vector_cycles(op->vector, run.config.vector)) * us_per_cycle,
                    1e-6)
            << s.dump();
        EXPECT_EQ(threads.at({s["pid"].get<int>(), s["tid"].get<int>()}), cli::engine_scope(*op));
    }
    for (const char* f : {"add", "gelu", "softmax", "layer_norm"}) EXPECT_GT(functions[f], 0) << f;
}

// Each vector engine that ran has a busy wire that rises per command run back to back at
// most, whose high time is the engine's busy time; GTKWave reads the file.
TEST(Vcd, VectorEnginesHaveABusyLineHighForTheirCommands) {
    VectorRun run;
    const std::string vcd = gtkwave_readable_vcd(run, "vector");
    ASSERT_NE(vcd, "") << "GTKWave's vcd2fst refused the file";
    std::map<std::string, int> rises;
    const auto high = integrals(vcd, run.report.end, &rises);
    ASSERT_FALSE(run.report.vectors.empty());
    for (const cli::VectorActivity& v : run.report.vectors) {
        const std::string key = "kpu." + v.scope + ".busy";
        ASSERT_TRUE(high.count(key)) << key;
        EXPECT_NEAR(high.at(key), double(v.busy), 1.0) << key;
        EXPECT_GE(rises[key], 1) << key;
        EXPECT_LE(uint64_t(rises[key]), v.commands) << key;
    }
    // Busy and queue only: a vector engine moves no bytes of its own (like the fabric).
    const std::string text = slurp(vcd);
    for (size_t at = 0; (at = text.find("$scope module vector $end", at)) != std::string::npos; ++at) {
        const std::string scope = text.substr(at, text.find("$upscope", at) - at);
        EXPECT_NE(scope.find(" busy $end"), std::string::npos) << scope;
        EXPECT_EQ(scope.find(" bytes $end"), std::string::npos) << scope;
    }
}

}  // namespace
}  // namespace kpu::test
