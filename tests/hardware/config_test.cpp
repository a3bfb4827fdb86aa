#include "hardware/config.h"

#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/config.h"

namespace kpu::hw {
namespace {

using json = nlohmann::json;
using test::config_path;

json load_config_json(const char* name) {
    std::ifstream in(config_path(name));
    return json::parse(in);
}

json minimal_json() {
    std::ifstream in(config_path("minimal"));
    return json::parse(in);
}

/// Parses `j` as "bad.json" and returns the error message; fails the test if it parses.
std::string error_of(const json& j, const std::vector<Override>& overrides = {}) {
    try {
        parse_config(j.dump(), "bad.json", overrides);
    } catch (const ConfigError& e) {
        std::string what = e.what();
        EXPECT_EQ(what.find('\n'), std::string::npos) << "message must be one line: " << what;
        return what;
    }
    ADD_FAILURE() << "config was accepted";
    return "";
}

/// A change to minimal.json and the message it must give. The change is a JSON merge patch
/// (RFC 7386): objects merge key by key, any other value replaces, null removes the key.
struct BadConfig {
    const char* patch;     ///< e.g. {"fabric": {"rows": 0}}
    std::string expected;  ///< the whole one-line message
};

/// Each case's patch of minimal.json is refused with exactly its message.
void expect_errors(const std::vector<BadConfig>& cases) {
    for (const BadConfig& c : cases) {
        SCOPED_TRACE(c.patch);
        json j = minimal_json();
        j.merge_patch(json::parse(c.patch));
        EXPECT_EQ(error_of(j), c.expected);
    }
}

/// A --set on minimal.json and the message it must give.
struct BadOverride {
    const char* set;       ///< PATH=VALUE, as kpu-sim --set takes it
    std::string expected;  ///< the whole one-line message
};

/// Each case's override of minimal.json is refused with exactly its message.
void expect_override_errors(const std::vector<BadOverride>& cases) {
    for (const BadOverride& c : cases) {
        SCOPED_TRACE(c.set);
        EXPECT_EQ(error_of(minimal_json(), {parse_override(c.set)}), c.expected);
    }
}

TEST(Config, EveryShippedConfigLoads) {
    for (const char* name : {"minimal", "edge", "t64", "datacenter", "roofline-ref"}) {
        SCOPED_TRACE(name);
        Config c = load_config(config_path(name));
        EXPECT_EQ(c.name, name);
        EXPECT_EQ(c.l3.count, c.compute_tiles);
        EXPECT_TRUE(c.supports("float32"));
    }
}

TEST(Config, RooflineRefMatchesSeed3Section72) {
    Derived d = derive(load_config(config_path("roofline-ref")));
    EXPECT_DOUBLE_EQ(d.peak_flops, 1024e9);
    EXPECT_DOUBLE_EQ(d.peak_macs_per_s, 512e9);
    EXPECT_DOUBLE_EQ(d.dram_bandwidth, 64e9);
    EXPECT_DOUBLE_EQ(d.l3_l2_bandwidth, 128e9);
    EXPECT_DOUBLE_EQ(d.l2_l1_bandwidth, 256e9);
    EXPECT_DOUBLE_EQ(d.ridge_flop_per_byte, 16.0);
}

TEST(Config, DatacenterHasTheIssuedShape) {
    Config c = load_config(config_path("datacenter"));
    Derived d = derive(c);
    EXPECT_EQ(c.compute_tiles, 256u);
    EXPECT_EQ(c.fabric.rows, 32u);
    EXPECT_EQ(c.fabric.cols, 32u);
    EXPECT_EQ(c.dram.count, 6u);
    EXPECT_DOUBLE_EQ(c.dram.bandwidth_bytes_per_s, 800e9);
    EXPECT_EQ(c.l3.capacity_bytes, 512u * 1024);
    EXPECT_EQ(c.l2.count, 16u);
    EXPECT_EQ(c.l2.capacity_bytes, 128u * 1024);
    EXPECT_EQ(c.l1.count, 4u * (c.fabric.rows + c.fabric.cols));
    EXPECT_EQ(d.l2_banks, 256u * 16);
    EXPECT_EQ(d.l1_buffers, 256u * 256);
}

TEST(Config, UnitsAreConvertedOnce) {
    Config c = load_config(config_path("minimal"));
    EXPECT_DOUBLE_EQ(c.clocks.fabric_hz, 1e9);
    EXPECT_EQ(c.dram.capacity_bytes, 64ull << 20);
    EXPECT_EQ(c.l2.capacity_bytes, 16u << 10);
    EXPECT_DOUBLE_EQ(c.dram.bandwidth_bytes_per_s, 8e9);
    EXPECT_EQ(c.dram.interleave_bytes, 1024u);
}

TEST(Config, VectorSectionIsReadPerFunction) {
    const Config c = load_config(config_path("minimal"));
    EXPECT_EQ(c.vector.lanes, 8u);
    EXPECT_EQ(c.vector.latency_cycles, 8u);
    EXPECT_EQ(c.vector.cycles_of(SfuFunction::Exp), 4u);
    EXPECT_EQ(c.vector.cycles_of(SfuFunction::Erf), 8u);
    EXPECT_EQ(c.vector.cycles_of(SfuFunction::Reciprocal), 4u);
    EXPECT_DOUBLE_EQ(c.vector.energy_pj_per_op, 0.5);
    EXPECT_DOUBLE_EQ(c.vector.energy_pj_per_sfu_op, 2.0);
    // Each SFU function has its own key, spelled as kSfuFunctionNames spells the function.
    for (const auto& entry : kSfuFunctionNames) {
        SCOPED_TRACE(entry.name);
        const Config set = load_config(config_path("minimal"),
                                       {parse_override(std::string("vector.sfu_cycles.") + entry.name + "=7")});
        EXPECT_EQ(set.vector.cycles_of(entry.value), 7u);
    }
}

TEST(Config, EveryShippedVectorEngineKeepsUpWithADrain) {
    // A drain hands the vector engine one row of `cols` results per cycle (docs/config.md).
    for (const char* name : {"minimal", "edge", "t64", "datacenter", "roofline-ref"}) {
        SCOPED_TRACE(name);
        const Config c = load_config(config_path(name));
        EXPECT_GE(c.vector.lanes, c.fabric.cols);
    }
}

TEST(Config, DerivedVectorPeaksFollowLanesClockAndExpCost) {
    const Derived d = derive(load_config(config_path("t64")));
    EXPECT_DOUBLE_EQ(d.vector_elements_per_s, 64 * 16 * 1.5e9);
    EXPECT_DOUBLE_EQ(d.vector_exp_per_s, 64 * 16 * 1.5e9 / 4);
    const std::string text = describe(load_config(config_path("t64")));
    EXPECT_NE(text.find("vector engines              64 x 16 lanes\n"), std::string::npos) << text;
    EXPECT_NE(text.find("peak elements/s (ALU op)    1.536 Telem/s\n"), std::string::npos) << text;
    EXPECT_NE(text.find("peak exp/s                  384 Gelem/s  (4 cycles per lane group)\n"), std::string::npos)
        << text;
}

TEST(Config, DescribePrintsTheDerivedFigures) {
    std::string text = describe(load_config(config_path("roofline-ref")));
    EXPECT_NE(text.find("1.024 TFLOP/s"), std::string::npos) << text;
    EXPECT_NE(text.find("64 GB/s"), std::string::npos) << text;
    EXPECT_NE(text.find("16.00 FLOP/byte"), std::string::npos) << text;
}

TEST(ConfigErrors, MissingFileNamesThePath) {
    try {
        load_config("configs/does-not-exist.json");
        FAIL();
    } catch (const ConfigError& e) {
        EXPECT_EQ(std::string(e.what()), "configs/does-not-exist.json: cannot open config file");
    }
}

TEST(ConfigErrors, MalformedJsonGivesLineAndColumn) {
    try {
        parse_config("{\n  \"name\": \"x\",\n  \"clocks\": {,}\n}", "broken.json");
        FAIL();
    } catch (const ConfigError& e) {
        std::string what = e.what();
        EXPECT_EQ(what.rfind("broken.json: malformed JSON: ", 0), 0u) << what;
        EXPECT_NE(what.find("line 3"), std::string::npos) << what;
    }
}

TEST(ConfigErrors, UnknownKeyIsRejectedWithASuggestion) {
    expect_errors({
        {R"({"fabric": {"rowz": 8}})", "bad.json: fabric.rowz: unknown field (did you mean 'rows'?)"},
        {R"({"turbo": true})", "bad.json: turbo: unknown field"},
    });
}

TEST(ConfigErrors, TypoOfARequiredFieldIsReportedAsTheTypo) {
    json j = minimal_json();
    j["dram"]["latency_cylces"] = j["dram"]["latency_cycles"];
    j["dram"].erase("latency_cycles");
    EXPECT_EQ(error_of(j), "bad.json: dram.latency_cylces: unknown field (did you mean 'latency_cycles'?)");
}

TEST(ConfigErrors, MissingFieldIsNamed) {
    expect_errors({
        {R"({"l2": {"latency_cycles": null}})", "bad.json: l2.latency_cycles: missing required field"},
        {R"({"dma": null})", "bad.json: dma: missing required field"},
    });
}

TEST(ConfigErrors, WrongTypeShowsTheValue) {
    expect_errors({
        {R"({"fabric": {"rows": "eight"}})", "bad.json: fabric.rows: expected a positive integer, got \"eight\""},
        {R"({"dram": {"bandwidth_gb_per_s": [1, 2]}})",
         "bad.json: dram.bandwidth_gb_per_s: expected a number, got [1,2]"},
        {R"({"fabric": {"rows": 8.5}})", "bad.json: fabric.rows: expected a positive integer, got 8.5"},
        {R"({"clocks": 5})", "bad.json: clocks: expected an object, got 5"},
    });
}

TEST(ConfigErrors, ZeroAndNegativeSizesAreRejected) {
    expect_errors({
        {R"({"l1": {"capacity_kib": 0}})", "bad.json: l1.capacity_kib: must be > 0, got 0"},
        {R"({"compute_tiles": -4})", "bad.json: compute_tiles: must be > 0, got -4"},
        {R"({"clocks": {"fabric_mhz": -1000.0}})",
         "bad.json: clocks.fabric_mhz: must be between 1 and 100000, got -1000.0"},
        {R"({"static_power_w": -0.5})", "bad.json: static_power_w: must be between 0 and 1000000, got -0.5"},
    });
}

TEST(ConfigErrors, ValuesBeyondTheSimulatorsLimitsNameTheLimit) {
    // Past these limits a config would elaborate for minutes, fail inside SystemC, or print
    // nonsense timing (a clock of 1e-300 MHz would run in 0 cycles): each is refused first.
    const std::string tail = "; movers would have to run that far ahead of their completions, more than the "
                             "simulator's 20 us (docs/models.md, Temporal decoupling)";
    auto path_too_long = [&](const std::string& field, const char* total, const char* part) {
        return "bad.json: " + field + ": a burst's unloaded path takes up to " + total + ", " + part + " of it " +
               field + tail;
    };
    expect_errors({
        {R"({"clocks": {"sram_mhz": 1e-300}})", "bad.json: clocks.sram_mhz: must be between 1 and 100000, got 1e-300"},
        {R"({"clocks": {"fabric_mhz": 100001}})",
         "bad.json: clocks.fabric_mhz: must be between 1 and 100000, got 100001"},
        {R"({"l2": {"bandwidth_gb_per_s": 0.0}})",
         "bad.json: l2.bandwidth_gb_per_s: must be between 0.001 and 1000000, got 0.0"},
        {R"({"l2": {"energy_pj_per_byte": 1e308}})",
         "bad.json: l2.energy_pj_per_byte: must be between 0 and 1000000, got 1e+308"},
        {R"({"dma": {"engines": 4294967295}})", "bad.json: dma.engines: must be <= 1024, got 4294967295"},
        {R"({"l2": {"ports": 65}})", "bad.json: l2.ports: must be <= 64, got 65"},
        {R"({"dram": {"latency_cycles": 1000001}})", "bad.json: dram.latency_cycles: must be <= 1000000, got 1000001"},
        {R"({"l1": {"burst_bytes": 131072}})", "bad.json: l1.burst_bytes: must be <= 65536, got 131072"},
        // Totals: each count within its limit, the platform not.
        {R"({"compute_tiles": 1000, "l3": {"tiles": 1000}, "l1": {"buffers_per_tile": 4096}})",
         "bad.json: l1.buffers_per_tile: compute_tiles x (l2.banks_per_tile + l1.buffers_per_tile) = "
         "1000 x (4 + 4096) = 4100000 memories, more than the simulator's 262144"},
        {R"({"compute_tiles": 1000, "l3": {"tiles": 1000}, "streamer": {"per_tile": 20}})",
         "bad.json: compute_tiles: dma.engines + compute_tiles x (block_mover.per_tile + "
         "streamer.per_tile) = 2 + 1000 x (1 + 20) = 21002 data movers, more than the simulator's 16384"},
        // How far movers must run ahead of their completions (Derived::mover_window_s): the
        // largest contributor is named. 19 us of DRAM latency is allowed (below); 25 us is not.
        {R"({"dram": {"latency_cycles": 25000}})", path_too_long("dram.latency_cycles", "25 us", "25 us")},
        {R"({"interconnect": {"latency_cycles": 12000}})",
         path_too_long("interconnect.latency_cycles", "24.1 us", "24 us")},
        // A slow bandwidth is blamed, not dram.latency_cycles. Minimal's L1 bursts are 32 B:
        // at 0.001 GB/s one takes 32 us.
        {R"({"l1": {"bandwidth_gb_per_s": 0.001}})", path_too_long("l1.bandwidth_gb_per_s", "32.1 us", "32 us")},
        {R"({"dram": {"interleave_bytes": 131072}})",
         "bad.json: dram.interleave_bytes: dram.channels x interleave_bytes / channel bandwidth = 2 x 131072 B "
         "/ 8 GB/s = 32.8 us" + tail},
    });
    json fine = minimal_json();
    fine["dram"]["latency_cycles"] = 19000;
    EXPECT_NEAR(derive(parse_config(fine.dump(), "fine.json")).mover_window_s, 19.1e-6, 0.1e-6);
}

TEST(ConfigErrors, InconsistentCountsAreRejected) {
    expect_errors({
        {R"({"l3": {"tiles": 2}})",
         "bad.json: l3.tiles: must equal compute_tiles (1: one L3 tile per compute tile), got 2"},
        {R"({"l1": {"buffers_per_tile": 8}, "streamer": {"per_tile": 9}})",
         "bad.json: streamer.per_tile: must be <= l1.buffers_per_tile (8), got 9"},
        {R"({"dram": {"interleave_bytes": 32}})",
         "bad.json: dram.interleave_bytes: must be >= dram.burst_bytes (64), got 32"},
        {R"({"l1": {"buffers_per_tile": 1}, "streamer": {"per_tile": 1}})",
         "bad.json: l1.buffers_per_tile: must be >= 2 (one for A, one for B), got 1"},
    });
}

TEST(ConfigErrors, PowerOfTwoIsEnforced) {
    expect_errors({
        {R"({"l2": {"burst_bytes": 48}})", "bad.json: l2.burst_bytes: must be a power of two, got 48"},
        {R"({"dram": {"interleave_bytes": 3000}})",
         "bad.json: dram.interleave_bytes: must be a power of two, got 3000"},
    });
}

TEST(ConfigErrors, ChannelSelectIsHashedOrModulo) {
    expect_errors({
        {R"({"dram": {"channel_select": "xor"}})",
         "bad.json: dram.channel_select: expected \"modulo\" or \"hashed\", got \"xor\""},
        {R"({"dram": {"channel_select": 1}})", "bad.json: dram.channel_select: expected a string, got 1"},
    });
    json absent = minimal_json();
    absent["dram"].erase("channel_select");
    EXPECT_EQ(parse_config(absent.dump(), "ok.json").dram.channel_select, ChannelSelect::Hashed);
    json modulo = minimal_json();
    modulo["dram"]["channel_select"] = "modulo";
    EXPECT_EQ(parse_config(modulo.dump(), "ok.json").dram.channel_select, ChannelSelect::Modulo);
}

TEST(ConfigErrors, UnknownElementTypeIsNamed) {
    expect_errors({
        {R"({"fabric": {"element_types": ["float32", "fp8"]}})",
         "bad.json: fabric.element_types[1]: unknown element type \"fp8\" (known: bfloat16, float16, float32, int8)"},
    });
}

TEST(Config, ElementTypesGiveRateAndEnergyPerType) {
    const Config t64 = load_config(config_path("t64"));
    ASSERT_EQ(t64.fabric.element_types.size(), 4u);
    const double macs = 64.0 * 16 * 16 * 1.5e9;
    const Derived d = derive(t64);
    const struct {
        const char* name;
        uint32_t rate;
        double pj;
    } want[] = {{"float32", 1, 0.8}, {"bfloat16", 2, 0.4}, {"float16", 2, 0.4}, {"int8", 4, 0.2}};
    for (size_t i = 0; i < 4; ++i) {
        SCOPED_TRACE(want[i].name);
        EXPECT_EQ(t64.fabric.element_types[i].name, want[i].name);
        EXPECT_EQ(t64.fabric_type(want[i].name).ops_per_cycle, want[i].rate);
        EXPECT_DOUBLE_EQ(t64.fabric_type(want[i].name).energy_pj_per_op, want[i].pj);
        EXPECT_EQ(d.fabric_peaks[i].name, want[i].name);
        EXPECT_DOUBLE_EQ(d.fabric_peaks[i].ops_per_s, macs * want[i].rate);
        // The vector engine without vector.element_types: 4 / bytes per lane, energy_pj_per_op / that.
        EXPECT_EQ(t64.vector_type(want[i].name).ops_per_cycle, want[i].rate);
        EXPECT_DOUBLE_EQ(t64.vector_type(want[i].name).energy_pj_per_op, 0.4 / want[i].rate);
        EXPECT_DOUBLE_EQ(d.vector_peaks[i].ops_per_s, 64.0 * 16 * 1.5e9 * want[i].rate);
    }
    EXPECT_DOUBLE_EQ(t64.fabric.energy_pj_per_mac, 0.8);  // float32's: what the energy model charges
    EXPECT_DOUBLE_EQ(d.peak_macs_per_s, macs);
    const std::string text = describe(t64);
    EXPECT_NE(text.find("  peak MAC/s int8             98.3 TMAC/s  (4 per PE per cycle; 0.2 pJ/MAC, 19.66 W at peak)\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("  ALU op/s bfloat16           3.072 Top/s  (2 per lane per cycle; 0.2 pJ/op, 0.6144 W at peak)\n"),
              std::string::npos)
        << text;
}

TEST(Config, TheListFormOfElementTypesStillReads) {
    // The form configs had before the rates: names, energy_pj_per_mac for float32.
    json j = load_config_json("t64");
    j["fabric"]["element_types"] = {"int8", "float32", "float16", "bfloat16"};
    j["fabric"]["energy_pj_per_mac"] = 0.8;
    const Config listed = parse_config(j.dump(), "listed.json");
    const Config shipped = load_config(config_path("t64"));
    ASSERT_EQ(listed.fabric.element_types.size(), shipped.fabric.element_types.size());
    for (size_t i = 0; i < listed.fabric.element_types.size(); ++i) {
        EXPECT_EQ(listed.fabric.element_types[i].name, shipped.fabric.element_types[i].name);
        EXPECT_EQ(listed.fabric.element_types[i].ops_per_cycle, shipped.fabric.element_types[i].ops_per_cycle);
        EXPECT_DOUBLE_EQ(listed.fabric.element_types[i].energy_pj_per_op,
                         shipped.fabric.element_types[i].energy_pj_per_op);
    }
    EXPECT_EQ(listed.fabric.energy_pj_per_mac, shipped.fabric.energy_pj_per_mac);
    EXPECT_EQ(describe(listed), describe(shipped));
}

TEST(Config, AnElementTypeNotListedIsRefusedWithTheList) {
    const Config edge = load_config(config_path("edge"));
    for (auto lookup : {&Config::fabric_type, &Config::vector_type}) {
        try {
            (edge.*lookup)("float16");
            ADD_FAILURE() << "float16 accepted";
        } catch (const ConfigError& e) {
            EXPECT_STREQ(e.what(), "element type 'float16' is not supported by config 'edge' (float32, bfloat16, int8)");
        }
    }
    EXPECT_FALSE(edge.supports("float16"));
    EXPECT_TRUE(edge.supports("int8"));
}

TEST(Config, VectorElementTypesMayBeGiven) {
    json j = load_config_json("edge");
    j["vector"].erase("energy_pj_per_op");
    j["vector"]["element_types"] = {{"float32", {{"ops_per_lane_cycle", 1}, {"energy_pj_per_op", 0.3}}},
                                    {"bfloat16", {{"ops_per_lane_cycle", 2}, {"energy_pj_per_op", 0.2}}},
                                    {"int8", {{"ops_per_lane_cycle", 8}, {"energy_pj_per_op", 0.05}}}};
    const Config c = parse_config(j.dump(), "edge.json");
    EXPECT_DOUBLE_EQ(c.vector.energy_pj_per_op, 0.3);
    EXPECT_EQ(c.vector_type("int8").ops_per_cycle, 8u);
    EXPECT_DOUBLE_EQ(c.vector_type("bfloat16").energy_pj_per_op, 0.2);
}

TEST(ConfigErrors, ElementTypeRatesAreValidated) {
    expect_errors({
        {R"({"fabric": {"element_types": {"float32": {"macs_per_pe_cycle": 2, "energy_pj_per_mac": 1.0}}}})",
         "bad.json: fabric.element_types.float32.macs_per_pe_cycle: must be 1 (float32 is the rate the timing "
         "models assume), got 2"},
        {R"({"fabric": {"element_types": {"float32": {"macs_per_pe_cycle": 1, "energy_pj_per_mac": 1.0},
                                          "int8": {"macs_per_pe_cycle": 65, "energy_pj_per_mac": 0.1}}}})",
         "bad.json: fabric.element_types.int8.macs_per_pe_cycle: must be <= 64, got 65"},
        {R"({"fabric": {"element_types": {"float32": {"macs_per_pe_cycle": 1, "energy_pj_per_mac": 1.0},
                                          "int8": {"macs_per_pe_cycle": 0, "energy_pj_per_mac": 0.1}}}})",
         "bad.json: fabric.element_types.int8.macs_per_pe_cycle: must be > 0, got 0"},
        {R"({"fabric": {"element_types": {"float32": {"macs_per_pe_cycle": 1, "energy_pj_per_mac": -1.0}}}})",
         "bad.json: fabric.element_types.float32.energy_pj_per_mac: must be between 0 and 1000000, got -1.0"},
        {R"({"fabric": {"element_types": {"float32": {"energy_pj_per_mac": null}}}})",
         "bad.json: fabric.element_types.float32.energy_pj_per_mac: missing required field"},
        {R"({"fabric": {"element_types": {"float32": {"macs_per_pe_cycle": 1, "energy_pj_per_mac": 1.0},
                                          "fp8": {"macs_per_pe_cycle": 8, "energy_pj_per_mac": 0.1}}}})",
         "bad.json: fabric.element_types.fp8: unknown element type \"fp8\" (known: bfloat16, float16, float32, int8)"},
        {R"({"fabric": {"element_types": {"float32": null,
                                          "int8": {"macs_per_pe_cycle": 4, "energy_pj_per_mac": 0.1}}}})",
         "bad.json: fabric.element_types: must include \"float32\""},
        {R"({"fabric": {"element_types": {"float32": {"macs_per_pe_cycle": 1, "energy_pj_per_mac": 1.0,
                                                      "macs_per_pe_cylce": 2}}}})",
         "bad.json: fabric.element_types.float32.macs_per_pe_cylce: unknown field (did you mean 'macs_per_pe_cycle'?)"},
        {R"({"fabric": {"energy_pj_per_mac": 1.0}})",
         "bad.json: fabric.energy_pj_per_mac: give it per type, as fabric.element_types.float32.energy_pj_per_mac "
         "(element_types is an object)"},
        {R"({"fabric": {"element_types": ["float32", "int8", "float32"], "energy_pj_per_mac": 1.0}})",
         "bad.json: fabric.element_types[2]: \"float32\" is listed twice"},
        {R"({"fabric": {"element_types": ["int8"], "energy_pj_per_mac": 1.0}})",
         "bad.json: fabric.element_types: must include \"float32\""},
        {R"({"fabric": {"element_types": ["float32"]}})", "bad.json: fabric.energy_pj_per_mac: missing required field"},
        {R"({"vector": {"element_types": {"float32": {"ops_per_lane_cycle": 1, "energy_pj_per_op": 0.5}}}})",
         "bad.json: vector.energy_pj_per_op: give it per type, as vector.element_types.float32.energy_pj_per_op "
         "(element_types is an object)"},
        {R"({"vector": {"energy_pj_per_op": null,
                        "element_types": {"float32": {"ops_per_lane_cycle": 1, "energy_pj_per_op": 0.5},
                                          "int8": {"ops_per_lane_cycle": 4, "energy_pj_per_op": 0.1}}}})",
         "bad.json: vector.element_types: must list the fabric's types (float32), got (float32, int8)"},
    });
}

TEST(ConfigErrors, VectorFieldsAreValidatedLikeEveryOther) {
    expect_errors({
        {R"({"vector": null})", "bad.json: vector: missing required field"},
        {R"({"vector": {"lanez": 8}})", "bad.json: vector.lanez: unknown field (did you mean 'lanes'?)"},
        {R"({"vector": {"lanes": 0}})", "bad.json: vector.lanes: must be > 0, got 0"},
        {R"({"vector": {"lanes": 8.5}})", "bad.json: vector.lanes: expected a positive integer, got 8.5"},
        {R"({"vector": {"lanes": 4097}})", "bad.json: vector.lanes: must be <= 4096, got 4097"},
        {R"({"vector": {"latency_cycles": 1000001}})",
         "bad.json: vector.latency_cycles: must be <= 1000000, got 1000001"},
        {R"({"vector": {"sfu_cycles": null}})", "bad.json: vector.sfu_cycles: missing required field"},
        {R"({"vector": {"sfu_cycles": 4}})", "bad.json: vector.sfu_cycles: expected an object, got 4"},
        {R"({"vector": {"sfu_cycles": {"tanh": null}}})", "bad.json: vector.sfu_cycles.tanh: missing required field"},
        {R"({"vector": {"sfu_cycles": {"exp": 0}}})", "bad.json: vector.sfu_cycles.exp: must be > 0, got 0"},
        {R"({"vector": {"sfu_cycles": {"rsqrt": 1025}}})",
         "bad.json: vector.sfu_cycles.rsqrt: must be <= 1024, got 1025"},
        {R"({"vector": {"sfu_cycles": {"exq": 4}}})",
         "bad.json: vector.sfu_cycles.exq: unknown field (did you mean 'exp'?)"},
        {R"({"vector": {"sfu_cycles": {"log": 4}}})", "bad.json: vector.sfu_cycles.log: unknown field"},
        {R"({"vector": {"energy_pj_per_op": -0.1}})",
         "bad.json: vector.energy_pj_per_op: must be between 0 and 1000000, got -0.1"},
        {R"({"vector": {"energy_pj_per_sfu_op": "high"}})",
         "bad.json: vector.energy_pj_per_sfu_op: expected a number, got \"high\""},
    });
    // A misspelt SFU function is reported as the typo, not as the function missing.
    json j = minimal_json();
    j["vector"]["sfu_cycles"]["sigmiod"] = 4;
    j["vector"]["sfu_cycles"].erase("sigmoid");
    EXPECT_EQ(error_of(j), "bad.json: vector.sfu_cycles.sigmiod: unknown field (did you mean 'sigmoid'?)");
}

TEST(ConfigOverrides, SetReplacesAFieldBeforeValidation) {
    Config c = load_config(config_path("minimal"), {parse_override("fabric.rows=32"), parse_override("name=custom")});
    EXPECT_EQ(c.fabric.rows, 32u);
    EXPECT_EQ(c.name, "custom");
    Config d = load_config(config_path("minimal"), {parse_override("dram.bandwidth_gb_per_s=12.5")});
    EXPECT_DOUBLE_EQ(d.dram.bandwidth_bytes_per_s, 12.5e9);
}

TEST(ConfigOverrides, OverriddenValuesAreValidatedLikeTheFile) {
    expect_override_errors({
        {"fabric.rows=0", "bad.json: fabric.rows: must be > 0, got 0"},
        {"l2.burst_bytes=100", "bad.json: l2.burst_bytes: must be a power of two, got 100"},
        {"fabric.rows=many", "bad.json: fabric.rows: expected a positive integer, got \"many\""},
        {"vector.sfu_cycles.erf=0", "bad.json: vector.sfu_cycles.erf: must be > 0, got 0"},
    });
}

TEST(ConfigOverrides, UnknownPathIsRejected) {
    expect_override_errors({
        {"fabric.rowz=4", "bad.json: --set fabric.rowz=4: no field 'fabric.rowz' in the config"},
        {"fabric.rows.x=4", "bad.json: --set fabric.rows.x=4: no field 'fabric.rows.x' in the config"},
    });
}

TEST(ConfigOverrides, MalformedSetIsRejected) {
    try {
        parse_override("fabric.rows");
        FAIL();
    } catch (const ConfigError& e) {
        EXPECT_EQ(std::string(e.what()), "--set fabric.rows: expected PATH=VALUE, e.g. fabric.rows=32");
    }
}

}  // namespace
}  // namespace kpu::hw
