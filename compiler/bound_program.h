// A DFX program bound to one config: what the platform's sequencer executes. Produced by
// kpu::compiler::bind(); every address is a device address of hw::AddressMap, every op names
// the engine instance that runs it, and every dependency the sequencer must honour
// (read-after-write and write-after-read on reused buffers) is explicit. No SystemC.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hardware/enum_names.h"
#include "hardware/fabric_command.h"
#include "hardware/transfer.h"
#include "hardware/vector_command.h"

namespace kpu::compiler {

using hw::EnumName;

enum class EngineKind : uint8_t { Dma, BlockMover, Streamer, Fabric, Vector };
/// As bound programs, stats, traces and messages spell it.
inline constexpr EnumName<EngineKind> kEngineKindNames[] = {{EngineKind::Dma, "dma"},
                                                            {EngineKind::BlockMover, "block_mover"},
                                                            {EngineKind::Streamer, "streamer"},
                                                            {EngineKind::Fabric, "fabric"},
                                                            {EngineKind::Vector, "vector"}};
inline const char* to_string(EngineKind engine) { return hw::name_in(kEngineKindNames, engine); }
inline bool parse_engine_kind(const std::string& name, EngineKind& out) {
    return hw::value_in(kEngineKindNames, name, out);
}

// The fabric's command formats live with the hardware description (models execute them).
using hw::Activation;
using hw::DrainCommand;
using hw::MatmulCommand;
using hw::parse_activation;

struct BoundOp {
    enum class Kind : uint8_t { Move, Matmul, Drain, Vector };
    /// As bound programs spell it.
    static constexpr EnumName<Kind> kKindNames[] = {
        {Kind::Move, "move"}, {Kind::Matmul, "matmul"}, {Kind::Drain, "drain"}, {Kind::Vector, "vector"}};
    uint32_t id = 0;          ///< == index in BoundProgram::ops
    Kind kind = Kind::Move;
    EngineKind engine = EngineKind::Dma;
    uint32_t tile = 0;        ///< compute tile (unused for Dma)
    uint32_t unit = 0;        ///< engine index: DMA engine of the chip, or BlockMover/Streamer of the tile (0 for Fabric, Vector)
    hw::Transfer move;        ///< Kind::Move (move.id == id)
    MatmulCommand matmul;     ///< Kind::Matmul
    DrainCommand drain;       ///< Kind::Drain
    hw::VectorCommand vector; ///< Kind::Vector (EngineKind::Vector of `tile`)
    std::vector<uint32_t> deps;  ///< ops that must complete first; every dep < id
    uint32_t dfx_op = 0;      ///< the DFX op it was bound from (for traces and reports)
};

inline const char* to_string(BoundOp::Kind kind) { return hw::name_in(BoundOp::kKindNames, kind); }
inline bool parse_bound_op_kind(const std::string& name, BoundOp::Kind& out) {
    return hw::value_in(BoundOp::kKindNames, name, out);
}

struct BoundTensor {
    std::string name;
    std::vector<uint64_t> shape;
    std::string dtype;     ///< "float32"
    std::string role;      ///< "input", "constant", "intermediate", "output"
    uint64_t dram_addr = 0;  ///< its device address (in DRAM, or in a compute tile's L3 when in_l3)
    uint64_t bytes = 0;
    bool in_l3 = false;      ///< kept in L3 by keep-in-l3 (an intermediate; docs/compiler.md, "Memory planning")
};

struct BoundProgram {
    std::string config_name;
    std::vector<BoundTensor> tensors;  ///< the DRAM tensors: the graph's, less its compile-time values
    std::vector<BoundOp> ops;       ///< topological order
    uint64_t dram_read_bytes = 0;   ///< what the moves read from DRAM
    uint64_t dram_write_bytes = 0;  ///< what the moves write to DRAM
    uint64_t macs = 0;              ///< multiply-accumulates of all Matmul ops
    uint32_t elided_moves = 0;      ///< on-chip DFX moves dropped: their bytes were already in place
    uint64_t elided_bytes = 0;      ///< what those would have copied
};

}  // namespace kpu::compiler
