#!/usr/bin/env python3
"""The drain epilogue's scale and residual end to end (docs/compiler.md, "Drain epilogue"): small
graphs whose matmul or convolution is followed by a per-channel Mul, an Add of a tensor of its
result's shape (a skip connection) and an activation, compiled with fuse-epilogue on and off and
run on kpu-sim with --check. The fused program's outputs are the same bytes as the unfused
one's (-O0 without BatchNormalization, else -O2 with fuse-epilogue disabled, since folding a BN
changes the arithmetic) and within float32 of NumPy in float64; its DRAM bytes (the .kpu's hints
and kpu-sim's measured traffic) are the unfused program's less exactly the absorbed ops' kernels,
the fused op's own by the closed form 4 (A + K N Pm + ([bias] + [scale]) N Pm + [residual] M N)
+ 4 M N, so the intermediate's write and read are what it saves. A residual of the wrong shape
in a hand-written graph is one clear error.
Usage: epilogue_check.py BUILD_BIN_DIR SOURCE_DIR WORK_DIR"""
import json
import os
import subprocess
import sys

import numpy as np

from kpu_run import op, tensor
from pass_run import check_dram, conv2d, kernel_traffic, run_case, vals

bin_dir, source_dir, work = sys.argv[1:4]
rng = np.random.default_rng(38)
problems = []  # one line per failed check
cases = 0


def fail(msg):
    problems.append(msg)
    print("FAIL: " + msg)


def compile_run(name, graph, inputs, config, args):
    """run_case in WORK_DIR/name."""
    return run_case(bin_dir, source_dir, os.path.join(work, name), graph, config, inputs, args)


def closed_form(program, op_name):
    """The fused op's DRAM bytes, task by task: 4 (A + K cols + ([bias] + [scale]) cols +
    [residual] rows cols) read and 4 rows cols written, A being a matmul's rows K and a
    convolution's input rows (halo included) that the task's output pixels read, W Cg each."""
    g = program["graph"]
    o = next(x for x in g["ops"] if x["name"] == op_name)
    shapes = {t["name"]: t["shape"] for t in g["tensors"]}
    index = next(i for i, x in enumerate(program["kernels"]) if x["op"] == op_name)
    tm, tn = program["kernels"][index]["tile"][:2]
    if o["op"] == "matmul":
        (m, k), n = shapes[o["A"]], shapes[o["B"]][1]
        bias, scale, residual = o.get("bias"), o.get("scale"), o.get("residual")
    else:  # conv_nhwc of one image and one group, stride 1 (the cases here)
        ins = o["inputs"] + [""] * 5
        _, _, h, w, cg = shapes[ins[0]]
        _, kh, kw, _, n = shapes[ins[1]]
        y = shapes[o["outputs"][0]]
        m, k, ow = y[2] * y[3], kh * kw * cg, y[3]
        top = o["attributes"]["pads"][0]
        bias, scale, residual = ins[2], ins[3], ins[4]
    total = 0
    for t in (t for t in program["tasks"] if t["kernel"] == index):
        r0, r1 = t["rows"][0] * tm, min(m, t["rows"][1] * tm)
        c0, c1 = t["cols"][0] * tn, min(n, t["cols"][1] * tn)
        rows, cols = r1 - r0, c1 - c0
        if o["op"] == "matmul":
            a = rows * k
        else:
            first, last = max(0, r0 // ow - top), min(h - 1, (r1 - 1) // ow - top + kh - 1)
            a = max(0, last - first + 1) * w * cg
        read = a + k * cols + (cols if bias else 0) + (cols if scale else 0) + (rows * cols if residual else 0)
        total += 4 * (read + rows * cols)
    return total


def fusion_case(name, graph, inputs, config, fused, want_fn, base_args=("-O0",)):
    """`fused`: {fused op name: [absorbed op names, in order]} expected with fuse-epilogue on,
    against `base_args` with fuse-epilogue off (-O0: -O2 against -O0)."""
    global cases
    cases += 1
    off = list(base_args) + (["--disable-pass", "fuse-epilogue"] if base_args[0] != "-O0" else [])
    on = ["-O2"] if base_args[0] == "-O0" else list(base_args)
    p0, s0, o0 = compile_run(name + "_off_" + config, graph, inputs, config, off)
    p, s, o = compile_run(name + "_on_" + config, graph, inputs, config, on)
    where = f"{name} on {config}"
    if o != o0:
        fail(f"{where}: outputs are not the same bytes as without fuse-epilogue")
    # What fuse-epilogue absorbed: fused_with less what the baseline's passes put there.
    before = {x["name"]: x.get("fused_with", []) for x in p0["graph"]["ops"]}
    got = {x["name"]: [a for a in x["fused_with"] if a not in before.get(x["name"], [])]
           for x in p["graph"]["ops"] if x.get("fused_with")}
    got = {k: v for k, v in got.items() if v}
    if got != fused:
        fail(f"{where}: fused_with {got}, expected {fused}")
    out = [t["name"] for t in graph["tensors"] if t.get("role") == "output"][0]
    y = np.load(os.path.join(work, name + "_on_" + config, "out", out + ".npy")).astype(np.float64)
    want = want_fn(inputs)
    err = np.abs(y - want).max() / max(np.abs(want).max(), 1)
    if err > 1e-5:
        fail(f"{where}: max error / max(|ref|, 1) = {err:.3g} against NumPy")
    t0 = kernel_traffic(p0)
    expect = sum(t0.values())
    for f_op, absorbed in fused.items():
        expect -= sum(t0.get(a, 0) for a in absorbed)
        expect += closed_form(p, f_op) - t0[f_op]
    check_dram(where, p, s, s0, expect, f"same bytes, error {err:.2g}", fail)
    return p


def mlp(m, k, n, chain, residual_first=False, gemm=False):
    """x[m,k] @ W[k,n] (a Gemm with bias b, or a MatMul) then `chain` of "bias" (Add c[n]),
    "scale" (Mul by s[n]), "residual" (Add r[m,n], produced by a MatMul of its own when
    `residual_first` is "computed"), or an activation kind; with NumPy's float64 result."""
    tensors = [tensor("x", [m, k], "input"), tensor("W", [k, n], "constant")]
    inputs = {"x": rng.standard_normal((m, k)), "W": rng.standard_normal((k, n)) / np.sqrt(k)}
    ops = [op("Gemm", "mm", ["x", "W", "b"], ["t0"])] if gemm else [op("MatMul", "mm", ["x", "W"], ["t0"])]
    if gemm:
        tensors.append(tensor("b", [n], "constant"))
        inputs["b"] = rng.standard_normal(n)
    last, absorbed = "t0", []
    for i, step in enumerate(chain):
        out = "y" if i == len(chain) - 1 else f"t{i + 1}"
        if step == "bias":
            tensors.append(tensor("c", [n], "constant"))
            inputs["c"] = rng.standard_normal(n)
            ops.append(op("Add", "bias", [last, "c"], [out]))
        elif step == "scale":
            tensors.append(tensor("s", [n], "constant"))
            inputs["s"] = rng.uniform(0.25, 2, n)
            ops.append(op("Mul", "scale", ["s", last], [out]))
        elif step == "residual":
            if residual_first == "computed":  # r = z @ V, computed after the matmul in the op order
                tensors += [tensor("z", [m, 24], "input"), tensor("V", [24, n], "constant"), tensor("r")]
                inputs["z"], inputs["V"] = rng.standard_normal((m, 24)), rng.standard_normal((24, n)) / 5
                ops.append(op("MatMul", "rmm", ["z", "V"], ["r"]))
            else:
                tensors.append(tensor("r", [m, n], "input"))
                inputs["r"] = rng.standard_normal((m, n))
            ops.append(op("Add", "skip", ["r", last] if residual_first else [last, "r"], [out]))
        else:
            ops.append(op(step, "act", [last], [out]))
        absorbed.append({"bias": "bias", "scale": "scale", "residual": "skip"}.get(step, "act"))
        last = out
    tensors += [tensor(f"t{j}") for j in range(len(chain))] + [tensor("y", None, "output")]

    def want(v):
        y = v["x"] @ v["W"] + (v["b"] if gemm else 0)
        for step in chain:
            if step == "bias":
                y = y + v["c"]
            elif step == "scale":
                y = y * v["s"]
            elif step == "residual":
                y = y + (v["z"] @ v["V"] if residual_first == "computed" else v["r"])
            elif step == "Relu":
                y = np.maximum(y, 0)
            elif step == "Tanh":
                y = np.tanh(y)
        return y
    return {"tensors": tensors, "ops": ops}, inputs, absorbed, want


for config in ("edge", "t64"):
    # Ragged shapes: no dimension a multiple of a fabric side.
    g, i, a, w = mlp(97, 130, 75, ["bias", "scale", "residual", "Relu"])
    fusion_case("matmul_bias_scale_residual_relu", g, i, config, {"mm": a}, w)
    g, i, a, w = mlp(70, 64, 130, ["residual", "Tanh"], residual_first=True, gemm=True)
    fusion_case("gemm_residual_first_tanh", g, i, config, {"mm": a}, w)
    g, i, a, w = mlp(33, 48, 50, ["scale"])
    fusion_case("matmul_scale", g, i, config, {"mm": a}, w)
    g, i, a, w = mlp(40, 96, 300, ["residual"], residual_first="computed")
    fusion_case("matmul_residual_computed_after", g, i, config, {"mm": a}, w)

# A stage out of the drain's order stays a vector op: a Mul after the residual Add.
cases += 1
g, i, a, w = mlp(32, 40, 24, ["residual", "scale"])
p2, _, _ = compile_run("out_of_order", g, i, "edge", ["-O2"])
fused = {x["name"]: x.get("fused_with") for x in p2["graph"]["ops"] if x.get("fused_with")}
if fused != {"mm": ["skip"]} or not any(x["op"] == "Mul" for x in p2["graph"]["ops"]):
    fail(f"out_of_order: fused_with {fused}; the Mul after the residual must stay")


def resnet_block(c, h, w, batchnorm):
    """A stem Conv-Relu (so the skip is a conv's result, in NHWC) then ResNet's basic block:
    Conv-BN-Relu-Conv-BN-Add(skip)-Relu (`batchnorm`), or Conv-Relu-Conv-Mul(layer scale)-
    Add(skip)-Relu with biases; NumPy's float64 result."""
    p = {"W0": rng.standard_normal((c, 3, 3, 3)) / 3, "b0": rng.standard_normal(c) * 0.1,
         "W1": rng.standard_normal((c, c, 3, 3)) / (3 * np.sqrt(c)), "W2": rng.standard_normal((c, c, 3, 3)) / (3 * np.sqrt(c))}
    for j in (1, 2):
        p[f"g{j}"], p[f"be{j}"] = rng.uniform(0.5, 2, c), rng.standard_normal(c) * 0.1
        p[f"mu{j}"], p[f"var{j}"] = rng.standard_normal(c) * 0.3, rng.uniform(0.2, 3, c)
        p[f"b{j}"] = rng.standard_normal(c) * 0.1
    p["ls"] = rng.uniform(0.5, 1.5, c)
    p = {k: v.astype(np.float32).astype(np.float64) for k, v in p.items()}
    keep = ["W0", "b0", "W1", "W2"] + (["g1", "be1", "mu1", "var1", "g2", "be2", "mu2", "var2"] if batchnorm
                                       else ["b1", "b2"])
    tensors = [tensor("x", [1, 3, h, w], "input")]
    if not batchnorm:
        tensors.append(tensor("ls", [c, 1, 1], "constant", value=vals(p["ls"])))
    tensors += [tensor(k, list(p[k].shape), "constant", value=vals(p[k])) for k in keep]
    ops = [op("Conv", "stem", ["x", "W0", "b0"], ["s0"], pads=[1, 1, 1, 1]), op("Relu", "stem_relu", ["s0"], ["a"])]
    mids = ["s0", "a", "c1", "r1", "c2", "z"]
    if batchnorm:
        ops += [op("Conv", "conv1", ["a", "W1"], ["c1"], pads=[1, 1, 1, 1]),
                op("BatchNormalization", "bn1", ["c1", "g1", "be1", "mu1", "var1"], ["n1"], epsilon=1e-5),
                op("Relu", "relu1", ["n1"], ["r1"]),
                op("Conv", "conv2", ["r1", "W2"], ["c2"], pads=[1, 1, 1, 1]),
                op("BatchNormalization", "bn2", ["c2", "g2", "be2", "mu2", "var2"], ["n2"], epsilon=1e-5),
                op("Add", "skip", ["n2", "a"], ["z"]), op("Relu", "relu2", ["z"], ["y"])]
        mids += ["n1", "n2"]
    else:
        ops += [op("Conv", "conv1", ["a", "W1", "b1"], ["c1"], pads=[1, 1, 1, 1]), op("Relu", "relu1", ["c1"], ["r1"]),
                op("Conv", "conv2", ["r1", "W2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
                op("Mul", "layer_scale", ["c2", "ls"], ["n2"]),
                op("Add", "skip", ["a", "n2"], ["z"]), op("Relu", "relu2", ["z"], ["y"])]
        mids.append("n2")
    tensors += [tensor(t) for t in mids] + [tensor("y", None, "output")]
    inputs = {"x": rng.standard_normal((1, 3, h, w))}

    def bn(y, j):
        s = p[f"g{j}"] / np.sqrt(p[f"var{j}"] + float(np.float32(1e-5)))
        return (y - p[f"mu{j}"][None, :, None, None]) * s[None, :, None, None] + p[f"be{j}"][None, :, None, None]

    def want(v):
        a = np.maximum(conv2d(v["x"], p["W0"], p["b0"], 1), 0)
        if batchnorm:
            r1 = np.maximum(bn(conv2d(a, p["W1"], None, 1), 1), 0)
            return np.maximum(bn(conv2d(r1, p["W2"], None, 1), 2) + a, 0)
        r1 = np.maximum(conv2d(a, p["W1"], p["b1"], 1), 0)
        return np.maximum(conv2d(r1, p["W2"], p["b2"], 1) * p["ls"][None, :, None, None] + a, 0)
    return {"tensors": tensors, "ops": ops}, inputs, want


for config in ("edge", "t64"):
    # BN folded at -O2 in both: the bits compare with fuse-epilogue disabled.
    g, i, w = resnet_block(16, 10, 9, True)
    fusion_case("resnet_basic_block", g, i, config, {"stem.conv": ["stem_relu.relaid"], "conv1.conv": ["relu1.relaid"],
                                                     "conv2.conv": ["skip.relaid", "relu2.relaid"]}, w, base_args=("-O2",))
    g, i, w = resnet_block(8, 7, 11, False)
    fusion_case("conv_layer_scale_residual", g, i, config,
                {"stem.conv": ["stem_relu.relaid"], "conv1.conv": ["relu1.relaid"],
                 "conv2.conv": ["layer_scale.relaid", "skip.relaid", "relu2.relaid"]}, w)

# Bad input: a fused matmul's residual of the wrong shape is one clear error naming the op,
# the tensor and both shapes.
cases += 1
bad = {"tensors": [tensor("x", [8, 16], "input"), tensor("W", [16, 12], "constant"),
                   tensor("r", [8, 10], "input"), tensor("y", [8, 12], "output")],
       "ops": [{"op": "matmul", "name": "mm", "A": "x", "B": "W", "C": "y", "residual": "r"}]}
os.makedirs(os.path.join(work, "bad"), exist_ok=True)
path = os.path.join(work, "bad", "graph.json")
with open(path, "w") as f:
    json.dump(bad, f)
r = subprocess.run([os.path.join(bin_dir, "kpu-compile"), path, "-o", os.path.join(work, "bad", "p.kpu")],
                   capture_output=True, text=True)
lines = [x for x in r.stderr.splitlines() if x.strip()]
if r.returncode == 0 or len(lines) != 1 or "'mm'" not in lines[0] or "residual 'r' has shape [8, 10] but C is [8, 12]" \
        not in lines[0]:
    fail(f"bad residual: exit {r.returncode}, stderr {r.stderr!r}")
else:
    print("bad residual: " + lines[0])

print(f"{len(problems)} failures in {cases} cases" if problems else f"all {cases} cases passed")
raise SystemExit(1 if problems else 0)
