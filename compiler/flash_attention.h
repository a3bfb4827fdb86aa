// Attention fused flash-attention style (the fuse-attention pass; docs/compiler.md, "Flash
// attention"). The pass turns each ONNX Attention that fits into one `flash_attention` op (the
// same inputs, output and attributes; Op::fused_with names the Attention) instead of the
// composite's Transpose, MatMul, masked_softmax and MatMul. Its kernel's task is a block of
// Br query rows of one (batch, head) matrix: the Q block stays on chip (L3, L2, L1) for the
// whole task while K and V stream through in blocks of Bc rows: S_j = Q K_j^T on the fabric,
// the online softmax step on the vector engine (running row max and sum, hw::VectorFunction::
// OnlineSoftmax), P_j V_j on the fabric, O = c O + P_j V_j on the vector engine, and at the end
// O / l stored to DRAM. The Sq x Skv scores never reach DRAM; with causal masking the key
// blocks entirely above the diagonal are skipped. Kernel tile [Br, Bc, E]; the task grid is
// one task per row block per matrix (a task covers every key block column).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "compiler/dfx.h"
#include "compiler/tiler.h"
#include "hardware/config.h"

namespace kpu::compiler {

/// A flash_attention op's tensors and geometry. Matrix t = b Hq + h is query head h of batch
/// b; it reads key/value head h / (Hq / Hkv). Each tensor is seen in its 2D view (rows of its
/// last dim): in the 4-D form a matrix is Sq (Skv) consecutive rows, in the 3-D form the
/// same rows of one batch and a head's E (Ev) columns.
struct FlashOperands {
    uint32_t q = 0, k = 0, v = 0, y = 0;  ///< tensor indices
    std::optional<uint32_t> mask;         ///< attn_mask, additive, broadcast to [B, Hq, Sq, Skv]
    bool four = true;                     ///< the 4-D form (else 3-D)
    uint64_t batch = 1, hq = 1, hkv = 1, sq = 0, skv = 0, e = 0, ev = 0;
    float scale = 1;
    bool causal = false;
    /// The mask per task block: None, a row per query (mask_rows(Br) rows of Bc); Row, one row
    /// of Bc per matrix; Scalar, one value.
    hw::Broadcast mask_broadcast = hw::Broadcast::None;
    /// The mask's view rows per step of the batch, the head and the query (0: it broadcasts there).
    uint64_t mask_batch_rows = 0, mask_head_rows = 0, mask_query_rows = 0;

    uint64_t matrices() const { return batch * hq; }
    /// Where matrix t's rows of Q (and Y) and of its K (and V) start in their 2D views, and the
    /// first column of its head there.
    uint64_t q_row(uint64_t t) const { return four ? t * sq : t / hq * sq; }
    uint64_t kv_row(uint64_t t) const { return four ? (t / hq * hkv + kv_head(t)) * skv : t / hq * skv; }
    uint64_t q_col(uint64_t t) const { return four ? 0 : t % hq * e; }
    uint64_t y_col(uint64_t t) const { return four ? 0 : t % hq * ev; }
    uint64_t k_col(uint64_t t) const { return four ? 0 : kv_head(t) * e; }
    uint64_t v_col(uint64_t t) const { return four ? 0 : kv_head(t) * ev; }
    uint64_t kv_head(uint64_t t) const { return t % hq / (hq / hkv); }
    /// The mask's view row for query `query` of matrix t.
    uint64_t mask_row(uint64_t t, uint64_t query) const {
        return t / hq * mask_batch_rows + t % hq * mask_head_rows + query * mask_query_rows;
    }
    /// Mask elements one key block of `rows` queries and `cols` keys loads (0 without a mask).
    uint64_t mask_elements(uint64_t rows, uint64_t cols) const {
        if (!mask) return 0;
        return mask_broadcast == hw::Broadcast::None ? rows * cols : mask_broadcast == hw::Broadcast::Row ? cols : 0;
    }
    /// The keys a block of queries ending before `q_end` sees, in blocks of `bc`: all of them,
    /// or with causal masking those up to the last block that starts at or before q_end - 1.
    uint64_t kv_end(uint64_t q_end, uint64_t bc) const {
        return causal ? std::min(skv, (q_end + bc - 1) / bc * bc) : skv;
    }
};

/// Whether `op` is a flash_attention.
bool is_flash_op(const Op& op);

/// The operands of flash_attention (or Attention) op `op`; throws CompileError when it does
/// not fuse (flash_problem).
FlashOperands flash_operands(const Graph& graph, uint32_t op);

/// Why Attention or flash_attention op `op` cannot run fused (a dtype, softcap, a mask that
/// broadcasts along the keys), "" when it can; the sizes are checked by the tiling.
std::string flash_problem(const Graph& graph, const Op& op);

/// Why op `op` (Attention) is not fused on `config`: flash_problem, or no block fits a compute
/// tile; "" when the pass fuses it.
std::string flash_refusal(const Graph& graph, const Op& op, const hw::Config& config);

/// The fuse-attention pass: every Attention of `graph` that fuses on `config` (flash_refusal
/// is "") becomes a flash_attention op of the same name, inputs, output and attributes with
/// fused_with = {its name}; the others stay (and expand as composites). `fused` (optional) is
/// set to whether it fused any.
Graph fuse_attention(const Graph& graph, const hw::Config& config, bool* fused = nullptr);

/// The buffers of a task with blocks of `tile.tm` query rows and `tile.tn` keys.
std::vector<BufferSpec> plan_flash_buffers(const FlashOperands& f, TileShape tile);

/// The blocks (Br, Bc) with the lowest estimate (docs/compiler.md: the formula) among those
/// that fit a compute tile of `config`; throws CompileError when none does.
TilingChoice choose_flash_tiling(const hw::Config& config, const Graph& graph, uint32_t op);

/// DRAM bytes one task reads and writes (the closed form: its Q rows and O rows once, its
/// head's K and V rows up to kv_end once, the mask rows of those blocks).
void flash_task_traffic(const FlashOperands& f, TileShape tile, const Task& task, uint64_t& read, uint64_t& write);

/// MACs and fabric cycles (sum of ceil(m / R) ceil(n / C) k over its MATMUL_TILEs) of one task.
void flash_task_work(const FlashOperands& f, TileShape tile, const Task& task, uint32_t fabric_rows,
                     uint32_t fabric_cols, uint64_t& macs, uint64_t& compute_cycles);

/// Ops of one task by kind (DfxOpKind order), added to `by_kind`.
void flash_task_ops(const FlashOperands& f, TileShape tile, const Task& task, uint64_t by_kind[6]);

/// A region of a tensor's 2D view (elements) that a task reads or writes.
struct FlashRegion {
    uint32_t tensor;
    uint64_t r0, r1, c0, c1;
};
/// The regions one task reads (Q, K, V, the mask) and the one it writes (Y).
std::vector<FlashRegion> flash_task_reads(const FlashOperands& f, TileShape tile, const Task& task);
FlashRegion flash_task_writes(const FlashOperands& f, TileShape tile, const Task& task);

/// One VECTOR op of a fused task as the op stream carries it.
struct FlashVector {
    hw::VectorFunction function = hw::VectorFunction::OnlineSoftmax;
    uint32_t rows = 0, cols = 0;  ///< the tile
    uint64_t query = 0, key = 0;  ///< its first query row and key in the matrix (the causal offset)
    bool first = false;           ///< the task's first key block (hw::VectorCommand::online_first)
    BufferRef a, y, state;        ///< state: the rows' statistics, 3 rows contiguous values
    bool has_mask = false;
    BufferRef mask;
    uint32_t mask_rows = 0, mask_cols = 0;  ///< what of the mask the op reads
};

/// What a fused task's ops are emitted through: the DFX expander implements it with its
/// dependency tracking (dfx.cpp).
class FlashOpSink {
public:
    virtual ~FlashOpSink() = default;
    virtual void load(uint32_t tensor, uint64_t row, uint64_t col, uint64_t rows, uint64_t cols, BufferRef dst) = 0;
    /// `transpose`: dst receives the region's transpose (cols x rows).
    virtual void move(uint32_t tensor, uint64_t row, uint64_t col, uint64_t rows, uint64_t cols, BufferRef src,
                      BufferRef dst, bool transpose) = 0;
    virtual void store(uint32_t tensor, uint64_t row, uint64_t col, uint64_t rows, uint64_t cols, BufferRef src) = 0;
    /// acc = a[m x k] b[k x n] (no accumulation across ops), then the drain of the m x n result into c.
    virtual void matmul_drain(BufferRef a, BufferRef b, BufferRef c, uint32_t m, uint32_t n, uint32_t k) = 0;
    virtual void vector(const FlashVector& op) = 0;
};

/// Emits the op stream of one task (docs/compiler.md, "Flash attention").
void expand_flash_task(const FlashOperands& f, TileShape tile, const Task& task, FlashOpSink& sink);

/// The command of a fused task's VECTOR op `d` (function, tile, scale, causal offset, mask
/// broadcast, first block), addresses left to the binder.
hw::VectorCommand flash_vector_command(const FlashOperands& f, const DfxOp& d);

}  // namespace kpu::compiler
