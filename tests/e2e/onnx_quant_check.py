#!/usr/bin/env python3
"""Quantized ONNX models end to end (docs/onnx.md, Quantization): onnx.helper writes a QDQ conv
(QuantizeLinear -> DequantizeLinear -> Conv with an int8 weight quantized per output channel and
an int32 bias -> Relu -> QuantizeLinear -> DequantizeLinear) and a QLinearMatMul of uint8
tensors (B per column); kpu-compile imports them (fold-qdq folds the pairs into int8 ops, -v
says so), kpu-sim runs them with --check from the float input alone, and the float output is
compared bit for bit with an integer NumPy reference of the shared semantics: quantize
saturate(round_half_even(v / s) + zp) in float32, acc = sum (a - za)(b - zb) in int32,
t = float32(acc + bias) * float32(s_a s_b[n] / s_y), q = saturate(round_half_even(t) + zy),
dequantize float32(q - zp) * s.
Usage: onnx_quant_check.py BUILD_BIN_DIR SOURCE_DIR WORK_DIR"""
import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

bin_dir, source_dir, work = sys.argv[1:4]
os.makedirs(work, exist_ok=True)
rng = np.random.default_rng(32)
failures = cases = 0


def quantize(v, scale, zp, lo=-128, hi=127):
    """float32 v to integers: saturate(round_half_even(v / scale) + zp), in float32."""
    q = np.rint(np.float32(v) / np.float32(scale)).astype(np.float32) + np.float32(zp)
    return np.clip(q, lo, hi).astype(np.int64)


def dequantize(q, scale, zp):
    return (q - zp).astype(np.float32) * np.float32(scale)


def requantize(acc, bias, s_a, s_b, s_y, z_y):
    """int32 acc [..., N] (+ int32 bias [N]) to int8 at (s_y, z_y) through float32 M[n]."""
    m = (np.float64(s_a) * np.asarray(s_b, np.float64) / np.float64(s_y)).astype(np.float32)
    t = (acc + bias).astype(np.float32) * m
    return np.clip(np.rint(t) + z_y, -128, 127).astype(np.int64)


def init(name, value):
    return numpy_helper.from_array(value, name)


def save(nodes, inits, inputs, outputs, name):
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    path = os.path.join(work, name + ".onnx")
    onnx.save(model, path)
    return path


def run(name, path, inputs, want, config, notes):
    """kpu-compile -v (every line of `notes` printed), kpu-sim --check, y against `want` bit for bit."""
    global failures, cases
    cases += 1
    case = os.path.join(work, f"{name}_{config}")
    os.makedirs(os.path.join(case, "in"), exist_ok=True)
    cfg = os.path.join(source_dir, "configs", config + ".json")
    kpu = os.path.join(case, "model.kpu")
    r = subprocess.run([os.path.join(bin_dir, "kpu-compile"), path, "-o", kpu, "--config", cfg, "-v"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(f"{name} on {config}: kpu-compile failed: {r.stderr.strip()} -> FAIL")
        failures += 1
        return
    missing = [n for n in notes if n not in r.stdout]
    for tensor, value in inputs.items():
        np.save(os.path.join(case, "in", tensor + ".npy"), value)
    s = subprocess.run([os.path.join(bin_dir, "kpu-sim"), "--config", cfg, "--program", kpu, "--inputs",
                        os.path.join(case, "in"), "--outputs", os.path.join(case, "out"), "--check"],
                       capture_output=True, text=True)
    if s.returncode != 0:
        print(f"{name} on {config}: kpu-sim failed: {s.stderr.strip()[-400:]} -> FAIL")
        failures += 1
        return
    got = np.load(os.path.join(case, "out", "y.npy"))
    same = got.dtype == np.float32 and got.shape == want.shape and np.array_equal(got.view(np.uint32),
                                                                                   want.view(np.uint32))
    differing = 0 if got.shape != want.shape else int(np.count_nonzero(got != want))
    ok = same and not missing
    print(f"{name} on {config}: shape {got.shape}, {differing} elements differ from the integer reference"
          f"{' (-v lacks: ' + '; '.join(missing) + ')' if missing else ''} -> {'ok' if ok else 'FAIL'}")
    failures += 0 if ok else 1


def qdq_conv():
    """x [1, 3, 10, 10] -> Q -> DQ -> Conv 3x3 pad 1 (W int8 per channel, int32 bias) -> Relu -> Q -> DQ."""
    cin, cout, h, w = 3, 8, 10, 10
    sx, zx, sy, zy = np.float32(0.04), 3, np.float32(0.08), -6
    sw = rng.uniform(0.005, 0.02, cout).astype(np.float32)
    wq = rng.integers(-127, 128, (cout, cin, 3, 3)).astype(np.int8)
    sb = (sx * sw).astype(np.float32)
    bq = rng.integers(-3000, 3000, cout).astype(np.int32)
    inits = [init("sx", np.array(sx)), init("zx", np.array(zx, np.int8)), init("sw", sw),
             init("zw", np.zeros(cout, np.int8)), init("w", wq), init("sb", sb), init("zb", np.zeros(cout, np.int32)),
             init("b", bq), init("sy", np.array(sy)), init("zy", np.array(zy, np.int8))]
    nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"], name="qx"),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xf"], name="dqx"),
             helper.make_node("DequantizeLinear", ["w", "sw", "zw"], ["wf"], name="dqw", axis=0),
             helper.make_node("DequantizeLinear", ["b", "sb", "zb"], ["bf"], name="dqb", axis=0),
             helper.make_node("Conv", ["xf", "wf", "bf"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("QuantizeLinear", ["r", "sy", "zy"], ["yq"], name="qy"),
             helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"], name="dqy")]
    path = save(nodes, inits, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, cin, h, w])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, cout, h, w])], "qdq_conv")
    x = rng.normal(0, 2, (1, cin, h, w)).astype(np.float32)
    xq = np.pad(quantize(x, sx, zx) - zx, ((0, 0), (0, 0), (1, 1), (1, 1)))  # the padding is the zero point
    acc = np.zeros((1, cout, h, w), np.int64)
    for kh in range(3):
        for kw in range(3):
            acc += np.einsum("nchw,oc->nohw", xq[:, :, kh:kh + h, kw:kw + w], wq[:, :, kh, kw].astype(np.int64))
    assert np.abs(acc).max() < 2 ** 31
    t = acc.transpose(0, 2, 3, 1)  # channels last for the per-channel multiplier
    q = requantize(t, bq.astype(np.int64), sx, sw, sy, zy).transpose(0, 3, 1, 2)
    q = np.maximum(q, zy)  # Relu on int8 with the result's quant
    notes = ["fold-qdq", "fold-qdq: op 'conv' (Conv) computes on int8 'xq' and 'w' (int32 bias 'b'), writing int8 'c'"]
    return path, {"x": x}, dequantize(q, sy, zy), notes


def qlinear_matmul():
    """a [16, 40] -> Q (uint8) -> QLinearMatMul (B uint8 per column, equal zero points) -> DQ."""
    m, k, n = 16, 40, 24
    sa, za, sy, zy = np.float32(0.03), 131, np.float32(0.5), 118
    sb = rng.uniform(0.004, 0.01, n).astype(np.float32)
    zb = 126
    bq = rng.integers(0, 256, (k, n)).astype(np.uint8)
    inits = [init("sa", np.array(sa)), init("za", np.array(za, np.uint8)), init("sb", sb),
             init("zb", np.full(n, zb, np.uint8)), init("b", bq), init("sy", np.array(sy)),
             init("zy", np.array(zy, np.uint8))]
    nodes = [helper.make_node("QuantizeLinear", ["a", "sa", "za"], ["aq"], name="qa"),
             helper.make_node("QLinearMatMul", ["aq", "sa", "za", "b", "sb", "zb", "sy", "zy"], ["yq"], name="qmm"),
             helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"], name="dqy")]
    path = save(nodes, inits, [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])], "qlinear_matmul")
    a = rng.normal(0, 1.5, (m, k)).astype(np.float32)
    # uint8 as ONNX has it: the int8 the importer makes is q - 128 with zero point - 128, the same reals.
    aq = quantize(a, sa, za, 0, 255)
    acc = (aq - za) @ (bq.astype(np.int64) - zb)
    q = requantize(acc, 0, sa, sb, sy, zy - 128) + 128
    return path, {"a": a}, dequantize(q, sy, zy), ["fold-qdq"]


for build in (qdq_conv, qlinear_matmul):
    path, inputs, want, notes = build()
    run(build.__name__, path, inputs, want, "edge", notes)
print(f"{cases - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
