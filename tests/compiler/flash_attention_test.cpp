// Attention fused flash-attention style (the fuse-attention pass, compiler/flash_attention.h):
// one flash_attention kernel whose hints, op stream and bound program move the DRAM bytes of
// the closed form of docs/compiler.md ("Flash attention"), computed here by a plain loop; no
// STORE of anything but the output; causal masking skipping the key blocks above the
// diagonal; smaller blocks on smaller configs, and the expansion where nothing fits.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "compiler/binder.h"
#include "compiler/flash_attention.h"
#include "compiler/kpu_format.h"
#include "compiler/ops/op_schema.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler {
namespace {

bool ran(const Program& p, Pass pass) { return std::find(p.passes.begin(), p.passes.end(), pass) != p.passes.end(); }

struct Shape {
    uint64_t b, hq, hkv, sq, skv, e, ev;
    const char* mask;  ///< the mask's shape, "" for none
    bool causal, four;
};

std::string dims(std::initializer_list<uint64_t> d) {
    std::string s;
    for (uint64_t v : d) s += (s.empty() ? "[" : ", ") + std::to_string(v);
    return s + "]";
}

std::string attention_json(const Shape& s) {
    const std::string q = s.four ? dims({s.b, s.hq, s.sq, s.e}) : dims({s.b, s.sq, s.hq * s.e});
    const std::string k = s.four ? dims({s.b, s.hkv, s.skv, s.e}) : dims({s.b, s.skv, s.hkv * s.e});
    const std::string v = s.four ? dims({s.b, s.hkv, s.skv, s.ev}) : dims({s.b, s.skv, s.hkv * s.ev});
    std::string attributes = R"("is_causal": )" + std::string(s.causal ? "1" : "0");
    if (!s.four)
        attributes += R"(, "q_num_heads": )" + std::to_string(s.hq) + R"(, "kv_num_heads": )" + std::to_string(s.hkv);
    const bool mask = *s.mask != 0;
    return R"({"tensors": [{"name": "q", "shape": )" + q + R"(, "role": "input"}, {"name": "k", "shape": )" + k +
           R"(, "role": "input"}, {"name": "v", "shape": )" + v + R"(, "role": "input"},)" +
           (mask ? R"({"name": "m", "shape": )" + std::string(s.mask) + R"(, "role": "input"},)" : std::string()) +
           R"({"name": "y"}], "ops": [{"op": "Attention", "name": "att", "inputs": ["q", "k", "v")" +
           (mask ? R"(, "m")" : "") + R"(], "outputs": ["y"], "attributes": {)" + attributes + "}}]}";
}

/// DRAM bytes read by the closed form, by a plain loop over the matrices and query blocks:
/// Q's rows, the keys up to the last block that starts at or before the block's last query
/// (all of them without causal masking) of K and V, and the mask's part of those blocks.
uint64_t closed_form_read(const Shape& s, uint64_t br, uint64_t bc, const std::string& mask_kind) {
    uint64_t elements = 0;
    for (uint64_t t = 0; t < s.b * s.hq; ++t)
        for (uint64_t q0 = 0; q0 < s.sq; q0 += br) {
            const uint64_t q1 = std::min(s.sq, q0 + br);
            uint64_t keys = 0;
            for (uint64_t k0 = 0; k0 < s.skv; k0 += bc)
                if (!s.causal || k0 <= q1 - 1) keys += std::min(bc, s.skv - k0);
            elements += (q1 - q0) * s.e + keys * (s.e + s.ev);
            if (mask_kind == "query") elements += (q1 - q0) * keys;
            if (mask_kind == "matrix") elements += keys;
            if (mask_kind == "scalar") elements += 1;
        }
    return 4 * elements;
}

TEST(FlashAttention, HintsEqualTheBoundStreamAndTheClosedForm) {
    struct Case {
        Shape shape;
        std::string mask_kind;  ///< "query" (a row per query), "matrix" (one row), "scalar", ""
    };
    const Case cases[] = {
        {{1, 4, 4, 67, 67, 16, 16, "", true, true}, ""},
        {{2, 4, 2, 19, 23, 8, 5, "[19, 23]", false, true}, "query"},
        {{2, 6, 3, 13, 13, 8, 8, "[2, 1, 1, 13]", true, true}, "matrix"},
        {{1, 3, 1, 7, 11, 4, 6, "[3, 7, 11]", false, true}, "query"},
        {{2, 2, 2, 9, 9, 8, 8, "[2, 2, 1, 9]", false, true}, "matrix"},
        {{1, 2, 2, 9, 12, 8, 8, "[1]", true, true}, "scalar"},
        {{2, 4, 4, 29, 29, 16, 16, "", true, false}, ""},
        {{1, 6, 2, 9, 17, 8, 4, "[9, 17]", false, false}, "query"},
        {{1, 2, 2, 1, 31, 8, 8, "", true, true}, ""},
        {{1, 2, 2, 200, 150, 32, 24, "", true, true}, ""},
    };
    for (const char* name : {"minimal", "edge", "t64"}) {
        const hw::Config config = test::config(name);
        for (const Case& c : cases) {
            const Shape& s = c.shape;
            SCOPED_TRACE(std::string(name) + " " + attention_json(s));
            const Program p = compile(parse_graph(attention_json(s), "t.json"), config);
            ASSERT_EQ(p.kernels.size(), 1u);
            const Op& op = p.graph.ops()[p.kernels[0].op];
            EXPECT_EQ(op.kind, "flash_attention");
            EXPECT_EQ(op.fused_with, std::vector<std::string>{"att"});
            EXPECT_TRUE(ran(p, Pass::FuseAttention));
            const TileShape tile = p.kernels[0].tile;
            EXPECT_EQ(p.hints.dram_read_bytes, closed_form_read(s, tile.tm, tile.tn, c.mask_kind));
            EXPECT_EQ(p.hints.dram_write_bytes, 4 * s.b * s.hq * s.sq * s.ev);
            // The op stream's LOADs and STOREs, and the bound program's DMA bytes.
            const test::StreamBytes stream = test::stream_bytes(p);
            EXPECT_EQ(stream.read, p.hints.dram_read_bytes);
            EXPECT_EQ(stream.write, p.hints.dram_write_bytes);
            test::expect_consistent(p, config);
            // Its blocks fit a compute tile.
            for (hw::Level level : {hw::Level::L1, hw::Level::L2, hw::Level::L3})
                EXPECT_LE(level_bytes(plan_flash_buffers(flash_operands(p.graph, p.kernels[0].op), tile), level),
                          level_capacity(config, level));
        }
    }
}

// The issue's case: a sequence of 1024 whose scores (16 MiB) exceed every byte of edge's L1, L2
// and L3 (4 MiB): the bound program stores nothing but Y, in pieces smaller than one matrix
// of scores, and reads K and V once per query block.
TEST(FlashAttention, ALongSequenceStoresOnlyItsOutput) {
    const hw::Config config = test::config("edge");
    const Shape s{1, 4, 4, 1024, 1024, 32, 32, "", false, true};
    const Program p = compile(parse_graph(attention_json(s), "t.json"), config);
    uint64_t on_chip = 0;
    for (hw::Level level : {hw::Level::L1, hw::Level::L2, hw::Level::L3})
        on_chip += config.compute_tiles * level_capacity(config, level);
    EXPECT_GT(4 * s.b * s.hq * s.sq * s.skv, on_chip);
    const BoundProgram b = test::expect_consistent(p, config);
    const BoundTensor& y = *std::find_if(b.tensors.begin(), b.tensors.end(), [](const BoundTensor& t) { return t.name == "y"; });
    const uint64_t dram = hw::AddressMap(config).dram_size();
    uint64_t stored = 0;
    for (const BoundOp& op : b.ops) {
        if (op.engine != EngineKind::Dma || op.move.dst >= dram) continue;  // a LOAD's destination is on chip
        EXPECT_GE(op.move.dst, y.dram_addr);
        EXPECT_LT(op.move.dst + op.move.bytes(), y.dram_addr + y.bytes + 1);
        EXPECT_LT(op.move.bytes(), 4 * s.sq * s.skv);
        stored += op.move.bytes();
    }
    EXPECT_EQ(stored, y.bytes);
    EXPECT_EQ(b.dram_write_bytes, y.bytes);
    EXPECT_EQ(b.dram_read_bytes, closed_form_read(s, p.kernels[0].tile.tm, p.kernels[0].tile.tn, ""));
}

// With the same blocks, causal masking reads, multiplies and computes only the key blocks at
// or left of the diagonal: sum over query blocks of ceil(q1 / Bc) key blocks instead of all.
TEST(FlashAttention, CausalMaskingSkipsTheBlocksAboveTheDiagonal) {
    const hw::Config config = test::config("t64");
    Shape s{1, 2, 2, 256, 256, 64, 64, "", true, true};
    const Program causal = compile(parse_graph(attention_json(s), "t.json"), config);
    const TileShape tile = causal.kernels[0].tile;
    s.causal = false;
    Program full;
    full.graph = compile(parse_graph(attention_json(s), "t.json"), config).graph;
    full.target = causal.target;
    TilingChoice choice;
    choice.tile = tile;
    choice.task_rows = 1;
    choice.task_cols = tile_count(s.skv, tile.tn);
    add_kernel(full, 0, Dataflow::OutputStationary, choice);
    uint64_t blocks = 0, all = 0;  // key blocks over the query blocks of one matrix
    for (uint64_t q0 = 0; q0 < s.sq; q0 += tile.tm) {
        const uint64_t q1 = std::min(s.sq, q0 + tile.tm);
        blocks += (std::min(s.skv, q1) + tile.tn - 1) / tile.tn;
        all += (s.skv + tile.tn - 1) / tile.tn;
    }
    ASSERT_LT(blocks, all);
    const OpCounts c = count_ops(causal), f = count_ops(full);
    EXPECT_EQ(c.by_kind[int(DfxOpKind::Matmul)], 2 * s.b * s.hq * blocks);
    EXPECT_EQ(f.by_kind[int(DfxOpKind::Matmul)], 2 * s.b * s.hq * all);
    // Blocks of tm x tn and E on a 16 x 16 fabric: ceil(tm / 16) (ceil(tn / 16) E + ceil(Ev / 16) tn) each.
    const uint64_t per_block = (tile.tm + 15) / 16 * ((tile.tn + 15) / 16 * s.e + (s.ev + 15) / 16 * tile.tn);
    EXPECT_EQ(causal.hints.compute_cycles, s.b * s.hq * blocks * per_block);
    EXPECT_EQ(full.hints.compute_cycles, s.b * s.hq * all * per_block);
    EXPECT_EQ(causal.hints.macs, s.b * s.hq * blocks * tile.tm * tile.tn * (s.e + s.ev));
    EXPECT_EQ(full.hints.dram_read_bytes - causal.hints.dram_read_bytes,
              4 * s.b * s.hq * (all - blocks) * tile.tn * (s.e + s.ev));
    test::expect_consistent(full, config);
}

// A smaller L2 and L1 take smaller blocks; a shape no block fits (values of 4096 per head on
// minimal: one key's K^T and V rows, double-buffered at the values' pitch, overflow its L1)
// keeps the expansion, and -O0 and --disable-pass fuse-attention do too.
TEST(FlashAttention, SmallerConfigsTakeSmallerBlocksAndWhatFitsNoneIsExpanded) {
    const Shape s{1, 2, 2, 512, 512, 64, 64, "", false, true};
    const Program big = compile(parse_graph(attention_json(s), "t.json"), test::config("t64"));
    const Program small = compile(parse_graph(attention_json(s), "t.json"), test::config("minimal"));
    EXPECT_LT(uint64_t(small.kernels[0].tile.tm) * small.kernels[0].tile.tn,
              uint64_t(big.kernels[0].tile.tm) * big.kernels[0].tile.tn);

    const hw::Config minimal = test::config("minimal");
    const Graph wide = parse_graph(attention_json({1, 1, 1, 2, 2, 8, 4096, "", false, true}), "t.json");
    EXPECT_NE(flash_refusal(wide, wide.ops()[0], minimal).find("bytes of L1 per compute tile but config 'minimal' has"),
              std::string::npos)
        << flash_refusal(wide, wide.ops()[0], minimal);
    const Program expanded = compile(wide, minimal);
    for (const Op& op : expanded.graph.ops()) EXPECT_NE(op.kind, "flash_attention");
    EXPECT_TRUE(ran(expanded, Pass::FuseAttention));  // it ran (and fused nothing): every enabled pass is recorded

    const Graph g = parse_graph(attention_json(s), "t.json");
    const Program fused = compile(g, test::config("edge"));
    for (const PassSelection& off : {PassSelection{0, {}}, PassSelection{2, {Pass::FuseAttention}}}) {
        const Program p = compile(g, test::config("edge"), {Dataflow::OutputStationary, DepthwiseUnit::Auto, off});
        EXPECT_FALSE(ran(p, Pass::FuseAttention));
        for (const Op& op : p.graph.ops()) EXPECT_NE(op.kind, "flash_attention");
        EXPECT_GT(p.hints.dram_read_bytes + p.hints.dram_write_bytes,
                  fused.hints.dram_read_bytes + fused.hints.dram_write_bytes);
    }
}

// A .kpu whose fused task spans two query blocks, or whose tk is not the head size, would
// overrun the buffers the binder sizes for one block: the reader refuses it.
TEST(FlashAttention, TheReaderRefusesTasksOfMoreThanOneQueryBlock) {
    const Shape s{1, 2, 2, 64, 64, 16, 16, "", false, true};
    Program p = compile(parse_graph(attention_json(s), "t.json"), test::config("t64"));
    ASSERT_GT(tile_count(s.sq, p.kernels[0].tile.tm), 1u);
    Program wide = p;
    ++wide.tasks[0].r1;
    EXPECT_NE(test::error_of([&] { read_kpu(write_kpu(wide), "t.kpu"); }).find("a flash_attention task is one tile row"),
              std::string::npos);
    Program chunked = p;
    chunked.kernels[0].tile.tk = 8;
    EXPECT_NE(test::error_of([&] { read_kpu(write_kpu(chunked), "t.kpu"); })
                  .find("tk 8 of a flash_attention must be its head size 16"),
              std::string::npos);
}

}  // namespace
}  // namespace kpu::compiler
