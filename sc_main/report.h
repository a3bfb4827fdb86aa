// What a finished run tells an architect: per-op and per-engine activity, traffic per level,
// where the time went, energy, and the roofline. Built once from the platform after the
// simulation (nothing is recorded while it runs beyond what the models count anyway), and
// written as stats JSON (docs/stats.md), VCD (vcd.h) and a Chrome trace (trace.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compiler/bound_program.h"
#include "hardware/config.h"
#include "platform/kpu_platform.h"

namespace kpu::cli {

/// One op as it ran. Times are in picoseconds of simulated time (absolute).
struct OpActivity {
    uint32_t id = 0;
    uint32_t engine = 0;      ///< index into RunReport::engines
    uint64_t dispatched = 0;  ///< the engine got it
    uint64_t start = 0;       ///< the engine began it
    uint64_t end = 0;         ///< the engine finished it
    uint64_t bytes = 0;       ///< moved (moves), 0 for fabric commands
};

/// Bytes one op moved to or from one DRAM channel (from its addresses and the interleave).
struct DramShare {
    uint32_t op = 0;       ///< index into RunReport::ops
    uint32_t channel = 0;
    uint64_t bytes = 0;
};

/// One engine instance (DMA engine, BlockMover, Streamer, fabric).
struct EngineActivity {
    std::string scope;   ///< module path without the top, e.g. "tile_3.bm_1"
    std::string kind;    ///< "dma", "block_mover", "streamer", "fabric"
    uint64_t busy = 0;   ///< ps: union of its ops' [start, end]
    uint64_t bytes = 0;  ///< moved
    uint64_t ops = 0;
};

/// One compute tile's vector engine, from its own counters (models/vector_engine.h): what it
/// computed, beyond the busy time and op count its EngineActivity has from the op records.
struct VectorActivity {
    std::string scope;           ///< "tile_2.vector", as EngineActivity::scope
    uint64_t commands = 0;       ///< commands it completed
    uint64_t elements = 0;       ///< rows x cols of its commands
    uint64_t busy = 0;           ///< ps: sum of its commands' durations
    uint64_t bytes_read = 0;     ///< inputs, weights and biases
    uint64_t bytes_written = 0;  ///< results
    double energy_pj = 0;        ///< hw::vector_energy_pj of its commands
};

/// The work of one element type (hw::DType): the fabrics' MACs of its MATMULs and the vector
/// engines' commands whose operand a is of it, with their dynamic energy.
struct ElementTypeActivity {
    std::string type;             ///< "float32", "bfloat16", "float16", "int8"
    uint64_t macs = 0;            ///< of the program's MATMULs of this type
    double mac_pj = 0;            ///< macs x the fabric's energy_pj_per_op of the type
    uint64_t vector_elements = 0; ///< rows x cols of the vector commands on this type
    uint64_t vector_alu_ops = 0;  ///< their ALU ops (hw::vector_alu_ops)
    double vector_pj = 0;         ///< their hw::vector_energy_pj
};

/// Bytes through one memory level, counted by its ports (plus the fabric's L1 accesses).
struct LevelTraffic {
    std::string level;  ///< "dram", "l3", "l2", "l1"
    uint64_t read_bytes = 0, write_bytes = 0;
    double pj_per_byte = 0;
    double energy_pj() const { return double(read_bytes + write_bytes) * pj_per_byte; }
};

struct RunReport {
    std::string program, config;
    uint64_t start = 0, end = 0;  ///< ps: START and the interrupt
    uint64_t total_cycles = 0;    ///< fabric cycles
    double fabric_hz = 0;
    double wall_s = 0;
    uint64_t macs = 0;
    std::vector<OpActivity> ops;       ///< in op id order
    std::vector<EngineActivity> engines;
    std::vector<LevelTraffic> levels;  ///< dram, l3, l2, l1
    std::vector<DramShare> dram_shares;  ///< per op with a DRAM side, per channel it touched
    std::vector<VectorActivity> vectors;  ///< the vector engines that ran a command, by scope
    /// Per element type that did any work, in hw::kDTypeNames' order (float32 first); mac_pj
    /// and vector_pj are their sums.
    std::vector<ElementTypeActivity> by_element_type;
    double vector_peak_elements_per_s = 0;  ///< all tiles' vector engines, an ALU op (hw::Derived)
    /// Memory high-water marks (docs/stats.md): per hw::Level, one past the highest byte the
    /// completed ops read or wrote (compiler::high_water); DRAM from the tensor area's base
    /// (device address 0; the host's accesses and the program image are no ops), each SRAM
    /// level within one compute tile's share of it, the highest over the tiles.
    uint64_t high_water[4] = {0, 0, 0, 0};
    uint32_t dram_channels = 0;
    double dram_channel_bandwidth = 0;   ///< bytes/s of one channel (all its ports)

    // Where the time went (ps, they add up to end - start): some fabric or vector engine computing; else the
    // engine nearest the fabric that is busy (Streamer, then BlockMover, then DMA); else
    // nothing runs (waiting on dependencies or the host).
    uint64_t compute = 0, stall_streamer = 0, stall_block_mover = 0, stall_dma = 0, stall_other = 0;

    // Energy (pJ): per level (LevelTraffic::energy_pj), MACs, the vector engines' commands,
    // static power over the run.
    double mac_pj = 0, vector_pj = 0, static_pj = 0;

    // Roofline of the run on this config: the compute roof (peak FLOP/s) and the memory roof,
    // the bandwidth the program's DRAM bytes can move at (hw::Derived::dma_bandwidth: DRAM,
    // the DMA engines and the tiles' links, the least of them). dram_bandwidth is DRAM's alone.
    double peak_flops = 0, dram_bandwidth = 0, roofline_bandwidth = 0, roofline_s = 0;
    bool memory_bound = false;  ///< the memory roof is the higher of the two
    /// The config's --set overrides, as given ("dram.bandwidth_gb_per_s=32"): the config's
    /// name alone does not say which hardware ran.
    std::vector<std::string> config_overrides;

    double total_s() const { return double(end - start) * 1e-12; }
    double dynamic_pj() const;
    double total_pj() const { return dynamic_pj() + mac_pj + vector_pj + static_pj; }
    uint64_t vector_elements() const;  ///< summed over `vectors`
};

/// The summary's vector engine line ("  vector engines    ...\n": commands, elements, their
/// rate against the peak, energy), or "" when no vector engine ran.
std::string vector_summary(const RunReport& report);

/// The summary's per element type line ("  element types     float32 ...: MACs, energy; ...\n"),
/// or "" when float32 did all the work.
std::string element_type_summary(const RunReport& report);

/// The scope of the engine that runs `op`, under kpu: "dma_3", "tile_2.bm_1", "tile_0.fabric".
std::string engine_scope(const compiler::BoundOp& op);

/// Per element type that did any work, in hw::kDTypeNames' order: the MACs of `program`'s
/// MATMULs charged at the type's fabric energy, and the `vectors`' counts per operand type.
std::vector<ElementTypeActivity> element_type_activity(const hw::Config& config,
                                                      const compiler::BoundProgram& program,
                                                      const std::vector<const model::VectorEngine*>& vectors);

RunReport make_report(const hw::Config& config, platform::KpuPlatform& kpu, const std::string& program_path,
                      double wall_s);

/// The stats JSON: seed 4's KPUPerformanceMetrics fields under the same names, plus the
/// engines, levels, stall breakdown, energy parts and roofline (docs/stats.md). `check` is
/// "pass", "fail" or null.
nlohmann::json stats_json(const RunReport& report, const nlohmann::json& check);

}  // namespace kpu::cli
