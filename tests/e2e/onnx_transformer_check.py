#!/usr/bin/env python3
"""Transformers as ONNX spells them, end to end: attention as MatMul(Q, K^T) -> Div -> Add mask
-> Softmax -> MatMul(., V) (4-D, heads split by Reshape + Transpose, an exactly causal constant
mask) and 3-D linear MatMuls with bias and activation, as graph JSON through kpu-compile -O2
(one flash_attention; the linears flattened and fused) and -O0 + kpu-sim --check, against
NumPy in float64 (flash attention's tolerance, 1e-5 of max(|ref|, 1)); the flattened linears
give -O0's bits. Then the zoo's BERT layer, GPT-2 block and ViT exported by PyTorch (one
layer, a short sequence) at -O2 against PyTorch's outputs: each attention one flash_attention
(GPT-2's causal), no Sq x Skv tensor in the program or among the bound program's DRAM tensors,
and without fuse-attention the bits of -O0.
Usage: onnx_transformer_check.py BUILD_BIN_DIR SOURCE_DIR WORK_DIR"""
import json
import math
import os
import subprocess
import sys

import numpy as np

from attention_cases import causal_mask, softmax
from kpu_run import Checker, op, tensor

bin_dir, source_dir, work = sys.argv[1:4]
check = Checker(bin_dir, source_dir, work, tolerance=1e-5)
rng = np.random.default_rng(38)
MASKED = float(np.finfo(np.float32).min)  # torch.finfo.min: what a causal mask holds when not -inf


def program_ops(case):
    with open(os.path.join(case, "p.kpu")) as f:
        return json.load(f)["graph"]["ops"]


def expect(ok, what):
    print(f"{what} -> {'ok' if ok else 'FAIL'}")
    check.failures += 0 if ok else 1


def attention_graph(b, h, s, e, mask):
    """4-D Q, K, V [b, h, s, e]; K^T by Transpose; / sqrt(e); mask: None, "input" (the scores'
    shape) or "causal" (a constant [s, s], torch.finfo.min above the diagonal)."""
    dims = [b, h, s, e]
    tensors = [tensor("q", dims, "input"), tensor("k", dims, "input"), tensor("v", dims, "input"),
               {"name": "c", "shape": [], "role": "constant", "value": [math.sqrt(e)]},
               tensor("kt"), tensor("s"), tensor("s2"), tensor("p"), tensor("y", None, "output")]
    ops = [op("Transpose", "kt", ["k"], ["kt"], perm=[0, 1, 3, 2]), op("MatMul", "qk", ["q", "kt"], ["s"]),
           op("Div", "scale", ["s", "c"], ["s2"])]
    logits = "s2"
    if mask == "input":
        tensors.append(tensor("mask", [b, h, s, s], "input"))
    elif mask == "causal":
        values = np.where(np.arange(s)[None, :] > np.arange(s)[:, None], MASKED, 0.0)
        tensors.append({"name": "mask", "shape": [s, s], "role": "constant", "value": values.ravel().tolist()})
    if mask:
        tensors.append(tensor("s3"))
        ops.append(op("Add", "add", ["s2", "mask"], ["s3"]))
        logits = "s3"
    ops += [op("Softmax", "sm", [logits], ["p"], axis=-1), op("MatMul", "pv", ["p", "v"], ["y"])]
    inputs = {n: rng.standard_normal(dims) for n in ("q", "k", "v")}
    if mask == "input":
        inputs["mask"] = rng.standard_normal([b, h, s, s])

    def want(t):
        x = t["q"] @ t["k"].transpose(0, 1, 3, 2) / math.sqrt(e)
        x = x + (t["mask"] if mask == "input" else causal_mask(s, s) if mask == "causal" else 0)
        return softmax(x) @ t["v"]
    return {"tensors": tensors, "ops": ops}, inputs, want


def split_heads_graph(b, h, s, e):
    """Q, K, V [b, s, h e] split into heads as torch exports it (Reshape, Transpose; K^T by
    [0, 2, 3, 1]) and merged back (Transpose, Reshape)."""
    d = h * e
    tensors = [tensor(n, [b, s, d], "input") for n in ("q", "k", "v")] + [
        {"name": "split", "shape": [4], "dtype": "int64", "role": "constant", "value": [b, s, h, e]},
        {"name": "merged", "shape": [3], "dtype": "int64", "role": "constant", "value": [b, s, d]},
        {"name": "c", "shape": [], "role": "constant", "value": [math.sqrt(e)]}] + \
        [tensor(n) for n in ("q4", "k4", "v4", "qh", "kt", "vh", "s", "s2", "p", "o", "ot")] + [tensor("y", None, "output")]
    ops = [op("Reshape", "r" + n, [n, "split"], [n + "4"]) for n in ("q", "k", "v")] + [
        op("Transpose", "tq", ["q4"], ["qh"], perm=[0, 2, 1, 3]), op("Transpose", "tk", ["k4"], ["kt"], perm=[0, 2, 3, 1]),
        op("Transpose", "tv", ["v4"], ["vh"], perm=[0, 2, 1, 3]), op("MatMul", "qk", ["qh", "kt"], ["s"]),
        op("Div", "scale", ["s", "c"], ["s2"]), op("Softmax", "sm", ["s2"], ["p"], axis=-1),
        op("MatMul", "pv", ["p", "vh"], ["o"]), op("Transpose", "to", ["o"], ["ot"], perm=[0, 2, 1, 3]),
        op("Reshape", "ro", ["ot", "merged"], ["y"])]
    inputs = {n: rng.standard_normal([b, s, d]) for n in ("q", "k", "v")}

    def want(t):
        q, k, v = (t[n].reshape(b, s, h, e).transpose(0, 2, 1, 3) for n in ("q", "k", "v"))
        y = softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(e)) @ v
        return y.transpose(0, 2, 1, 3).reshape(b, s, d)
    return {"tensors": tensors, "ops": ops}, inputs, want


def linears_graph(b, s, d, hidden):
    """y = gelu(x @ W1 + b1) @ W2 + b2 on x [b, s, d], each MatMul 3-D by a matrix."""
    tensors = [tensor("x", [b, s, d], "input"), tensor("W1", [d, hidden], "input"), tensor("b1", [hidden], "input"),
               tensor("W2", [hidden, d], "input"), tensor("b2", [d], "input")] + \
        [tensor(n) for n in ("h", "hb", "a", "z")] + [tensor("y", None, "output")]
    ops = [op("MatMul", "up", ["x", "W1"], ["h"]), op("Add", "up_bias", ["b1", "h"], ["hb"]),
           op("Gelu", "gelu", ["hb"], ["a"], approximate="tanh"), op("MatMul", "down", ["a", "W2"], ["z"]),
           op("Add", "down_bias", ["z", "b2"], ["y"])]
    inputs = {"x": rng.standard_normal([b, s, d]), "W1": rng.standard_normal([d, hidden]) / math.sqrt(d),
              "b1": rng.standard_normal(hidden), "W2": rng.standard_normal([hidden, d]) / math.sqrt(hidden),
              "b2": rng.standard_normal(d)}

    def want(t):
        h = t["x"] @ t["W1"] + t["b1"]
        a = 0.5 * h * (1 + np.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3)))
        return a @ t["W2"] + t["b2"]
    return {"tensors": tensors, "ops": ops}, inputs, want


for config in ("edge", "t64"):
    # A mask of the scores' shape lowers without the pass too: -O0 checked alike.
    for name, (g, i, f), levels in (("attention_4d_mask", attention_graph(2, 3, 19, 8, "input"), ("-O2", "-O0")),
                                    ("attention_4d", attention_graph(1, 2, 33, 16, None), ("-O2", "-O0")),
                                    ("attention_causal", attention_graph(1, 2, 37, 8, "causal"), ("-O2",)),
                                    ("attention_heads", split_heads_graph(2, 4, 21, 8), ("-O2", "-O0"))):
        for level in levels:
            case = check.run(g, config, i, f, f"{name}{level.replace('-', '_')}", "y", compile_args=[level])
            kinds = [o["op"] for o in program_ops(case)]
            if level == "-O2":
                flash = [o for o in program_ops(case) if o["op"] == "flash_attention"]
                causal = bool(flash) and flash[0]["attributes"].get("is_causal") == 1
                expect(kinds == ["flash_attention"] and causal == (name == "attention_causal"),
                       f"{name} -O2 on {config}: ops {kinds}, causal flag {causal}")
            else:
                expect("flash_attention" not in kinds, f"{name} -O0 on {config}: ops {kinds}")

    g, i, f = linears_graph(2, 13, 24, 40)
    o2 = check.run(g, config, i, f, "linears_O2", "y")
    o0 = check.run(g, config, i, f, "linears_O0", "y", compile_args=["-O0"])
    ops = program_ops(o2)
    # The bias Adds and the Gelu in the matmuls' drains (fuse-epilogue), or in one ffn (fuse-ffn).
    kinds = [o["op"] for o in ops]
    absorbed = {n for o in ops for n in o.get("fused_with", [])}
    same = np.load(os.path.join(o2, "out", "y.npy")).tobytes() == np.load(os.path.join(o0, "out", "y.npy")).tobytes()
    expect(same and {"up_bias", "gelu", "down_bias"} <= absorbed and "MatMul" not in kinds and "Add" not in kinds,
           f"linears on {config}: -O2 ops {kinds} absorbing {sorted(absorbed)}, the same bits as -O0: {same}")


def run(model_dir, case, level_args, check_ref):
    """Compiles and simulates `model_dir`'s model.onnx on t64; returns (program, output y, bound)."""
    os.makedirs(case, exist_ok=True)
    cfg = os.path.join(source_dir, "configs", "t64.json")
    kpu = os.path.join(case, "p.kpu")
    subprocess.run([os.path.join(bin_dir, "kpu-compile"), os.path.join(model_dir, "model.onnx"), "-o", kpu,
                    "--config", cfg] + level_args, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([os.path.join(bin_dir, "kpu-sim"), "--config", cfg, "--program", kpu, "--inputs",
                    os.path.join(model_dir, "inputs"), "--outputs", os.path.join(case, "out")] +
                   (["--check"] if check_ref else []), check=True, stdout=subprocess.DEVNULL)
    subprocess.run([os.path.join(bin_dir, "kpu-compile"), "--bind", "--config", cfg, kpu, "-o",
                    os.path.join(case, "bound.json")], check=True, stdout=subprocess.DEVNULL)
    with open(kpu) as fh:
        program = json.load(fh)
    with open(os.path.join(case, "bound.json")) as fh:
        bound = json.load(fh)
    return program, np.load(os.path.join(case, "out", "y.npy")), bound


zoo = os.path.join(work, "zoo")
SEQ, HEADS = 48, {"bert": 12, "gpt2": 12, "vit": 3}  # 48: no head dim (64) nor model dim equals it
subprocess.run([sys.executable, os.path.join(source_dir, "examples", "models", "zoo.py"), "export", zoo, "bert", "gpt2",
                "vit", "--layers", "1", "--seq", str(SEQ), "--image-size", "96"], check=True, stdout=subprocess.DEVNULL)
for model in ("bert", "gpt2", "vit"):
    model_dir = os.path.join(zoo, model)
    with open(os.path.join(model_dir, "meta.json")) as fh:
        meta = json.load(fh)
    s = SEQ if model != "vit" else (96 // 16) ** 2 + 1
    program, got, bound = run(model_dir, os.path.join(work, model + "_O2"), [], True)
    ref = np.load(os.path.join(model_dir, "expected", "y.npy")).astype(np.float64)
    err = np.abs(got.astype(np.float64) - ref).max() / max(np.abs(ref).max(), 1.0)
    ops = program["graph"]["ops"]
    flash = [o for o in ops if o["op"] == "flash_attention"]
    causal = [o["attributes"].get("is_causal") == 1 for o in flash]
    square = [t["name"] for t in program["graph"]["tensors"] if t.get("shape", [])[-2:] == [s, s]]
    scores_bytes = 4 * HEADS[model] * s * s
    in_dram = [t["name"] for t in bound["tensors"] if t["bytes"] == scores_bytes]
    shapes = {t["name"]: t.get("shape", []) for t in program["graph"]["tensors"]}
    linears = [o["name"] for o in ops if o["op"] == "MatMul" and len(shapes[o["inputs"][0]]) >= 3 and
               len(shapes[o["inputs"][1]]) == 2]
    expect(err < 1e-5 and len(flash) == 1 and causal == [model == "gpt2"] and not square and not in_dram and
           not linears, f"{model} -O2 (seq {s}): max error / max(|torch|, 1) {err:.3g}, flash ops {len(flash)} "
           f"(causal {causal}), tensors [.., {s}, {s}] {square}, DRAM tensors of {scores_bytes} B {in_dram}, "
           f"3-D linear MatMuls left {linears}")
    _, o0, _ = run(model_dir, os.path.join(work, model + "_O0"), ["-O0"], False)
    _, o2, _ = run(model_dir, os.path.join(work, model + "_O2_no_attention"), ["--disable-pass", "fuse-attention"], False)
    expect(o0.tobytes() == o2.tobytes(), f"{model}: -O2 without fuse-attention gives -O0's bits")
check.finish()
