// DFX: the hardware-agnostic program (the KPU's PTX). A Program is the source graph plus, per
// matmul, a Kernel (dataflow and tile sizes) and a list of Tasks (independent rectangles of
// C tiles). The op stream (LOAD / MOVE / STORE / MATMUL_TILE / DRAIN with their dependencies)
// is a pure function of that, produced lazily by for_each_op(): the same rules give the file
// its compactness, the binder its input and the hints their numbers. docs/kpu-format.md.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "compiler/copy_op.h"
#include "compiler/graph.h"
#include "compiler/passes.h"
#include "compiler/ops/matmul.h"
#include "compiler/vector_op.h"
#include "hardware/address_map.h"

namespace kpu::compiler {

enum class Dataflow : uint8_t { OutputStationary, WeightStationary };
/// As .kpu files and kpu-compile --dataflow spell it.
inline constexpr EnumName<Dataflow> kDataflowNames[] = {{Dataflow::OutputStationary, "output-stationary"},
                                                        {Dataflow::WeightStationary, "weight-stationary"}};
inline const char* to_string(Dataflow dataflow) { return hw::name_in(kDataflowNames, dataflow); }
inline bool parse_dataflow(const std::string& name, Dataflow& out) { return hw::value_in(kDataflowNames, name, out); }

/// The fabric tile: C block tm x tn held in the fabric, K moved in chunks of tk. K is run in
/// passes of kc elements (a multiple of tk, or all of K): the L3 panel and strips hold one
/// pass, and a C tile's partial sum goes back to L3 between passes. kc = 0 means all of K.
struct TileShape {
    uint32_t tm = 0, tn = 0, tk = 0, kc = 0;
    bool operator==(const TileShape& o) const { return tm == o.tm && tn == o.tn && tk == o.tk && kc == o.kc; }
    /// Elements of K per pass for a reduction of length k.
    uint64_t pass_k(uint64_t k) const { return kc && kc < k ? kc : k; }
};

struct Hints {
    uint64_t dram_read_bytes = 0;
    uint64_t dram_write_bytes = 0;
    uint64_t macs = 0;
    uint64_t compute_cycles = 0;    ///< sum of ceil(m/R) ceil(n/C) k over MATMUL_TILEs, target fabric
    uint64_t estimated_cycles = 0;  ///< tiler's estimate on the target, all compute tiles
    double arithmetic_intensity = 0;  ///< FLOP per DRAM byte

    void add(const Hints& other);
    bool operator==(const Hints& o) const;
};

struct Kernel {
    uint32_t op = 0;  ///< graph op index
    Dataflow dataflow = Dataflow::OutputStationary;
    TileShape tile;
    Hints hints;
    bool operator==(const Kernel& o) const {
        return op == o.op && dataflow == o.dataflow && tile == o.tile && hints == o.hints;
    }
};

/// C tile rows [r0, r1) and tile columns [c0, c1) of one kernel, in units of tm / tn, of its
/// C matrix `batch` (a batched matmul's; 0 otherwise).
struct Task {
    uint32_t kernel = 0;
    uint32_t r0 = 0, r1 = 0, c0 = 0, c1 = 0;
    std::vector<uint32_t> deps;  ///< earlier tasks whose DRAM output this task reads
    uint32_t batch = 0;          ///< C matrix (MatmulOperands::batch) the tiles belong to
    bool operator==(const Task& o) const {
        return kernel == o.kernel && r0 == o.r0 && r1 == o.r1 && c0 == o.c0 && c1 == o.c1 && deps == o.deps &&
               batch == o.batch;
    }
};

/// The config the tiler optimised for; the binder accepts any config.
struct Target {
    std::string config;
    uint32_t fabric_rows = 0, fabric_cols = 0, compute_tiles = 0;
    std::vector<std::string> overrides;  ///< the config's --set overrides (hw::Config::overrides)
    bool operator==(const Target& o) const {
        return config == o.config && fabric_rows == o.fabric_rows && fabric_cols == o.fabric_cols &&
               compute_tiles == o.compute_tiles && overrides == o.overrides;
    }
};

/// estimate_memory (docs/compiler.md, "Memory planning"): the bytes a program needs, from its
/// memory plan and its kernels' buffers.
struct MemoryEstimate {
    uint64_t granule = 0;      ///< the DRAM interleave granule the plan was made for
    uint64_t weights = 0;      ///< the constants in DRAM
    uint64_t activations = 0;  ///< the largest sum over the schedule's steps of the live non-constant tensors
    /// Per compute tile, bound on the target config: one past the highest byte of the level its
    /// ops touch in one tile's share of it (high_water.h), the highest over the tiles; 0 until
    /// record_sram_marks (memory_plan.h) sets them.
    uint64_t l3 = 0, l2 = 0, l1 = 0;
    uint64_t dram = 0;         ///< the plan's extent: the highest DRAM byte any tensor occupies, + 1
    uint64_t l3_capacity = 0;  ///< keep-in-l3: the L3 bytes per compute tile its plan was made for (0: it did not run)
    bool operator==(const MemoryEstimate& o) const {
        return granule == o.granule && weights == o.weights && activations == o.activations && l3 == o.l3 &&
               l2 == o.l2 && l1 == o.l1 && dram == o.dram && l3_capacity == o.l3_capacity;
    }
};

struct Program {
    static constexpr uint32_t kVersion = 1;
    Graph graph;
    Target target;
    std::vector<Kernel> kernels;  ///< one per graph op, same order
    std::vector<Task> tasks;      ///< in dependency order
    Hints hints;                  ///< sum over kernels
    /// The directory of the constants' values (<tensor>.npy), beside the .kpu (a file name,
    /// relative to the .kpu's directory); "" for none. kpu-compile writes it for an ONNX
    /// model's weights; kpu-sim reads from it the constants --inputs does not give.
    std::string weights;
    std::vector<Pass> passes;  ///< the optimization passes that ran, in order (passes.h)
    std::optional<MemoryEstimate> memory;  ///< plan-memory's estimate, when it ran (the .kpu's "memory")
    bool operator==(const Program& o) const {
        return graph == o.graph && target == o.target && kernels == o.kernels && tasks == o.tasks && hints == o.hints &&
               weights == o.weights && passes == o.passes && memory == o.memory;
    }
};

// ---- logical buffers ------------------------------------------------------------------------

/// Hidden: an ffn kernel's H row block, kept in L3 between its two matmuls (ffn_fusion.h).
/// Scale*, Residual*: the drain epilogue's per-column multiplier and residual C tile.
enum class Buffer : uint8_t {
    Panel, Strip, Out, Bias3, A2, B2, C2, Bias2, A1, B1, C1, Bias1, Hidden,
    Scale3, Scale2, Scale1, Residual3, Residual2, Residual1
};
constexpr int kBufferCount = 19;
/// As messages and kpu-compile -v spell it: the level, then the buffer's role there.
inline constexpr EnumName<Buffer> kBufferNames[kBufferCount] = {
    {Buffer::Panel, "L3.panel"}, {Buffer::Strip, "L3.strip"}, {Buffer::Out, "L3.out"}, {Buffer::Bias3, "L3.bias"},
    {Buffer::A2, "L2.a"},        {Buffer::B2, "L2.b"},        {Buffer::C2, "L2.c"},    {Buffer::Bias2, "L2.bias"},
    {Buffer::A1, "L1.a"},        {Buffer::B1, "L1.b"},        {Buffer::C1, "L1.c"},    {Buffer::Bias1, "L1.bias"},
    {Buffer::Hidden, "L3.hidden"},
    {Buffer::Scale3, "L3.scale"},  {Buffer::Scale2, "L2.scale"},  {Buffer::Scale1, "L1.scale"},
    {Buffer::Residual3, "L3.residual"}, {Buffer::Residual2, "L2.residual"}, {Buffer::Residual1, "L1.residual"}};
inline const char* to_string(Buffer buffer) { return hw::name_in(kBufferNames, buffer); }
inline bool parse_buffer(const std::string& name, Buffer& out) { return hw::value_in(kBufferNames, name, out); }
/// Slots a logical buffer has at most: one, or two for double buffering (BufferSpec::slots).
constexpr uint32_t kMaxSlots = 2;

struct BufferSpec {
    Buffer buffer = Buffer::Panel;
    hw::Level level = hw::Level::L3;
    uint32_t slots = 1;
    uint64_t slot_bytes = 0;  ///< rows x pitch x elem_bytes
    uint32_t pitch = 0;   ///< row pitch in elements
    uint32_t tensor = 0;  ///< graph tensor whose data it holds
    uint32_t elem_bytes = 4;  ///< bytes of one element of that tensor (its dtype's)
};

/// Largest task of a kernel, in elements (what its buffers must hold).
struct TaskExtent {
    uint64_t rows = 0, cols = 0;
};

/// The buffers one task of `kernel` needs per compute tile, given its largest task.
std::vector<BufferSpec> plan_buffers(const Graph& graph, const Kernel& kernel, TaskExtent extent);
/// Same, for matmul `op` with reduction length `k` (what the tiler evaluates).
std::vector<BufferSpec> plan_buffers(const MatmulOperands& op, uint64_t k, Dataflow dataflow, TileShape tile, TaskExtent extent);
/// Elements of a matmul's A, B and C, in bytes.
struct FabricElementBytes {
    uint64_t a = 4, b = 4, c = 4;
};
/// Appends the double-buffered fabric slots of L2 and L1: A chunks tm x tk, B chunks tk x tn,
/// C tiles tm x tn (tensors a, b, c, elements of `bytes`).
void add_fabric_slots(std::vector<BufferSpec>& plan, uint64_t tm, uint64_t tn, uint64_t tk, uint32_t a, uint32_t b,
                      uint32_t c, FabricElementBytes bytes);
/// The buffers of a vector op's task with row tiles of `tm` rows (docs/compiler.md, "Vector ops").
std::vector<BufferSpec> plan_vector_buffers(const Graph& graph, const VectorOperands& op, uint64_t tm);
/// The buffers of a copy op's task with pieces of at most tn x tk (docs/compiler.md, "Layout ops").
std::vector<BufferSpec> plan_copy_buffers(const Graph& graph, const CopyOperands& op, TileShape tile);
TaskExtent max_task_extent(const Program& program, uint32_t kernel);
/// max_task_extent of every kernel, in one pass over the tasks.
std::vector<TaskExtent> max_task_extents(const Program& program);
/// STOREs of one task with `strips` strips of `fabric_tiles` C tiles in all: one per strip;
/// weight-stationary in K passes, one per C tile (its `out` is laid out in column bands).
inline uint64_t task_stores(Dataflow dataflow, uint64_t passes, uint64_t strips, uint64_t fabric_tiles) {
    return dataflow == Dataflow::WeightStationary && passes > 1 ? fabric_tiles : strips;
}

/// `value` rounded up to a multiple of `granule`.
constexpr uint64_t round_up(uint64_t value, uint64_t granule) { return (value + granule - 1) / granule * granule; }

/// Bytes a level needs per compute tile: every slot rounded up to kAlign.
constexpr uint64_t kAlign = 64;
uint64_t level_bytes(const std::vector<BufferSpec>& plan, hw::Level level);

// ---- the op stream --------------------------------------------------------------------------

/// Bytes of one element of graph tensor `t` (its dtype's): what its buffers and transfers hold.
inline uint64_t element_bytes(const Graph& graph, uint32_t t) { return dtype_bytes(graph.tensor(t).dtype); }

enum class DfxOpKind : uint8_t { Load, Move, Store, Matmul, Drain, Vector };
/// As docs/kpu-format.md, kpu-compile and traces spell it, in stream-summary order.
inline constexpr EnumName<DfxOpKind> kDfxOpKindNames[] = {{DfxOpKind::Load, "LOAD"},
                                                          {DfxOpKind::Move, "MOVE"},
                                                          {DfxOpKind::Store, "STORE"},
                                                          {DfxOpKind::Matmul, "MATMUL_TILE"},
                                                          {DfxOpKind::Drain, "DRAIN"},
                                                          {DfxOpKind::Vector, "VECTOR"}};
inline const char* to_string(DfxOpKind kind) { return hw::name_in(kDfxOpKindNames, kind); }
inline bool parse_dfx_op_kind(const std::string& name, DfxOpKind& out) {
    return hw::value_in(kDfxOpKindNames, name, out);
}

struct BufferRef {
    Buffer buffer = Buffer::Panel;
    uint32_t slot = 0;
    uint64_t offset = 0;  ///< elements from the slot's start
};

struct DfxOp {
    uint32_t id = 0;
    DfxOpKind kind = DfxOpKind::Load;
    uint32_t task = 0;
    // Load / Move / Store: the tensor region moved (elements; a bias is one row).
    uint32_t tensor = 0;
    uint64_t row = 0, col = 0, rows = 0, cols = 0;
    uint64_t row_step = 1;  ///< Load / Store: view rows between the region's rows (a copy op's strided block)
    BufferRef src, dst;  ///< Load has no src, Store no dst (the tensor region is the address)
    bool transpose = false;  ///< Move: element (r, c) of the source lands at (c, r) of dst
    /// Move of a convolution's A tile (L3 -> L2): `rows` output pixels from pixel `row -
    /// a_row(batch)` of its image and group, by K columns [col, col + cols) of the implicit
    /// patch matrix, gathered from the L3 panel holding input rows [halo_first, halo_first +
    /// halo_rows) with zero fill (conv_gather.h).
    bool gather = false;
    uint64_t halo_first = 0, halo_rows = 0;
    // Matmul: acc (+)= a[m x k] * b[k x n], the C block at (row, col) and K chunk at k_first;
    // with load_c the accumulators start from c[m x n] (the partial sum of earlier K passes).
    // Drain: the C block at (row, col).
    uint64_t k_first = 0;
    BufferRef a, b;
    uint32_t m = 0, n = 0, k = 0;
    bool accumulate = false;
    bool load_c = false;
    // Drain: acc (+ bias) (* scale) (+ residual) (activation) -> c[m x n]
    BufferRef c, bias;
    bool has_bias = false;
    bool has_scale = false, has_residual = false;  ///< Drain: the epilogue's scale row and residual tile
    BufferRef scale, residual;                     ///< Drain: where they are (L1)
    Activation activation = Activation::None;
    float alpha = 1.0f, beta = 1.0f;  ///< Drain: scales of the sum and of the bias (Gemm's; last pass)
    // Vector: the kernel's function (vector_operands) over the m x n tile at row `row` of a,
    // with b when has_b (a tile, a column, a row or a scalar), into c; a layer or RMS norm's
    // weight in b and bias in bias (has_bias). All in L2.
    bool has_b = false;
    /// Vector of a fused attention (flash_attention.h): its function (a vector op's is its
    /// kernel's); row and col are the block's first query and key, accumulate is false on the
    /// task's first key block, bias holds the rows' statistics.
    hw::VectorFunction function = hw::VectorFunction::Copy;
    uint32_t step = 0;  ///< Vector of a vector_chain: its step (VectorOperands::chain), whose command it runs
    std::vector<uint32_t> deps;  ///< earlier ops: RAW / WAR / WAW on logical buffers, RAW through DRAM
    uint32_t elem_bytes = 4;     ///< Load / Move / Store: bytes of one element of `tensor`

    uint64_t bytes() const { return rows * cols * elem_bytes; }
    hw::Level src_level() const;
    hw::Level dst_level() const;
};

/// Expands the op stream task by task, in order, calling `visit` for each op. Memory stays
/// proportional to one task plus the stores other tasks depend on.
void for_each_op(const Program& program, const std::function<void(const DfxOp&)>& visit);

/// Level of a logical buffer.
hw::Level level_of(Buffer buffer);

/// The tasks (earlier than `task`) that write a region of a tensor that `task` loads.
/// Builds a ProducerIndex of the tasks before it: for every task of a program, use one.
std::vector<uint32_t> producer_tasks(const Program& program, uint32_t task);

/// The regions each task writes, indexed per tensor by a grid of buckets the size of the
/// tensor's first written region (a kernel's tile), so that the producers of every task of a
/// program are found in time near-linear in tasks (a million one-tile tasks in seconds).
/// Tasks are added in order; producers(t), asked before add(t), is producer_tasks(program, t).
class ProducerIndex {
public:
    /// Refers to `program`, which must outlive it; its graph and kernels may grow, not change.
    explicit ProducerIndex(const Program& program);
    /// The tasks added so far that write a region of a tensor that task `task` loads, in order.
    std::vector<uint32_t> producers(uint32_t task) const;
    /// Records the regions task `task` writes; tasks are added in order, each once.
    void add(uint32_t task);

private:
    /// A rectangle of a tensor's 2D view, in elements, written by one task.
    struct Region {
        uint32_t task;
        uint64_t r0, r1, c0, c1;
    };
    /// One tensor's writes.
    struct Writes {
        uint64_t bucket_rows = 0, bucket_cols = 0;  ///< the grid's cell: the first nonempty write's extent
        uint64_t end_row = 0, end_col = 0;          ///< bounds of every write (a read is clipped to them)
        std::vector<uint32_t> regions;              ///< every write, in task order (indices into regions_)
        std::vector<uint32_t> wide;                 ///< writes over more than kMaxCells cells: checked on every read
        std::unordered_map<uint64_t, std::vector<uint32_t>> cells;  ///< cell key -> writes overlapping it
    };
    /// A write over more cells than this is not put into the grid.
    static constexpr uint64_t kMaxCells = 64;
    const Writes* writes_of(uint32_t tensor) const;
    void overlapping(const Writes& w, uint64_t r0, uint64_t r1, uint64_t c0, uint64_t c1,
                     std::vector<uint32_t>& out) const;

    const Program& program_;
    std::vector<Region> regions_;                      ///< every write of every task added
    std::unordered_map<uint32_t, Writes> by_tensor_;   ///< graph tensor -> its writes
    std::vector<std::optional<CopyOperands>> copies_;  ///< per kernel seen: a copy op's operands
    std::vector<uint32_t> roots_;                      ///< per graph tensor: alias_roots()
};

/// DRAM bytes read and written by one task, by the closed form of docs/compiler.md.
void task_traffic(const Program& program, const Task& task, uint64_t& read, uint64_t& write);

/// Elements of C tile row `i` of a kernel: [first, first + count).
struct Span1 {
    uint64_t first = 0, count = 0;
};
Span1 tile_span(uint64_t extent, uint32_t tile, uint32_t index);
uint32_t tile_count(uint64_t extent, uint32_t tile);

/// C tiles a kernel's grid may have (the .kpu reader's coverage check holds one flag per
/// tile); within it every tile count fits tile_count's uint32.
constexpr uint64_t kMaxCTiles = uint64_t(1) << 24;
/// The longest tile side (tm, tn, tk, kc): far beyond any L1 buffer.
constexpr uint64_t kMaxTileSide = uint64_t(1) << 24;
/// Tiles of `tile` along `extent`, or kMaxCTiles + 1 when there are more than kMaxCTiles.
inline uint64_t tiles_within_limit(uint64_t extent, uint64_t tile) {
    const uint64_t n = extent / tile + (extent % tile != 0);
    return n > kMaxCTiles ? kMaxCTiles + 1 : n;
}

}  // namespace kpu::compiler
