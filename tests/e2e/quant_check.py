#!/usr/bin/env python3
"""Quantized and reduced-precision matmuls, convolutions and vector ops end to end (docs/compiler.md,
"Element types"): each graph through kpu-compile and kpu-sim, its output against NumPy.

int8 GEMM and Conv (ragged shapes, per-tensor and per-channel weights, zero points other than
0, results saturating at both ends, a Relu, an int8 or a dequantized float32 output) must be
BIT-EXACT against an integer NumPy reference of the IR's semantics: acc = sum (a - za)(b - zb)
in int64, t = float32(acc + bias), t = float32(t * M[n]) with M[n] = float32(s_a s_b[n] / s_c)
computed in double, q = clip(round_half_even(t) + zc, -128, 127). The .kpu's DRAM bytes equal
the closed form with 1-byte A, B and C, a 4-byte bias and one float32 multiplier row per task
row.

bfloat16 and float16 matmul, conv, layernorm and softmax: inputs rounded to the type, computed
in float32 by NumPy and rounded to the type once (what the datapath does: exact products, a
float32 sum, one rounding at the store), within a tolerance of a few of the type's ulps
(float32 sums in another order). bfloat16 tensors are .npy uint16 bit patterns.
Usage: quant_check.py BUILD_BIN_DIR SOURCE_DIR WORK_DIR"""
import json
import os
import subprocess
import sys

import numpy as np

from kpu_run import op, tensor

bin_dir, source_dir, work = sys.argv[1:4]
rng = np.random.default_rng(32)
cases = failures = 0


def report(name, ok, detail):
    global cases, failures
    cases += 1
    failures += 0 if ok else 1
    print(f"{name}: {detail} -> {'ok' if ok else 'FAIL'}")


def qtensor(name, shape, role, dtype, scale=None, zero=None, axis=0):
    """tensor() with a quantization (scale and zero point lists) when given."""
    t = tensor(name, shape, role, dtype)
    if scale is not None:
        t["quant"] = {"scale": [float(s) for s in np.atleast_1d(scale)],
                      "zero_point": [int(z) for z in np.atleast_1d(zero)], "axis": axis}
    return t


# ---- element conversions, as hardware/numeric.h does them ----------------------------------

def to_bf16_bits(x):
    """float32 -> bfloat16 bits, round to nearest even (NaN stays NaN)."""
    f = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return ((f + 0x7FFF + ((f >> 16) & 1)) >> 16).astype(np.uint16)


def from_bf16_bits(b):
    return (np.asarray(b, np.uint16).astype(np.uint32) << 16).view(np.float32)


def round_to(x, dtype):
    """float32 values rounded to `dtype` and back (what a store then a load give)."""
    x = np.asarray(x, np.float32)
    if dtype == "bfloat16":
        return from_bf16_bits(to_bf16_bits(x))
    if dtype == "float16":
        return x.astype(np.float16).astype(np.float32)
    return x


def stored(x, dtype):
    """The array kpu-sim reads for a tensor of `dtype` holding float32 values x (already of the type)."""
    if dtype == "bfloat16":
        return to_bf16_bits(x)
    if dtype == "float16":
        return np.asarray(x, np.float32).astype(np.float16)
    if dtype == "int8":
        return np.asarray(x).astype(np.int8)
    if dtype == "int32":
        return np.asarray(x).astype(np.int32)
    return np.asarray(x, np.float32)


def loaded(a, dtype):
    """kpu-sim's output array of `dtype` as float32 values (int8: the integers)."""
    if dtype == "bfloat16":
        return from_bf16_bits(a.view(np.uint16))
    if dtype == "int8":
        return a.astype(np.int64)
    return a.astype(np.float32)


def requantize(acc, bias, a_scale, b_scales, c_scale, zc, relu, int8_out):
    """The IR's quantized epilogue on int64 sums acc[..., n] (docs/compiler.md, "Element types")."""
    m = np.array([np.float32(np.float64(np.float32(a_scale)) * np.float64(np.float32(s)) / np.float64(np.float32(c_scale)))
                  for s in b_scales], np.float32)
    t = (acc + (bias if bias is not None else 0)).astype(np.float32)
    t = (t * m).astype(np.float32)
    if relu:
        t = np.maximum(t, np.float32(0))
    if not int8_out:
        return t
    return np.clip(np.rint(t).astype(np.int64) + zc, -128, 127)


# ---- running ---------------------------------------------------------------------------------

def run(name, graph, inputs, config, outputs):
    """kpu-compile and kpu-sim in WORK/name; {output: array as written}, and the .kpu's JSON."""
    case = os.path.join(work, name)
    os.makedirs(os.path.join(case, "in"), exist_ok=True)
    with open(os.path.join(case, "graph.json"), "w") as f:
        json.dump(graph, f)
    for t, value in inputs.items():
        np.save(os.path.join(case, "in", t + ".npy"), value)
    cfg = os.path.join(source_dir, "configs", config + ".json")
    kpu = os.path.join(case, "p.kpu")
    subprocess.run([os.path.join(bin_dir, "kpu-compile"), os.path.join(case, "graph.json"), "-o", kpu, "--config", cfg],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([os.path.join(bin_dir, "kpu-sim"), "--config", cfg, "--program", kpu, "--inputs",
                    os.path.join(case, "in"), "--outputs", os.path.join(case, "out")], check=True,
                   stdout=subprocess.DEVNULL)
    with open(kpu) as f:
        program = json.load(f)
    return {o: np.load(os.path.join(case, "out", o + ".npy")) for o in outputs}, program


def safe(name, fn):
    """Runs one case; a tool failing is that case's failure, the others still run."""
    try:
        fn()
    except (subprocess.CalledProcessError, OSError, KeyError, ValueError) as e:
        report(name, False, f"did not run: {e}")


# ---- int8 GEMM -------------------------------------------------------------------------------

def gemm_traffic(program, m, n, k, bias):
    """The closed form: per task A rows K and K x its columns (1 byte), its C block (1 byte, or 4
    for a float32 C), its bias and multiplier columns (4 bytes each)."""
    tm, tn = program["kernels"][0]["tile"][:2]
    total = 0
    for t in program["tasks"]:
        r0, r1 = t["rows"][0] * tm, min(m, t["rows"][1] * tm)
        c0, c1 = t["cols"][0] * tn, min(n, t["cols"][1] * tn)
        rows, cols = r1 - r0, c1 - c0
        total += rows * k + k * cols + rows * cols + 4 * cols * (2 if bias else 1)
    return total


def int8_gemm(name, m, k, n, per_channel, relu, int8_out, za, zb, zc, config="edge"):
    a_scale, c_scale = 0.03, 0.07
    b_scales = rng.uniform(0.005, 0.02, n) if per_channel else np.full(1, 0.011)
    a = rng.integers(-128, 128, (m, k))
    b = rng.integers(-128, 128, (k, n))
    bias = rng.integers(-20000, 20000, n)
    graph = {"tensors": [qtensor("x", [m, k], "input", "int8", a_scale, za),
                         qtensor("w", [k, n], "input", "int8", b_scales, [zb] * len(b_scales), axis=1),
                         tensor("b", [n], "input", "int32"),
                         qtensor("y", None, "output", "int8", c_scale, zc) if int8_out else tensor("y", None, "output")],
             "ops": [{"op": "matmul", "name": "mm", "A": "x", "B": "w", "bias": "b", "C": "y",
                      **({"activation": "relu"} if relu else {})}]}
    acc = (a - za) @ (b - zb)
    scales = b_scales if per_channel else np.repeat(b_scales, n)
    want = requantize(acc, bias, a_scale, scales, c_scale if int8_out else 1.0, zc, relu, int8_out)
    got, program = run(name, graph, {"x": stored(a, "int8"), "w": stored(b, "int8"), "b": stored(bias, "int32")}, config, ["y"])
    y = loaded(got["y"], "int8" if int8_out else "float32")
    exact = y.shape == want.shape and np.array_equal(y, want)
    sat = (int((want == -128).sum()), int((want == 127).sum())) if int8_out else (0, 0)
    if name.endswith("saturating"):  # the case is there to saturate at both ends
        exact = exact and sat[0] > 0 and sat[1] > 0
    report(name, exact, f"bit-exact {exact} ({int((y != want).sum()) if y.shape == want.shape else 'shape'} differ), "
                        f"saturated low/high {sat}")
    h = program["hints"]
    traffic = h["dram_read_bytes"] + h["dram_write_bytes"]
    want_traffic = gemm_traffic(program, m, n, k, True) + (3 * m * n if not int8_out else 0)
    report(name + " DRAM bytes", traffic == want_traffic, f"hints {traffic}, closed form {want_traffic}")


# ---- int8 Conv -------------------------------------------------------------------------------

def conv_ref(x, w, pads, stride):
    """int64 NCHW convolution of zero-point-subtracted integers (padding reads as 0 there)."""
    n, c, h, wd = x.shape
    co, _, kh, kw = w.shape
    top, left, bottom, right = pads
    xp = np.zeros((n, c, h + top + bottom, wd + left + right), np.int64)
    xp[:, :, top:top + h, left:left + wd] = x
    oh = (h + top + bottom - kh) // stride + 1
    ow = (wd + left + right - kw) // stride + 1
    out = np.zeros((n, co, oh, ow), np.int64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return out


def int8_conv(name, n, c, h, wd, co, k, stride, pads, per_channel, relu, zx, zc, config="edge"):
    x_scale, y_scale = 0.04, 0.09
    w_scales = rng.uniform(0.004, 0.02, co) if per_channel else np.full(1, 0.01)
    x = rng.integers(-128, 128, (n, c, h, wd))
    w = rng.integers(-127, 128, (co, c, k, k))
    bias = rng.integers(-5000, 5000, co)
    graph = {"tensors": [qtensor("x", [n, c, h, wd], "input", "int8", x_scale, zx),
                         qtensor("w", [co, c, k, k], "input", "int8", w_scales, [0] * len(w_scales)),
                         tensor("b", [co], "input", "int32"),
                         qtensor("t", None, None, "int8", y_scale, zc),
                         qtensor("y", None, "output", "int8", y_scale, zc)],
             "ops": [op("Conv", "conv", ["x", "w", "b"], ["t"], group=1, strides=[stride, stride], pads=pads),
                     op("Relu" if relu else "Identity", "act", ["t"], ["y"])]}
    if not relu:  # no activation op: the conv writes y
        graph["tensors"].pop(3)
        graph["ops"] = [op("Conv", "conv", ["x", "w", "b"], ["y"], group=1, strides=[stride, stride], pads=pads)]
    acc = conv_ref(x - zx, w, pads, stride)  # padding: x's zero point, i.e. 0 after subtracting it
    scales = w_scales if per_channel else np.repeat(w_scales, co)
    want = requantize(np.moveaxis(acc, 1, -1), np.asarray(bias), x_scale, scales, y_scale, zc, relu, True)
    want = np.moveaxis(want, -1, 1)
    got, _ = run(name, graph, {"x": stored(x, "int8"), "w": stored(w, "int8"), "b": stored(bias, "int32")}, config, ["y"])
    y = loaded(got["y"], "int8")
    exact = y.shape == want.shape and np.array_equal(y, want)
    report(name, exact, f"bit-exact {exact} ({int((y != want).sum()) if y.shape == want.shape else 'shape'} differ)")


# ---- bfloat16 / float16 ----------------------------------------------------------------------

def float_case(name, dtype, graph, inputs, want_fn, config, ulps):
    """Inputs rounded to `dtype`; NumPy's float32 result rounded to it once; max error within
    `ulps` of the type's ulp at the output's magnitude."""
    rounded = {k: round_to(v, dtype) for k, v in inputs.items()}
    want = round_to(want_fn(rounded), dtype)
    got, _ = run(name, graph, {k: stored(v, dtype) for k, v in rounded.items()}, config, ["y"])
    y = loaded(got["y"], dtype)
    eps = 2.0 ** -7 if dtype == "bfloat16" else 2.0 ** -10
    err = float(np.abs(y.astype(np.float64) - want).max() / max(np.abs(want).max(), 1.0)) if y.shape == want.shape else np.inf
    report(name, err <= ulps * eps, f"max error / max(|ref|, 1) = {err:.3g} (limit {ulps} ulp = {ulps * eps:.3g})")


def float_cases(dtype, config):
    m, k, n = 37, 70, 45
    g = {"tensors": [tensor("x", [m, k], "input", dtype), tensor("w", [k, n], "input", dtype),
                     tensor("y", None, "output", dtype)],
         "ops": [{"op": "matmul", "name": "mm", "A": "x", "B": "w", "C": "y"}]}
    inputs = {"x": rng.standard_normal((m, k)), "w": rng.standard_normal((k, n))}
    safe(f"{dtype}_matmul", lambda g=g, inputs=inputs: float_case(
        f"{dtype}_matmul", dtype, g, inputs,
        lambda v: (v["x"].astype(np.float64) @ v["w"].astype(np.float64)).astype(np.float32), config, 2))

    def conv(v):
        xs, ws = v["x"].astype(np.float64), v["w"].astype(np.float64)
        out = np.zeros((1, 6, 9, 11))
        xp = np.pad(xs, ((0, 0), (0, 0), (1, 1), (1, 1)))
        for i in range(3):
            for j in range(3):
                out += np.einsum("nchw,oc->nohw", xp[:, :, i:i + 9, j:j + 11], ws[:, :, i, j])
        return out.astype(np.float32)
    g = {"tensors": [tensor("x", [1, 5, 9, 11], "input", dtype), tensor("w", [6, 5, 3, 3], "input", dtype),
                     tensor("y", None, "output", dtype)],
         "ops": [op("Conv", "conv", ["x", "w"], ["y"], group=1, pads=[1, 1, 1, 1])]}
    inputs = {"x": rng.standard_normal((1, 5, 9, 11)), "w": rng.standard_normal((6, 5, 3, 3))}
    safe(f"{dtype}_conv", lambda g=g, inputs=inputs: float_case(f"{dtype}_conv", dtype, g, inputs, conv, config, 2))
    rows, cols = 19, 50

    def layernorm(v):
        x = v["x"].astype(np.float64)
        mu = x.mean(-1, keepdims=True)
        return ((x - mu) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)).astype(np.float32)
    g = {"tensors": [tensor("x", [rows, cols], "input", dtype), tensor("s", [cols], "constant", value=[1.0] * cols),
                     tensor("y", None, "output", dtype)],
         "ops": [op("LayerNormalization", "ln", ["x", "s"], ["y"], axis=-1, epsilon=1e-5)]}
    inputs = {"x": 3 * rng.standard_normal((rows, cols))}
    safe(f"{dtype}_layernorm",
         lambda g=g, inputs=inputs: float_case(f"{dtype}_layernorm", dtype, g, inputs, layernorm, config, 2))

    def softmax(v):
        x = v["x"].astype(np.float64)
        e = np.exp(x - x.max(-1, keepdims=True))
        return (e / e.sum(-1, keepdims=True)).astype(np.float32)
    g = {"tensors": [tensor("x", [rows, cols], "input", dtype), tensor("y", None, "output", dtype)],
         "ops": [op("Softmax", "sm", ["x"], ["y"], axis=-1)]}
    inputs = {"x": 2 * rng.standard_normal((rows, cols))}
    safe(f"{dtype}_softmax", lambda g=g, inputs=inputs: float_case(f"{dtype}_softmax", dtype, g, inputs, softmax, config, 2))


# ---- the cases -------------------------------------------------------------------------------

os.makedirs(work, exist_ok=True)
for args in [("gemm_per_tensor", 70, 200, 90, False, False, True, 3, -2, -5),
             ("gemm_per_channel_relu", 33, 17, 129, True, True, True, -7, 4, 11),
             ("gemm_saturating", 64, 300, 48, True, False, True, 0, 0, 0),
             ("gemm_float_out", 45, 64, 31, True, False, False, 5, -1, 0)]:
    safe(args[0], lambda a=args: int8_gemm(*a))
for args in [("conv_per_channel", 1, 5, 9, 11, 6, 3, 1, [1, 1, 1, 1], True, False, 7, -3),
             ("conv_per_tensor_relu", 2, 4, 7, 9, 8, 3, 2, [1, 0, 2, 1], False, True, -9, 5),
             ("conv_1x1", 1, 16, 6, 6, 12, 1, 1, [0, 0, 0, 0], True, False, 0, 0)]:
    safe(args[0], lambda a=args: int8_conv(*a))
float_cases("float16", "datacenter")
float_cases("bfloat16", "edge")
print(f"{cases - failures} passed, {failures} failed")
raise SystemExit(1 if failures else 0)
