// The hardware description of one KPU SKU: every number a timing, capacity or energy model
// needs. Read from a JSON file (configs/<sku>.json) by load_config(), which validates it
// strictly. Plain C++ with no SystemC, so the compiler and the platform share it.
//
// Units inside the structs are base units so that nobody converts twice: bytes, bytes per
// second, hertz, picojoules, watts. Latencies are in cycles of the level's clock domain, as
// the hardware specifies them. The JSON carries the unit in each key (capacity_kib,
// bandwidth_gb_per_s, ...); docs/config.md lists every field.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "hardware/enum_names.h"

namespace kpu::hw {

/// Raised for any invalid config; what() is one line: "<file>: <json.path>: <problem>".
class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Clock domains. Every block belongs to exactly one.
struct Clocks {
    double fabric_hz = 0;  ///< systolic fabric; cycles in reports are fabric cycles
    double sram_hz = 0;    ///< L3/L2/L1, BlockMovers, Streamers, DMA engines, interconnect
    double dram_hz = 0;    ///< DRAM channels (their latency is counted in these cycles)
};

/// A memory level (DRAM channel, L3 tile, L2 bank, L1 buffer): one instance of it.
struct MemoryLevel {
    uint32_t count = 0;            ///< instances: per chip (DRAM, L3) or per compute tile (L2, L1)
    uint64_t capacity_bytes = 0;   ///< per instance
    double bandwidth_bytes_per_s = 0;  ///< per port
    uint32_t latency_cycles = 0;   ///< first-byte latency, in the level's clock domain
    uint32_t ports = 0;            ///< independent ports; each has its own bandwidth
    uint32_t burst_bytes = 0;      ///< transaction size movers use against this level (power of 2)
    double energy_pj_per_byte = 0; ///< dynamic energy per byte read or written
};

/// How a DRAM interleave block picks its channel (docs/config.md, address map).
enum class ChannelSelect {
    Modulo,  ///< block b on channel b mod channels
    Hashed,  ///< the same, rotated by the digit sum of b / channels in base channels
};
/// As configs spell it (`dram.channel_select`).
inline constexpr EnumName<ChannelSelect> kChannelSelectNames[] = {{ChannelSelect::Modulo, "modulo"},
                                                                   {ChannelSelect::Hashed, "hashed"}};
inline const char* to_string(ChannelSelect select) { return name_in(kChannelSelectNames, select); }
inline bool parse_channel_select(const std::string& name, ChannelSelect& out) {
    return value_in(kChannelSelectNames, name, out);
}

/// DRAM adds address interleaving across channels.
struct DramLevel : MemoryLevel {
    uint64_t interleave_bytes = 0;  ///< consecutive bytes on one channel (power of 2, >= burst)
    ChannelSelect channel_select = ChannelSelect::Hashed;
};

/// A kind of data mover (DMA engine, BlockMover, Streamer).
struct Engine {
    uint32_t count = 0;                 ///< per chip (DMA) or per compute tile (BM, Streamer)
    double bandwidth_bytes_per_s = 0;   ///< per engine
    uint32_t queue_depth = 0;           ///< descriptors it accepts before the issuer waits
};

/// The on-chip network between DMA engines and L3 tiles.
struct Interconnect {
    double bandwidth_bytes_per_s = 0;  ///< per L3 tile link
    uint32_t latency_cycles = 0;       ///< per hop traversal, SRAM clock
};

/// What the fabric or the vector engine does with one element type (docs/config.md).
struct ElementType {
    std::string name;            ///< "float32", "bfloat16", "float16" or "int8"
    uint32_t ops_per_cycle = 1;  ///< MACs per PE (fabric) or ALU ops per lane (vector engine) per cycle
    double energy_pj_per_op = 0; ///< dynamic energy of one such MAC or ALU op
};

/// The systolic array of one compute tile.
struct Fabric {
    uint32_t rows = 0;
    uint32_t cols = 0;
    /// The types it computes, widest first (float32, bfloat16, float16, int8); float32 is
    /// always one, at one MAC per PE per cycle (the timing every model and estimate uses).
    std::vector<ElementType> element_types;
    double energy_pj_per_mac = 0;  ///< float32's energy_pj_per_op
};

/// The functions the vector engine's special-function unit (SFU) evaluates; every other
/// vector operation (add, multiply, max, compare, ...) is an ALU op of one cycle per lane group.
enum class SfuFunction : uint8_t {
    Exp,         ///< e^x
    Tanh,        ///< tanh x
    Erf,         ///< the error function
    Sigmoid,     ///< 1 / (1 + e^-x)
    Rsqrt,       ///< 1 / sqrt x (and sqrt x = x rsqrt x)
    Reciprocal,  ///< 1 / x (and division)
};
/// As configs spell it (the keys of `vector.sfu_cycles`).
inline constexpr EnumName<SfuFunction> kSfuFunctionNames[] = {
    {SfuFunction::Exp, "exp"},         {SfuFunction::Tanh, "tanh"},   {SfuFunction::Erf, "erf"},
    {SfuFunction::Sigmoid, "sigmoid"}, {SfuFunction::Rsqrt, "rsqrt"}, {SfuFunction::Reciprocal, "reciprocal"}};
inline constexpr size_t kSfuFunctions = std::size(kSfuFunctionNames);
inline const char* to_string(SfuFunction function) { return name_in(kSfuFunctionNames, function); }

/// The vector engine of one compute tile (docs/models.md, Vector engine). It runs on the
/// fabric clock (`clocks.fabric_mhz`), so its cycles are the fabric cycles reports count.
struct VectorUnit {
    uint32_t lanes = 0;           ///< elements one ALU op processes per cycle (a lane group)
    uint32_t latency_cycles = 0;  ///< pipeline fill, charged once per command
    uint32_t sfu_cycles[kSfuFunctions] = {};  ///< cycles per lane group of each SfuFunction
    double energy_pj_per_op = 0;      ///< one float32 element through one ALU op
    double energy_pj_per_sfu_op = 0;  ///< one element through one SFU evaluation (in float32)
    /// The fabric's types, with the ALU's rate and energy for each; float32's is one op per
    /// lane per cycle at energy_pj_per_op.
    std::vector<ElementType> element_types;

    uint32_t cycles_of(SfuFunction function) const { return sfu_cycles[size_t(function)]; }
};

struct Config {
    std::string name;         ///< SKU name, e.g. "t64"
    std::string description;  ///< free text
    std::string source;       ///< file it was read from (for messages); not a JSON field
    /// The --set overrides applied to the file, as given ("dram.bandwidth_gb_per_s=32"); not
    /// a JSON field. With `name`, what hardware this is: tools record it (.kpu target, stats).
    std::vector<std::string> overrides;

    Clocks clocks;
    uint32_t compute_tiles = 0;
    Fabric fabric;
    VectorUnit vector;  ///< one vector engine per compute tile
    DramLevel dram;
    MemoryLevel l3;  ///< count == compute_tiles: one L3 tile per compute tile
    MemoryLevel l2;  ///< count per compute tile
    MemoryLevel l1;  ///< count per compute tile
    Interconnect interconnect;
    Engine dma;           ///< count per chip
    Engine block_mover;   ///< count per compute tile
    Engine streamer;      ///< count per compute tile
    double static_power_w = 0;

    /// Whether the fabric computes `element_type` ("float32", "int8", ...).
    bool supports(const std::string& element_type) const;
    /// The fabric's entry for `element_type`; throws ConfigError "element type 'float16' is not
    /// supported by config 'edge' (float32, bfloat16, int8)" for a type it does not list.
    const ElementType& fabric_type(const std::string& element_type) const;
    /// The vector engine's entry for `element_type`; the same error for a type not listed.
    const ElementType& vector_type(const std::string& element_type) const;
};

/// One `--set path=value` override, applied to the JSON before validation.
struct Override {
    std::string path;   ///< dotted JSON path, e.g. "fabric.rows"
    std::string value;  ///< JSON text; a bare word that is not JSON is taken as a string
};

/// Parses "fabric.rows=32"; throws ConfigError naming the text if there is no '='.
Override parse_override(const std::string& text);

/// Config::overrides as the command line gave them: " --set a=1 --set b=2" ("" for none).
std::string set_flags(const std::vector<std::string>& overrides);

/// Reads, overrides and validates a config file. Throws ConfigError on any problem.
Config load_config(const std::string& path, const std::vector<Override>& overrides = {});

/// Same, from JSON text; `source` names it in messages.
Config parse_config(const std::string& json_text, const std::string& source,
                    const std::vector<Override>& overrides = {});

/// The peak of one element type on the whole chip's fabrics or vector engines.
struct ElementPeak {
    std::string name;             ///< the element type
    double ops_per_s = 0;         ///< MAC/s (fabric) or ALU op/s (vector engines)
    double energy_pj_per_op = 0;  ///< per MAC or ALU op
};

/// Figures that follow from a config (what `kpu-sim --describe` prints).
struct Derived {
    std::vector<ElementPeak> fabric_peaks;  ///< per element type, in Fabric::element_types' order
    std::vector<ElementPeak> vector_peaks;  ///< per element type, in VectorUnit::element_types' order
    double peak_macs_per_s = 0;        ///< float32
    double peak_flops = 0;             ///< 2 FLOP per MAC, float32
    double dram_bandwidth = 0;         ///< bytes/s, all channels
    double l3_l2_bandwidth = 0;        ///< bytes/s, all tiles: min(L3 ports, BlockMovers, L2 ports)
    double l2_l1_bandwidth = 0;        ///< bytes/s, all tiles: min(L2 ports, Streamers, L1 ports)
    double dma_bandwidth = 0;          ///< bytes/s, min(DMA engines, DRAM, interconnect)
    double ridge_flop_per_byte = 0;    ///< peak_flops / dma_bandwidth (the roofline's memory roof)
    double vector_elements_per_s = 0;  ///< all tiles' vector engines, a basic (ALU) op
    double vector_exp_per_s = 0;       ///< all tiles' vector engines, exp
    uint64_t dram_capacity = 0;        ///< bytes
    uint64_t l3_capacity = 0;          ///< bytes, whole chip
    uint64_t l2_capacity = 0;          ///< bytes, whole chip
    uint64_t l1_capacity = 0;          ///< bytes, whole chip
    uint64_t l2_banks = 0;             ///< whole chip
    uint64_t l1_buffers = 0;           ///< whole chip
    /// Seconds: an upper bound on one burst's unloaded trip along any mover's path (every
    /// level's and two network links' latency plus each one's burst time).
    double burst_path_s = 0;
    /// Seconds: channels x interleave_bytes / channel bandwidth, the time one pass over every
    /// DRAM channel takes; a transfer keeps all channels busy only if its mover may run that
    /// far ahead of its completions.
    double dram_interleave_span_s = 0;
    /// Seconds: how far ahead of its completions a mover must be able to run so that neither
    /// term above limits its throughput: max(burst_path_s, dram_interleave_span_s). The
    /// platform's quantum is at least 1.25 times this (docs/models.md, Temporal decoupling).
    double mover_window_s = 0;
};

/// The largest mover window (Derived::mover_window_s) the simulator supports: configs that
/// need more are refused (a PortTimer remembers 100 us behind the latest arrival).
constexpr double kMaxMoverWindowS = 20e-6;

Derived derive(const Config& config);

/// Human-readable report of the config and its derived figures.
std::string describe(const Config& config);

}  // namespace kpu::hw
