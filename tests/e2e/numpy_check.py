#!/usr/bin/env python3
"""kpu-compile + kpu-sim against NumPy: random inputs in, .npy outputs out, NumPy (float64)
computes the expected result. Independent of the C++ reference used by --check.
Usage: numpy_check.py BUILD_BIN_DIR SOURCE_DIR WORK_DIR"""
import json
import os
import sys

import numpy as np

from kpu_run import compile_and_simulate

bin_dir, source_dir, work = sys.argv[1:4]
os.makedirs(work, exist_ok=True)
rng = np.random.default_rng(2026)
failures = 0


def run(graph, config, inputs, expected_fn, name, output="C"):
    global failures
    got = compile_and_simulate(bin_dir, source_dir, os.path.join(work, name), graph, config, inputs, output)
    want = expected_fn({k: v.astype(np.float32).astype(np.float64) for k, v in inputs.items()})
    scale = np.abs(want).max() + 1e-30
    err = np.abs(got.astype(np.float64) - want).max() / scale
    ok = got.shape == want.shape and err < 1e-5
    print(f"{name} on {config}: shape {got.shape}, max error / max |ref| = {err:.3g} -> {'ok' if ok else 'FAIL'}")
    failures += 0 if ok else 1


def matmul(m, n, k):
    return {"op": "matmul", "A": {"shape": [m, k], "dtype": "float32"}, "B": {"shape": [k, n], "dtype": "float32"},
            "C": {"shape": [m, n], "dtype": "float32"}}


run(matmul(200, 136, 72), "minimal", {"A": rng.standard_normal((200, 72)), "B": rng.standard_normal((72, 136))},
    lambda t: t["A"] @ t["B"], "matmul_ragged")
run(matmul(300, 260, 128), "edge", {"A": rng.standard_normal((300, 128)), "B": rng.standard_normal((128, 260))},
    lambda t: t["A"] @ t["B"], "matmul_edge")
with open(os.path.join(source_dir, "examples", "mlp.json")) as f:
    mlp = json.load(f)
shapes = {t["name"]: t.get("shape") for t in mlp["tensors"]}
mlp_inputs = {n: rng.standard_normal(s) for n, s in shapes.items() if s}
run(mlp, "minimal", mlp_inputs,
    lambda t: np.maximum(t["x"] @ t["W1"] + t["b1"], 0) @ t["W2"] + t["b2"], "mlp", output="y")
print(f"{3 - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
