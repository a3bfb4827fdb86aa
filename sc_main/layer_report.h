// The per-layer report of a run (`kpu-sim --report layers.csv`): the time, work and traffic of
// each SOURCE layer of the model (an ONNX node, an FX node, a graph JSON op), its roofline
// bound on the config and what bounds it. Built after the run from the RunReport's op records
// (report.h); nothing is recorded while the simulation runs.
//
// Source layer of a lowered op: the compiler names the parts of an op it expands
// "<op>.<part>" (and the layout pass "<op>.relaid", "<op>.transpose", ...), so the source
// layer is the op's name up to the first '.' after its last '/' (all of it when there is
// none). ONNX exporters write node names as scopes ("/layer1/layer1.0/conv1/Conv") and FX
// writes identifiers ("layer1_0_conv1"), so their parts map back exactly; a graph JSON op
// whose own name has a '.' in its last scope ("conv1.conv") is reported under the name
// before it ("conv1").
//
// Attribution (why the layers' cycles add up to the run's): ops of different layers overlap
// in time (the next layer's weights load while this one computes). Every picosecond from
// START to the interrupt is charged to exactly one layer: the earliest layer in program order
// that has an engine op in progress then (the oldest unfinished layer: the later ones run in
// its shadow); a moment when no engine works is charged to the layer whose op starts next
// (the one being waited for), and the time after the last op to the last layer. The
// picoseconds are turned into fabric cycles by largest remainder, so the cycles add up to
// total_cycles exactly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compiler/bound_program.h"
#include "compiler/dfx.h"
#include "hardware/config.h"
#include "sc_main/report.h"

namespace kpu::cli {

/// What bounds a layer: the largest of its lower bounds on the config.
enum class LayerBound : uint8_t { Fabric, Vector, Dram, BlockMover, Streamer };
inline constexpr const char* kLayerBoundNames[] = {"fabric", "vector", "dram", "block_mover", "streamer"};
inline const char* to_string(LayerBound b) { return kLayerBoundNames[size_t(b)]; }

/// One source layer.
struct LayerRow {
    std::string name;                ///< the source layer (see the header comment)
    std::vector<std::string> parts;  ///< the lowered graph ops it covers, in program order
    std::vector<std::string> kinds;  ///< their distinct op kinds, in order of appearance
    std::vector<std::string> fused;  ///< source ops a fusion pass absorbed into its parts (Op::fused_with)
    uint64_t time_ps = 0;            ///< attributed time (the attribution rule above)
    uint64_t cycles = 0;             ///< time_ps in fabric cycles (largest remainder: they add up)
    uint64_t start_ps = 0, end_ps = 0;  ///< first engine op's start, last one's end (from START)
    uint64_t engine_ops = 0;         ///< bound ops of its parts that ran
    uint64_t macs = 0;               ///< of its MATMUL_TILE commands
    uint64_t vector_elements = 0;    ///< ALU and SFU element operations of its VECTOR commands
    uint64_t vector_cycles = 0;      ///< hw::vector_cycles summed over its VECTOR commands
    uint64_t dram_bytes = 0;         ///< to and from DRAM, by its moves
    uint64_t block_mover_bytes = 0;  ///< L3 <-> L2, by the BlockMovers
    uint64_t streamer_bytes = 0;     ///< L2 <-> L1, by the Streamers
    double bound_s[5] = {};          ///< per LayerBound: the least time that part of the work takes
    LayerBound bound_by = LayerBound::Fabric;

    double flops() const { return 2.0 * double(macs) + double(vector_elements); }
    double roofline_s() const { return bound_s[size_t(bound_by)]; }
};

struct LayerReport {
    std::vector<LayerRow> layers;  ///< in program order (of each layer's first op)
    uint64_t total_cycles = 0;     ///< the run's (RunReport::total_cycles): the layers' cycles add up to it
    double total_s = 0;            ///< the run's simulated time
    double fabric_hz = 0;

    /// Sum over the layers of their roofline bounds: the time a machine at the config's
    /// peaks, running layer after layer, would take.
    double roofline_sum_s() const;
    /// total_s / roofline_sum_s: 1 is at the roofline, seed 3's goal is <= 2.
    double roofline_ratio() const;
};

/// One engine op's interval (ps) and the layer it belongs to.
struct LayerInterval {
    uint64_t start = 0, end = 0;
    uint32_t layer = 0;  ///< index of the layer, in program order (lower: older)
};

/// The attribution rule (the header comment) alone: every picosecond of [start, end) charged
/// to one of `layers` layers; the result adds up to end - start.
std::vector<uint64_t> attribute_ps(const std::vector<LayerInterval>& ops, size_t layers, uint64_t start, uint64_t end);

/// Picoseconds per layer -> cycles by largest remainder: they add up to total_cycles exactly.
std::vector<uint64_t> to_cycles(const std::vector<uint64_t>& ps, uint64_t total_cycles);

/// The source layer of a lowered op's name (the header comment's rule).
std::string source_layer(const std::string& op_name);

LayerReport make_layer_report(const RunReport& report, const hw::Config& config, const compiler::BoundProgram& bound,
                              const compiler::Program& program);

/// The CSV (docs/stats.md, "Per-layer report"): one row per layer, then a line per total.
void write_layer_csv(const LayerReport& layers, const std::string& path);

/// The summary's line: "  layers            N source layers, roofline sum ... (ratio)\n".
std::string layer_summary_line(const LayerReport& layers);

/// The layers as JSON objects, one per CSV row with the CSV's columns (the Python package's
/// KPUPerformanceMetrics.layer_metrics).
nlohmann::json layer_rows_json(const LayerReport& layers);

/// The whole-model figures for the stats JSON: layers, roofline_sum_us, roofline_ratio.
nlohmann::json layer_summary_json(const LayerReport& layers);

}  // namespace kpu::cli
