#!/usr/bin/python3
"""The BERT-base encoder layer and the GPT-2 small block of examples/ on one config
(docs/benchmarks.md, "Transformer blocks").

  benchmarks/transformer_blocks.py BIN_DIR CONFIG WORK_DIR

Per example: compiles it (kpu-compile), simulates it with --stats (no --check), and prints
the simulated cycles and time, the fabric's and the vector engines' busy time (summed over
the compute tiles, in fabric cycles: how the work splits between them), the roofline bound
(max(2 MACs / peak, DRAM bytes / bandwidth)) and the share of it achieved, the DRAM bytes
simulated against the compiler's closed form (the .kpu's hints, docs/compiler.md) and against
the least any schedule moves (each tensor once: written once by its producer, read once by
each consuming op), the wall time of kpu-compile and kpu-sim, and NumPy's time for the same
layer in float32 in this process (median of 5, after a warm-up) with the ratio of kpu-sim's
wall time to it.
"""
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
import transformer_blocks as blocks  # noqa: E402


def least_dram_bytes(graph):
    """What any schedule of the compiled graph (the .kpu's: Attention expanded, its scores
    through DRAM) moves at least: each tensor written once by its producer and read once by
    each op reading it. Views and compile-time values (inline int64 shapes) move nothing."""
    views = {"Reshape", "Flatten", "Squeeze", "Unsqueeze"}
    size = {t["name"]: 4 * int(np.prod(t["shape"])) for t in graph["tensors"] if "value" not in t}
    alias = {}
    for o in graph["ops"]:
        if o["op"] in views:
            alias[o["outputs"][0]] = alias.get(o["inputs"][0], o["inputs"][0])
    total = 0
    for o in graph["ops"]:
        if o["op"] not in views:
            total += sum(size.get(alias.get(n, n), 0) for n in o["inputs"] + o["outputs"] if n)
    return total


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    bin_dir, config, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    print(f"{'example':<16} {'cycles':>9} {'sim us':>8} {'fabric busy':>12} {'vector busy':>12} {'roofline us':>11} "
          f"{'bound':>7} {'% roof':>7} {'DRAM MB':>8} {'closed form':>11} {'least':>7} {'compile s':>9} "
          f"{'sim s':>6} {'numpy ms':>8} {'sim/numpy':>9}")
    for name in blocks.EXAMPLES:
        base = os.path.join(work, name)
        source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", name + ".json")
        inputs = blocks.inputs(name, np.random.default_rng(7))
        os.makedirs(base + ".in", exist_ok=True)
        for tensor, value in inputs.items():
            np.save(os.path.join(base + ".in", tensor + ".npy"), value.astype(np.float32))
        start = time.perf_counter()
        subprocess.run([os.path.join(bin_dir, "kpu-compile"), source, "-o", base + ".kpu", "--config", config],
                       check=True, stdout=subprocess.DEVNULL)
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run([os.path.join(bin_dir, "kpu-sim"), "--config", config, "--program", base + ".kpu", "--inputs",
                        base + ".in", "--outputs", base + ".out", "--stats", base + ".stats.json"],
                       check=True, stdout=subprocess.DEVNULL)
        sim_s = time.perf_counter() - start
        with open(base + ".stats.json") as f:
            s = json.load(f)
        with open(base + ".kpu") as f:
            program = json.load(f)
        hints = program["hints"]
        hz = s["fabric_clock_hz"]
        fabric = s["op_metrics"]["fabric"]["total_time_us"] * 1e-6 * hz
        vector = s["vector"]["busy_time_us"] * 1e-6 * hz
        dram = s["dram_reads_bytes"] + s["dram_writes_bytes"]
        closed = hints["dram_read_bytes"] + hints["dram_write_bytes"]
        least = least_dram_bytes(program["graph"])
        f32 = {k: v.astype(np.float32) for k, v in inputs.items()}
        blocks.reference(name, f32)  # warm-up
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            blocks.reference(name, f32)
            runs.append(time.perf_counter() - start)
        numpy_s = sorted(runs)[2]
        print(f"{name:<16} {s['total_cycles']:>9} {s['total_time_us']:>8.1f} {fabric:>12.0f} {vector:>12.0f} "
              f"{s['roofline_time_us']:>11.1f} {s['roofline_bound']:>7} {100 * s['roofline_efficiency']:>6.1f}% "
              f"{dram / 1e6:>8.2f} {closed / 1e6:>11.2f} {least / 1e6:>7.2f} {compile_s:>9.2f} {sim_s:>6.2f} "
              f"{numpy_s * 1e3:>8.2f} {sim_s / numpy_s:>9.0f}")


if __name__ == "__main__":
    main()
