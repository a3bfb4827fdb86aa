// FFN fusion (pass fuse-ffn, docs/compiler.md "FFN fusion"): a fabric matmul whose output H
// only a second fabric matmul reads, Y = H @ W2 (+ b2) with H = act(X @ W1 (+ b1)), becomes one
// `ffn` op whose kernel keeps each task's H row block in its compute tile's L3 (the logical
// buffer L3.hidden) instead of writing H to DRAM and reading it back. A task takes `tm` rows
// of X (its panel), computes their H block strip by strip with W1 streamed through in blocks
// (the drain applies b1 and the activation), then computes their Y rows with the H block as
// the panel and W2 streamed through, and stores them. DRAM: X once, W1, W2 and the biases
// once per row block, Y once; no H bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "compiler/dfx.h"
#include "compiler/tiler.h"
#include "hardware/config.h"

namespace kpu::compiler {

class OpRegistry;

/// An `ffn` op as the lowering sees it: Y[m, n] = act(X[m, k] @ W1[k, hidden] (+ b1)) @ W2[hidden,
/// n] (+ b2), each tensor in its 2D view (X's and Y's leading dims folded into m).
struct FfnOperands {
    uint32_t x = 0, w1 = 0, w2 = 0, y = 0;  ///< tensor indices
    std::optional<uint32_t> b1, b2;         ///< biases [hidden] and [n]
    Activation activation = Activation::None;  ///< applied to H in the first matmul's drain
    uint64_t m = 0, k = 0, hidden = 0, n = 0;

    /// Where each bias starts in the bias buffers (b1, then b2) and their width.
    uint64_t b2_offset() const { return b1 ? hidden : 0; }
    uint64_t bias_width() const { return (b1 ? hidden : 0) + (b2 ? n : 0); }
};

/// Registers `ffn` (inputs X, W1, W2, B1, B2; B1 and B2 optional; attribute `activation`).
void register_ffn(OpRegistry& registry);

/// Whether `op` is the fused FFN (its own op class: not a matmul, not a vector op).
bool is_ffn_op(const Op& op);
FfnOperands ffn_operands(const Graph& graph, uint32_t op);

/// The buffers of an ffn task (tile [tm, t, t]: row blocks of tm, fabric tiles tm x t, K chunks
/// of t): the X panel (tm x k), the H block (L3.hidden, tm x hidden, blocks of tm x t), one
/// streamed weight block per slot, the Y strip, both biases, and the usual L2 / L1 slots.
std::vector<BufferSpec> plan_ffn_buffers(const FfnOperands& f, TileShape tile);

/// DRAM bytes of one task (its tile rows [r0, r1), Y columns [c0, c1)) by the closed form.
void ffn_task_traffic(const FfnOperands& f, TileShape tile, const Task& task, uint64_t& read, uint64_t& write);

/// The regions of its tensors a task reads: X's rows, W1, W2 and the biases whole.
struct FfnRead {
    uint32_t tensor;
    uint64_t r0, r1, c0, c1;
};
std::vector<FfnRead> ffn_task_reads(const FfnOperands& f, TileShape tile, const Task& task);

/// DFX ops of one task by kind (DfxOpKind's order), by formula.
void add_ffn_op_counts(const FfnOperands& f, TileShape tile, const Task& task, uint64_t (&by_kind)[6]);

/// Adds one task's MACs and fabric cycles (sum of ceil(m/R) ceil(n/C) k over its MATMUL_TILEs).
void ffn_compute(const FfnOperands& f, TileShape tile, const Task& task, uint32_t fabric_rows, uint32_t fabric_cols,
                 uint64_t& macs, uint64_t& cycles);

/// What the op stream generator (dfx.cpp) offers a kernel's own generator: its ops, with the
/// dependencies it tracks on logical buffers and through DRAM.
class OpEmitter {
public:
    virtual ~OpEmitter() = default;
    virtual void load(uint32_t tensor, uint64_t row, uint64_t col, uint64_t rows, uint64_t cols, BufferRef dst) = 0;
    virtual void move(uint32_t tensor, uint64_t row, uint64_t col, uint64_t rows, uint64_t cols, BufferRef src,
                      BufferRef dst) = 0;
    virtual void store(uint32_t tensor, uint64_t row, uint64_t col, uint64_t rows, uint64_t cols, BufferRef src) = 0;
    virtual void matmul(BufferRef a, BufferRef b, Span1 i, Span1 j, Span1 q, bool accumulate) = 0;
    virtual void drain(BufferRef c, bool has_bias, BufferRef bias, Span1 i, Span1 j, Activation activation) = 0;
};

/// The op stream of one ffn task (docs/compiler.md, "FFN fusion").
void expand_ffn_task(const FfnOperands& f, TileShape tile, const Task& task, OpEmitter& emit);

/// Whether tile [tm, t, t] of `f` fits one compute tile of `config` (every level).
bool ffn_tile_fits(const hw::Config& config, const FfnOperands& f, uint64_t tm, uint64_t t);

/// The tiling of ffn op `op`: a task per row block, the candidates that fit replayed, the
/// fastest (then the least DRAM traffic) chosen. Throws CompileError naming the op and the
/// numbers when no row block fits.
TilingChoice choose_ffn_tiling(const hw::Config& config, const Graph& graph, uint32_t op);

/// The pass: every fabric matmul pair X -> matmul1 -> H -> matmul2 -> Y (matmul1 the fused
/// `matmul` with any activation, a MatMul or a plain Gemm; H read by matmul2 alone, as its A,
/// and not a graph output; matmul2 without activation) replaced by one `ffn` op, when a row
/// block fits `config` and the fused kernel moves fewer DRAM bytes than the two matmuls' and
/// is not estimated slower. `notes` (may be null) gets one line per pair left unfused, why.
/// The two matmuls are tiled in `dataflow` for that comparison, as compile() would tile them.
Graph fuse_ffn(const Graph& graph, const hw::Config& config, Dataflow dataflow,
               std::vector<std::string>* notes = nullptr);

}  // namespace kpu::compiler
