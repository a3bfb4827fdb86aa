// Conv lowered onto the fabric as an implicit GEMM (docs/compiler.md, "Convolution"): the
// conv kernel's DRAM bytes by the closed form, equal to the hints, the op stream and the
// bound program's; the on-chip gather against a plain im2col loop; inference's errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>

#include "compiler/conv_gather.h"
#include "compiler/ops/op_schema.h"
#include "tests/compiler/bound_execution.h"
#include "tests/compiler/test_util.h"

namespace kpu::compiler {
namespace {

/// Depthwise cases too on the fabric: these test the implicit GEMM (unit_choice.h decides).
const CompileOptions kFabric{Dataflow::OutputStationary, DepthwiseUnit::Fabric};

struct ConvCase {
    uint64_t n, cin, h, w, cout, kh, kw, stride, dilation, group;
    std::vector<int64_t> pads;  ///< [top, left, bottom, right]
    bool bias;
};

std::string conv_json(const ConvCase& c) {
    auto s = [](uint64_t v) { return std::to_string(v); };
    auto list = [](const std::vector<int64_t>& v) {
        std::string out = "[";
        for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + std::to_string(v[i]);
        return out + "]";
    };
    return R"({"tensors": [{"name": "x", "shape": [)" + s(c.n) + ", " + s(c.cin) + ", " + s(c.h) + ", " + s(c.w) +
           R"(], "role": "input"}, {"name": "w", "shape": [)" + s(c.cout) + ", " + s(c.cin / c.group) + ", " +
           s(c.kh) + ", " + s(c.kw) + R"(], "role": "constant"},)" +
           (c.bias ? R"({"name": "b", "shape": [)" + s(c.cout) + R"(], "role": "constant"},)" : std::string()) +
           R"({"name": "y", "role": "output"}], "ops": [{"op": "Conv", "name": "conv", "inputs": ["x", "w")" +
           (c.bias ? R"(, "b")" : "") + R"(], "outputs": ["y"], "attributes": {"group": )" + s(c.group) +
           R"(, "strides": [)" + s(c.stride) + ", " + s(c.stride) + R"(], "dilations": [)" + s(c.dilation) + ", " +
           s(c.dilation) + R"(], "pads": )" + list(c.pads) + "}}]}";
}

const ConvCase kCases[] = {
    {1, 3, 7, 9, 4, 1, 1, 1, 1, 1, {0, 0, 0, 0}, false},   {1, 4, 7, 9, 6, 3, 3, 1, 1, 1, {1, 1, 1, 1}, true},
    {3, 4, 7, 9, 6, 3, 3, 2, 1, 1, {1, 1, 1, 1}, true},    {1, 5, 11, 13, 7, 3, 3, 3, 1, 1, {0, 0, 0, 0}, true},
    {1, 4, 7, 9, 6, 3, 3, 1, 1, 1, {0, 1, 2, 0}, false},   {1, 4, 9, 9, 4, 3, 3, 1, 2, 1, {1, 1, 1, 1}, true},
    {1, 5, 9, 11, 8, 5, 5, 1, 1, 1, {3, 3, 3, 3}, true},   {1, 3, 11, 13, 5, 7, 7, 2, 1, 1, {3, 3, 3, 3}, true},
    {3, 4, 7, 9, 6, 1, 7, 1, 1, 1, {0, 3, 0, 3}, true},    {1, 4, 7, 9, 6, 3, 3, 1, 1, 2, {1, 1, 1, 1}, true},
    {1, 6, 7, 9, 6, 3, 3, 1, 1, 6, {1, 1, 1, 1}, true},    {3, 8, 7, 9, 8, 3, 3, 2, 1, 8, {1, 1, 1, 1}, false},
    {1, 4, 1, 1, 5, 1, 1, 1, 1, 1, {0, 0, 0, 0}, true},    {1, 3, 1, 1, 4, 3, 3, 1, 1, 1, {1, 1, 1, 1}, true},
    {1, 32, 28, 28, 64, 3, 3, 1, 1, 1, {1, 1, 1, 1}, true}, {2, 16, 30, 30, 32, 3, 3, 2, 1, 2, {1, 1, 1, 1}, true},
    {1, 4, 5, 5, 4, 1, 1, 3, 1, 1, {3, 3, 3, 3}, false},  // output rows reading padding only
    {1, 256, 7, 7, 32, 3, 3, 1, 1, 1, {1, 1, 1, 1}, true},  // minimal: K in passes
};

/// The closed form of docs/compiler.md: per task, the input rows its output pixels read
/// (first: max(0, oh0 s - top), end: min(H, (oh1 - 1) s - top + (kH - 1) d + 1)) of all W
/// pixels and Cg channels, K x its columns of the weights, its bias columns; its output once.
void closed_form(const Program& p, uint32_t kernel, const ConvCase& c, uint64_t& read, uint64_t& write) {
    const int64_t s = int64_t(c.stride), d = int64_t(c.dilation), top = c.pads[0];
    const uint64_t oh = (c.h + c.pads[0] + c.pads[2] - ((c.kh - 1) * c.dilation + 1)) / c.stride + 1;
    const uint64_t ow = (c.w + c.pads[1] + c.pads[3] - ((c.kw - 1) * c.dilation + 1)) / c.stride + 1;
    const uint64_t cg = c.cin / c.group, cog = c.cout / c.group, k = c.kh * c.kw * cg, m = oh * ow;
    const TileShape& tile = p.kernels[kernel].tile;
    read = write = 0;
    for (const Task& t : p.tasks) {
        if (t.kernel != kernel) continue;
        const uint64_t p0 = t.r0 * tile.tm, p1 = std::min<uint64_t>(m, uint64_t(t.r1) * tile.tm);
        const uint64_t c0 = t.c0 * tile.tn, c1 = std::min<uint64_t>(cog, uint64_t(t.c1) * tile.tn);
        const int64_t first = std::max<int64_t>(0, int64_t(p0 / ow) * s - top);
        const int64_t end = std::min<int64_t>(int64_t(c.h), int64_t((p1 - 1) / ow) * s - top + int64_t(c.kh - 1) * d + 1);
        const uint64_t rows = end > first ? uint64_t(end - first) : 0;
        read += 4 * (rows * c.w * cg + k * (c1 - c0) + (c.bias ? c1 - c0 : 0));
        write += 4 * (p1 - p0) * (c1 - c0);
    }
}

// Every case on three configs: the conv kernel's hints are the closed form, and the whole
// program's hints are what its op stream and its bound program move.
TEST(ConvLowering, HintsEqualTheClosedFormTheOpStreamAndTheBoundProgram) {
    for (const char* name : {"minimal", "edge", "t64"}) {
        const hw::Config config = test::config(name);
        for (const ConvCase& c : kCases) {
            SCOPED_TRACE(std::string(name) + " " + conv_json(c));
            const Program p = compile(parse_graph(conv_json(c), "t.json"), config, kFabric);
            uint32_t kernel = 0;
            while (p.graph.ops()[p.kernels[kernel].op].kind != "conv_nhwc") ++kernel;
            uint64_t read = 0, write = 0;
            closed_form(p, kernel, c, read, write);
            EXPECT_EQ(p.kernels[kernel].hints.dram_read_bytes, read);
            EXPECT_EQ(p.kernels[kernel].hints.dram_write_bytes, write);
            EXPECT_EQ(p.kernels[kernel].hints.macs,  // every output element: a sum of kH kW Cg products
                      p.graph.tensor(p.graph.ops()[p.kernels[kernel].op].outputs[0]).elements() * c.kh * c.kw *
                          (c.cin / c.group));
            uint64_t stream_read = 0, stream_write = 0;
            for_each_op(p, [&](const DfxOp& op) {
                if (op.kind == DfxOpKind::Load) stream_read += op.bytes();
                if (op.kind == DfxOpKind::Store) stream_write += op.bytes();
            });
            EXPECT_EQ(stream_read, p.hints.dram_read_bytes);
            EXPECT_EQ(stream_write, p.hints.dram_write_bytes);
            test::expect_consistent(p, config);
        }
    }
}

/// Applies transfers to a byte array as their definition says (hw::Transfer), in plain loops.
void apply(const std::vector<hw::Transfer>& transfers, const std::vector<uint8_t>& memory, uint64_t src_base,
           std::vector<uint8_t>& out, uint64_t dst_base) {
    for (const hw::Transfer& t : transfers)
        for (uint32_t j = 0; j < t.outer[1].count; ++j)
            for (uint32_t i = 0; i < t.outer[0].count; ++i)
                for (uint32_t r = 0; r < t.rows; ++r) {
                    const uint64_t dst = t.dst + r * t.dst_stride + i * t.outer[0].dst_stride + j * t.outer[1].dst_stride;
                    const bool valid = r >= t.row_pad_before && r < t.rows - t.row_pad_after &&
                                       i >= t.outer[0].pad_before && i < t.outer[0].count - t.outer[0].pad_after &&
                                       j >= t.outer[1].pad_before && j < t.outer[1].count - t.outer[1].pad_after;
                    if (!valid) {
                        std::memset(&out[dst - dst_base], 0, t.row_bytes);
                        continue;
                    }
                    const uint64_t src = t.src + (r - t.row_pad_before) * t.src_stride +
                                         (i - t.outer[0].pad_before) * t.outer[0].src_stride +
                                         (j - t.outer[1].pad_before) * t.outer[1].src_stride;
                    ASSERT_GE(src, src_base);
                    ASSERT_LE(src - src_base + t.row_bytes, memory.size());
                    std::memcpy(&out[dst - dst_base], &memory[src - src_base], t.row_bytes);
                }
}

// The gather of A tiles (any run of output pixels, any K chunk) from the region their task
// holds equals the patch matrix a plain im2col loop builds, zeros at the borders included.
TEST(ConvLowering, TheGatherBuildsThePatchMatrixOfAPlainIm2colLoop) {
    std::mt19937 rng(30);
    const ConvGeometry shapes[] = {
        {7, 9, 4, 1, 3, 3, 7, 9, 1, 1, 1, 1, 1, 1},  {11, 13, 3, 1, 7, 7, 6, 7, 2, 2, 1, 1, 3, 3},
        {9, 9, 2, 1, 3, 3, 9, 9, 1, 1, 2, 2, 2, 2},  {7, 9, 5, 1, 1, 7, 7, 9, 1, 1, 1, 1, 0, 3},
        {11, 13, 5, 1, 3, 3, 3, 4, 3, 3, 1, 1, 0, 0}, {1, 1, 3, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
        {5, 5, 4, 1, 1, 1, 4, 4, 3, 3, 1, 1, 3, 3},
    };
    for (const ConvGeometry& g : shapes) {
        const uint64_t m = g.oh * g.ow, k = g.kh * g.kw * g.cg;
        for (int trial = 0; trial < 40; ++trial) {
            const uint64_t t0 = rng() % m, t1 = t0 + 1 + rng() % (m - t0);  // the task's pixels
            const uint64_t p0 = t0 + rng() % (t1 - t0), np = 1 + rng() % (t1 - p0);
            const uint64_t k0 = rng() % k, kn = 1 + rng() % (k - k0);
            const ConvGeometry::Rows region = g.region(t0, t1);
            std::vector<float> image(g.h * g.w * g.cg);
            for (float& v : image) v = float(rng() % 1000) + 1;
            std::vector<uint8_t> memory(std::max<uint64_t>(1, region.count * g.w * g.cg * 4));
            std::memcpy(memory.data(), image.data() + region.first * g.w * g.cg, region.count * g.w * g.cg * 4);
            const uint64_t src = 1 << 20, dst = 1 << 24, pitch = (kn + 3) * 4;
            std::vector<uint8_t> out(np * pitch, 0xee);
            apply(conv_gather(g, region, p0, np, k0, kn, src, dst, pitch, 4), memory, src, out, dst);
            for (uint64_t p = 0; p < np; ++p)
                for (uint64_t q = 0; q < kn; ++q) {
                    const uint64_t pixel = p0 + p, col = k0 + q, tap = col / g.cg, c = col % g.cg;
                    const int64_t ih = int64_t((pixel / g.ow) * g.stride_h + (tap / g.kw) * g.dilation_h) - int64_t(g.pad_top);
                    const int64_t iw = int64_t((pixel % g.ow) * g.stride_w + (tap % g.kw) * g.dilation_w) - int64_t(g.pad_left);
                    const bool inside = ih >= 0 && iw >= 0 && ih < int64_t(g.h) && iw < int64_t(g.w);
                    const float want = inside ? image[(uint64_t(ih) * g.w + uint64_t(iw)) * g.cg + c] : 0.0f;
                    float got;
                    std::memcpy(&got, &out[p * pitch + q * 4], 4);
                    ASSERT_EQ(got, want) << "pixel " << pixel << ", column " << col;
                }
        }
    }
}

// The bound program of a whole Conv (its layout Transposes, the gathers with their zero fill,
// K in passes on minimal) run in random dependency orders gives a plain direct convolution's
// result: every dependency the gathers need is there.
TEST(ConvLowering, TheBoundProgramComputesADirectConvolutionInAnyDependencyOrder) {
    const ConvCase cases[] = {{2, 4, 7, 9, 6, 3, 3, 2, 1, 2, {1, 0, 2, 1}, true},
                              {1, 3, 6, 5, 4, 3, 3, 1, 2, 1, {2, 2, 2, 2}, true},
                              {1, 6, 5, 7, 6, 3, 3, 1, 1, 6, {1, 1, 1, 1}, false},
                              {1, 256, 4, 4, 8, 3, 3, 1, 1, 1, {1, 1, 1, 1}, true}};
    for (const ConvCase& c : cases) {
        SCOPED_TRACE(conv_json(c));
        const hw::Config config = test::config("minimal");
        const BoundProgram b = bind(compile(parse_graph(conv_json(c), "t.json"), config, kFabric), config);
        std::map<std::string, std::vector<float>> host;
        std::mt19937 rng(3);
        std::uniform_real_distribution<float> dist(-1.f, 1.f);
        for (uint32_t seed : {1u, 2u}) {
            test::Memory mem;
            for (const BoundTensor& t : b.tensors) {
                if (t.role != "input" && t.role != "constant") continue;
                std::vector<float>& v = host[t.name];
                if (v.empty())
                    for (uint64_t i = 0; i < t.bytes / 4; ++i) v.push_back(dist(rng));
                for (uint64_t i = 0; i < v.size(); ++i) mem.at(t.dram_addr + i * 4) = v[i];
            }
            test::execute(b, mem, seed);
            const int64_t s = int64_t(c.stride), d = int64_t(c.dilation);
            const uint64_t oh = (c.h + c.pads[0] + c.pads[2] - ((c.kh - 1) * c.dilation + 1)) / c.stride + 1;
            const uint64_t ow = (c.w + c.pads[1] + c.pads[3] - ((c.kw - 1) * c.dilation + 1)) / c.stride + 1;
            const uint64_t cg = c.cin / c.group, cog = c.cout / c.group;
            const BoundTensor& y = *std::find_if(b.tensors.begin(), b.tensors.end(), [](auto& t) { return t.name == "y"; });
            for (uint64_t n = 0; n < c.n; ++n)
                for (uint64_t o = 0; o < c.cout; ++o)
                    for (uint64_t i = 0; i < oh; ++i)
                        for (uint64_t j = 0; j < ow; ++j) {
                            double want = c.bias ? host["b"][o] : 0.0;
                            for (uint64_t ci = 0; ci < cg; ++ci)
                                for (uint64_t p = 0; p < c.kh; ++p)
                                    for (uint64_t q = 0; q < c.kw; ++q) {
                                        const int64_t ih = int64_t(i) * s + int64_t(p) * d - c.pads[0];
                                        const int64_t iw = int64_t(j) * s + int64_t(q) * d - c.pads[1];
                                        if (ih < 0 || iw < 0 || ih >= int64_t(c.h) || iw >= int64_t(c.w)) continue;
                                        const uint64_t x = ((n * c.cin + o / cog * cg + ci) * c.h + uint64_t(ih)) * c.w + uint64_t(iw);
                                        want += double(host["x"][x]) * host["w"][((o * cg + ci) * c.kh + p) * c.kw + q];
                                    }
                            const uint64_t at = ((n * c.cout + o) * oh + i) * ow + j;
                            ASSERT_NEAR(mem.at(y.dram_addr + at * 4), want, 1e-3) << "seed " << seed << " at " << at;
                        }
        }
    }
}

// Conv lowers as plain Transposes and views around conv_nhwc: NCHW -> NHWC ([0, 2, 3, 1]) in
// and back ([0, 3, 1, 2]) for one group, so that consecutive convolutions leave inverse
// Transpose pairs between them; grouped, each group's channels together after the image.
TEST(ConvLowering, ConvExpandsIntoNhwcTransposesAroundConvNhwc) {
    const auto kinds = [](const ConvCase& c) {
        const Graph g = expand_composites(parse_graph(conv_json(c), "t.json"), "t.json");
        std::string out;
        for (const Op& op : g.ops()) {
            out += (out.empty() ? "" : " ") + op.kind;
            if (op.kind == "Transpose") out += attr_string(op.attributes.at("perm"));
            if (op.kind == "conv_nhwc") out += shape_string(g.tensor(op.inputs[0]).shape);
        }
        return out;
    };
    EXPECT_EQ(kinds({1, 4, 7, 9, 6, 3, 3, 1, 1, 1, {1, 1, 1, 1}, true}),
              "Transpose[0, 2, 3, 1] Reshape Reshape Transpose[0, 3, 4, 2, 1] Reshape conv_nhwc[1, 1, 7, 9, 4] "
              "Reshape Transpose[0, 3, 1, 2]");
    EXPECT_EQ(kinds({3, 6, 7, 9, 4, 3, 3, 1, 1, 2, {1, 1, 1, 1}, false}),
              "Reshape Transpose[0, 1, 3, 4, 2] Reshape Transpose[0, 3, 4, 2, 1] conv_nhwc[3, 2, 7, 9, 3] "
              "Transpose[0, 1, 4, 2, 3] Reshape");
}

// One line each, naming the op, the attribute or tensor and the numbers.
TEST(ConvLowering, BadConvolutionsAreRefusedWithTheirNumbers) {
    const auto error = [](ConvCase c, const std::string& extra = "") {
        std::string json = conv_json(c);
        if (!extra.empty()) json.replace(json.rfind("}}]}"), 4, ", " + extra + "}}]}");
        return test::error_of([&] { parse_graph(json, "t.json"); });
    };
    const std::string op = "t.json: op 'conv' (Conv): ";
    EXPECT_EQ(error({1, 6, 7, 9, 6, 3, 3, 1, 1, 4, {1, 1, 1, 1}, true}),
              op + "attribute 'group' = 4 does not divide the 6 channels of input 'X' ('x', [1, 6, 7, 9])");
    EXPECT_EQ(error({1, 4, 7, 9, 6, 3, 3, 1, 1, 4, {1, 1, 1, 1}, true}),
              op + "attribute 'group' = 4 does not divide the 6 output channels of input 'W' ('w', [6, 1, 3, 3])");
    EXPECT_EQ(error({1, 4, 3, 9, 6, 5, 5, 1, 1, 1, {0, 0, 0, 0}, true}),
              op + "the kernel's height 5 (dilated: 5) is larger than the padded input's 3 (3 + pads 0 and 0)");
    EXPECT_EQ(error({1, 4, 7, 9, 6, 3, 3, 1, 1, 1, {1, -1, 1, 1}, true}),
              op + "attribute 'pads' [1, -1, 1, 1] has a negative pad");
    EXPECT_EQ(error({1, 4, 7, 9, 6, 3, 3, 1, 1, 1, {1, 1, 1, 1}, true}, R"("kernel_shape": [5, 5])"),
              op + "attribute 'kernel_shape' [5, 5] does not match input 'W' ('w', [6, 4, 3, 3]) ([3, 3])");
    // A weight whose input channels are not the input's per group.
    std::string json = conv_json({1, 4, 7, 9, 6, 3, 3, 1, 1, 1, {1, 1, 1, 1}, true});
    json.replace(json.find("[6, 4, 3, 3]"), 12, "[6, 3, 3, 3]");
    EXPECT_EQ(test::error_of([&] { parse_graph(json, "t.json"); }),
              op + "input 'W' ('w', [6, 3, 3, 3]) has 3 input channels per group but input 'X' ('x', [1, 4, 7, 9]) "
                   "has 4 channels in 1 group(s), 4 per group");
    json = conv_json({1, 4, 7, 9, 6, 3, 3, 1, 1, 1, {1, 1, 1, 1}, true});
    json.replace(json.find("[1, 4, 7, 9]"), 12, "[1, 4, 7]");
    json.replace(json.find("[6, 4, 3, 3]"), 12, "[6, 4, 3]");
    EXPECT_EQ(test::error_of([&] { parse_graph(json, "t.json"); }),
              op + "input 'X' ('x', [1, 4, 7]): 1-D convolutions are not yet supported (only 2-D: X of rank 4)");
    // Input rows too wide for L3 (minimal's 256 KiB): refused at compile time with the numbers.
    EXPECT_EQ(test::error_of([] {
                  compile(parse_graph(conv_json({1, 512, 64, 64, 64, 3, 3, 1, 1, 1, {1, 1, 1, 1}, false}), "t.json"),
                          test::config("minimal"));
              }),
              "op 'conv.conv' (conv_nhwc, implicit GEMM 4096x64x4608): no tiling fits config 'minimal': even tiles of "
              "8x8x16 need 525568 bytes of L3 per compute tile (largest: tensor 'conv.x_groups', 524288 bytes) but L3 "
              "has 262144 (a task's input rows, every channel of its group, stay in L3: input-channel passes are not "
              "yet supported)");
    EXPECT_EQ(error({1, 4, 7, 9, 6, 3, 3, 1, 1, 1, {1, 1, 1, 1}, true}, R"("auto_pad": "SAME")"),
              op + "attribute 'auto_pad' is 'SAME', expected NOTSET, SAME_UPPER, SAME_LOWER or VALID");
}

}  // namespace
}  // namespace kpu::compiler
