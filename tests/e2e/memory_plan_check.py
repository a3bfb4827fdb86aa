#!/usr/bin/env python3
"""Memory planning (docs/compiler.md, "Memory planning") end to end on t64: each graph compiled
at -O0 and at -O2 (plan-memory), both run on kpu-sim with the same inputs and without --check
(which runs a program without its reuse), and
  - the outputs byte-identical between -O0 and -O2 (reuse corrupts nothing: on t64 the tasks
    of independent ops and of one op's tile grid run side by side on 64 compute tiles),
  - the simulated DRAM high-water mark (stats' memory_high_water_bytes.dram) equal to the
    planned peak DRAM (the .kpu's memory.peak_dram) at -O2, and to the sum of the tensors'
    ranges at -O0 (one range per tensor, each from an interleave boundary),
  - for a 20-layer MLP (width 256, batch 64): the peak at -O2 at most two activations plus the
    weights, far below the sum of all its intermediates;
  - the ResNet-18 basic block, the BERT-base layer and the GPT-2 block of examples/.
Usage: memory_plan_check.py BUILD_BIN_DIR SOURCE_DIR WORK_DIR"""
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))
from graph_json import op, tensor  # noqa: E402

bin_dir, source_dir, work = sys.argv[1:4]
config = os.path.join(source_dir, "configs", "t64.json")
GRANULE = json.load(open(config))["dram"]["interleave_bytes"]
failures = 0


def fail(message):
    global failures
    failures += 1
    print("FAIL: " + message)


def mlp(layers, width, batch):
    tensors = [tensor("x", [batch, width], "input")]
    ops = []
    for i in range(layers):
        a = "x" if i == 0 else f"h{i - 1}"
        y = "y" if i == layers - 1 else f"h{i}"
        tensors += [tensor(f"W{i}", [width, width], "constant"), tensor(f"b{i}", [width], "constant"),
                    tensor(y, None, "output" if y == "y" else "intermediate")]
        ops.append(op("Gemm", f"fc{i}", [a, f"W{i}", f"b{i}"], [y]))
        if i < layers - 1:  # a Relu between the layers: its own op, its own intermediate
            tensors.append(tensor(f"r{i}", None, "intermediate"))
            ops[-1]["outputs"] = [f"r{i}"]
            ops.append(op("Relu", f"relu{i}", [f"r{i}"], [y]))
    return {"tensors": tensors, "ops": ops}


def run(case, graph_path, options, inputs_dir):
    """Compiles with `options` (-O<level> first), binds (kpu-compile --bind) and simulates: the
    .kpu, the bound program, the stats and the outputs' directory."""
    out = os.path.join(case, options[0].lstrip("-"))
    os.makedirs(out, exist_ok=True)
    kpu, bound = os.path.join(out, "p.kpu"), os.path.join(out, "bound.json")
    subprocess.run([os.path.join(bin_dir, "kpu-compile"), graph_path, "-o", kpu, "--config", config] + options,
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([os.path.join(bin_dir, "kpu-compile"), "--bind", "--config", config, kpu, "-o", bound],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([os.path.join(bin_dir, "kpu-sim"), "--config", config, "--program", kpu, "--outputs",
                    os.path.join(out, "out"), "--stats", os.path.join(out, "stats.json"), "--inputs", inputs_dir],
                   check=True, stdout=subprocess.DEVNULL)
    result = []
    for path in (kpu, bound, os.path.join(out, "stats.json")):
        with open(path) as f:
            result.append(json.load(f))
    return result + [os.path.join(out, "out")]


def check_case(name, graph, inputs):
    """Runs `graph` at -O0 and -O2 and checks them; returns the -O2 program and its simulated peak DRAM."""
    case = os.path.join(work, name)
    os.makedirs(os.path.join(case, "in"), exist_ok=True)
    graph_path = os.path.join(case, "graph.json")
    with open(graph_path, "w") as f:
        json.dump(graph, f)
    for t, value in inputs.items():
        np.save(os.path.join(case, "in", t + ".npy"), value.astype(np.float32))
    p0, b0, s0, out0 = run(case, graph_path, ["-O0"], os.path.join(case, "in"))
    # fuse-attention's online softmax sums in another order: off, so that the outputs can be
    # compared byte for byte (every other pass keeps -O0's bits).
    p2, b2, s2, out2 = run(case, graph_path, ["-O2", "--disable-pass", "fuse-attention"], os.path.join(case, "in"))
    if "plan-memory" in p0.get("passes", []) or "memory" in p0:
        fail(f"{name}: -O0 ran plan-memory")
    if "plan-memory" not in p2.get("passes", []):
        fail(f"{name}: -O2 did not run plan-memory")
    outputs = sorted(os.listdir(out0))
    for f in outputs:
        with open(os.path.join(out0, f), "rb") as a, open(os.path.join(out2, f), "rb") as b:
            if a.read() != b.read():
                fail(f"{name}: output {f} differs between -O0 and -O2")
    # The bound tensors' highest end: where the binder put them (views share their root's bytes).
    top0 = max(t["dram_addr"] + t["bytes"] for t in b0["tensors"])
    top2 = max(t["dram_addr"] + t["bytes"] for t in b2["tensors"])
    measured0 = s0["memory_high_water_bytes"]["dram"]
    measured2 = s2["memory_high_water_bytes"]["dram"]
    planned2 = p2["memory"]["peak_dram"]
    print(f"{name}: peak DRAM -O0 {measured0} simulated ({top0} bound), -O2 {planned2} planned, {top2} bound, "
          f"{measured2} simulated; outputs {', '.join(outputs)} byte-identical")
    if measured0 != top0:
        fail(f"{name}: -O0 DRAM high water {measured0} but the tensors end at {top0}")
    if not planned2 == top2 == measured2:
        fail(f"{name}: -O2 planned peak {planned2}, bound tensors' end {top2}, simulated high water {measured2}")
    if not planned2 < measured0:
        fail(f"{name}: the -O2 peak {planned2} is not below -O0's {measured0}")
    return p2, measured2


rng = np.random.default_rng(3)
# The MLP: each activation 64 x 256 floats.
LAYERS, WIDTH, BATCH = 20, 256, 64
inputs = {"x": rng.standard_normal((BATCH, WIDTH))}
for i in range(LAYERS):
    inputs[f"W{i}"] = rng.standard_normal((WIDTH, WIDTH)) / np.sqrt(WIDTH)
    inputs[f"b{i}"] = rng.standard_normal(WIDTH) * 0.1
program, peak = check_case("mlp20", mlp(LAYERS, WIDTH, BATCH), inputs)
activation = BATCH * WIDTH * 4
weights = LAYERS * (WIDTH * WIDTH + WIDTH) * 4
intermediates = (2 * LAYERS - 1) * activation
print(f"mlp20: weights {weights} + two activations {2 * activation} = {weights + 2 * activation}; "
      f"with every intermediate {weights + intermediates + 2 * activation}")
if program["memory"]["weights"] != weights:
    fail(f"mlp20: estimate_memory's weights {program['memory']['weights']}, expected {weights}")
if program["memory"]["activations"] != 2 * activation:
    fail(f"mlp20: estimate_memory's activations {program['memory']['activations']}, expected {2 * activation}")
if peak > weights + 2 * activation:
    fail(f"mlp20: peak DRAM {peak} is more than the weights and two activations, {weights + 2 * activation}")

# The examples (inputs from their generators).
for module, names in (("cnn_blocks", ["resnet18_basic_block"]), ("transformer_blocks", ["bert_base_layer",
                                                                                         "gpt2_block"])):
    sys.path.insert(0, os.path.join(source_dir, "examples"))
    blocks = __import__(module)
    for name in names:
        with open(os.path.join(source_dir, "examples", name + ".json")) as f:
            check_case(name, json.load(f), blocks.inputs(name, np.random.default_rng(7)))

print("memory planning: " + ("ok" if failures == 0 else f"{failures} failures"))
raise SystemExit(1 if failures else 0)
