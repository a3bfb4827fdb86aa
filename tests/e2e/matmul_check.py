#!/usr/bin/env python3
"""Batched MatMul (numpy batch broadcasting) and Gemm (transposed operands, alpha, beta) end to end:
kpu-compile + kpu-sim --check (the C++ reference) and, independently, against NumPy's matmul
in float64, on edge and t64: every broadcasting corner, rank-1 A, odd and prime sizes,
matrices ragged against the 16x16 fabric, K in several passes, a batched chain, and
attention as Transpose, batched Q @ K^T, scale, Softmax and batched P @ V (12 heads of 128).
Tolerance: max |got - want| / (sqrt(K) max(|want|, 1)) below 1e-5 (a float32 sum of K products
of values of order one).
Usage: matmul_check.py BUILD_BIN_DIR SOURCE_DIR WORK_DIR"""
import math
import os
import sys

import numpy as np

from kpu_run import compile_and_simulate

bin_dir, source_dir, work = sys.argv[1:4]
os.makedirs(work, exist_ok=True)
rng = np.random.default_rng(2929)


def declare(name, shape=None, role="intermediate"):
    t = {"name": name, "dtype": "float32", "role": role}
    if shape is not None:
        t["shape"] = list(shape)
    return t


def matmul(a, b):
    """y = MatMul(a, b) of those shapes."""
    graph = {"tensors": [declare("a", a, "input"), declare("b", b, "constant"), declare("y", role="output")],
             "ops": [{"op": "MatMul", "name": "mm", "inputs": ["a", "b"], "outputs": ["y"]}]}
    return graph, {"a": a, "b": b}, lambda t: t["a"] @ t["b"], a[-1]


def gemm(a, b, c=None, **attributes):
    """y = Gemm(a, b (, c)) with ONNX's attributes."""
    graph = {"tensors": [declare("a", a, "input"), declare("b", b, "constant")] +
             ([declare("c", c, "constant")] if c else []) + [declare("y", role="output")],
             "ops": [{"op": "Gemm", "name": "g", "inputs": ["a", "b"] + (["c"] if c else []), "outputs": ["y"],
                      "attributes": attributes}]}
    ta, tb = attributes.get("transA", 0), attributes.get("transB", 0)
    alpha, beta = attributes.get("alpha", 1.0), attributes.get("beta", 1.0)

    def want(t):
        y = alpha * ((t["a"].T if ta else t["a"]) @ (t["b"].T if tb else t["b"]))
        return y + beta * t["c"] if c else y
    return graph, {"a": a, "b": b, **({"c": c} if c else {})}, want, a[0] if ta else a[1]


def chain(x, w, v):
    """y = (x @ w) @ v with the product in DRAM: a batched consumer of a batched producer."""
    graph = {"tensors": [declare("x", x, "input"), declare("w", w, "constant"), declare("h"),
                         declare("v", v, "constant"), declare("y", role="output")],
             "ops": [{"op": "MatMul", "name": "p", "inputs": ["x", "w"], "outputs": ["h"]},
                     {"op": "MatMul", "name": "c", "inputs": ["h", "v"], "outputs": ["y"]}]}
    return graph, {"x": x, "w": w, "v": v}, lambda t: (t["x"] @ t["w"]) @ t["v"], x[-1] * w[-1]


def attention(q, k, v):
    """softmax(Q K^T / sqrt(d)) V per head: Transpose(K), the batched Q @ K^T, a scale, Softmax,
    the batched P @ V (the form the Attention op decomposes into)."""
    graph = {"tensors": [declare("q", q, "input"), declare("k", k, "input"), declare("v", v, "input"),
                         declare("kt"), declare("s"), {**declare("scale", (1,), "constant"), "value": [q[-1] ** -0.5]},
                         declare("ss"), declare("p"), declare("o", role="output")],
             "ops": [{"op": "Transpose", "name": "tk", "inputs": ["k"], "outputs": ["kt"],
                      "attributes": {"perm": list(range(len(k) - 2)) + [len(k) - 1, len(k) - 2]}},
                     {"op": "MatMul", "name": "qk", "inputs": ["q", "kt"], "outputs": ["s"]},
                     {"op": "Mul", "name": "sc", "inputs": ["s", "scale"], "outputs": ["ss"]},
                     {"op": "Softmax", "name": "sm", "inputs": ["ss"], "outputs": ["p"], "attributes": {"axis": -1}},
                     {"op": "MatMul", "name": "pv", "inputs": ["p", "v"], "outputs": ["o"]}]}

    def want(t):
        s = t["q"] @ np.swapaxes(t["k"], -1, -2) * q[-1] ** -0.5
        e = np.exp(s - s.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True) @ t["v"]
    return graph, {"q": q, "k": k, "v": v}, want, k[-2]


cases = {
    "batch_2x3": matmul((2, 3, 5, 7), (2, 3, 7, 4)),
    "broadcast_both": matmul((5, 1, 7, 3), (4, 3, 2)),
    "a_rank2_b_batched": matmul((3, 7), (2, 7, 5)),
    "b_shared_folds": matmul((2, 4, 6), (6, 5)),
    "b_ones_folds": matmul((3, 1, 9, 11), (1, 1, 11, 13)),
    "a_rank1": matmul((7,), (3, 7, 5)),
    "primes_ragged": matmul((3, 37, 41), (3, 41, 29)),
    "one_by_one": matmul((4, 1, 1), (4, 1, 1)),
    "long_k_passes": matmul((2, 17, 4099), (2, 4099, 19)),
    "q_kt_12_heads": matmul((1, 12, 128, 64), (1, 12, 64, 128)),
    "p_v_12_heads": matmul((1, 12, 128, 128), (1, 12, 128, 64)),
    "chain": chain((3, 50, 24), (3, 24, 40), (3, 40, 17)),
    "attention_12_heads": attention((1, 12, 128, 64), (1, 12, 128, 64), (1, 12, 128, 64)),
    "attention_ragged": attention((2, 3, 37, 24), (2, 3, 41, 24), (2, 3, 41, 19)),
    "gemm_transB_linear": gemm((33, 70), (45, 70), (45,), transB=1),
    "gemm_transA": gemm((70, 33), (70, 45), transA=1),
    "gemm_both": gemm((61, 19), (23, 61), (23,), transA=1, transB=1),
    "gemm_alpha_beta": gemm((29, 53), (31, 53), (31,), transB=1, alpha=0.375, beta=-1.5),
    "gemm_alpha_no_c": gemm((29, 53), (53, 31), alpha=3.0),
    "gemm_alpha_k_passes": gemm((17, 4099), (19, 4099), (19,), transB=1, alpha=-0.5, beta=2.0),
}
failures = 0
for config in ("edge", "t64"):
    for name, (graph, shapes, want_fn, k) in cases.items():
        inputs = {n: rng.standard_normal(s) for n, s in shapes.items()}
        out = graph["tensors"][-1]["name"]
        got = compile_and_simulate(bin_dir, source_dir, os.path.join(work, name + "_" + config), graph, config,
                                   inputs, out, check=True).astype(np.float64)
        want = want_fn({n: v.astype(np.float32).astype(np.float64) for n, v in inputs.items()})
        err = np.abs(got - want).max() / (math.sqrt(k) * max(np.abs(want).max(), 1.0))
        ok = got.shape == want.shape and err < 1e-5
        failures += not ok
        print(f"{name} on {config}: {got.shape} vs numpy {want.shape}, error {err:.3g} -> {'ok' if ok else 'FAIL'}")
print(f"{2 * len(cases) - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
