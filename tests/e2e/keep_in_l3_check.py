#!/usr/bin/python3
"""keep-in-l3 end to end (docs/compiler.md, "Memory planning"): each case compiled at -O0, at
-O3 and at -O3 without keep-in-l3, all simulated by kpu-sim on t64 with the same inputs.

  keep_in_l3_check.py BIN_DIR SOURCE_DIR WORK_DIR

Checks, per case:
  - the -O3 outputs are byte for byte -O0's (fuse-attention off: its online softmax sums in
    another order; keep-in-l3 moves bytes, it computes nothing);
  - the simulated DRAM bytes at -O3 are those without keep-in-l3 less, per L3-resident
    tensor (kpu-compile -v lists them), its bytes written once plus what its readers read:
    a vector op reads it whole, a matmul as A reads its task's rows by all of K, per task
    (from the .kpu's tiles and tasks, not from the compiler's closed form);
  - the .kpu's hints are the simulated DRAM bytes, and the simulated DRAM high water is the
    plan's peak_dram;
  - a case where nothing fits (rows too long for any tile's free L3) compiles to the same
    program with and without keep-in-l3.
"""
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))
import graph_json  # noqa: E402
from graph_json import op, tensor  # noqa: E402

bin_dir, source_dir, work = sys.argv[1:4]
config = os.path.join(source_dir, "configs", "t64.json")
problems = []  # what failed, said at the end


def fail(message):
    problems.append(message)
    print("FAIL: " + message)


def residual_stack(blocks, width, batch):
    """x -> blocks of (h = relu(r @ W + b), r' = h + r) -> y: matmul and vector intermediates."""
    names = ["x"] + [f"r{i}" for i in range(blocks - 1)] + ["y"]
    tensors = [tensor("x", [batch, width], "input"), tensor("y", None, "output")]
    tensors += [tensor(n) for n in names[1:-1]] + [tensor(f"h{i}") for i in range(blocks)]
    tensors += [tensor(f"W{i}", [width, width], "constant") for i in range(blocks)]
    tensors += [tensor(f"b{i}", [width], "constant") for i in range(blocks)]
    ops = []
    for i, (r, out) in enumerate(zip(names, names[1:])):
        ops += [{"op": "matmul", "name": f"fc{i}", "A": r, "B": f"W{i}", "bias": f"b{i}", "activation": "relu",
                 "C": f"h{i}"}, op("Add", f"add{i}", [f"h{i}", r], [out])]
    return {"tensors": tensors, "ops": ops}


def scaled_chain(length, rows, cols):
    """x -> Relu -> Mul by itself -> Relu ...: vector ops only, each intermediate read once or twice."""
    names = ["x"] + [f"v{i}" for i in range(length - 1)] + ["y"]
    kinds = [("Relu", 1), ("Mul", 2)]
    return {"tensors": [tensor("x", [rows, cols], "input"), tensor("y", None, "output")] +
            [tensor(n) for n in names[1:-1]],
            "ops": [op(kinds[i % 2][0], f"op{i}", [a] * kinds[i % 2][1], [b])
                    for i, (a, b) in enumerate(zip(names, names[1:]))]}


def compile_and_run(case, graph_path, options, inputs_dir, simulate=True):
    """.kpu, kpu-compile -v's text and the stats of one compilation, simulated (unless not
    `simulate`: then no stats); the outputs' directory."""
    out = os.path.join(case, "_".join(o.lstrip("-") for o in options) or "default")
    os.makedirs(out, exist_ok=True)
    kpu = os.path.join(out, "p.kpu")
    text = subprocess.run([os.path.join(bin_dir, "kpu-compile"), graph_path, "-o", kpu, "--config", config, "-v"]
                          + options, check=True, stdout=subprocess.PIPE, text=True).stdout
    with open(kpu) as f:
        program = json.load(f)
    if not simulate:
        return program, text, None, None
    subprocess.run([os.path.join(bin_dir, "kpu-sim"), "--config", config, "--program", kpu, "--outputs",
                    os.path.join(out, "out"), "--stats", os.path.join(out, "stats.json"), "--inputs", inputs_dir],
                   check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "stats.json")) as f:
        stats = json.load(f)
    return program, text, stats, os.path.join(out, "out")


def resident_tensors(text):
    """The tensors kpu-compile -v lists as kept in L3: '  NAME (intermediate, N bytes): L3 [...'."""
    names = []
    for line in text.splitlines():
        if line.startswith("  ") and "): L3 [" in line:
            names.append(line.split()[0])
    return names


def saved_bytes(program, names):
    """DRAM bytes the residents' STOREs and LOADs would move: each written once, read whole by a
    vector op and, by a matmul, per task its rows (the task's C rows) by all of K as A."""
    shapes = {t["name"]: t["shape"] for t in program["graph"]["tensors"] if "shape" in t}
    ops = {o["name"]: o for o in program["graph"]["ops"]}
    total = 0
    for name in names:
        elements = int(np.prod(shapes[name]))
        total += 4 * elements  # the writer's STOREs
        for k, kernel in enumerate(program["kernels"]):
            o = ops[kernel["op"]]
            if o["op"] == "matmul" and o["A"] == name:
                m, kk = shapes[name]
                tm = kernel["tile"][0]
                for task in program["tasks"]:
                    if task["kernel"] == k:
                        r0, r1 = task["rows"]
                        total += 4 * (min(m, r1 * tm) - r0 * tm) * kk
            elif o["op"] != "matmul" and name in o.get("inputs", []):
                total += 4 * elements  # a vector op reads its operand once (twice named: one LOAD per use)
                total += 4 * elements * (o["inputs"].count(name) - 1)
    return total


def check_case(name, graph, inputs, expect_resident=True):
    case = os.path.join(work, name)
    inputs_dir, graph_path = os.path.join(case, "in"), os.path.join(case, name + ".json")
    os.makedirs(inputs_dir, exist_ok=True)
    graph_json.write(graph, graph_path)
    for t in inputs:
        np.save(os.path.join(inputs_dir, t + ".npy"), np.asarray(inputs[t], dtype=np.float32))
    p2, text2, s2, out2 = compile_and_run(case, graph_path, ["-O3", "--disable-pass", "fuse-attention"], inputs_dir,
                                          expect_resident)
    p1, _, s1, _ = compile_and_run(case, graph_path, ["-O3", "--disable-pass", "fuse-attention", "--disable-pass",
                                                      "keep-in-l3"], inputs_dir, expect_resident)
    names = resident_tensors(text2)
    if not expect_resident:
        if names or "keep-in-l3" in p2.get("passes", []):
            fail(f"{name}: keep-in-l3 kept {names} where nothing fits")
        p1.pop("passes", None), p2.pop("passes", None)
        if p1 != p2:
            fail(f"{name}: the program changed with keep-in-l3 though nothing fits")
        print(f"{name}: nothing fits; the program is the same with and without keep-in-l3")
        return
    if not names or "keep-in-l3" not in p2.get("passes", []):
        fail(f"{name}: keep-in-l3 kept nothing")
    _, _, s0, out0 = compile_and_run(case, graph_path, ["-O0"], inputs_dir)
    for f in sorted(os.listdir(out0)):
        with open(os.path.join(out0, f), "rb") as a, open(os.path.join(out2, f), "rb") as b:
            if a.read() != b.read():
                fail(f"{name}: output {f} differs between -O0 and -O3")
    dram = lambda s: s["dram_reads_bytes"] + s["dram_writes_bytes"]  # noqa: E731
    saved = saved_bytes(p2, names)
    if dram(s2) != dram(s1) - saved:
        fail(f"{name}: DRAM bytes {dram(s2)} with keep-in-l3, expected {dram(s1)} - {saved} = {dram(s1) - saved}")
    hints = p2["hints"]["dram_read_bytes"] + p2["hints"]["dram_write_bytes"]
    if hints != dram(s2):
        fail(f"{name}: the hints' DRAM bytes {hints} but the simulation moved {dram(s2)}")
    high, planned = s2["memory_high_water_bytes"]["dram"], p2["memory"]["peak_dram"]
    if high != planned:
        fail(f"{name}: simulated DRAM high water {high}, planned peak {planned}")
    print(f"{name}: {len(names)} tensors in L3; DRAM bytes -O0 {dram(s0)}, -O3 without keep-in-l3 {dram(s1)}, "
          f"with {dram(s2)} (= less {saved}); cycles {s0['total_cycles']}, {s1['total_cycles']}, "
          f"{s2['total_cycles']}; peak DRAM {planned}; outputs byte-identical")


rng = np.random.default_rng(5)
WIDTH, BATCH, BLOCKS = 256, 64, 6
# Weights scaled by 1/sqrt(WIDTH) and small biases: the residual sums stay near 1.
stack = dict({"x": rng.standard_normal((BATCH, WIDTH))},
             **{f"W{i}": rng.standard_normal((WIDTH, WIDTH)) / np.sqrt(WIDTH) for i in range(BLOCKS)},
             **{f"b{i}": 0.1 * rng.standard_normal(WIDTH) for i in range(BLOCKS)})
check_case("residual_stack", residual_stack(BLOCKS, WIDTH, BATCH), stack)
check_case("scaled_chain", scaled_chain(7, 128, 512), {"x": rng.standard_normal((128, 512))})
# Rows of 2 MiB: a band of one row is more than a tile's L3 (compiled, not simulated).
check_case("too_long_rows", scaled_chain(3, 64, 512 * 1024), {}, expect_resident=False)

print("keep-in-l3: " + ("ok" if not problems else f"{len(problems)} failures"))
sys.exit(1 if problems else 0)
