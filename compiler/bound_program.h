// A DFX program bound to one config: what the platform's sequencer executes. Produced by
// kpu::compiler::bind(); every address is a device address of hw::AddressMap, every op names
// the engine instance that runs it, and every dependency the sequencer must honour
// (read-after-write and write-after-read on reused buffers) is explicit. No SystemC.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hardware/transfer.h"

namespace kpu::compiler {

enum class EngineKind : uint8_t { Dma, BlockMover, Streamer, Fabric };
enum class Activation : uint8_t { None, Relu, Gelu };

/// C[m x n] (+)= A[m x k] * B[k x n] on the fabric of the op's compute tile. fp32, row-major
/// operands in that tile's L1. The fabric has one accumulator set: a C tile stays in it
/// across the k steps until a Drain.
struct MatmulCommand {
    uint64_t a = 0, b = 0;      ///< device addresses in L1
    uint32_t lda = 0, ldb = 0;  ///< row pitch in elements
    uint32_t m = 0, n = 0, k = 0;
    bool accumulate = false;    ///< false: accumulators start from zero
};

/// Accumulators -> memory (L1 of the tile) through the epilogue: + bias[n], then activation.
struct DrainCommand {
    uint64_t c = 0;        ///< device address in L1
    uint32_t ldc = 0;      ///< row pitch in elements
    uint32_t m = 0, n = 0;
    bool has_bias = false;
    uint64_t bias = 0;     ///< n fp32 values in L1 when has_bias
    Activation activation = Activation::None;
};

struct BoundOp {
    enum class Kind : uint8_t { Move, Matmul, Drain };
    uint32_t id = 0;          ///< == index in BoundProgram::ops
    Kind kind = Kind::Move;
    EngineKind engine = EngineKind::Dma;
    uint32_t tile = 0;        ///< compute tile (unused for Dma)
    uint32_t unit = 0;        ///< engine index: DMA engine of the chip, or BlockMover/Streamer of the tile
    hw::Transfer move;        ///< Kind::Move (move.id == id)
    MatmulCommand matmul;     ///< Kind::Matmul
    DrainCommand drain;       ///< Kind::Drain
    std::vector<uint32_t> deps;  ///< ops that must complete first; every dep < id
    uint32_t dfx_op = 0;      ///< the DFX op it was bound from (for traces and reports)
};

struct BoundTensor {
    std::string name;
    std::vector<uint64_t> shape;
    std::string dtype;     ///< "float32"
    std::string role;      ///< "input", "constant", "intermediate", "output"
    uint64_t dram_addr = 0;
    uint64_t bytes = 0;
};

struct BoundProgram {
    std::string config_name;
    std::vector<BoundTensor> tensors;
    std::vector<BoundOp> ops;       ///< topological order
    uint64_t dram_read_bytes = 0;   ///< what the moves read from DRAM
    uint64_t dram_write_bytes = 0;  ///< what the moves write to DRAM
    uint64_t macs = 0;              ///< multiply-accumulates of all Matmul ops
};

}  // namespace kpu::compiler
