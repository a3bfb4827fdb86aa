#!/usr/bin/env python3
"""Portable programs end to end (docs/compiler.md, "Portable programs: re-blocking"): graphs
compiled for one config (or for the portable target, without --config) run on others with
kpu-sim --check; where the tiles do not fit, the binder re-blocks them (kpu-sim -v says so).
Each run's outputs must equal NumPy's (float64) within the tolerance, and be bit for bit the
outputs of the graph compiled for the config it runs on: re-blocking keeps every sum's order. The full 5 x 5 matrix: scripts/portability-matrix.

  portable_check.py BIN_DIR SOURCE_DIR WORK_DIR
"""
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))
from graph_json import op, tensor  # noqa: E402

BIN, SRC, WORK = sys.argv[1:4]
TOLERANCE = 1e-4
failures = cases = 0


def compile_for(name, graph, target):
    """Writes the graph and compiles it for config `target` (None: the portable target)."""
    import json
    case = os.path.join(WORK, name)
    os.makedirs(case, exist_ok=True)
    with open(os.path.join(case, "graph.json"), "w") as f:
        json.dump(graph, f)
    kpu = os.path.join(case, "%s.kpu" % (target or "portable"))
    if os.path.exists(kpu):
        return kpu
    cmd = [os.path.join(BIN, "kpu-compile"), os.path.join(case, "graph.json"), "-o", kpu]
    if target:
        cmd += ["--config", os.path.join(SRC, "configs", target + ".json")]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return kpu


def simulate(kpu, config, inputs, output):
    """Runs `kpu` on `config` with --check -v; returns (output array, raw bytes, stdout)."""
    run_dir = kpu + "." + config
    os.makedirs(os.path.join(run_dir, "in"), exist_ok=True)
    for name, value in inputs.items():
        np.save(os.path.join(run_dir, "in", name + ".npy"), value.astype(np.float32))
    r = subprocess.run([os.path.join(BIN, "kpu-sim"), "--config", os.path.join(SRC, "configs", config + ".json"),
                        "--program", kpu, "--inputs", os.path.join(run_dir, "in"), "--outputs",
                        os.path.join(run_dir, "out"), "--check", "-v"], stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit("%s on %s: kpu-sim exited %d:\n%s" % (kpu, config, r.returncode, r.stdout))
    path = os.path.join(run_dir, "out", output + ".npy")
    with open(path, "rb") as f:
        raw = f.read()
    return np.load(path), raw, r.stdout


def check(name, graph, inputs, want_fn, output, target, runs_on, expect_reblocked):
    """`graph` compiled for `target` runs on each of `runs_on`: NumPy, the bits of the program
    compiled for that config (the vector engine's sums depend on its lanes, never on the
    tiles), re-blocking as expected."""
    global failures, cases
    kpu = compile_for(name, graph, target)
    want = want_fn({k: v.astype(np.float32).astype(np.float64) for k, v in inputs.items()})
    for config in runs_on:
        cases += 1
        _, home_bits, _ = simulate(compile_for(name, graph, config), config, inputs, output)
        got, bits, out = simulate(kpu, config, inputs, output)
        err = np.abs(got.astype(np.float64) - want).max() / max(np.abs(want).max(), 1.0)
        reblocked = " re-blocked to " in out
        ok = err < TOLERANCE and bits == home_bits and reblocked == expect_reblocked
        print("%s compiled for %s on %s: error %.3g, %s, %s -> %s" % (
            name, target or "portable", config, err,
            "bits of its program for " + config if bits == home_bits else "BITS DIFFER",
            "re-blocked" if reblocked else "as compiled", "ok" if ok else "FAIL"))
        if not ok:
            failures += 1
            print(out)


rng = np.random.default_rng(5)

# The seed-0 matmul, compiled for datacenter, runs on minimal (and edge) re-blocked.
mm = {"op": "matmul", "A": {"shape": [1024, 512]}, "B": {"shape": [512, 1024]}, "C": {"shape": [1024, 1024]}}
a, b = rng.uniform(-1, 1, (1024, 512)), rng.uniform(-1, 1, (512, 1024))
check("matmul", mm, {"A": a, "B": b}, lambda t: t["A"] @ t["B"], "C", "datacenter", ["minimal", "edge"], True)

# An MLP with ragged sides and a bias, compiled for t64, on minimal; and for the portable
# target, on every shipped config as it is.
graph = {"tensors": [tensor("x", [100, 300], "input"), tensor("W1", [300, 520], "input"), tensor("b1", [520], "input"),
                     tensor("h", None), tensor("W2", [520, 130], "input"), tensor("y", None, "output")],
         "ops": [{"op": "matmul", "name": "fc1", "A": "x", "B": "W1", "bias": "b1", "activation": "relu", "C": "h"},
                 {"op": "matmul", "name": "fc2", "A": "h", "B": "W2", "C": "y"}]}
inputs = {"x": rng.uniform(-1, 1, (100, 300)), "W1": rng.uniform(-1, 1, (300, 520)) / 10,
          "b1": rng.uniform(-1, 1, 520), "W2": rng.uniform(-1, 1, (520, 130)) / 10}
mlp = lambda t: np.maximum(t["x"] @ t["W1"] + t["b1"], 0) @ t["W2"]  # noqa: E731
check("mlp", graph, inputs, mlp, "y", "roofline-ref", ["minimal"], True)
check("mlp_portable", graph, inputs, mlp, "y", None, ["minimal", "edge", "datacenter", "roofline-ref"], False)

# A softmax (row tiles) and a Concat (pieces), compiled for edge, on minimal.
graph = {"tensors": [tensor("x", [512, 2048], "input"), tensor("z", [512, 2048], "input"), tensor("s", None),
                     tensor("y", None, "output")],
         "ops": [op("Softmax", "softmax", ["x"], ["s"]), op("Concat", "concat", ["s", "z"], ["y"], axis=0)]}
inputs = {"x": rng.uniform(-4, 4, (512, 2048)), "z": rng.uniform(-1, 1, (512, 2048))}


def softmax_concat(t):
    e = np.exp(t["x"] - t["x"].max(axis=1, keepdims=True))
    return np.concatenate([e / e.sum(axis=1, keepdims=True), t["z"]], axis=0)


check("softmax_concat", graph, inputs, softmax_concat, "y", "edge", ["minimal"], True)

print("%d passed, %d failed" % (cases - failures, failures))
raise SystemExit(1 if failures else 0)
