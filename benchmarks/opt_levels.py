#!/usr/bin/python3
"""-O0 against -O2 side by side (docs/benchmarks.md, "Optimization levels"): each case compiled
at both levels by kpu-compile and simulated by kpu-sim --stats on one config, in one run.

  benchmarks/opt_levels.py BIN_DIR CONFIG WORK_DIR [CASE ...]

Prints per case the passes that ran at -O2, the simulated DRAM bytes and cycles at -O0 and
-O2 and their ratios (-O0 / -O2: above 1 is a gain). A case is a graph JSON or an ONNX model
(kpu-compile reads both); add one to CASES, or name files on the command line. Inputs are
zeros: traffic and timing do not depend on the values.
"""
import os
import sys
import time

from kpu_tools import compile_and_simulate

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
# (name, model): the cases of a run without CASE arguments.
CASES = [
    ("resnet18_basic_block", "examples/resnet18_basic_block.json"),
    ("mobilenetv2_block", "examples/mobilenetv2_block.json"),
    ("bert_base_layer", "examples/bert_base_layer.json"),
    ("gpt2_block", "examples/gpt2_block.json"),
]
LEVELS = ("-O0", "-O2")


def run(bin_dir, config, work, name, model, level):
    """(stats JSON, the passes that ran) of `model` compiled at `level` and simulated."""
    program, stats, _ = compile_and_simulate(bin_dir, config, model,
                                             os.path.join(work, name + level.replace("-", "_")), [level])
    return stats, program.get("passes", [])


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    bin_dir, config, work = sys.argv[1:4]
    cases = [(os.path.splitext(os.path.basename(m))[0], m) for m in sys.argv[4:]] or \
        [(n, os.path.join(ROOT, m)) for n, m in CASES]
    os.makedirs(work, exist_ok=True)
    print(f"config {os.path.basename(config)}; ratios are -O0 / -O2")
    print(f"{'case':<22} {'DRAM MB -O0':>11} {'-O2':>9} {'ratio':>6} {'cycles -O0':>11} {'-O2':>10} {'ratio':>6}  "
          f"passes at -O2")
    start = time.perf_counter()
    for name, model in cases:
        (s0, _), (s2, passes) = (run(bin_dir, config, work, name, model, level) for level in LEVELS)
        d0 = s0["dram_reads_bytes"] + s0["dram_writes_bytes"]
        d2 = s2["dram_reads_bytes"] + s2["dram_writes_bytes"]
        c0, c2 = s0["total_cycles"], s2["total_cycles"]
        print(f"{name:<22} {d0 / 1e6:>11.3f} {d2 / 1e6:>9.3f} {d0 / d2:>6.2f} {c0:>11} {c2:>10} {c0 / c2:>6.2f}  "
              f"{', '.join(passes) or 'none'}", flush=True)
    print(f"wall time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
