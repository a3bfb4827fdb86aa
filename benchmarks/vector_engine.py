#!/usr/bin/python3
"""Achieved elements per second of the vector engines against their peak (docs/benchmarks.md,
"Vector engine").

  benchmarks/vector_engine.py BIN_DIR CONFIG WORK_DIR [ROWS COLS]

Writes one graph per op (a large Add, Gelu, LayerNormalization and Softmax over a ROWS x COLS
fp32 tensor, default 2048 x 2048) into WORK_DIR, compiles and simulates each with kpu-sim
--stats, and prints one row per op: elements, simulated time, achieved elements/s against the
engines' peak (kpu-sim --describe's "peak elements/s (ALU op)"), how many engines ran and their
mean busy share and DRAM's bandwidth share: the larger of the two is what limits the rate.
"""
import json
import os
import subprocess
import sys


def graph(op, rows, cols):
    """A one-op graph over an input x of rows x cols (plus what the op needs)."""
    tensors = [{"name": "x", "shape": [rows, cols], "dtype": "float32", "role": "input"}]
    inputs = ["x"]
    attributes = {}
    if op == "Add":
        tensors.append({"name": "z", "shape": [rows, cols], "dtype": "float32", "role": "input"})
        inputs.append("z")
    elif op == "LayerNormalization":
        for name in ("gamma", "beta"):
            tensors.append({"name": name, "shape": [cols], "dtype": "float32", "role": "constant"})
            inputs.append(name)
        attributes = {"axis": -1, "epsilon": 1e-5}
    elif op == "Softmax":
        attributes = {"axis": -1}
    tensors.append({"name": "y", "dtype": "float32", "role": "output"})
    node = {"op": op, "name": op.lower(), "inputs": inputs, "outputs": ["y"]}
    if attributes:
        node["attributes"] = attributes
    return {"tensors": tensors, "ops": [node]}


def main():
    if len(sys.argv) not in (4, 6):
        sys.exit(__doc__)
    bin_dir, config, work = sys.argv[1:4]
    rows, cols = (int(sys.argv[4]), int(sys.argv[5])) if len(sys.argv) == 6 else (2048, 2048)
    os.makedirs(work, exist_ok=True)
    print(f"{'op':<20} {'elements':>10} {'sim us':>9} {'Gelem/s':>8} {'peak':>7} {'% peak':>7} "
          f"{'engines':>7} {'vector busy':>11} {'DRAM bw':>8}")
    for op in ("Add", "Gelu", "LayerNormalization", "Softmax"):
        base = os.path.join(work, op.lower())
        with open(base + ".json", "w") as f:
            json.dump(graph(op, rows, cols), f)
        subprocess.run([os.path.join(bin_dir, "kpu-compile"), base + ".json", "-o", base + ".kpu", "--config", config],
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run([os.path.join(bin_dir, "kpu-sim"), "--config", config, "--program", base + ".kpu",
                        "--stats", base + ".stats.json"], check=True, stdout=subprocess.DEVNULL)
        with open(base + ".stats.json") as f:
            s = json.load(f)
        v = s["vector"]
        rate, peak = v["achieved_elements_per_s"], v["peak_elements_per_s"]
        print(f"{op:<20} {v['elements']:>10} {s['total_time_us']:>9.1f} {rate / 1e9:>8.1f} {peak / 1e9:>7.0f} "
              f"{100 * rate / peak:>6.1f}% {v['engines']:>7} {100 * v['utilization']:>10.1f}% "
              f"{100 * s['memory_bandwidth_utilization']:>7.1f}%")


if __name__ == "__main__":
    main()
