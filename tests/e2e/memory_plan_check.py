#!/usr/bin/env python3
"""Memory planning (docs/compiler.md, "Memory planning") end to end on t64 and edge: each graph
compiled at -O0 and at -O2 (plan-memory), both run on kpu-sim with the same inputs and without
--check (which runs a program without its reuse), and
  - the outputs byte-identical between -O0 and -O2 (reuse corrupts nothing: on t64 the tasks
    of independent ops and of one op's tile grid run side by side on 64 compute tiles),
  - the simulated DRAM high-water mark (stats' memory_high_water_bytes.dram) equal to the
    planned peak DRAM (the .kpu's memory.peak_dram) at -O2, and to the sum of the tensors'
    ranges at -O0 (one range per tensor, each from an interleave boundary),
  - the simulated SRAM high-water marks (memory_high_water_bytes.l3, l2, l1: per compute
    tile) equal to the planned ones, level by level, at -O0 (kpu-compile's memory line) and
    at -O2 (the .kpu's memory.peak_l3, peak_l2, peak_l1, and the same line), also with every
    pass (flash attention's row statistics are touched by the vector engine alone),
  - for a 20-layer MLP (width 256, batch 64): the peak at -O2 at most two activations plus the
    weights, far below the sum of all its intermediates;
  - the ResNet-18 basic block, the BERT-base layer and the GPT-2 block of examples/, and the
    zoo's ResNet-18 (ONNX, 64 x 64 input; skipped when torch cannot export it).
Usage: memory_plan_check.py BUILD_BIN_DIR SOURCE_DIR WORK_DIR"""
import json
import os
import re
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))
from graph_json import op, tensor  # noqa: E402

bin_dir, source_dir, work = sys.argv[1:4]
CONFIGS = ("t64", "edge")
LEVELS = ("l3", "l2", "l1")
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


def printed_sram(text):
    """The SRAM marks of kpu-compile's memory line: {"l3", "l2", "l1"}."""
    m = re.search(r"peak SRAM per compute tile L3 (\d+), L2 (\d+), L1 (\d+) bytes", text)
    return dict(zip(LEVELS, map(int, m.groups()))) if m else {}


def run(case, config, graph_path, options, inputs_dir, tag=None):
    """Compiles for `config` with `options` (-O<level> first), binds (kpu-compile --bind) and
    simulates: the .kpu, the bound program, the stats, the outputs' directory and the SRAM
    marks kpu-compile printed."""
    out = os.path.join(case, config, tag or options[0].lstrip("-"))
    os.makedirs(out, exist_ok=True)
    path = os.path.join(source_dir, "configs", config + ".json")
    kpu, bound = os.path.join(out, "p.kpu"), os.path.join(out, "bound.json")
    compiled = subprocess.run([os.path.join(bin_dir, "kpu-compile"), graph_path, "-o", kpu, "--config", path] + options,
                              check=True, stdout=subprocess.PIPE, text=True).stdout
    subprocess.run([os.path.join(bin_dir, "kpu-compile"), "--bind", "--config", path, kpu, "-o", bound],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([os.path.join(bin_dir, "kpu-sim"), "--config", path, "--program", kpu, "--outputs",
                    os.path.join(out, "out"), "--stats", os.path.join(out, "stats.json"), "--inputs", inputs_dir],
                   check=True, stdout=subprocess.DEVNULL)
    result = []
    for path in (kpu, bound, os.path.join(out, "stats.json")):
        with open(path) as f:
            result.append(json.load(f))
    return result + [os.path.join(out, "out"), printed_sram(compiled)]


def check_sram(what, printed, stats, program=None):
    """The planned SRAM marks (kpu-compile's line; the .kpu's with plan-memory) against the
    simulated ones, level by level."""
    measured = {level: stats["memory_high_water_bytes"][level] for level in LEVELS}
    if printed != measured:
        fail(f"{what}: planned SRAM marks {printed}, simulated {measured}")
    if program is not None:
        stored = {level: program["memory"]["peak_" + level] for level in LEVELS}
        if stored != measured:
            fail(f"{what}: the .kpu's SRAM marks {stored}, simulated {measured}")
    if min(measured.values()) <= 0:
        fail(f"{what}: a level untouched: {measured}")
    return measured


def check_case(name, graph, inputs, config, every_pass=False):
    """Runs `graph` on `config` at -O0 and -O2 (and with `every_pass`, -O2 with fuse-attention
    too) and checks them; returns the -O2 program and its simulated peak DRAM."""
    case = os.path.join(work, name)
    os.makedirs(os.path.join(case, "in"), exist_ok=True)
    graph_path = os.path.join(case, "graph.json")
    with open(graph_path, "w") as f:
        json.dump(graph, f)
    for t, value in inputs.items():
        np.save(os.path.join(case, "in", t + ".npy"), value.astype(np.float32))
    name = f"{name} on {config}"
    p0, b0, s0, out0, sram0 = run(case, config, graph_path, ["-O0"], os.path.join(case, "in"))
    # fuse-attention's online softmax sums in another order: off, so that the outputs can be
    # compared byte for byte (every other pass keeps -O0's bits).
    p2, b2, s2, out2, sram2 = run(case, config, graph_path, ["-O2", "--disable-pass", "fuse-attention"],
                                  os.path.join(case, "in"))
    marks0 = check_sram(f"{name} -O0", sram0, s0)
    marks2 = check_sram(f"{name} -O2", sram2, s2, p2)
    print(f"{name}: SRAM marks per compute tile (planned = simulated) -O0 {marks0}, -O2 {marks2}")
    if every_pass:
        pa, _, sa, _, srama = run(case, config, graph_path, ["-O2"], os.path.join(case, "in"), "O2-all")
        marks = check_sram(f"{name} -O2 (every pass)", srama, sa, pa)
        if pa["memory"]["peak_dram"] != sa["memory_high_water_bytes"]["dram"]:
            fail(f"{name} -O2 (every pass): planned peak DRAM {pa['memory']['peak_dram']}, simulated "
                 f"{sa['memory_high_water_bytes']['dram']}")
        print(f"{name} -O2 with every pass ({', '.join(pa['passes'])}): SRAM marks {marks}")
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
activation = BATCH * WIDTH * 4
weights = LAYERS * (WIDTH * WIDTH + WIDTH) * 4
intermediates = (2 * LAYERS - 1) * activation
print(f"mlp20: weights {weights} + two activations {2 * activation} = {weights + 2 * activation}; "
      f"with every intermediate {weights + intermediates + 2 * activation}")
for config in CONFIGS:
    program, peak = check_case("mlp20", mlp(LAYERS, WIDTH, BATCH), inputs, config)
    if program["memory"]["weights"] != weights:
        fail(f"mlp20 on {config}: estimate_memory's weights {program['memory']['weights']}, expected {weights}")
    if program["memory"]["activations"] != 2 * activation:
        fail(f"mlp20 on {config}: estimate_memory's activations {program['memory']['activations']}, "
             f"expected {2 * activation}")
    if peak > weights + 2 * activation:
        fail(f"mlp20 on {config}: peak DRAM {peak} is more than the weights and two activations, "
             f"{weights + 2 * activation}")

# The examples (inputs from their generators).
for module, names in (("cnn_blocks", ["resnet18_basic_block"]), ("transformer_blocks", ["bert_base_layer",
                                                                                         "gpt2_block"])):
    sys.path.insert(0, os.path.join(source_dir, "examples"))
    blocks = __import__(module)
    for name in names:
        with open(os.path.join(source_dir, "examples", name + ".json")) as f:
            graph = json.load(f)
        for config in CONFIGS:
            check_case(name, graph, blocks.inputs(name, np.random.default_rng(7)), config,
                       every_pass=module == "transformer_blocks")


def check_zoo_resnet18():
    """The zoo's ResNet-18 at 64 x 64 through ONNX (its folded batch norms round otherwise than
    -O0: the marks are compared, not the outputs)."""
    zoo = os.path.join(work, "zoo")
    exported = subprocess.run([sys.executable, os.path.join(source_dir, "examples", "models", "zoo.py"), "export", zoo,
                               "resnet18", "--image-size", "64"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    if exported.returncode != 0:
        print("zoo resnet18: skipped, the zoo cannot export it here:\n" + exported.stdout[-2000:])
        return
    model = os.path.join(zoo, "resnet18")
    for config in CONFIGS:
        for options in (["-O0"], ["-O2"]):
            p, _, s, _, printed = run(model, config, os.path.join(model, "model.onnx"), options,
                                      os.path.join(model, "inputs"))
            what = f"zoo resnet18 64x64 on {config} {options[0]}"
            marks = check_sram(what, printed, s, p if options[0] == "-O2" else None)
            if options[0] == "-O2" and p["memory"]["peak_dram"] != s["memory_high_water_bytes"]["dram"]:
                fail(f"{what}: planned peak DRAM {p['memory']['peak_dram']}, simulated "
                     f"{s['memory_high_water_bytes']['dram']}")
            print(f"{what}: SRAM marks per compute tile (planned = simulated) {marks}")


check_zoo_resnet18()

print("memory planning: " + ("ok" if failures == 0 else f"{failures} failures"))
raise SystemExit(1 if failures else 0)
