// The reference of every op kind against NumPy (Debian's, run at test time): the reference's
// values equal NumPy's float64 evaluation, and NumPy's float32 evaluation of the same op is
// within the reference's tolerance (reference_ops.h). Odd shapes throughout: one element,
// scalars, primes, every broadcasting corner, negative axes, keepdims both ways, a causal
// attention of sequence 13. Then, for a few ops, the tolerance against its documented
// formula and a result just inside it passing, just outside failing.
#include "sc_main/reference_ops.h"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "compiler/graph_json.h"
#include "sc_main/reference.h"
#include "tests/support/files.h"
#include "tests/support/random_floats.h"

namespace kpu::cli {
namespace {

using test::temp;

const double kU = std::ldexp(1.0, -24);

/// One graph, its inputs drawn from [lo, hi), and the NumPy statements that compute its
/// outputs (`out['y'] = ...`) from the inputs, which are variables of their tensor names.
struct Case {
    std::string name;
    std::string graph;
    std::string numpy;
    float lo = -2, hi = 2;
};

std::string tensors(const std::string& list) { return "{\"tensors\": [" + list + "], \"ops\": ["; }
std::string op(const std::string& kind, const std::string& inputs, const std::string& outputs,
               const std::string& attributes = "") {
    return "{\"op\": \"" + kind + "\", \"inputs\": [" + inputs + "], \"outputs\": [" + outputs + "]" +
           (attributes.empty() ? "" : ", \"attributes\": {" + attributes + "}") + "}";
}
/// A graph of the tensors in `list` and one op.
std::string one_op(const std::string& list, const std::string& kind, const std::string& inputs,
                   const std::string& outputs, const std::string& attributes = "") {
    return tensors(list) + op(kind, inputs, outputs, attributes) + "]}";
}
/// A graph of one op: x of the given shape into y.
std::string unary_graph(const std::string& kind, const std::string& shape, const std::string& attributes = "") {
    return tensors("{\"name\": \"x\", \"shape\": " + shape + "}, {\"name\": \"y\"}") +
           op(kind, "\"x\"", "\"y\"", attributes) + "]}";
}
std::string binary_graph(const std::string& kind, const std::string& a, const std::string& b) {
    return tensors("{\"name\": \"a\", \"shape\": " + a + "}, {\"name\": \"b\", \"shape\": " + b +
                   "}, {\"name\": \"y\"}") +
           op(kind, "\"a\", \"b\"", "\"y\"") + "]}";
}
/// A graph of one op: a, b and c of the given shapes into y.
std::string ternary_graph(const std::string& kind, const std::string& a, const std::string& b, const std::string& c,
                          const std::string& attributes = "") {
    return one_op("{\"name\": \"a\", \"shape\": " + a + "}, {\"name\": \"b\", \"shape\": " + b +
                      "}, {\"name\": \"c\", \"shape\": " + c + "}, {\"name\": \"y\"}",
                  kind, "\"a\", \"b\", \"c\"", "\"y\"", attributes);
}
std::string axes_graph(const std::string& kind, const std::string& shape, const std::string& axes,
                       const std::string& attributes = "") {
    return tensors("{\"name\": \"x\", \"shape\": " + shape +
                   "}, {\"name\": \"axes\", \"dtype\": \"int64\", \"value\": " + axes + "}, {\"name\": \"y\"}") +
           op(kind, "\"x\", \"axes\"", "\"y\"", attributes) + "]}";
}

std::vector<Case> cases() {
    const char* gelu = "np.asarray(0.5 * x * (1 + erf(x / np.sqrt(x.dtype.type(2)))), x.dtype)";
    const char* gelu_tanh =
        "np.asarray(0.5 * x * (1 + np.tanh(np.sqrt(x.dtype.type(2 / np.pi)) * (x + x.dtype.type(0.044715) * x**3))), "
        "x.dtype)";
    const char* softmax =
        "def softmax(s, axis):\n"
        "    e = np.exp(s - s.max(axis=axis, keepdims=True))\n"
        "    return e / e.sum(axis=axis, keepdims=True)\n";
    const char* layer_norm =
        "def norm(x, axis, centred):\n"
        "    axes = tuple(range(axis, x.ndim))\n"
        "    mean = x.mean(axis=axes, keepdims=True) if centred else x.dtype.type(0)\n"
        "    d = x - mean\n"
        "    inv = 1 / np.sqrt((d * d).mean(axis=axes, keepdims=True) + x.dtype.type(1e-5))\n"
        "    return d * inv, mean, inv\n";
    const std::string attention =
        std::string(softmax) +
        "def attention(q, k, v, mask, causal, scale, softcap=0):\n"
        "    group = q.shape[1] // k.shape[1]\n"
        "    k = np.repeat(k, group, axis=1); v = np.repeat(v, group, axis=1)\n"
        "    s = (q @ np.swapaxes(k, -1, -2)) * q.dtype.type(scale)\n"
        "    if softcap: s = q.dtype.type(softcap) * np.tanh(s / q.dtype.type(softcap))\n"
        "    if mask is not None: s = s + mask\n"
        "    if causal: s = np.where(np.tril(np.ones(s.shape[-2:], bool)), s, -np.inf).astype(q.dtype)\n"
        "    return softmax(s, -1) @ v\n";
    // The window ops in plain loops over the output plane and the kernel's taps (the padding
    // explicit, ceil_mode's size rule), and ONNX's nearest resize index by index.
    const std::string window =
        "def window(x, k, s, p, d, ceil, kind, include=0, w=None, b=None):\n"
        "    n, c, h, wd = x.shape\n"
        "    def size(i, ax):\n"
        "        span = i + p[ax] + p[ax + 2] - (k[ax] - 1) * d[ax] - 1\n"
        "        o = (-(-span // s[ax]) if ceil else span // s[ax]) + 1\n"
        "        return o - 1 if ceil and (o - 1) * s[ax] >= i + p[ax] else o\n"
        "    y = np.zeros((n, c, size(h, 0), size(wd, 1)), dtype=x.dtype)\n"
        "    for i in range(y.shape[2]):\n"
        "        for j in range(y.shape[3]):\n"
        "            acc, inside, padded = None, 0, 0\n"
        "            for a in range(k[0]):\n"
        "                for e in range(k[1]):\n"
        "                    r, q = i * s[0] - p[0] + a * d[0], j * s[1] - p[1] + e * d[1]\n"
        "                    padded += r < h + p[2] and q < wd + p[3]\n"
        "                    if r < 0 or q < 0 or r >= h or q >= wd: continue\n"
        "                    t = x[:, :, r, q] * (w[:, 0, a, e] if kind == 'dw' else 1)\n"
        "                    acc = t if acc is None else np.maximum(acc, t) if kind == 'max' else acc + t\n"
        "                    inside += 1\n"
        "            if kind == 'avg': acc = acc / x.dtype.type(padded if include else inside)\n"
        "            if b is not None: acc = acc + b\n"
        "            y[:, :, i, j] = acc\n"
        "    return y\n";
    const std::string resize =
        "def resize(x, scales, transform, nearest):\n"
        "    index = []\n"
        "    for ax in range(x.ndim):\n"
        "        n, s, sel = x.shape[ax], scales[ax], []\n"
        "        for i in range(int(np.floor(n * s))):\n"
        "            v = (i + 0.5) / s - 0.5 if transform == 'half_pixel' else i / s\n"
        "            f = np.floor(v)\n"
        "            r = f if nearest == 'floor' else f + 1 if v - f > 0.5 else f\n"
        "            sel.append(int(min(max(r, 0), n - 1)))\n"
        "        index.append(sel)\n"
        "    return x[np.ix_(*index)]\n";
    const std::string x4 = "{\"name\": \"x\", \"shape\": [2, 3, 7, 9]}, {\"name\": \"y\"}";
    const std::string depthwise_tensors =
        "{\"name\": \"x\", \"shape\": [2, 3, 7, 9]}, {\"name\": \"w\", \"shape\": [3, 1, 3, 3]}, "
        "{\"name\": \"b\", \"shape\": [3]}, {\"name\": \"y\"}";
    const std::string batch_norm_tensors =
        "{\"name\": \"x\", \"shape\": [2, 3, 4, 5]}, {\"name\": \"s\", \"shape\": [3]}, {\"name\": \"b\", "
        "\"shape\": [3]}, {\"name\": \"m\", \"shape\": [3]}, {\"name\": \"v\", \"shape\": [3]}, {\"name\": \"y\"}";
    const char* conv =
        "def conv(x, w, b, s, p, d, g):\n"
        "    n, c, h, wd = x.shape; co, cg, kh, kw = w.shape; cog = co // g\n"
        "    oh = (h + p[0] + p[2] - (kh - 1) * d[0] - 1) // s[0] + 1\n"
        "    ow = (wd + p[1] + p[3] - (kw - 1) * d[1] - 1) // s[1] + 1\n"
        "    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[2]), (p[1], p[3])))\n"
        "    y = np.zeros((n, co, oh, ow), x.dtype)\n"
        "    for gi in range(g):\n"
        "        for i in range(kh):\n"
        "            for j in range(kw):\n"
        "                t = xp[:, gi * cg:(gi + 1) * cg, i * d[0]:i * d[0] + (oh - 1) * s[0] + 1:s[0],\n"
        "                       j * d[1]:j * d[1] + (ow - 1) * s[1] + 1:s[1]]\n"
        "                y[:, gi * cog:(gi + 1) * cog] += np.einsum('nchw,oc->nohw', t, w[gi * cog:(gi + 1) * cog, :, i, j])\n"
        "    return y if b is None else y + b[None, :, None, None]\n";
    return {
        // binary, every broadcasting corner
        {"add_5x1x7_4x1", binary_graph("Add", "[5, 1, 7]", "[4, 1]"), "out['y'] = a + b"},
        {"sub_scalar", binary_graph("Sub", "[3, 2]", "[]"), "out['y'] = a - b"},
        {"add_scalar_first", binary_graph("Add", "[]", "[2, 1, 3]"), "out['y'] = a + b"},
        {"mul_scalars", binary_graph("Mul", "[]", "[]"), "out['y'] = a * b"},
        {"mul_1_by_3x1x2", binary_graph("Mul", "[1]", "[3, 1, 2]"), "out['y'] = a * b"},
        {"div_row", binary_graph("Div", "[2, 3]", "[3]"), "out['y'] = a / b", 0.5f, 2},
        {"max_3x1_1x5", binary_graph("Max", "[3, 1]", "[1, 5]"), "out['y'] = np.maximum(a, b)"},
        {"min_one_element", binary_graph("Min", "[1, 1]", "[1]"), "out['y'] = np.minimum(a, b)"},
        {"pow", binary_graph("Pow", "[2, 3]", "[3]"), "out['y'] = np.power(a, b)", 0.5f, 2},
        // unary
        {"relu", unary_graph("Relu", "[3, 5, 7]"), "out['y'] = np.maximum(x, 0)"},
        {"relu_scalar", unary_graph("Relu", "[]"), "out['y'] = np.maximum(x, x.dtype.type(0))"},
        {"leaky_relu", unary_graph("LeakyRelu", "[5, 7]", "\"alpha\": 0.1"),
         "out['y'] = np.where(x >= 0, x, x * x.dtype.type(0.1))"},
        {"gelu", unary_graph("Gelu", "[3, 5, 7]"), std::string("out['y'] = ") + gelu, -5, 5},
        {"gelu_tanh", unary_graph("Gelu", "[3, 5, 7]", "\"approximate\": \"tanh\""),
         std::string("out['y'] = ") + gelu_tanh, -5, 5},
        {"sigmoid", unary_graph("Sigmoid", "[11, 13]"), "out['y'] = 1 / (1 + np.exp(-x))", -8, 8},
        {"tanh", unary_graph("Tanh", "[11, 13]"), "out['y'] = np.tanh(x)", -4, 4},
        {"exp", unary_graph("Exp", "[11, 13]"), "out['y'] = np.exp(x)", -8, 8},
        {"sqrt", unary_graph("Sqrt", "[11, 13]"), "out['y'] = np.sqrt(x)", 0, 9},
        {"reciprocal", unary_graph("Reciprocal", "[11, 13]"), "out['y'] = 1 / x", 0.25f, 4},
        {"neg", unary_graph("Neg", "[1]"), "out['y'] = -x"},
        {"abs", unary_graph("Abs", "[7]"), "out['y'] = np.abs(x)"},
        {"erf", unary_graph("Erf", "[11, 13]"), "out['y'] = erf(x)", -3, 3},
        {"clip",
         one_op("{\"name\": \"x\", \"shape\": [5, 7]}, {\"name\": \"lo\", \"shape\": []}, {\"name\": \"hi\", "
                "\"shape\": [1]}, {\"name\": \"y\"}",
                "Clip", "\"x\", \"lo\", \"hi\"", "\"y\""),
         "out['y'] = np.minimum(np.maximum(x, lo), hi)"},
        {"clip_max_only",
         one_op("{\"name\": \"x\", \"shape\": [5, 7]}, {\"name\": \"hi\", \"shape\": []}, {\"name\": \"y\"}", "Clip",
                "\"x\", \"\", \"hi\"", "\"y\""),
         "out['y'] = np.minimum(x, hi)"},
        {"hard_swish", unary_graph("HardSwish", "[11, 13]"),
         "out['y'] = x * np.clip(x / x.dtype.type(6) + x.dtype.type(0.5), 0, 1)", -5, 5},
        {"hard_sigmoid", unary_graph("HardSigmoid", "[11, 13]", "\"alpha\": 0.3, \"beta\": 0.4"),
         "out['y'] = np.clip(x * x.dtype.type(0.3) + x.dtype.type(0.4), 0, 1)", -5, 5},
        {"silu", unary_graph("Silu", "[11, 13]"), "out['y'] = x / (1 + np.exp(-x))", -8, 8},
        // reductions: negative axes, keepdims both ways, all axes, no-op
        {"reduce_sum_last", axes_graph("ReduceSum", "[3, 5, 7]", "[-1]", "\"keepdims\": 0"),
         "out['y'] = x.sum(axis=-1)"},
        {"reduce_sum_0_2_keep", axes_graph("ReduceSum", "[3, 5, 7]", "[0, 2]"),
         "out['y'] = x.sum(axis=(0, 2), keepdims=True)"},
        {"reduce_sum_noop",
         one_op("{\"name\": \"x\", \"shape\": [3, 5]}, {\"name\": \"y\"}", "ReduceSum", "\"x\"", "\"y\"",
                "\"noop_with_empty_axes\": 1"),
         "out['y'] = x"},
        {"reduce_mean_1", axes_graph("ReduceMean", "[3, 5, 7]", "[1]"), "out['y'] = x.mean(axis=1, keepdims=True)"},
        {"reduce_mean_all",
         one_op("{\"name\": \"x\", \"shape\": [3, 5, 7]}, {\"name\": \"y\"}", "ReduceMean", "\"x\"", "\"y\"",
                "\"keepdims\": 0"),
         "out['y'] = x.mean()"},
        {"reduce_max_minus_2", axes_graph("ReduceMax", "[3, 5, 7]", "[-2]"),
         "out['y'] = x.max(axis=-2, keepdims=True)"},
        {"reduce_max_no_keep", axes_graph("ReduceMax", "[3, 5, 7]", "[0]", "\"keepdims\": 0"),
         "out['y'] = x.max(axis=0)"},
        // softmax on every axis
        {"softmax_last", unary_graph("Softmax", "[2, 3, 13]"), std::string(softmax) + "out['y'] = softmax(x, -1)", -6,
         6},
        {"softmax_0", unary_graph("Softmax", "[5, 3, 2]", "\"axis\": 0"),
         std::string(softmax) + "out['y'] = softmax(x, 0)", -6, 6},
        {"softmax_minus_2", unary_graph("Softmax", "[5, 3, 2]", "\"axis\": -2"),
         std::string(softmax) + "out['y'] = softmax(x, -2)", -6, 6},
        {"softmax_one", unary_graph("Softmax", "[1]"), std::string(softmax) + "out['y'] = softmax(x, -1)"},
        // normalization
        {"layer_norm",
         one_op("{\"name\": \"x\", \"shape\": [3, 11]}, {\"name\": \"s\", \"shape\": [11]}, {\"name\": \"b\", "
                "\"shape\": [11]}, {\"name\": \"y\"}",
                "LayerNormalization", "\"x\", \"s\", \"b\"", "\"y\""),
         std::string(layer_norm) + "out['y'] = norm(x, 1, True)[0] * s + b", -3, 3},
        {"layer_norm_axis_1_stats",
         one_op("{\"name\": \"x\", \"shape\": [2, 3, 5]}, {\"name\": \"s\", \"shape\": [3, 5]}, {\"name\": \"b\", "
                "\"shape\": [5]}, {\"name\": \"y\"}, {\"name\": \"mean\"}, {\"name\": \"inv\"}",
                "LayerNormalization", "\"x\", \"s\", \"b\"", "\"y\", \"mean\", \"inv\"", "\"axis\": -2"),
         std::string(layer_norm) + "n, m, i = norm(x, 1, True)\nout['y'] = n * s + b\nout['mean'] = m\nout['inv'] = i",
         -3, 3},
        {"layer_norm_no_bias",
         one_op("{\"name\": \"x\", \"shape\": [1, 7]}, {\"name\": \"s\", \"shape\": [1]}, {\"name\": \"y\"}",
                "LayerNormalization", "\"x\", \"s\"", "\"y\""),
         std::string(layer_norm) + "out['y'] = norm(x, 1, True)[0] * s"},
        {"rms_norm",
         one_op("{\"name\": \"x\", \"shape\": [4, 7]}, {\"name\": \"s\", \"shape\": [7]}, {\"name\": \"y\"}",
                "RMSNormalization", "\"x\", \"s\"", "\"y\""),
         std::string(layer_norm) + "out['y'] = norm(x, 1, False)[0] * s"},
        // layout ops
        {"reshape",
         one_op("{\"name\": \"x\", \"shape\": [2, 3, 5]}, {\"name\": \"s\", \"dtype\": \"int64\", \"value\": [5, -1]}, "
                "{\"name\": \"y\"}",
                "Reshape", "\"x\", \"s\"", "\"y\""),
         "out['y'] = x.reshape(5, -1)"},
        {"flatten", unary_graph("Flatten", "[2, 3, 5]", "\"axis\": -1"), "out['y'] = x.reshape(6, 5)"},
        {"transpose", unary_graph("Transpose", "[2, 3, 5]", "\"perm\": [2, 0, 1]"), "out['y'] = x.transpose(2, 0, 1)"},
        {"transpose_default", unary_graph("Transpose", "[2, 3, 5]"), "out['y'] = x.transpose()"},
        {"squeeze", axes_graph("Squeeze", "[1, 3, 1, 5]", "[-2]"), "out['y'] = x.squeeze(-2)"},
        {"unsqueeze", axes_graph("Unsqueeze", "[3, 5]", "[0, -1]"), "out['y'] = x[None, :, :, None]"},
        {"concat",
         ternary_graph("Concat", "[2, 1, 3]", "[2, 4, 3]", "[2, 2, 3]", "\"axis\": -2"),
         "out['y'] = np.concatenate([a, b, c], axis=-2)"},
        {"slice",
         one_op(
             "{\"name\": \"x\", \"shape\": [5, 7, 3]}, {\"name\": \"st\", \"dtype\": \"int64\", \"value\": [-1, 1]}, "
             "{\"name\": \"en\", \"dtype\": \"int64\", \"value\": [-100, 100]}, {\"name\": \"ax\", \"dtype\": "
             "\"int64\", \"value\": [1, 0]}, {\"name\": \"sp\", \"dtype\": \"int64\", \"value\": [-2, 3]}, "
             "{\"name\": \"y\"}",
             "Slice", "\"x\", \"st\", \"en\", \"ax\", \"sp\"", "\"y\""),
         "out['y'] = x[1::3, ::-2, :]"},
        {"split",
         one_op("{\"name\": \"x\", \"shape\": [2, 7]}, {\"name\": \"p\"}, {\"name\": \"q\"}, {\"name\": \"r\"}",
                "Split", "\"x\"", "\"p\", \"q\", \"r\"", "\"axis\": -1"),
         "out['p'] = x[:, 0:3]\nout['q'] = x[:, 3:6]\nout['r'] = x[:, 6:]"},
        {"split_omitted",  // the omitted middle output still takes its part
         one_op("{\"name\": \"x\", \"shape\": [2, 7]}, {\"name\": \"p\"}, {\"name\": \"r\"}",
                "Split", "\"x\"", "\"p\", \"\", \"r\"", "\"axis\": -1"),
         "out['p'] = x[:, 0:3]\nout['r'] = x[:, 6:]"},
        {"gather_embeddings",
         one_op("{\"name\": \"x\", \"shape\": [5, 3]}, {\"name\": \"i\", \"dtype\": \"int64\", \"shape\": [2, 2], "
                "\"value\": [0, 4, -1, 1]}, {\"name\": \"y\"}",
                "Gather", "\"x\", \"i\"", "\"y\""),
         "out['y'] = x[np.array([[0, 4], [-1, 1]])]"},
        {"gather_axis_1",
         one_op("{\"name\": \"x\", \"shape\": [2, 5, 3]}, {\"name\": \"i\", \"dtype\": \"int64\", \"value\": [3, 3, "
                "0]}, {\"name\": \"y\"}",
                "Gather", "\"x\", \"i\"", "\"y\"", "\"axis\": 1"),
         "out['y'] = x[:, [3, 3, 0], :]"},
        // matmul family
        {"matmul_batched", binary_graph("MatMul", "[2, 1, 3, 4]", "[5, 4, 2]"), "out['y'] = a @ b"},
        {"matmul_vector", binary_graph("MatMul", "[4]", "[3, 4, 5]"), "out['y'] = a @ b"},
        {"matmul_rank2", binary_graph("MatMul", "[3, 7]", "[7, 5]"), "out['y'] = a @ b"},
        {"gemm",
         ternary_graph("Gemm", "[7, 3]", "[5, 7]", "[3, 1]",
                       "\"transA\": 1, \"transB\": 1, \"alpha\": 0.5, \"beta\": -2.0"),
         "out['y'] = a.T @ b.T * a.dtype.type(0.5) + c * a.dtype.type(-2)"},
        {"gemm_bias_row",
         ternary_graph("Gemm", "[3, 7]", "[7, 5]", "[5]"),
         "out['y'] = a @ b + c"},
        // convolution: grouped, strided, dilated, asymmetric pads; auto_pad; our NHWC form
        {"conv_grouped_strided_dilated",
         one_op("{\"name\": \"x\", \"shape\": [2, 4, 7, 9]}, {\"name\": \"w\", \"shape\": [6, 2, 3, 3]}, "
                "{\"name\": \"b\", \"shape\": [6]}, {\"name\": \"y\"}",
                "Conv", "\"x\", \"w\", \"b\"", "\"y\"",
                "\"group\": 2, \"strides\": [2, 1], \"pads\": [1, 0, 2, 1], \"dilations\": [1, 2]"),
         std::string(conv) + "out['y'] = conv(x, w, b, (2, 1), (1, 0, 2, 1), (1, 2), 2)"},
        {"conv_same_upper",
         one_op("{\"name\": \"x\", \"shape\": [1, 3, 5, 6]}, {\"name\": \"w\", \"shape\": [4, 3, 4, 4]}, "
                "{\"name\": \"y\"}",
                "Conv", "\"x\", \"w\"", "\"y\"", "\"auto_pad\": \"SAME_UPPER\", \"strides\": [2, 2]"),
         std::string(conv) + "out['y'] = conv(x, w, None, (2, 2), (1, 1, 2, 1), (1, 1), 1)"},
        {"conv_nhwc",
         one_op("{\"name\": \"x\", \"shape\": [1, 2, 5, 6, 3]}, {\"name\": \"w\", \"shape\": [2, 3, 3, 3, 4]}, "
                "{\"name\": \"b\", \"shape\": [2, 4]}, {\"name\": \"y\"}",
                "conv_nhwc", "\"x\", \"w\", \"b\"", "\"y\"",
                "\"strides\": [1, 2], \"pads\": [1, 1, 0, 2], \"dilations\": [2, 1]"),
         std::string(conv) +
             "o = conv(x.transpose(0, 1, 4, 2, 3).reshape(1, 6, 5, 6), w.transpose(0, 4, 3, 1, 2).reshape(8, 3, 3, 3),\n"
             "         b.reshape(8), (1, 2), (1, 1, 0, 2), (2, 1), 2)\n"
             "out['y'] = o.reshape(1, 2, 4, o.shape[2], o.shape[3]).transpose(0, 1, 3, 4, 2)"},
        // attention: grouped heads, causal, sequence 13; softcap and causal with Sq < Skv; the
        // 3-D form with a mask and a scale
        {"attention_causal",
         one_op("{\"name\": \"q\", \"shape\": [1, 4, 13, 8]}, {\"name\": \"k\", \"shape\": [1, 2, 13, 8]}, "
                "{\"name\": \"v\", \"shape\": [1, 2, 13, 5]}, {\"name\": \"y\"}",
                "Attention", "\"q\", \"k\", \"v\"", "\"y\"", "\"is_causal\": 1"),
         attention + "out['y'] = attention(q, k, v, None, True, 1 / np.sqrt(8))"},
        {"attention_softcap_causal_7x11",
         one_op("{\"name\": \"q\", \"shape\": [2, 1, 7, 3]}, {\"name\": \"k\", \"shape\": [2, 1, 11, 3]}, "
                "{\"name\": \"v\", \"shape\": [2, 1, 11, 2]}, {\"name\": \"y\"}",
                "Attention", "\"q\", \"k\", \"v\"", "\"y\"", "\"is_causal\": 1, \"softcap\": 0.5"),
         attention + "out['y'] = attention(q, k, v, None, True, 1 / np.sqrt(3), 0.5)"},
        {"attention_3d_mask",
         one_op("{\"name\": \"q\", \"shape\": [2, 7, 6]}, {\"name\": \"k\", \"shape\": [2, 11, 6]}, "
                "{\"name\": \"v\", \"shape\": [2, 11, 9]}, {\"name\": \"m\", \"shape\": [7, 11]}, {\"name\": \"y\"}",
                "Attention", "\"q\", \"k\", \"v\", \"m\"", "\"y\"",
                "\"q_num_heads\": 3, \"kv_num_heads\": 3, \"scale\": 0.7"),
         attention + "def heads(t, h): return t.reshape(t.shape[0], t.shape[1], h, -1).transpose(0, 2, 1, 3)\n"
                     "o = attention(heads(q, 3), heads(k, 3), heads(v, 3), m, False, 0.7)\n"
                     "out['y'] = o.transpose(0, 2, 1, 3).reshape(2, 7, 9)"},
        // window ops: ceil_mode, asymmetric pads, dilation, count_include_pad both ways; batch
        // normalization (positive variances); nearest resize by scales and by sizes
        {"max_pool_dilated_ceil",
         one_op(x4, "MaxPool", "\"x\"", "\"y\"",
                "\"kernel_shape\": [3, 2], \"strides\": [2, 2], \"pads\": [1, 0, 0, 1], \"dilations\": [2, 1], "
                "\"ceil_mode\": 1"),
         window + "out['y'] = window(x, (3, 2), (2, 2), (1, 0, 0, 1), (2, 1), 1, 'max')"},
        {"average_pool_include_pad",
         one_op(x4, "AveragePool", "\"x\"", "\"y\"",
                "\"kernel_shape\": [3, 3], \"strides\": [2, 2], \"pads\": [1, 1, 1, 1], \"ceil_mode\": 1, "
                "\"count_include_pad\": 1"),
         window + "out['y'] = window(x, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, 'avg', 1)"},
        {"average_pool_exclude_pad",
         one_op(x4, "AveragePool", "\"x\"", "\"y\"", "\"kernel_shape\": [2, 3], \"pads\": [0, 1, 1, 2]"),
         window + "out['y'] = window(x, (2, 3), (1, 1), (0, 1, 1, 2), (1, 1), 0, 'avg')"},
        {"global_average_pool", one_op(x4, "GlobalAveragePool", "\"x\"", "\"y\""),
         "out['y'] = x.mean(axis=(2, 3), keepdims=True)"},
        {"depthwise_conv",
         one_op(depthwise_tensors, "depthwise_conv", "\"x\", \"w\", \"b\"", "\"y\"",
                "\"strides\": [2, 1], \"pads\": [1, 1, 1, 1]"),
         window + "out['y'] = window(x, (3, 3), (2, 1), (1, 1, 1, 1), (1, 1), 0, 'dw', w=w, b=b[None, :])"},
        {"batch_normalization",
         one_op(batch_norm_tensors, "BatchNormalization", "\"x\", \"s\", \"b\", \"m\", \"v\"", "\"y\"",
                "\"epsilon\": 0.01"),
         "r = lambda t: t.reshape(1, 3, 1, 1)\n"
         "out['y'] = (x - r(m)) / np.sqrt(r(v) + x.dtype.type(0.01)) * r(s) + r(b)",
         0.5, 2},
        {"resize_scales_half_pixel",
         one_op("{\"name\": \"x\", \"shape\": [1, 2, 3, 4]}, {\"name\": \"sc\", \"value\": [1, 1, 2, 3]}, "
                "{\"name\": \"y\"}",
                "Resize", "\"x\", \"\", \"sc\"", "\"y\""),
         resize + "out['y'] = resize(x, (1, 1, 2, 3), 'half_pixel', 'round_prefer_floor')"},
        {"resize_sizes_asymmetric_round",
         one_op("{\"name\": \"x\", \"shape\": [2, 1, 3, 4]}, {\"name\": \"sz\", \"dtype\": \"int64\", "
                "\"value\": [2, 1, 9, 8]}, {\"name\": \"y\"}",
                "Resize", "\"x\", \"\", \"\", \"sz\"", "\"y\"",
                "\"coordinate_transformation_mode\": \"asymmetric\""),
         resize + "out['y'] = resize(x, (1, 1, 3, 2), 'asymmetric', 'round_prefer_floor')"},
    };
}

/// Raw little-endian values, as numpy's tofile/fromfile write and read them.
template <typename T>
void write_raw(const std::string& path, const std::vector<T>& v) {
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * sizeof(T)));
}
std::vector<double> read_raw(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::vector<double> v;
    double x;
    while (in.read(reinterpret_cast<char*>(&x), sizeof x)) v.push_back(x);
    return v;
}

std::string python_list(const std::vector<uint64_t>& shape) {
    std::string s = "(";
    for (uint64_t d : shape) s += std::to_string(d) + ",";
    return s + ")";
}

TEST(ReferenceOps, EveryOpMatchesNumpyAndNumpysFloat32IsWithinTheTolerance) {
    if (std::system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0) GTEST_SKIP() << "no numpy";
    const std::vector<Case> all = cases();
    std::vector<compiler::Graph> graphs;
    std::vector<std::map<std::string, std::vector<float>>> inputs(all.size());
    // One script for every case: each evaluates its statements on the inputs in float64 and
    // in float32 and writes every output as float64.
    std::ostringstream script;
    script
        << "import math, numpy as np\n"
           "_erf = np.vectorize(math.erf)\n"
           "def erf(x): return _erf(x).astype(x.dtype)\n"
           "def run(directory, inputs, code):\n"
           "    for dt, tag in ((np.float64, '64'), (np.float32, '32')):\n"
           "        env = {'np': np, 'erf': erf, 'out': {}}\n"
           "        for name, shape in inputs.items():\n"
           "            env[name] = np.fromfile(directory + name + '.in', dtype=np.float32).reshape(shape).astype(dt)\n"
           "        exec(code, env)\n"
           "        for name, value in env['out'].items():\n"
           "            value = np.asarray(value)\n"
           "            assert value.dtype == dt, (directory, name, value.dtype)\n"
           "            value.astype(np.float64).tofile(directory + name + '.' + tag)\n";
    for (size_t c = 0; c < all.size(); ++c) {
        graphs.push_back(compiler::parse_graph(all[c].graph, all[c].name + ".json"));
        const std::string directory = temp(all[c].name + "_");
        std::string listed;
        unsigned seed = 1;
        for (const compiler::Tensor& t : graphs.back().tensors()) {
            const bool given = t.role == compiler::TensorRole::Input || t.role == compiler::TensorRole::Constant;
            if (!given || !std::holds_alternative<std::monostate>(t.value)) continue;
            inputs[c][t.name] = test::random_floats(t.elements(), seed++ + 17 * unsigned(c), all[c].lo, all[c].hi);
            write_raw(directory + t.name + ".in", inputs[c][t.name]);
            listed += "'" + t.name + "': " + python_list(t.shape) + ", ";
        }
        script << "run('" << directory << "', {" << listed << "}, '''" << all[c].numpy << "''')\n";
    }
    std::ofstream(temp("numpy.py")) << script.str();
    ASSERT_EQ(std::system(("/usr/bin/python3 " + temp("numpy.py")).c_str()), 0);
    size_t checked = 0;
    for (size_t c = 0; c < all.size(); ++c) {
        SCOPED_TRACE(all[c].name);
        const auto reference = run_reference(graphs[c], inputs[c]);
        for (const compiler::Tensor& t : graphs[c].tensors()) {
            if (t.role != compiler::TensorRole::Output) continue;
            SCOPED_TRACE(t.name);
            const ReferenceTensor& ref = reference.at(t.name);
            const std::string directory = temp(all[c].name + "_");
            const std::vector<double> want = read_raw(directory + t.name + ".64");
            const std::vector<double> fp32 = read_raw(directory + t.name + ".32");
            ASSERT_EQ(ref.value.size(), t.elements());
            ASSERT_EQ(want.size(), ref.value.size());
            ASSERT_EQ(fp32.size(), ref.value.size());
            for (size_t i = 0; i < want.size(); ++i)
                ASSERT_NEAR(ref.value[i], want[i], 1e-12 * (1 + std::fabs(want[i]))) << "element " << i;
            const CheckResult r = check_tensor(std::vector<float>(fp32.begin(), fp32.end()), ref, t.shape);
            EXPECT_TRUE(r.ok) << check_message(t.name, t.shape, false, r, fp32.size());
            if (std::getenv("KPU_SHOW_CHECKS"))
                std::printf("%s: %s\n", all[c].name.c_str(),
                            check_message(t.name, t.shape, false, r, fp32.size()).c_str());
            ++checked;
        }
    }
    EXPECT_GE(checked, all.size()) << "every case checks its outputs";
}

/// The fp32 value next to `value + offset` on the far side: the nearest fp32 number at least
/// `offset` away from value (outside), or at most (inside).
float just(double value, double offset, bool outside) {
    float f = float(value + offset);
    const float away = offset > 0 ? INFINITY : -INFINITY;
    if (outside)
        while (std::fabs(double(f) - value) <= std::fabs(offset)) f = std::nextafter(f, away);
    else
        while (std::fabs(double(f) - value) > std::fabs(offset)) f = std::nextafter(f, -away);
    return f;
}

/// Every element of `ref` perturbed to just inside its tolerance passes; any one just
/// outside fails.
void expect_tolerance_is_the_boundary(const ReferenceTensor& ref, const std::vector<uint64_t>& shape) {
    std::vector<float> inside(ref.value.size());
    for (size_t i = 0; i < inside.size(); ++i) inside[i] = just(ref.value[i], (i % 2 ? -1 : 1) * ref.bound[i], false);
    EXPECT_TRUE(check_tensor(inside, ref, shape).ok);
    for (size_t i = 0; i < inside.size(); i += 3) {
        std::vector<float> outside = inside;
        outside[i] = just(ref.value[i], (i % 2 ? -1 : 1) * ref.bound[i] * 1.001 + (i % 2 ? -1e-30 : 1e-30), true);
        EXPECT_FALSE(check_tensor(outside, ref, shape).ok) << "element " << i;
    }
}

TEST(ReferenceOps, ToleranceIsTheDocumentedFormulaAndItsBoundary) {
    const std::vector<float> x = {0.5f, -1.25f, 3, 0.001f, -7, 2.5f};
    {  // Exp: 2 ulp, 4 u |y|
        const auto t = run_reference(compiler::parse_graph(unary_graph("Exp", "[2, 3]"), "exp.json"), {{"x", x}});
        for (size_t i = 0; i < x.size(); ++i) EXPECT_DOUBLE_EQ(t.at("y").bound[i], 4 * kU * std::exp(double(x[i])));
        expect_tolerance_is_the_boundary(t.at("y"), {2, 3});
    }
    {  // Add: one rounding, u |y|
        const auto t = run_reference(compiler::parse_graph(binary_graph("Add", "[2, 3]", "[3]"), "add.json"),
                                     {{"a", x}, {"b", {1, 2, 3}}});
        EXPECT_DOUBLE_EQ(t.at("y").bound[4], kU * std::fabs(-7.0 + 2));
        expect_tolerance_is_the_boundary(t.at("y"), {2, 3});
    }
    {  // ReduceSum over 3: 2 n u sum |x|
        const auto t = run_reference(
            compiler::parse_graph(axes_graph("ReduceSum", "[2, 3]", "[-1]", "\"keepdims\": 0"), "sum.json"),
            {{"x", x}});
        EXPECT_DOUBLE_EQ(t.at("y").bound[1], 6 * kU * (double(0.001f) + 7 + 2.5));
        expect_tolerance_is_the_boundary(t.at("y"), {2});
    }
    {  // Softmax over 3: y_i u (|d_i| + sum_j y_j |d_j| + 2 n + 6)
        const auto t = run_reference(compiler::parse_graph(unary_graph("Softmax", "[2, 3]"), "sm.json"), {{"x", x}});
        const double d[3] = {-2.5, -4.25, 0}, e[3] = {std::exp(-2.5), std::exp(-4.25), 1};
        const double sum = e[0] + e[1] + e[2];
        double spread = 0;
        for (int j = 0; j < 3; ++j) spread += e[j] / sum * std::fabs(d[j]);
        for (int j = 0; j < 3; ++j)
            EXPECT_NEAR(t.at("y").bound[size_t(j)], e[j] / sum * kU * (std::fabs(d[j]) + spread + 12), 1e-6 * kU);
        expect_tolerance_is_the_boundary(t.at("y"), {2, 3});
    }
    {  // Gelu: 5 u |x| + 2 u |y|
        const auto t = run_reference(compiler::parse_graph(unary_graph("Gelu", "[2, 3]"), "gelu.json"), {{"x", x}});
        for (size_t i = 0; i < x.size(); ++i) {
            const double v = x[i], y = 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
            EXPECT_DOUBLE_EQ(t.at("y").bound[i], 5 * kU * std::fabs(v) + 2 * kU * std::fabs(y));
        }
        expect_tolerance_is_the_boundary(t.at("y"), {2, 3});
    }
    {  // LayerNormalization over 3, and the attention's output: at their boundaries too
        const std::string ln = one_op(
            "{\"name\": \"x\", \"shape\": [2, 3]}, {\"name\": \"s\", \"shape\": [3]}, {\"name\": \"y\"}",
            "LayerNormalization", "\"x\", \"s\"", "\"y\"");
        const auto t = run_reference(compiler::parse_graph(ln, "ln.json"), {{"x", x}, {"s", {1, -2, 0.5f}}});
        expect_tolerance_is_the_boundary(t.at("y"), {2, 3});
        const std::string at = one_op(
            "{\"name\": \"q\", \"shape\": [1, 1, 2, 3]}, {\"name\": \"k\", \"shape\": [1, 1, 2, 3]}, "
            "{\"name\": \"v\", \"shape\": [1, 1, 2, 3]}, {\"name\": \"y\"}",
            "Attention", "\"q\", \"k\", \"v\"", "\"y\"", "\"is_causal\": 1");
        const auto a = run_reference(compiler::parse_graph(at, "at.json"), {{"q", x}, {"k", x}, {"v", x}});
        EXPECT_EQ(a.at("y").value[0], 0.5) << "the first query sees the first key only";
        expect_tolerance_is_the_boundary(a.at("y"), {1, 1, 2, 3});
    }
    {  // Transpose: exact, only the same bits pass
        const auto t = run_reference(compiler::parse_graph(unary_graph("Transpose", "[2, 3]"), "tr.json"), {{"x", x}});
        EXPECT_EQ(t.at("y").value, (std::vector<double>{0.5, 0.001f, -1.25, -7, 3, 2.5}));
        std::vector<float> off = {0.5f, std::nextafter(0.001f, 1.0f), -1.25f, -7, 3, 2.5f};
        EXPECT_FALSE(check_tensor(off, t.at("y"), {3, 2}).ok);
    }
}

TEST(ReferenceOps, OperandsBoundsAreCarriedAndTheHardwaresIntermediatesReplaceThem) {
    // y = exp(x + x): the sum's rounding, u |2x|, moves exp's result by up to
    // exp(2x + u|2x|) - exp(2x); given the hardware's sum, only exp's own 2 ulp.
    const std::string text = tensors("{\"name\": \"x\", \"shape\": [2]}, {\"name\": \"s\"}, {\"name\": \"y\"}") +
                             op("Add", "\"x\", \"x\"", "\"s\"") + ", " + op("Exp", "\"s\"", "\"y\"") + "]}";
    const compiler::Graph g = compiler::parse_graph(text, "chain.json");
    const auto carried = run_reference(g, {{"x", {1.5f, -3}}});
    const double s = 3, es = kU * 3;
    EXPECT_DOUBLE_EQ(carried.at("y").bound[0], std::exp(s + es) - std::exp(s) + 4 * kU * std::exp(s));
    const auto given = run_reference(g, {{"x", {1.5f, -3}}, {"s", {3, -6}}});
    EXPECT_DOUBLE_EQ(given.at("y").bound[0], 4 * kU * std::exp(3.0));
}

TEST(ReferenceOps, AnOverflowIsBlamedOnASumOnlyWhereTheOpSums) {
    // exp(88.5) is 2.7e38, within fp32's range: an infinite result is the hardware's overflow.
    const auto exp = run_reference(compiler::parse_graph(unary_graph("Exp", "[1]"), "exp.json"), {{"x", {88.5f}}});
    const CheckResult r = check_tensor({INFINITY}, exp.at("y"), {1});
    EXPECT_EQ(check_message("y", {1}, false, r, 1),
              "y [1]: MISMATCH in 1 elements; worst at [0]: simulated inf, reference 2.72308783e+38, error inf > "
              "tolerance 6.4923473e+31 (an intermediate value passed fp32's range, 3.4e38: the fp32 hardware "
              "overflowed)");
    const auto sum = run_reference(
        compiler::parse_graph(axes_graph("ReduceSum", "[2]", "[0]", "\"keepdims\": 0"), "sum.json"),
        {{"x", {3e38f, -3e38f}}});
    const CheckResult s = check_tensor({NAN}, sum.at("y"), {});
    EXPECT_NE(check_message("y", {}, false, s, 1).find("a product or partial sum passed"), std::string::npos);
}

TEST(ReferenceOps, StopsBeforeAnOpWhenCancelled) {
    std::atomic<bool> cancel{true};
    const compiler::Graph g = compiler::parse_graph(unary_graph("Exp", "[2]"), "exp.json");
    EXPECT_THROW(run_reference(g, {{"x", {1, 2}}}, &cancel), ReferenceCancelled);
    cancel = false;
    EXPECT_EQ(run_reference(g, {{"x", {0, 0}}}, &cancel).at("y").value, (std::vector<double>{1, 1}));
}

TEST(ReferenceOps, EveryRegisteredOpKindHasAReference) {
    // The fused forms are reference.cpp's blocked loops (an ffn op: two of them, H in between).
    for (const std::string& kind : compiler::op_registry().kinds())
        if (kind != "matmul" && kind != "ffn") {
            EXPECT_NE(op_reference(kind), nullptr) << kind;
        }
}

}  // namespace
}  // namespace kpu::cli
