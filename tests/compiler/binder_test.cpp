#include "compiler/binder.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <unordered_map>

#include <gtest/gtest.h>

#include "compiler/bound_program_json.h"
#include "compiler/hazard_tracker.h"
#include "compiler/kpu_format.h"
#include "compiler/memory_plan.h"
#include "compiler/tiler.h"
#include "hardware/address_map.h"
#include "hardware/vector_command.h"
#include "tests/compiler/bound_execution.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler {
namespace {

const char* const kShipped[] = {"minimal", "edge", "t64", "datacenter", "roofline-ref"};

Program mlp_for(const std::string& target) {
    return compile(parse_graph(test::mlp_json(48, 40, 72, 24), "mlp.json"), test::config(target));
}

hw::Location where(const hw::AddressMap& map, uint64_t addr) {
    hw::Location loc;
    EXPECT_TRUE(map.decode(addr, 1, loc)) << std::hex << addr;
    return loc;
}

/// First and last byte of an access land in the same level and compute tile.
hw::Location span(const hw::AddressMap& map, uint64_t addr, uint64_t rows, uint64_t row_bytes, uint64_t stride) {
    const hw::Location first = where(map, addr), last = where(map, addr + (rows - 1) * stride + row_bytes - 1);
    EXPECT_EQ(first.level, last.level);
    if (first.level != hw::Level::Dram) {
        EXPECT_EQ(first.tile, last.tile);
    }
    return first;
}

void check_invariants(const Program& p, const BoundProgram& b, const hw::Config& config) {
    const hw::AddressMap map(config);
    uint64_t read = 0, write = 0, macs = 0;
    for (uint32_t i = 0; i < b.ops.size(); ++i) {
        const BoundOp& op = b.ops[i];
        ASSERT_EQ(op.id, i);
        for (uint32_t d : op.deps) ASSERT_LT(d, i);
        ASSERT_LT(op.tile, config.compute_tiles);
        if (op.kind == BoundOp::Kind::Move) {
            const hw::Transfer& x = op.move;
            EXPECT_EQ(x.id, op.id);
            const hw::Location s = span(map, x.src, x.rows, x.row_bytes, x.src_stride);
            const hw::Location d = span(map, x.dst, x.rows, x.row_bytes, x.dst_stride);
            if (s.level == hw::Level::Dram) read += x.bytes();
            if (d.level == hw::Level::Dram) write += x.bytes();
            std::set<hw::Level> levels{s.level, d.level};
            switch (op.engine) {
                case EngineKind::Dma:  // DRAM <-> L3, or L3 -> L3 for a keep-in-l3 tensor
                    EXPECT_TRUE(levels == (std::set<hw::Level>{hw::Level::Dram, hw::Level::L3}) ||
                                levels == std::set<hw::Level>{hw::Level::L3});
                    EXPECT_LT(op.unit, config.dma.count);
                    break;
                case EngineKind::BlockMover:
                    EXPECT_EQ(levels, (std::set<hw::Level>{hw::Level::L3, hw::Level::L2}));
                    EXPECT_EQ(s.tile, op.tile);
                    EXPECT_EQ(d.tile, op.tile);
                    EXPECT_LT(op.unit, config.block_mover.count);
                    break;
                case EngineKind::Streamer:
                    EXPECT_EQ(levels, (std::set<hw::Level>{hw::Level::L2, hw::Level::L1}));
                    EXPECT_EQ(s.tile, op.tile);
                    EXPECT_EQ(d.tile, op.tile);
                    EXPECT_LT(op.unit, config.streamer.count);
                    break;
                case EngineKind::Fabric: ADD_FAILURE() << "move on the fabric"; break;
                case EngineKind::Vector: ADD_FAILURE() << "move on the vector engine"; break;
            }
        } else if (op.kind == BoundOp::Kind::Vector) {
            // The engine of the tile whose L2 holds every operand.
            EXPECT_EQ(op.engine, EngineKind::Vector);
            const hw::VectorCommand& v = op.vector;
            EXPECT_EQ(hw::vector_command_problem(v), "");
            for (auto loc : {span(map, v.a.addr, v.rows, v.cols * 4, v.a.ld * 4),
                             span(map, v.y.addr, v.rows, v.cols * 4, v.y.ld * 4)}) {
                EXPECT_EQ(loc.level, hw::Level::L2);
                EXPECT_EQ(loc.tile, op.tile);
            }
            if (v.has_b) {
                EXPECT_EQ(where(map, v.b.addr).level, hw::Level::L2);
                EXPECT_EQ(where(map, v.b.addr).tile, op.tile);
            }
        } else {
            EXPECT_EQ(op.engine, EngineKind::Fabric);
            if (op.kind == BoundOp::Kind::Matmul) {
                const MatmulCommand& m = op.matmul;
                macs += uint64_t(m.m) * m.n * m.k;
                for (auto loc : {span(map, m.a, m.m, m.k * 4, m.lda * 4), span(map, m.b, m.k, m.n * 4, m.ldb * 4)}) {
                    EXPECT_EQ(loc.level, hw::Level::L1);
                    EXPECT_EQ(loc.tile, op.tile);
                }
            } else {
                const hw::Location c = span(map, op.drain.c, op.drain.m, op.drain.n * 4, op.drain.ldc * 4);
                EXPECT_EQ(c.level, hw::Level::L1);
                EXPECT_EQ(c.tile, op.tile);
            }
        }
    }
    EXPECT_EQ(b.dram_read_bytes, read);
    EXPECT_EQ(b.dram_write_bytes, write);
    EXPECT_EQ(read, p.hints.dram_read_bytes);
    EXPECT_EQ(write, p.hints.dram_write_bytes);
    EXPECT_EQ(b.macs, macs);
    EXPECT_EQ(macs, p.hints.macs);
    if (p.memory) {  // plan-memory: where the plan puts them; no two live together overlap
        const MemoryPlan plan = program_memory_plan(p, config.dram.interleave_bytes);
        std::vector<uint32_t> index;
        for (const BoundTensor& t : b.tensors) index.push_back(*p.graph.find_tensor(t.name));
        for (size_t t = 0; t < b.tensors.size(); ++t) {
            const BoundTensor& x = b.tensors[t];
            if (x.in_l3) continue;  // keep-in-l3's: no DRAM (keep_in_l3_test.cpp)
            EXPECT_EQ(x.dram_addr, plan.offset[index[t]]) << x.name;
            EXPECT_EQ(x.dram_addr % (x.bytes >= plan.granule ? plan.granule : kAlign), 0u) << x.name;
            for (size_t u = 0; u < t; ++u) {
                const BoundTensor& y = b.tensors[u];
                if (!y.in_l3 && plan.lifetime[index[t]].overlaps(plan.lifetime[index[u]]) && x.dram_addr != y.dram_addr) {
                    EXPECT_TRUE(x.dram_addr >= y.dram_addr + y.bytes || y.dram_addr >= x.dram_addr + x.bytes)
                        << x.name << " and " << y.name;
                }
            }
        }
        return;
    }
    for (size_t t = 0; t < b.tensors.size(); ++t) {
        EXPECT_EQ(b.tensors[t].dram_addr % config.dram.interleave_bytes, 0u);
        if (t) {
            EXPECT_GE(b.tensors[t].dram_addr, b.tensors[t - 1].dram_addr + b.tensors[t - 1].bytes);
        }
    }
}

TEST(Binder, TheSameKpuBindsOnEveryShippedConfig) {
    const Program p = read_kpu(write_kpu(mlp_for("minimal")), "mlp.kpu");  // through the file format
    for (const char* name : kShipped) {
        SCOPED_TRACE(name);
        const hw::Config config = test::config(name);
        check_invariants(p, bind(p, config), config);
    }
}

// Where a host puts the image (kpu-sim, bench-e2e and the VP example share it): the first
// interleave boundary after the last tensor. examples/mlp.json on edge (2 KiB blocks) ends
// with y[64, 128] at 0xf1000, 32 KiB: the image goes at 0xf9000 (docs/integration.md).
TEST(Binder, TheImageGoesAfterTheLastTensorAndMustFit) {
    const std::string text = test::example("mlp.json");
    const hw::Config edge = test::config("edge");
    // -O0: every tensor its own range (plan-memory's smaller peak: MemoryPlan.*).
    const BoundProgram b = bind(compile(parse_graph(text, "mlp.json"), edge, CompileOptions(Dataflow::OutputStationary, DepthwiseUnit::Auto, PassSelection{0, {}})), edge);
    EXPECT_EQ(image_address(b, edge, 4096), 0xf9000u);
    const uint64_t dram = uint64_t(edge.dram.count) * edge.dram.capacity_bytes;
    EXPECT_EQ(image_address(b, edge, dram - 0xf9000), 0xf9000u) << "exactly to the end of DRAM";
    EXPECT_EQ(test::error_of([&] { image_address(b, edge, dram - 0xf9000 + 1); }),
              "tensors (1019904 bytes) and the program image (" + std::to_string(dram - 0xf9000 + 1) +
                  " bytes) do not fit the " + std::to_string(dram) + " bytes of DRAM of edge");
}

TEST(Binder, IsDeterministic) {
    const Program p = mlp_for("edge");
    const hw::Config edge = test::config("edge");
    EXPECT_EQ(write_bound_program(bind(p, edge)), write_bound_program(bind(p, edge)));
}

TEST(Binder, SpreadsTasksOverAllComputeTilesWhenThereIsEnoughWork) {
    const Program p = test::compile_matmul(1024, 1024, 256, test::config("t64"));
    ASSERT_GT(p.tasks.size(), 4u);
    for (const char* name : {"edge", "t64", "datacenter"}) {
        SCOPED_TRACE(name);
        const hw::Config config = test::config(name);
        const BoundProgram b = bind(p, config);
        std::set<uint32_t> used;
        for (const BoundOp& op : b.ops)
            if (op.kind == BoundOp::Kind::Matmul) used.insert(op.tile);
        EXPECT_EQ(used.size(), std::min<size_t>(p.tasks.size(), config.compute_tiles));
    }
}

// Four independent 48^3 ops of 9 tasks each run side by side on t64, not one after another
// on the same 9 tiles: a kernel that does not read the previous one's results starts after
// its tiles; one that does starts where it did.
TEST(Binder, IndependentOpsRunSideBySideAndAChainsLayersStartOnTileZero) {
    const hw::Config t64 = test::config("t64");
    const Program independent = compile(
        parse_graph(R"({"tensors": [{"name": "x", "shape": [48, 48]}, {"name": "W", "shape": [48, 48]},
                        {"name": "y0"}, {"name": "y1"}, {"name": "y2"}, {"name": "y3"}],
                        "ops": [{"op": "matmul", "name": "m0", "A": "x", "B": "W", "C": "y0"},
                                {"op": "matmul", "name": "m1", "A": "x", "B": "W", "C": "y1"},
                                {"op": "matmul", "name": "m2", "A": "x", "B": "W", "C": "y2"},
                                {"op": "matmul", "name": "m3", "A": "x", "B": "W", "C": "y3"}]})",
                    "indep4.json"),
        t64);
    std::vector<uint32_t> first(independent.kernels.size(), ~0u), tasks(independent.kernels.size(), 0);
    const std::vector<uint32_t> tiles = task_tiles(independent, t64);
    std::set<uint32_t> used;
    for (size_t t = 0; t < independent.tasks.size(); ++t) {
        const uint32_t k = independent.tasks[t].kernel;
        first[k] = std::min(first[k], tiles[t]);
        ++tasks[k];
        used.insert(tiles[t]);
    }
    EXPECT_EQ(used.size(), independent.tasks.size()) << "no two tasks share a tile";
    for (size_t k = 1; k < first.size(); ++k) EXPECT_EQ(first[k], first[k - 1] + tasks[k - 1]) << "kernel " << k;

    // Two independent ops, then one reading the second's result: it starts where the second did.
    const Program mix = compile(
        parse_graph(R"({"tensors": [{"name": "x", "shape": [48, 48]}, {"name": "W", "shape": [48, 48]},
                        {"name": "y0"}, {"name": "y1"}, {"name": "z"}],
                        "ops": [{"op": "matmul", "name": "m0", "A": "x", "B": "W", "C": "y0"},
                                {"op": "matmul", "name": "m1", "A": "x", "B": "W", "C": "y1"},
                                {"op": "matmul", "name": "m2", "A": "y1", "B": "W", "C": "z"}]})",
                    "mix.json"),
        t64);
    const std::vector<uint32_t> mix_tiles = task_tiles(mix, t64);
    std::vector<uint32_t> mix_first(mix.kernels.size(), ~0u);
    for (size_t t = 0; t < mix.tasks.size(); ++t)
        mix_first[mix.tasks[t].kernel] = std::min(mix_first[mix.tasks[t].kernel], mix_tiles[t]);
    EXPECT_GT(mix_first[1], 0u);
    EXPECT_EQ(mix_first[2], mix_first[1]);

    const Program chain = mlp_for("t64");
    const std::vector<uint32_t> chain_tiles = task_tiles(chain, t64);
    std::vector<uint32_t> chain_first(chain.kernels.size(), ~0u);
    for (size_t t = 0; t < chain.tasks.size(); ++t)
        chain_first[chain.tasks[t].kernel] = std::min(chain_first[chain.tasks[t].kernel], chain_tiles[t]);
    EXPECT_EQ(chain_first, std::vector<uint32_t>(chain.kernels.size(), 0u));
}

TEST(Binder, AProgramThatDoesNotFitNamesTensorLevelAndNumbers) {
    // A matmul's tiles are re-blocked to fit (reblock_test.cpp); a row of 16384 floats with its
    // double buffers fits minimal's L2 in no row tiling.
    const Program p = compile(parse_graph(R"({"tensors": [{"name": "x", "shape": [64, 16384], "role": "input"},
        {"name": "y"}], "ops": [{"op": "Softmax", "name": "matmul", "inputs": ["x"], "outputs": ["y"]}]})",
                                          "softmax.json"),
                              test::config("datacenter"));
    const std::string e = test::error_of([&] { bind(p, test::config("minimal")); });
    EXPECT_NE(e.find("cannot bind op 'matmul' to config 'minimal': tensor '"), std::string::npos) << e;
    EXPECT_NE(e.find("bytes per compute tile in total but has "), std::string::npos) << e;
}

// ---- LOADs and STOREs over the DMA engines ---------------------------------------------------

/// Every byte of `x`: source address -> destination address.
std::map<uint64_t, uint64_t> byte_map(const hw::Transfer& x) {
    std::map<uint64_t, uint64_t> out;
    for (uint64_t r = 0; r < x.rows; ++r)
        for (uint64_t c = 0; c < x.row_bytes; ++c) out[x.src + r * x.src_stride + c] = x.dst + r * x.dst_stride + c;
    return out;
}

TEST(Binder, ADramTransferSplitOverEnginesMovesTheSameBytesExactlyOnce) {
    struct Case {
        hw::Transfer x;
        uint32_t engines;
        size_t slices;
    };
    auto transfer = [](uint32_t rows, uint32_t row_bytes, uint64_t src_stride, uint64_t dst_stride) {
        hw::Transfer x;
        x.src = 3 * 4096, x.dst = (uint64_t(1) << 40) + 128;
        x.rows = rows, x.row_bytes = row_bytes, x.src_stride = src_stride, x.dst_stride = dst_stride;
        return x;
    };
    const Case cases[] = {
        {transfer(16, 4096, 4096, 4096), 4, 4},     // contiguous rows of one block: rows mod 4
        {transfer(5, 8192, 8192, 8192), 4, 4},      // contiguous, 10 blocks: blocks mod 4 (uneven)
        {transfer(100, 64, 4096, 64), 16, 1},       // 6400 bytes, strided: one block's worth, no split
        {transfer(300, 64, 8192, 64), 16, 4},       // strided rows: 19200 bytes -> 4 slices of rows
        {transfer(7, 4000, 4000, 4000), 4, 4},      // contiguous but not whole blocks: rows mod 4
        {transfer(3, 8192, 16384, 8192), 16, 3},    // fewer rows than engines
        {transfer(64, 4096, 4096, 4096), 1, 1},     // one engine
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(std::to_string(c.x.rows) + " x " + std::to_string(c.x.row_bytes));
        const std::vector<hw::Transfer> slices = split_dram_transfer(c.x, c.engines, 4096);
        EXPECT_EQ(slices.size(), c.slices);
        const std::map<uint64_t, uint64_t> whole = byte_map(c.x);
        std::map<uint64_t, uint64_t> parts;
        uint64_t bytes = 0;
        for (const hw::Transfer& s : slices) {
            bytes += s.bytes();
            for (const auto& [src, dst] : byte_map(s)) EXPECT_TRUE(parts.emplace(src, dst).second) << "twice " << src;
        }
        EXPECT_EQ(bytes, c.x.bytes());
        EXPECT_EQ(parts, whole);
    }
}

TEST(Binder, LoadsAndStoresRunOnTheirTilesDmaEnginesAndEachSliceCarriesTheOpsDeps) {
    const hw::Config config = test::config("roofline-ref");
    const Program p = test::compile_matmul(256, 256, 256, config);
    const BoundProgram b = bind(p, config);
    check_invariants(p, b, config);
    std::map<uint32_t, std::vector<const BoundOp*>> by_dfx;
    for (const BoundOp& op : b.ops) by_dfx[op.dfx_op].push_back(&op);
    size_t split = 0;
    for (const auto& [dfx, ops] : by_dfx) {
        if (ops.size() == 1) continue;
        ++split;
        std::set<uint32_t> units;
        for (size_t i = 0; i < ops.size(); ++i) {
            EXPECT_EQ(ops[i]->engine, EngineKind::Dma);
            EXPECT_EQ(ops[i]->deps, ops.front()->deps);  // none of them waits for a sibling
            // Slice i of a transfer of compute tile t runs on engine (t n + i) mod engines.
            EXPECT_EQ(ops[i]->unit, (ops[i]->tile * ops.size() + i) % config.dma.count);
            units.insert(ops[i]->unit);
        }
        EXPECT_EQ(units.size(), ops.size());
    }
    EXPECT_GT(split, 0u);
    // The first LOAD (an A block of 64 x 256: 64 KiB, 16 interleave blocks) goes over all
    // four engines.
    EXPECT_EQ(by_dfx[0].size(), config.dma.count);
}

/// Checks the LOAD rule on one program: a LOAD bigger than what its tile's link moves in one
/// DRAM latency waits for the tile's previous such LOAD; a smaller one waits for no LOAD of
/// its tile.
struct LoadWindow {
    size_t big = 0, small = 0, tiles = 0;
    size_t chained = 0;  ///< big LOADs that wait for the previous big LOAD of their tile
};

LoadWindow check_load_window(const hw::Config& config, const Program& p) {
    const hw::AddressMap map(config);
    const BoundProgram b = bind(p, config);
    const double link = std::min(config.interconnect.bandwidth_bytes_per_s,
                                 config.l3.bandwidth_bytes_per_s * config.l3.ports);
    const double window = link * config.dram.latency_cycles / config.clocks.dram_hz;
    struct Load {
        std::vector<uint32_t> slices;
        uint64_t bytes = 0;
    };
    std::map<uint32_t, Load> loads;  // DFX op -> its slices, in stream order
    for (const BoundOp& op : b.ops)
        if (op.engine == EngineKind::Dma && where(map, op.move.dst).level == hw::Level::L3) {
            loads[op.dfx_op].slices.push_back(op.id);
            loads[op.dfx_op].bytes += op.move.bytes();
        }
    std::map<uint32_t, std::vector<const Load*>> by_tile;  // all earlier LOADs of a tile
    std::map<uint32_t, const Load*> last_big;
    LoadWindow result;
    for (const auto& [dfx, load] : loads) {
        const uint32_t tile = b.ops[load.slices.front()].tile;
        const bool big = double(load.bytes) > window;
        for (uint32_t s : load.slices) {
            const auto& deps = b.ops[s].deps;
            auto waits_for = [&](const Load* before) {
                return std::find(deps.begin(), deps.end(), before->slices.front()) != deps.end();
            };
            for (const Load* before : by_tile[tile]) {
                if (big && before == last_big[tile]) {
                    EXPECT_TRUE(waits_for(before)) << "big LOAD " << s << " does not wait for the previous one";
                } else if (!big) {
                    EXPECT_FALSE(waits_for(before)) << "small LOAD " << s << " waits for a LOAD";
                }
            }
        }
        if (big) {
            result.chained += last_big.count(tile) != 0;
            last_big[tile] = &load;
        }
        ++(big ? result.big : result.small);
        by_tile[tile].push_back(&load);
    }
    result.tiles = by_tile.size();
    return result;
}

TEST(Binder, ATileHasOneBigLoadInFlight) {
    // t64 512^3: every LOAD (A panels, B strips) is bigger than t64's window (96 GB/s x 300
    // DRAM cycles at 3.2 GHz = 9 KB), so each waits for the previous LOAD of its tile.
    const hw::Config config = test::config("t64");
    const LoadWindow w = check_load_window(config, test::compile_matmul(512, 512, 512, config));
    EXPECT_EQ(w.small, 0u);
    EXPECT_GT(w.big, w.tiles);
    EXPECT_EQ(w.chained, w.big - w.tiles);  // all but each tile's first
}

TEST(Binder, SmallLoadsWaitForNoLoad) {
    // 77 x 33 x 129 + bias on t64 in 64 x 16 tiles: the bias LOADs (a few hundred bytes) and
    // the 16-column B strips (8.3 KB) are under the window and go at once; the 64-row A
    // panel blocks (33 KB) still chain.
    const hw::Config config = test::config("t64");
    const Program p = test::compile_matmul(77, 33, 129, config, Dataflow::OutputStationary, /*bias=*/true);
    TilingChoice tall;
    ASSERT_TRUE(evaluate_tiling(config, p.graph, 0, Dataflow::OutputStationary, {64, 16, 0}, 2, 1, tall));
    const LoadWindow w =
        check_load_window(config, tiling_program(config, p.graph, 0, Dataflow::OutputStationary, tall));
    EXPECT_GT(w.small, 0u);
    EXPECT_GT(w.big, 0u);
}

// ---- hazards, by enumeration ------------------------------------------------------------------

/// rows of row_bytes, `stride` apart, from `begin`; `end` bounds the last byte.
struct Access {
    uint64_t space, begin, end;
    bool write;
    uint64_t rows = 1, row_bytes = 1, stride = 1;
};

/// Whether two strided accesses share a byte (exact, row by row).
bool overlap(const Access& x, const Access& y) {
    if (x.space != y.space || x.end <= y.begin || y.end <= x.begin) return false;
    for (uint64_t r = 0; r < x.rows; ++r) {
        const uint64_t lo = x.begin + r * x.stride, hi = lo + x.row_bytes;
        // Rows t of y with y.begin + t * stride < hi and y.begin + t * stride + row_bytes > lo.
        const uint64_t first = lo + 1 > y.begin + y.row_bytes ? (lo + 1 - y.row_bytes - y.begin + y.stride - 1) / y.stride : 0;
        if (first < y.rows && y.begin + first * y.stride < hi) return true;
    }
    return false;
}

std::vector<Access> accesses(const BoundOp& op) {
    auto range = [](uint64_t addr, uint64_t rows, uint64_t row_bytes, uint64_t stride, bool write) {
        return Access{0, addr, addr + (rows - 1) * stride + row_bytes, write, rows, row_bytes, stride};
    };
    const Access acc_read{1 + uint64_t(op.tile), 0, 1, false}, acc_write{1 + uint64_t(op.tile), 0, 1, true};
    switch (op.kind) {
        case BoundOp::Kind::Move:
            return {range(op.move.src, op.move.rows, op.move.row_bytes, op.move.src_stride, false),
                    range(op.move.dst, op.move.rows, op.move.row_bytes, op.move.dst_stride, true)};
        case BoundOp::Kind::Matmul: {
            const MatmulCommand& m = op.matmul;
            return {range(m.a, m.m, m.k * 4, m.lda * 4, false), range(m.b, m.k, m.n * 4, m.ldb * 4, false), acc_write};
        }
        case BoundOp::Kind::Drain: {
            const DrainCommand& d = op.drain;
            std::vector<Access> out{acc_read, range(d.c, d.m, d.n * 4, d.ldc * 4, true)};
            if (d.has_bias) out.push_back(range(d.bias, 1, d.n * 4, d.n * 4, false));
            return out;
        }
        case BoundOp::Kind::Vector: {
            const hw::VectorCommand& v = op.vector;
            auto input = [&](const hw::VectorOperand& x) {
                switch (x.broadcast) {
                    case hw::Broadcast::Scalar: return range(x.addr, 1, 4, 4, false);
                    case hw::Broadcast::Row: return range(x.addr, 1, v.cols * 4, v.cols * 4, false);
                    case hw::Broadcast::Column: return range(x.addr, v.rows, 4, x.ld * 4, false);
                    default: return range(x.addr, v.rows, v.cols * 4, x.ld * 4, false);
                }
            };
            const bool reduction = hw::traits_of(v.function).shape == hw::VectorShape::Reduction;
            std::vector<Access> out{input(v.a), range(v.y.addr, v.rows, (reduction ? 1 : v.cols) * 4, v.y.ld * 4, true)};
            if (v.has_b) out.push_back(input(v.b));
            if (v.has_weight) out.push_back(range(v.weight, 1, v.cols * 4, v.cols * 4, false));
            if (v.has_bias) out.push_back(range(v.bias, 1, v.cols * 4, v.cols * 4, false));
            return out;
        }
    }
    return {};
}

/// Every pair of ops that touch a common byte (or the same accumulator set), one of them
/// writing, is ordered by the transitive closure of the deps. Returns how many such pairs
/// were write-after-read.
size_t check_no_races(const BoundProgram& b) {
    const size_t n = b.ops.size(), words = n / 64 + 1;
    std::vector<std::vector<uint64_t>> reach(n, std::vector<uint64_t>(words, 0));
    for (size_t j = 0; j < n; ++j)
        for (uint32_t d : b.ops[j].deps) {
            for (size_t w = 0; w < words; ++w) reach[j][w] |= reach[d][w];
            reach[j][d / 64] |= uint64_t(1) << (d % 64);
        }
    std::vector<std::vector<Access>> all(n);
    for (size_t i = 0; i < n; ++i) all[i] = accesses(b.ops[i]);
    size_t war = 0;
    for (size_t j = 0; j < n; ++j)
        for (size_t i = 0; i < j; ++i)
            for (const Access& x : all[i])
                for (const Access& y : all[j]) {
                    if (!(x.write || y.write) || !overlap(x, y)) continue;
                    const bool ordered = (reach[j][i / 64] >> (i % 64)) & 1;
                    EXPECT_TRUE(ordered) << "ops " << i << " and " << j << " race";
                    war += !x.write && y.write;
                }
    return war;
}

TEST(Binder, EveryConflictingPairIsOrderedIncludingWriteAfterRead) {
    for (const char* name : {"minimal", "edge"}) {
        SCOPED_TRACE(name);
        const hw::Config config = test::config(name);
        const BoundProgram b = bind(mlp_for("minimal"), config);
        ASSERT_LT(b.ops.size(), 4000u);
        EXPECT_GT(check_no_races(b), 0u);
        const BoundProgram ws = bind(test::compile_matmul(100, 90, 300, config, Dataflow::WeightStationary, true), config);
        EXPECT_GT(check_no_races(ws), 0u);
        // Large enough that LOADs and STOREs are split over the DMA engines.
        const BoundProgram big = bind(test::compile_matmul(96, 200, 120, config, Dataflow::OutputStationary, true), config);
        ASSERT_LT(big.ops.size(), 4000u);
        std::map<uint32_t, int> bound_per_dfx;
        for (const BoundOp& op : big.ops) ++bound_per_dfx[op.dfx_op];
        ASSERT_GT(std::max_element(bound_per_dfx.begin(), bound_per_dfx.end(),
                                   [](auto& x, auto& y) { return x.second < y.second; })->second, 1);
        EXPECT_GT(check_no_races(big), 0u);
    }
}

TEST(Binder, NextCTileOnAFabricWaitsForThePreviousDrain) {
    const BoundProgram b = bind(mlp_for("minimal"), test::config("minimal"));
    std::unordered_map<uint32_t, int64_t> last_drain;  // tile -> op
    int checked = 0;
    for (const BoundOp& op : b.ops) {
        if (op.kind == BoundOp::Kind::Drain) last_drain[op.tile] = op.id;
        if (op.kind == BoundOp::Kind::Matmul && !op.matmul.accumulate && last_drain.count(op.tile)) {
            EXPECT_NE(std::find(op.deps.begin(), op.deps.end(), uint32_t(last_drain[op.tile])), op.deps.end());
            ++checked;
        }
    }
    EXPECT_GT(checked, 0);
}

// ---- functional: execute the bound program in a random dependency order ---------------------

using test::execute;  // tests/compiler/bound_execution.h
using test::Memory;

TEST(Binder, BoundMlpComputesTheReferenceResultInAnyDependencyOrder) {
    const uint64_t B = 48, I = 40, H = 72, O = 24;
    for (const char* name : {"minimal", "edge"}) {
        SCOPED_TRACE(name);
        const Program p = mlp_for("minimal");
        const BoundProgram b = bind(p, test::config(name));
        std::map<std::string, std::vector<float>> host;
        std::mt19937 rng(7);
        std::uniform_real_distribution<float> dist(-1.f, 1.f);
        Memory mem;
        for (const BoundTensor& t : b.tensors) {
            if (t.role != "input" && t.role != "constant") continue;
            auto& v = host[t.name];
            v.resize(t.bytes / 4);
            for (size_t i = 0; i < v.size(); ++i) mem.at(t.dram_addr + i * 4) = v[i] = dist(rng);
        }
        execute(b, mem, 1234);
        std::vector<float> h(B * H), y(B * O);
        for (uint64_t r = 0; r < B; ++r)
            for (uint64_t c = 0; c < H; ++c) {
                float s = host["b1"][c];
                for (uint64_t k = 0; k < I; ++k) s += host["x"][r * I + k] * host["W1"][k * H + c];
                h[r * H + c] = std::max(s, 0.f);
            }
        for (uint64_t r = 0; r < B; ++r)
            for (uint64_t c = 0; c < O; ++c) {
                float s = host["b2"][c];
                for (uint64_t k = 0; k < H; ++k) s += h[r * H + k] * host["W2"][k * O + c];
                y[r * O + c] = s;
            }
        const BoundTensor& out = *std::find_if(b.tensors.begin(), b.tensors.end(), [](auto& t) { return t.name == "y"; });
        for (uint64_t i = 0; i < B * O; ++i) ASSERT_NEAR(mem.at(out.dram_addr + i * 4), y[i], 1e-4) << i;
    }
}

TEST(HazardTracker, KnowsWhoLastWroteEveryByte) {
    HazardTracker t;
    std::vector<uint32_t> deps;
    t.access(1, 0, 100, true, 3, deps);
    t.access(1, 0, 100, false, 4, deps);
    t.access(1, 50, 60, true, 5, deps);
    EXPECT_TRUE(t.written_by(1, 0, 50, 3));
    EXPECT_TRUE(t.written_by(1, 60, 100, 3));
    EXPECT_FALSE(t.written_by(1, 0, 100, 3));   // [50, 60) is op 5's
    EXPECT_TRUE(t.written_by(1, 52, 58, 5));
    EXPECT_FALSE(t.written_by(1, 90, 120, 3));  // [100, 120) was never written
    EXPECT_FALSE(t.written_by(2, 0, 10, 3));    // nor was space 2
    EXPECT_FALSE(t.written_after(1, 0, 50, 3));
    EXPECT_TRUE(t.written_after(1, 40, 55, 3));
    EXPECT_FALSE(t.written_after(1, 40, 55, 5));
    EXPECT_FALSE(t.written_after(2, 0, 10, 0));
}

// Against a byte-by-byte model: each byte's last writer and its readers since, in three
// spaces visited in random order (runs in one space, then switches, as a binder's ops do).
TEST(HazardTracker, DependenciesMatchAByteByByteModel) {
    HazardTracker t;
    constexpr uint64_t kBytes = 64, kSpaces = 3;
    struct Byte {
        int64_t writer = -1;
        std::set<uint32_t> readers;
    };
    std::vector<std::vector<Byte>> spaces(kSpaces, std::vector<Byte>(kBytes));
    std::mt19937 rng(5);
    uint64_t space = 0;
    for (uint32_t op = 0; op < 6000; ++op) {
        if (rng() % 4 == 0) space = rng() % kSpaces;
        std::vector<Byte>& bytes = spaces[space];
        const uint64_t begin = rng() % kBytes, end = begin + 1 + rng() % (kBytes - begin);
        const bool write = rng() % 3 == 0;
        std::vector<uint32_t> deps;
        t.access(space, begin, end, write, op, deps);
        normalize_deps(deps, op);
        std::set<uint32_t> expected;
        for (uint64_t i = begin; i < end; ++i) {
            if (bytes[i].writer >= 0) expected.insert(uint32_t(bytes[i].writer));
            if (write) expected.insert(bytes[i].readers.begin(), bytes[i].readers.end());
            if (write)
                bytes[i] = {int64_t(op), {}};
            else
                bytes[i].readers.insert(op);
        }
        ASSERT_EQ(deps, std::vector<uint32_t>(expected.begin(), expected.end())) << "op " << op;
        for (uint64_t i = 0; i < kBytes; ++i)
            if (bytes[i].writer >= 0) {
                ASSERT_TRUE(t.written_by(space, i, i + 1, uint32_t(bytes[i].writer))) << "byte " << i;
            }
        const uint32_t since = rng() % (op + 1);
        bool later = false;
        for (uint64_t i = begin; i < end; ++i) later |= bytes[i].writer > int64_t(since);
        ASSERT_EQ(t.written_after(space, begin, end, since), later) << "op " << op << " since " << since;
    }
}

/// Bytes a bound op writes on chip, as [begin, end) hulls (a drain writes its C block).
std::pair<uint64_t, uint64_t> written_hull(const BoundOp& op) {
    if (op.kind == BoundOp::Kind::Move)
        return {op.move.dst, op.move.dst + uint64_t(op.move.rows - 1) * op.move.dst_stride + op.move.row_bytes};
    if (op.kind == BoundOp::Kind::Drain)
        return {op.drain.c, op.drain.c + (uint64_t(op.drain.m - 1) * op.drain.ldc + op.drain.n) * 4};
    return {0, 0};
}

// Double-buffered L2/L1 slots often receive the very block they already hold (an A block in
// the same slot for every strip): the binder drops such a move, and the program must still
// compute C = A B in any dependency order. The tilings are fixed ones with strips that reuse
// A blocks, whatever the tiler would pick.
TEST(Binder, AMoveOfBytesAlreadyInPlaceIsElidedAndTheResultStaysRight) {
    const uint64_t M = 96, N = 200, K = 120;
    struct Case {
        const char* config;
        TileShape tile;
        uint32_t task_rows, task_cols;
    };
    for (const Case& c : {Case{"minimal", {32, 32, 0}, 3, 7}, Case{"edge", {64, 32, 0}, 2, 3}}) {
        SCOPED_TRACE(c.config);
        const hw::Config config = test::config(c.config);
        const Program p = test::compile_matmul(M, N, K, config);
        TilingChoice choice;
        ASSERT_TRUE(evaluate_tiling(config, p.graph, 0, Dataflow::OutputStationary, c.tile, c.task_rows, c.task_cols,
                                    choice));
        const BoundProgram b =
            bind(tiling_program(config, p.graph, 0, Dataflow::OutputStationary, choice), config);
        EXPECT_GT(b.elided_moves, 0u);
        EXPECT_GT(b.elided_bytes, 0u);
        // What is left has no such move: between two identical on-chip moves, something
        // writes the second one's source or destination.
        for (size_t j = 0; j < b.ops.size(); ++j) {
            const BoundOp& x = b.ops[j];
            if (x.kind != BoundOp::Kind::Move || x.engine == EngineKind::Dma) continue;
            const auto src = std::make_pair(x.move.src, x.move.src + uint64_t(x.move.rows - 1) * x.move.src_stride +
                                                            x.move.row_bytes);
            const auto dst = written_hull(x);
            for (size_t i = j; i-- > 0;) {
                const BoundOp& y = b.ops[i];
                const auto w = written_hull(y);
                const bool same = y.kind == BoundOp::Kind::Move && y.move.src == x.move.src && y.move.dst == x.move.dst &&
                                  y.move.rows == x.move.rows && y.move.row_bytes == x.move.row_bytes &&
                                  y.move.src_stride == x.move.src_stride && y.move.dst_stride == x.move.dst_stride;
                if (same) {
                    ADD_FAILURE() << "op " << x.id << " repeats op " << y.id << " with nothing written in between";
                    break;
                }
                if ((w.first < src.second && src.first < w.second) || (w.first < dst.second && dst.first < w.second))
                    break;
            }
        }
        const BoundTensor* tensor[3];
        for (int t = 0; t < 3; ++t)
            tensor[t] = &*std::find_if(b.tensors.begin(), b.tensors.end(),
                                       [&](const BoundTensor& x) { return x.name == std::string(1, "ABC"[t]); });
        std::vector<float> a(M * K), bm(K * N);
        std::mt19937 rng(11);
        std::uniform_real_distribution<float> dist(-1.f, 1.f);
        for (float& v : a) v = dist(rng);
        for (float& v : bm) v = dist(rng);
        for (uint32_t seed : {1u, 2u, 3u}) {
            Memory mem;
            for (size_t i = 0; i < a.size(); ++i) mem.at(tensor[0]->dram_addr + i * 4) = a[i];
            for (size_t i = 0; i < bm.size(); ++i) mem.at(tensor[1]->dram_addr + i * 4) = bm[i];
            execute(b, mem, seed);
            for (uint64_t r = 0; r < M; ++r)
                for (uint64_t c = 0; c < N; ++c) {
                    double ref = 0;
                    for (uint64_t k = 0; k < K; ++k) ref += double(a[r * K + k]) * bm[k * N + c];
                    ASSERT_NEAR(mem.at(tensor[2]->dram_addr + (r * N + c) * 4), ref, 1e-3) << r << "," << c;
                }
        }
    }
}

// Vector ops bind to the vector engine of the tile whose L2 holds their row tiles, move
// every DRAM byte their hints say, and every conflicting pair of ops is ordered, on every
// shipped config (examples/ffn_block.json: matmuls, bias rows, gelu, a residual, layernorm).
TEST(Binder, VectorOpsBindToTheirTilesEngineOnEveryShippedConfig) {
    const Graph g = parse_graph(test::example("ffn_block.json"), "ffn_block.json");
    for (const char* name : kShipped) {
        SCOPED_TRACE(name);
        const hw::Config config = test::config(name);
        const Program p = read_kpu(write_kpu(compile(g, config)), "ffn_block.kpu");
        const BoundProgram b = bind(p, config);
        check_invariants(p, b, config);
        std::set<uint32_t> tiles;
        for (const BoundOp& op : b.ops)
            if (op.kind == BoundOp::Kind::Vector) tiles.insert(op.tile);
        EXPECT_EQ(tiles.size(), std::min<uint32_t>(config.compute_tiles, 128)) << "128 rows over every tile";
    }
    for (const char* name : {"minimal", "edge"}) {
        SCOPED_TRACE(name);
        const hw::Config config = test::config(name);
        // Each broadcast of b, on rows that do not divide into the row tiles.
        for (const char* b : {"[3, 7, 29]", "[29]", "[1]", "[3, 7, 1]"}) {
            SCOPED_TRACE(b);
            const std::string text = std::string(R"({"tensors": [{"name": "x", "shape": [3, 7, 29], "role": "input"},
                {"name": "b", "shape": )") + b + R"(, "role": "input"}, {"name": "s"}, {"name": "y"}],
                "ops": [{"op": "Mul", "name": "mul", "inputs": ["x", "b"], "outputs": ["s"]},
                        {"op": "Softmax", "name": "sm", "inputs": ["s"], "outputs": ["y"]}]})";
            const Program p = compile(parse_graph(text, "t.json"), config);
            const BoundProgram bound = bind(p, config);
            check_invariants(p, bound, config);
            EXPECT_GT(check_no_races(bound), 0u);
        }
    }
}

}  // namespace
}  // namespace kpu::compiler
