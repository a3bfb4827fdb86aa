#include "hardware/config.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <limits>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "hardware/input_file.h"
#include "hardware/json_reader.h"

namespace kpu::hw {
namespace {

std::string rate_text(double per_s, const char* unit);  // below, with describe()

using json = nlohmann::json;

/// The element types a config may name, widest first (the order configs' types are kept in),
/// with each one's bytes.
struct KnownType {
    const char* name;
    uint32_t bytes;
};
constexpr KnownType kElementTypes[] = {{"float32", 4}, {"bfloat16", 2}, {"float16", 2}, {"int8", 1}};
/// Every field name the schema has, at any depth: a missing field whose near-namesake is
/// present and not one of these is reported as that typo.
const std::set<std::string> kFieldNames = [] {
    std::set<std::string> names = {
        "name", "description", "clocks", "fabric_mhz", "sram_mhz", "dram_mhz", "compute_tiles", "fabric", "rows",
        "cols", "element_types", "energy_pj_per_mac", "vector", "lanes", "sfu_cycles", "energy_pj_per_op",
        "energy_pj_per_sfu_op", "macs_per_pe_cycle", "ops_per_lane_cycle", "dram", "channels", "capacity_mib", "bandwidth_gb_per_s", "latency_cycles", "ports",
        "burst_bytes", "interleave_bytes", "channel_select", "energy_pj_per_byte", "l3", "tiles", "capacity_kib", "l2",
        "banks_per_tile", "l1", "buffers_per_tile", "interconnect", "dma", "engines", "queue_depth", "block_mover",
        "per_tile", "streamer", "static_power_w"};
    for (const auto& entry : kSfuFunctionNames) names.insert(entry.name);  // the keys of vector.sfu_cycles
    for (const auto& type : kElementTypes) names.insert(type.name);       // the keys of element_types
    return names;
}();

constexpr double kGB = 1e9;
constexpr double kMHz = 1e6;

// Limits (docs/config.md, "Limits"): far beyond any real SKU, and small enough that every
// derived time fits the simulator's femtosecond clock and the platform elaborates in seconds.
constexpr double kMinMHz = 1, kMaxMHz = 100'000;             ///< 1 MHz .. 100 GHz
constexpr double kMinGBps = 0.001, kMaxGBps = 1'000'000;     ///< 1 MB/s .. 1 PB/s
constexpr double kMaxEnergyPj = 1'000'000, kMaxPowerW = 1'000'000;
constexpr uint64_t kMaxLatencyCycles = 1'000'000, kMaxPorts = 64, kMaxBurstBytes = 65536, kMaxQueueDepth = 65536;
constexpr uint64_t kMaxComputeTiles = 1024, kMaxDramChannels = 64, kMaxL2Banks = 256, kMaxL1Buffers = 4096;
constexpr uint64_t kMaxDmaEngines = 1024, kMaxMoversPerTile = 64;
constexpr uint64_t kMaxFabricSide = 4096, kMaxVectorLanes = 4096;
/// Cycles per lane group of one SFU function: a unit slower than this is no SFU.
constexpr uint64_t kMaxSfuCycles = 1024;
/// L2 banks and L1 buffers over all tiles (each is a module with its own timing and pages).
constexpr uint64_t kMaxMemoryInstances = 1u << 18;
/// DMA engines, block movers and streamers over all tiles: each is a SystemC thread with its
/// own stack, and the OS bounds how many mappings a process may hold.
constexpr uint64_t kMaxMovers = 16384;

/// The rate the list form of `element_types` gives a type (docs/config.md): as many as fit the
/// 32 bits of a float32 operand path, 4 / bytes per PE (or lane) per cycle.
constexpr uint32_t kFloat32Bytes = 4;
/// A PE or lane doing more than this many operations per cycle is no PE.
constexpr uint64_t kMaxOpsPerCycle = 64;

const KnownType* known_type(const std::string& name) {
    for (const KnownType& t : kElementTypes)
        if (name == t.name) return &t;
    return nullptr;
}

/// Sorts types into kElementTypes' order.
void order_types(std::vector<ElementType>& types) {
    auto rank = [](const ElementType& t) { return known_type(t.name) - kElementTypes; };
    std::sort(types.begin(), types.end(), [&](const ElementType& a, const ElementType& b) { return rank(a) < rank(b); });
}

/// `element_types` of the fabric (`ops_key` "macs_per_pe_cycle", `energy_key`
/// "energy_pj_per_mac") or the vector engine ("ops_per_lane_cycle", "energy_pj_per_op"). The
/// list form names the types and takes the rate 4 / bytes and the energy `float32_energy` /
/// rate; the object form gives both per type, and then the unit-level `energy_key` must be
/// absent (float32's entry holds it). Sets `float32_energy` from the object form.
std::vector<ElementType> read_element_types(JsonReader& r, const char* ops_key, const char* energy_key,
                                            double& float32_energy) {
    const std::string path = r.path_of("element_types");
    const json& value = r.field("element_types");
    std::vector<ElementType> types;
    auto unknown = [&](const std::string& where, const std::string& name) {
        r.fail(where, "unknown element type \"" + name + "\" (known: bfloat16, float16, float32, int8)");
    };
    if (value.is_object()) {
        if (r.contains(energy_key))
            r.fail(r.path_of(energy_key), "give it per type, as " + path + ".float32." + energy_key +
                                              " (element_types is an object)");
        for (const auto& [name, entry] : value.items()) {
            if (!known_type(name)) unknown(path + "." + name, name);
            JsonReader e = r.child(entry, path + "." + name);
            ElementType t;
            t.name = name;
            t.ops_per_cycle = static_cast<uint32_t>(e.count(ops_key, kMaxOpsPerCycle));
            t.energy_pj_per_op = e.number(energy_key, 0, kMaxEnergyPj);
            e.finish();
            types.push_back(t);
        }
        if (types.empty()) r.fail(path, "must list at least \"float32\"");
    } else {
        const std::vector<std::string> names = r.strings("element_types");
        for (size_t i = 0; i < names.size(); ++i) {
            if (!known_type(names[i])) unknown(r.path_of("element_types", i), names[i]);
            for (size_t j = 0; j < i; ++j)
                if (names[j] == names[i])
                    r.fail(r.path_of("element_types", i), "\"" + names[i] + "\" is listed twice");
        }
        float32_energy = r.number(energy_key, 0, kMaxEnergyPj);
        for (const std::string& name : names) {
            ElementType t;
            t.name = name;
            t.ops_per_cycle = kFloat32Bytes / known_type(name)->bytes;
            t.energy_pj_per_op = float32_energy / t.ops_per_cycle;
            types.push_back(t);
        }
    }
    order_types(types);
    if (types.front().name != "float32") r.fail(path, "must include \"float32\"");
    if (types.front().ops_per_cycle != 1)
        r.fail(path + ".float32." + ops_key, std::string("must be 1 (float32 is the rate the timing models assume), got ") +
                                                 std::to_string(types.front().ops_per_cycle));
    if (value.is_object()) float32_energy = types.front().energy_pj_per_op;
    return types;
}

/// The fields every memory level shares. `count_key` is how the level names its count.
MemoryLevel read_level(JsonReader& r, const std::string& count_key, uint64_t max_count,
                       const std::string& capacity_key, uint64_t capacity_unit) {
    MemoryLevel level;
    level.count = static_cast<uint32_t>(r.count(count_key, max_count));
    level.capacity_bytes = r.count(capacity_key, std::numeric_limits<uint64_t>::max() / capacity_unit) * capacity_unit;
    level.bandwidth_bytes_per_s = r.number("bandwidth_gb_per_s", kMinGBps, kMaxGBps) * kGB;
    level.latency_cycles = static_cast<uint32_t>(r.count("latency_cycles", kMaxLatencyCycles));
    level.ports = static_cast<uint32_t>(r.count("ports", kMaxPorts));
    level.burst_bytes = static_cast<uint32_t>(r.power_of_two("burst_bytes", kMaxBurstBytes));
    level.energy_pj_per_byte = r.number("energy_pj_per_byte", 0, kMaxEnergyPj);
    if (level.capacity_bytes % level.burst_bytes != 0)
        r.fail(r.path_of(capacity_key), "capacity of " + std::to_string(level.capacity_bytes) +
                                            " bytes is not a multiple of burst_bytes (" +
                                            std::to_string(level.burst_bytes) + ")");
    return level;
}

Engine read_engine(JsonReader& r, const std::string& count_key, uint64_t max_count) {
    Engine engine;
    engine.count = static_cast<uint32_t>(r.count(count_key, max_count));
    engine.bandwidth_bytes_per_s = r.number("bandwidth_gb_per_s", kMinGBps, kMaxGBps) * kGB;
    engine.queue_depth = static_cast<uint32_t>(r.count("queue_depth", kMaxQueueDepth));
    r.finish();
    return engine;
}

/// `fabric_types`: the fabric's, which the vector engine's element types must equal (it takes
/// what the fabric drains); without `vector.element_types`, each gets the list form's rate
/// and energy (read_element_types).
VectorUnit read_vector(JsonReader r, const std::vector<ElementType>& fabric_types) {
    VectorUnit v;
    v.lanes = static_cast<uint32_t>(r.count("lanes", kMaxVectorLanes));
    v.latency_cycles = static_cast<uint32_t>(r.count("latency_cycles", kMaxLatencyCycles));
    {
        JsonReader sfu = r.object("sfu_cycles");
        for (const auto& entry : kSfuFunctionNames)
            v.sfu_cycles[size_t(entry.value)] = static_cast<uint32_t>(sfu.count(entry.name, kMaxSfuCycles));
        sfu.finish();
    }
    if (r.contains("element_types")) {
        v.element_types = read_element_types(r, "ops_per_lane_cycle", "energy_pj_per_op", v.energy_pj_per_op);
        auto names = [](const std::vector<ElementType>& types) {
            std::string text;
            for (const ElementType& t : types) text += (text.empty() ? "" : ", ") + t.name;
            return text;
        };
        if (names(v.element_types) != names(fabric_types))
            r.fail("vector.element_types", "must list the fabric's types (" + names(fabric_types) + "), got (" +
                                               names(v.element_types) + ")");
    } else {
        v.energy_pj_per_op = r.number("energy_pj_per_op", 0, kMaxEnergyPj);
        for (ElementType t : fabric_types) {
            t.ops_per_cycle = kFloat32Bytes / known_type(t.name)->bytes;
            t.energy_pj_per_op = v.energy_pj_per_op / t.ops_per_cycle;
            v.element_types.push_back(t);
        }
    }
    v.energy_pj_per_sfu_op = r.number("energy_pj_per_sfu_op", 0, kMaxEnergyPj);
    r.finish();
    return v;
}

void apply_override(json& root, const Override& o, const std::string& source) {
    const std::string where = source + ": --set " + o.path + "=" + o.value + ": ";
    json* node = &root;
    std::string walked;
    std::stringstream parts(o.path);
    std::string part;
    while (std::getline(parts, part, '.')) {
        walked += (walked.empty() ? "" : ".") + part;
        if (!node->is_object() || !node->contains(part))
            throw ConfigError(where + "no field '" + walked + "' in the config");
        node = &(*node)[part];
    }
    json value;
    std::string not_json;  // then the value is taken as a string
    *node = parse_json_text(o.value, value, not_json) ? value : json(o.value);
}

/// The terms of Derived::burst_path_s, each under the config field that sets it: every
/// level's latency and burst time, and two network links' (a tile-to-tile move crosses both).
std::vector<std::pair<const char*, double>> burst_path_terms(const Config& c) {
    auto burst = [](const MemoryLevel& l) { return double(l.burst_bytes) / l.bandwidth_bytes_per_s; };
    return {
        {"dram.latency_cycles", c.dram.latency_cycles / c.clocks.dram_hz},
        {"l3.latency_cycles", c.l3.latency_cycles / c.clocks.sram_hz},
        {"l2.latency_cycles", c.l2.latency_cycles / c.clocks.sram_hz},
        {"l1.latency_cycles", c.l1.latency_cycles / c.clocks.sram_hz},
        {"interconnect.latency_cycles", 2.0 * c.interconnect.latency_cycles / c.clocks.sram_hz},
        {"dram.bandwidth_gb_per_s", burst(c.dram)},
        {"l3.bandwidth_gb_per_s", burst(c.l3)},
        {"l2.bandwidth_gb_per_s", burst(c.l2)},
        {"l1.bandwidth_gb_per_s", burst(c.l1)},
        {"interconnect.bandwidth_gb_per_s", 2.0 * double(c.dram.burst_bytes) / c.interconnect.bandwidth_bytes_per_s},
    };
}

/// Refuses a config whose movers would need to run further ahead of their completions than
/// the simulator supports (Derived::mover_window_s), naming the field that contributes most.
void check_mover_window(const Config& c, const JsonReader& top) {
    const Derived d = derive(c);
    if (d.mover_window_s <= kMaxMoverWindowS) return;
    auto us = [](double s) {
        std::ostringstream out;
        out << std::setprecision(3) << s * 1e6 << " us";
        return out.str();
    };
    const auto parts = burst_path_terms(c);
    const char* field = "dram.interleave_bytes";
    std::string why = "dram.channels x interleave_bytes / channel bandwidth = " + std::to_string(c.dram.count) +
                      " x " + std::to_string(c.dram.interleave_bytes) + " B / " +
                      rate_text(c.dram.bandwidth_bytes_per_s * c.dram.ports, "B/s") + " = " +
                      us(d.dram_interleave_span_s);
    if (d.burst_path_s >= d.dram_interleave_span_s) {
        const auto most = std::max_element(parts.begin(), parts.end(),
                                           [](const auto& a, const auto& b) { return a.second < b.second; });
        field = most->first;
        why = "a burst's unloaded path takes up to " + us(d.burst_path_s) + ", " + us(most->second) + " of it " +
              most->first;
    }
    top.fail(field, why + "; movers would have to run that far ahead of their completions, more than the "
                          "simulator's " + us(kMaxMoverWindowS) + " (docs/models.md, Temporal decoupling)");
}

Config read_config(const json& root, const std::string& source) {
    JsonReader top(root, "", source, throw_as<ConfigError>, &kFieldNames);
    Config c;
    c.source = source;
    c.name = top.string("name");
    if (c.name.empty()) top.fail("name", "must not be empty");
    if (top.contains("description")) c.description = top.string("description");

    {
        JsonReader r = top.object("clocks");
        c.clocks.fabric_hz = r.number("fabric_mhz", kMinMHz, kMaxMHz) * kMHz;
        c.clocks.sram_hz = r.number("sram_mhz", kMinMHz, kMaxMHz) * kMHz;
        c.clocks.dram_hz = r.number("dram_mhz", kMinMHz, kMaxMHz) * kMHz;
        r.finish();
    }
    c.compute_tiles = static_cast<uint32_t>(top.count("compute_tiles", kMaxComputeTiles));
    {
        JsonReader r = top.object("fabric");
        c.fabric.rows = static_cast<uint32_t>(r.count("rows", kMaxFabricSide));
        c.fabric.cols = static_cast<uint32_t>(r.count("cols", kMaxFabricSide));
        c.fabric.element_types = read_element_types(r, "macs_per_pe_cycle", "energy_pj_per_mac",
                                                    c.fabric.energy_pj_per_mac);
        r.finish();
    }
    c.vector = read_vector(top.object("vector"), c.fabric.element_types);
    {
        JsonReader r = top.object("dram");
        static_cast<MemoryLevel&>(c.dram) = read_level(r, "channels", kMaxDramChannels, "capacity_mib", 1ull << 20);
        c.dram.interleave_bytes = r.power_of_two("interleave_bytes");
        if (c.dram.interleave_bytes < c.dram.burst_bytes)
            r.fail("dram.interleave_bytes", "must be >= dram.burst_bytes (" + std::to_string(c.dram.burst_bytes) +
                                                "), got " + std::to_string(c.dram.interleave_bytes));
        if (c.dram.capacity_bytes % c.dram.interleave_bytes != 0)
            r.fail("dram.capacity_mib", "channel capacity of " + std::to_string(c.dram.capacity_bytes) +
                                            " bytes is not a multiple of dram.interleave_bytes (" +
                                            std::to_string(c.dram.interleave_bytes) + ")");
        if (r.contains("channel_select")) {
            const std::string select = r.string("channel_select");
            if (!parse_channel_select(select, c.dram.channel_select)) {
                std::string expected;
                for (const auto& entry : kChannelSelectNames)
                    expected += (expected.empty() ? "\"" : " or \"") + std::string(entry.name) + "\"";
                r.fail("dram.channel_select", "expected " + expected + ", got \"" + select + "\"");
            }
        }
        r.finish();
    }
    {
        JsonReader r = top.object("l3");
        c.l3 = read_level(r, "tiles", kMaxComputeTiles, "capacity_kib", 1024);
        r.finish();
        if (c.l3.count != c.compute_tiles)
            r.fail("l3.tiles", "must equal compute_tiles (" + std::to_string(c.compute_tiles) +
                                   ": one L3 tile per compute tile), got " + std::to_string(c.l3.count));
    }
    {
        JsonReader r = top.object("l2");
        c.l2 = read_level(r, "banks_per_tile", kMaxL2Banks, "capacity_kib", 1024);
        r.finish();
    }
    {
        JsonReader r = top.object("l1");
        c.l1 = read_level(r, "buffers_per_tile", kMaxL1Buffers, "capacity_kib", 1024);
        r.finish();
        if (c.l1.count < 2)
            r.fail("l1.buffers_per_tile", "must be >= 2 (one for A, one for B), got " + std::to_string(c.l1.count));
    }
    {
        JsonReader r = top.object("interconnect");
        c.interconnect.bandwidth_bytes_per_s = r.number("bandwidth_gb_per_s", kMinGBps, kMaxGBps) * kGB;
        c.interconnect.latency_cycles = static_cast<uint32_t>(r.count("latency_cycles", kMaxLatencyCycles));
        r.finish();
    }
    {
        JsonReader r = top.object("dma");
        c.dma = read_engine(r, "engines", kMaxDmaEngines);
    }
    {
        JsonReader r = top.object("block_mover");
        c.block_mover = read_engine(r, "per_tile", kMaxMoversPerTile);
        if (c.block_mover.count > c.l2.count)
            r.fail("block_mover.per_tile", "must be <= l2.banks_per_tile (" + std::to_string(c.l2.count) +
                                               "), got " + std::to_string(c.block_mover.count));
    }
    {
        JsonReader r = top.object("streamer");
        c.streamer = read_engine(r, "per_tile", kMaxMoversPerTile);
        if (c.streamer.count > c.l1.count)
            r.fail("streamer.per_tile", "must be <= l1.buffers_per_tile (" + std::to_string(c.l1.count) +
                                            "), got " + std::to_string(c.streamer.count));
    }
    c.static_power_w = top.number("static_power_w", 0, kMaxPowerW);
    // Each level's instances must fit the 1 TiB window the address map gives the level.
    auto fits_window = [&](const char* path, const char* level, long double instances, uint64_t capacity) {
        const long double total = instances * capacity;
        if (total >= (long double)(1ull << 40))
            top.fail(path, std::string("total ") + level + " of " + std::to_string((unsigned long long)total) +
                               " bytes must be below 1 TiB (the level's address window)");
    };
    fits_window("dram.capacity_mib", "DRAM", c.dram.count, c.dram.capacity_bytes);
    fits_window("l3.capacity_kib", "L3", c.l3.count, c.l3.capacity_bytes);
    fits_window("l2.capacity_kib", "L2", (long double)c.compute_tiles * c.l2.count, c.l2.capacity_bytes);
    fits_window("l1.capacity_kib", "L1", (long double)c.compute_tiles * c.l1.count, c.l1.capacity_bytes);
    const uint64_t memories = uint64_t(c.compute_tiles) * (c.l2.count + c.l1.count);
    if (memories > kMaxMemoryInstances)
        top.fail("l1.buffers_per_tile", "compute_tiles x (l2.banks_per_tile + l1.buffers_per_tile) = " +
                                            std::to_string(c.compute_tiles) + " x (" + std::to_string(c.l2.count) +
                                            " + " + std::to_string(c.l1.count) + ") = " + std::to_string(memories) +
                                            " memories, more than the simulator's " +
                                            std::to_string(kMaxMemoryInstances));
    const uint64_t movers = c.dma.count + uint64_t(c.compute_tiles) * (c.block_mover.count + c.streamer.count);
    if (movers > kMaxMovers)
        top.fail("compute_tiles", "dma.engines + compute_tiles x (block_mover.per_tile + streamer.per_tile) = " +
                                      std::to_string(c.dma.count) + " + " + std::to_string(c.compute_tiles) + " x (" +
                                      std::to_string(c.block_mover.count) + " + " + std::to_string(c.streamer.count) +
                                      ") = " + std::to_string(movers) + " data movers, more than the simulator's " +
                                      std::to_string(kMaxMovers));
    check_mover_window(c, top);
    top.finish();
    return c;
}

}  // namespace

bool Config::supports(const std::string& element_type) const {
    return std::any_of(fabric.element_types.begin(), fabric.element_types.end(),
                       [&](const ElementType& t) { return t.name == element_type; });
}

namespace {

const ElementType& find_type(const Config& c, const std::vector<ElementType>& types, const std::string& name) {
    for (const ElementType& t : types)
        if (t.name == name) return t;
    std::string listed;
    for (const ElementType& t : types) listed += (listed.empty() ? "" : ", ") + t.name;
    throw ConfigError("element type '" + name + "' is not supported by config '" + c.name + "' (" + listed + ")");
}

}  // namespace

const ElementType& Config::fabric_type(const std::string& element_type) const {
    return find_type(*this, fabric.element_types, element_type);
}

const ElementType& Config::vector_type(const std::string& element_type) const {
    return find_type(*this, vector.element_types, element_type);
}

std::string set_flags(const std::vector<std::string>& overrides) {
    std::string flags;
    for (const std::string& o : overrides) flags += " --set " + o;
    return flags;
}

Override parse_override(const std::string& text) {
    auto eq = text.find('=');
    if (eq == std::string::npos || eq == 0)
        throw ConfigError("--set " + text + ": expected PATH=VALUE, e.g. fabric.rows=32");
    return {text.substr(0, eq), text.substr(eq + 1)};
}

Config parse_config(const std::string& json_text, const std::string& source, const std::vector<Override>& overrides) {
    json root = parse_document(json_text, source, "config", throw_as<ConfigError>);
    for (const auto& o : overrides) apply_override(root, o, source);
    Config config = read_config(root, source);
    for (const auto& o : overrides) config.overrides.push_back(o.path + "=" + o.value);
    return config;
}

Config load_config(const std::string& path, const std::vector<Override>& overrides) {
    std::string text, problem;
    if (!read_input_file(path, "config", text, problem)) throw ConfigError(path + ": " + problem);
    return parse_config(text, path, overrides);
}

Derived derive(const Config& c) {
    Derived d;
    const double tiles = c.compute_tiles;
    auto level_bw = [](const MemoryLevel& l) { return double(l.count) * l.ports * l.bandwidth_bytes_per_s; };
    auto one_bw = [](const MemoryLevel& l) { return double(l.ports) * l.bandwidth_bytes_per_s; };
    auto engine_bw = [](const Engine& e) { return double(e.count) * e.bandwidth_bytes_per_s; };

    d.peak_macs_per_s = tiles * c.fabric.rows * c.fabric.cols * c.clocks.fabric_hz;
    for (const ElementType& t : c.fabric.element_types)
        d.fabric_peaks.push_back({t.name, d.peak_macs_per_s * t.ops_per_cycle, t.energy_pj_per_op});
    d.peak_flops = 2 * d.peak_macs_per_s;
    d.dram_bandwidth = level_bw(c.dram);
    d.l3_l2_bandwidth = tiles * std::min({one_bw(c.l3), engine_bw(c.block_mover), level_bw(c.l2)});
    d.l2_l1_bandwidth = tiles * std::min({level_bw(c.l2), engine_bw(c.streamer), level_bw(c.l1)});
    d.dma_bandwidth = std::min({engine_bw(c.dma), d.dram_bandwidth,
                                tiles * std::min(c.interconnect.bandwidth_bytes_per_s, one_bw(c.l3))});
    d.ridge_flop_per_byte = d.peak_flops / d.dma_bandwidth;  // the memory roof the roofline uses
    d.vector_elements_per_s = tiles * c.vector.lanes * c.clocks.fabric_hz;
    d.vector_exp_per_s = d.vector_elements_per_s / c.vector.cycles_of(SfuFunction::Exp);
    for (const ElementType& t : c.vector.element_types)
        d.vector_peaks.push_back({t.name, d.vector_elements_per_s * t.ops_per_cycle, t.energy_pj_per_op});
    d.dram_capacity = uint64_t(c.dram.count) * c.dram.capacity_bytes;
    d.l3_capacity = uint64_t(c.l3.count) * c.l3.capacity_bytes;
    d.l2_banks = uint64_t(c.compute_tiles) * c.l2.count;
    d.l1_buffers = uint64_t(c.compute_tiles) * c.l1.count;
    d.l2_capacity = d.l2_banks * c.l2.capacity_bytes;
    d.l1_capacity = d.l1_buffers * c.l1.capacity_bytes;
    for (const auto& [field, seconds] : burst_path_terms(c)) d.burst_path_s += seconds;
    d.dram_interleave_span_s = double(c.dram.count) * double(c.dram.interleave_bytes) / one_bw(c.dram);
    d.mover_window_s = std::max(d.burst_path_s, d.dram_interleave_span_s);
    return d;
}

namespace {

std::string bytes_text(double bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) bytes /= 1024, ++u;
    std::ostringstream out;
    out << std::setprecision(bytes == std::floor(bytes) ? 0 : 1) << std::fixed << bytes << " " << units[u];
    return out.str();
}

std::string rate_text(double per_s, const char* unit) {
    const char* prefixes[] = {"", "K", "M", "G", "T", "P"};
    int p = 0;
    while (per_s >= 1000 && p < 5) per_s /= 1000, ++p;
    char text[64];
    std::snprintf(text, sizeof text, "%.4g %s%s", per_s, prefixes[p], unit);
    return text;
}

}  // namespace

std::string describe(const Config& c) {
    const Derived d = derive(c);
    std::ostringstream out;
    auto row = [&](const std::string& label, const std::string& value) {
        out << "  " << std::left << std::setw(28) << label << value << "\n";
    };
    out << "KPU " << c.name << (c.description.empty() ? "" : " - " + c.description) << "\n";
    out << "compute\n";
    row("compute tiles", std::to_string(c.compute_tiles) + " x " + std::to_string(c.fabric.rows) + "x" +
                             std::to_string(c.fabric.cols) + " fabric @ " + rate_text(c.clocks.fabric_hz, "Hz"));
    row("peak MAC/s", rate_text(d.peak_macs_per_s, "MAC/s"));
    row("peak FLOP/s", rate_text(d.peak_flops, "FLOP/s"));
    auto per_type = [&](const std::vector<ElementPeak>& peaks, const std::vector<ElementType>& types,
                        const char* label, const char* unit, const char* per, const char* op) {
        for (size_t i = 0; i < peaks.size(); ++i) {
            char detail[160];
            std::snprintf(detail, sizeof detail, "  (%u per %s per cycle; %.4g pJ/%s, %s at peak)",
                          types[i].ops_per_cycle, per, peaks[i].energy_pj_per_op, op,
                          rate_text(peaks[i].ops_per_s * peaks[i].energy_pj_per_op * 1e-12, "W").c_str());
            row(std::string(label) + " " + peaks[i].name, rate_text(peaks[i].ops_per_s, unit) + detail);
        }
    };
    per_type(d.fabric_peaks, c.fabric.element_types, "peak MAC/s", "MAC/s", "PE", "MAC");
    out << "vector engines (fabric clock)\n";
    row("vector engines", std::to_string(c.compute_tiles) + " x " + std::to_string(c.vector.lanes) + " lanes");
    row("peak elements/s (ALU op)", rate_text(d.vector_elements_per_s, "elem/s"));
    per_type(d.vector_peaks, c.vector.element_types, "ALU op/s", "op/s", "lane", "op");
    row("peak exp/s", rate_text(d.vector_exp_per_s, "elem/s") + "  (" +
                          std::to_string(c.vector.cycles_of(SfuFunction::Exp)) + " cycles per lane group)");
    out << "bandwidth (aggregate)\n";
    row("DRAM (external)", rate_text(d.dram_bandwidth, "B/s") + "  (" + std::to_string(c.dram.count) + " channels)");
    row("DMA DRAM<->L3", rate_text(d.dma_bandwidth, "B/s"));
    row("L3<->L2", rate_text(d.l3_l2_bandwidth, "B/s"));
    row("L2<->L1", rate_text(d.l2_l1_bandwidth, "B/s"));
    out << "roofline\n";
    std::ostringstream ridge;
    ridge << std::setprecision(2) << std::fixed << d.ridge_flop_per_byte << " FLOP/byte";
    row("ridge point (memory)", ridge.str());
    out << "capacity (whole chip)\n";
    row("DRAM", bytes_text(double(d.dram_capacity)) + "  (" + std::to_string(c.dram.count) + " x " +
                    bytes_text(double(c.dram.capacity_bytes)) + ")");
    row("L3", bytes_text(double(d.l3_capacity)) + "  (" + std::to_string(c.l3.count) + " tiles x " +
                  bytes_text(double(c.l3.capacity_bytes)) + ")");
    row("L2", bytes_text(double(d.l2_capacity)) + "  (" + std::to_string(d.l2_banks) + " banks x " +
                  bytes_text(double(c.l2.capacity_bytes)) + ")");
    row("L1", bytes_text(double(d.l1_capacity)) + "  (" + std::to_string(d.l1_buffers) + " buffers x " +
                  bytes_text(double(c.l1.capacity_bytes)) + ")");
    out << "latency (one burst, unloaded)\n";
    auto ns = [](double s) {
        std::ostringstream text;
        text << std::setprecision(4) << s * 1e9 << " ns";
        return text.str();
    };
    row("longest mover path", ns(d.burst_path_s));
    row("DRAM interleave span", ns(d.dram_interleave_span_s) + "  (one pass over every channel)");
    return out.str();
}

}  // namespace kpu::hw
