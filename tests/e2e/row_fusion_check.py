#!/usr/bin/env python3
"""fuse-rows end to end: a norm or softmax with its elementwise producers and consumers
(BERT's post-LN Add + LayerNormalization, a scaled and masked Softmax, an affine LayerNorm then
Gelu, RMSNormalization over ragged rows and columns) compiled -O0 (one kernel per op, the
intermediates in DRAM) and -O2 (one vector_chain), each through kpu-sim --check and against
NumPy in float64, on edge and t64. The -O2 output must be the -O0 bits (every VECTOR command is
the unfused one), kpu-sim's DRAM bytes must equal the hints and the closed form (x and the row
inputs once, each vector once per task, y once), the bytes saved against -O0 exactly the
intermediates' writes and reads (and the vectors' loads of the other ops' tasks), and
--disable-pass fuse-rows gives -O0's ops and kernels. A chain compiled for edge runs re-blocked
on minimal with the same bits.
Usage: row_fusion_check.py BUILD_BIN_DIR SOURCE_DIR WORK_DIR"""
import json
import math
import os
import subprocess
import sys

import numpy as np

from kpu_run import Checker, op, tensor

bin_dir, source_dir, work = sys.argv[1:4]
check = Checker(bin_dir, source_dir, work, tolerance=1e-5)
rng = np.random.default_rng(33)
failures = 0


def layer_norm(x, g, b=None, eps=1e-5):
    d = x - x.mean(axis=-1, keepdims=True)
    y = d / np.sqrt((d * d).mean(axis=-1, keepdims=True) + eps) * g
    return y + b if b is not None else y


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def graph(inputs, ops):
    """inputs: (name, shape); ops: (kind, name, inputs, output[, attributes]); the last op's
    output is the graph's."""
    tensors = [tensor(n, list(s), "input") for n, s in inputs]
    tensors += [tensor(o[3], None, "output" if i + 1 == len(ops) else None) for i, o in enumerate(ops)]
    return {"tensors": tensors, "ops": [op(o[0], o[1], o[2], [o[3]], **(o[4] if len(o) > 4 else {})) for o in ops]}


def cases():
    """(name, graph, inputs, numpy reference, steps, row inputs, vector elements per task)."""
    x3 = (2, 37, 96)
    g, b = rng.standard_normal(96), rng.standard_normal(96)
    yield ("add_layernorm", graph([("x", x3), ("r", x3), ("g", (96,)), ("b", (96,))],
                                  [("Add", "add", ["x", "r"], "s"), ("LayerNormalization", "ln", ["s", "g", "b"], "y")]),
           {"x": rng.standard_normal(x3), "r": rng.standard_normal(x3), "g": g, "b": b},
           lambda t: layer_norm(t["x"] + t["r"], t["g"], t["b"]), 2, 1, 2 * 96)
    x4 = (2, 3, 19, 23)
    yield ("mul_add_softmax", graph([("x", x4), ("scale", (1,)), ("mask", (23,))],
                                    [("Mul", "mul", ["x", "scale"], "s"), ("Add", "add", ["s", "mask"], "m"),
                                     ("Softmax", "sm", ["m"], "y")]),
           {"x": rng.standard_normal(x4) * 3, "scale": np.array([0.37]), "mask": rng.standard_normal(23)},
           lambda t: softmax(t["x"] * t["scale"] + t["mask"]), 3, 0, 1 + 23)
    x2 = (64, 80)
    yield ("layernorm_mul_add_gelu", graph([("x", x2), ("one", (80,)), ("g", (80,)), ("b", (80,))],
                                           [("LayerNormalization", "ln", ["x", "one"], "n"), ("Mul", "mul", ["n", "g"], "s"),
                                            ("Add", "add", ["s", "b"], "t"), ("Gelu", "gelu", ["t"], "y")]),
           {"x": rng.standard_normal(x2), "one": np.ones(80), "g": rng.standard_normal(80), "b": rng.standard_normal(80)},
           lambda t: gelu(layer_norm(t["x"], t["one"]) * t["g"] + t["b"]), 4, 0, 3 * 80)
    xr = (131, 37)  # ragged: no row tile or column count divides it
    yield ("ragged_add_rmsnorm_silu", graph([("x", xr), ("r", xr), ("w", (37,))],
                                            [("Add", "add", ["x", "r"], "s"), ("RMSNormalization", "rms", ["s", "w"], "n"),
                                             ("Silu", "silu", ["n"], "y")]),
           {"x": rng.standard_normal(xr), "r": rng.standard_normal(xr), "w": rng.standard_normal(37)},
           lambda t: (lambda n: n / (1 + np.exp(-n)))((t["x"] + t["r"]) / np.sqrt(
               ((t["x"] + t["r"]) ** 2).mean(axis=-1, keepdims=True) + 1e-5) * t["w"]), 3, 1, 37)


def load(case, name="y"):
    return np.load(os.path.join(case, "out", name + ".npy"))


def program(case):
    with open(os.path.join(case, "p.kpu")) as f:
        return json.load(f)


def compile_only(case, g, config, args):
    os.makedirs(case, exist_ok=True)
    with open(os.path.join(case, "graph.json"), "w") as f:
        json.dump(g, f)
    subprocess.run([os.path.join(bin_dir, "kpu-compile"), os.path.join(case, "graph.json"), "-o",
                    os.path.join(case, "p.kpu"), "--config", os.path.join(source_dir, "configs", config + ".json")] + args,
                   check=True, stdout=subprocess.DEVNULL)
    return program(case)


stats = ["--stats", "{case}/stats.json"]
for name, g, inputs, want, steps, row_inputs, vectors in cases():
    for config in ("edge", "t64"):
        o0 = check.run(g, config, inputs, want, name + "_O0", "y", compile_args=["-O0"], sim_args=stats)
        o2 = check.run(g, config, inputs, want, name + "_O2", "y", sim_args=stats)
        p0, p2 = program(o0), program(o2)
        with open(os.path.join(o2, "stats.json")) as f:
            measured = json.load(f)
        kinds = [o["op"] for o in p2["graph"]["ops"]]
        same_bits = np.array_equal(load(o2).view(np.uint32), load(o0).view(np.uint32))
        hints = p2["hints"]
        dram_ok = (hints["dram_read_bytes"], hints["dram_write_bytes"]) == \
            (measured["dram_reads_bytes"], measured["dram_writes_bytes"])
        elements = int(np.prod(inputs["x"].shape))
        tasks = len(p2["tasks"])
        closed_ok = (hints["dram_read_bytes"], hints["dram_write_bytes"]) == \
            (4 * (elements * (1 + row_inputs) + tasks * vectors), 4 * elements)
        # -O0: each op's vectors (inputs smaller than x) once per task of its kernel.
        sizes = {t["name"]: int(np.prod(t["shape"])) for t in p0["graph"]["tensors"]}
        o0_vectors = 0
        for k, kernel in enumerate(p0["kernels"]):
            graph_op = next(o for o in p0["graph"]["ops"] if o["name"] == kernel["op"])
            per_task = sum(sizes[i] for i in graph_op["inputs"] if sizes[i] < elements)
            o0_vectors += per_task * sum(1 for t in p0["tasks"] if t["kernel"] == k)
        intermediates = (steps - 1) * elements
        saved_ok = (p0["hints"]["dram_read_bytes"] - hints["dram_read_bytes"],
                    p0["hints"]["dram_write_bytes"] - hints["dram_write_bytes"]) == \
            (4 * (intermediates + o0_vectors - tasks * vectors), 4 * intermediates)
        off = compile_only(os.path.join(work, name + "_off_" + config), g, config, ["--disable-pass", "fuse-rows"])
        switch_ok = off["graph"] == p0["graph"] and off["kernels"] == p0["kernels"]
        ok = kinds == ["vector_chain"] and same_bits and dram_ok and closed_ok and saved_ok and switch_ok
        print(f"  {name} on {config}: ops {kinds}, same bits as -O0: {same_bits}, DRAM hints "
              f"{hints['dram_read_bytes']} + {hints['dram_write_bytes']} simulated {measured['dram_reads_bytes']} + "
              f"{measured['dram_writes_bytes']}, closed form {closed_ok}, saved = intermediates {saved_ok}, "
              f"--disable-pass = -O0 {switch_ok} -> {'ok' if ok else 'FAIL'}")
        failures += 0 if ok else 1

# Re-blocking: rows of 2048 filling edge's L2 run on minimal in smaller row tiles, with the bits
# of -O0 compiled for minimal (the engine's row sums follow the config it runs on).
x = (256, 2048)
g = graph([("x", x), ("r", x), ("w", (2048,))],
          [("Add", "add", ["x", "r"], "s"), ("RMSNormalization", "rms", ["s", "w"], "y")])
inputs = {"x": rng.standard_normal(x), "r": rng.standard_normal(x), "w": rng.standard_normal(2048)}
o0 = check.run(g, "minimal", inputs, lambda t: (t["x"] + t["r"]) / np.sqrt(((t["x"] + t["r"]) ** 2).mean(
    axis=-1, keepdims=True) + 1e-5) * t["w"], "reblock_O0", "y", compile_args=["-O0"])
case = os.path.join(work, "reblock_O2_edge")
compile_only(case, g, "edge", [])
run = subprocess.run([os.path.join(bin_dir, "kpu-sim"), "--config", os.path.join(source_dir, "configs", "minimal.json"),
                      "--program", os.path.join(case, "p.kpu"), "--inputs", os.path.join(o0, "in"), "--outputs",
                      os.path.join(case, "out"), "--check", "-v"], capture_output=True, text=True)
reblocked = "re-blocked" in run.stdout
same_bits = run.returncode == 0 and np.array_equal(load(case).view(np.uint32), load(o0).view(np.uint32))
ok = reblocked and same_bits and [o["op"] for o in program(case)["graph"]["ops"]] == ["vector_chain"]
print(f"  reblock: edge's chain on minimal, re-blocked {reblocked}, same bits as -O0 on minimal {same_bits} -> "
      f"{'ok' if ok else 'FAIL'}")
failures += 0 if ok else 1

check.failures += failures
check.finish()
