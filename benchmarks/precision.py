#!/usr/bin/python3
"""float32, bfloat16 and int8 side by side (docs/benchmarks.md, "Reduced precision: cost"): the
model zoo's resnet18 and one BERT-base layer, each compiled by kpu-compile in every precision
and simulated by kpu-sim --stats on one config, in one run.

  benchmarks/precision.py BIN_DIR CONFIG WORK_DIR [--image-size 224] [--seq 128]
      [--precisions fp32 bf16 int8] [--calibration 100] [--method entropy]

int8 is calibrated (kpu-compile --calibration) on seeded N(0, 1) inputs of the model's shape.
Per model and precision it prints the simulated cycles, DRAM bytes and energy, and their
ratios to float32.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np

from kpu_tools import compile_and_simulate

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def export(work, model, options):
    """The zoo's ONNX export of `model` under WORK (made once)."""
    out = os.path.join(work, "zoo")
    if not os.path.isfile(os.path.join(out, model, "model.onnx")):
        subprocess.run([sys.executable, os.path.join(ROOT, "examples", "models", "zoo.py"), "export", out, model] +
                       options, check=True, stdout=subprocess.DEVNULL)
    return os.path.join(out, model, "model.onnx")


def calibration_dir(work, name, shape, count):
    """COUNT seeded N(0, 1) samples of `shape`, one .npy each (kpu-compile --calibration)."""
    path = os.path.join(work, name + ".calibration")
    os.makedirs(path, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(count):
        np.save(os.path.join(path, f"{i:04d}.npy"), rng.standard_normal(shape).astype(np.float32))
    return path


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bin_dir")
    parser.add_argument("config")
    parser.add_argument("work")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "int8"])
    parser.add_argument("--calibration", type=int, default=100)
    parser.add_argument("--method", default="entropy")
    args = parser.parse_args(argv)
    os.makedirs(args.work, exist_ok=True)
    models = [("resnet18", export(args.work, "resnet18", ["--image-size", str(args.image_size)]),
               [1, 3, args.image_size, args.image_size]),
              ("bert_layer", export(args.work, "bert", ["--layers", "1", "--seq", str(args.seq)]), [1, args.seq, 768])]
    print(f"config {os.path.basename(args.config)}; ratios are float32 / the precision")
    print(f"{'model':<11} {'precision':<9} {'cycles':>10} {'ratio':>6} {'DRAM MB':>9} {'ratio':>6} "
          f"{'energy uJ':>10} {'ratio':>6}")
    start = time.perf_counter()
    for name, model, shape in models:
        base = None
        for precision in args.precisions:
            flags = ["--precision", precision]
            if precision == "int8":
                flags += ["--calibration", calibration_dir(args.work, name, shape, args.calibration),
                          "--calibration-method", args.method]
            _, stats, _ = compile_and_simulate(args.bin_dir, args.config, model,
                                               os.path.join(args.work, f"{name}.{precision}"), flags)
            figures = (stats["total_cycles"], (stats["dram_reads_bytes"] + stats["dram_writes_bytes"]) / 1e6,
                       stats["total_energy_uj"])
            base = base or figures
            print(f"{name:<11} {precision:<9} {figures[0]:>10} {base[0] / figures[0]:>6.2f} {figures[1]:>9.2f} "
                  f"{base[1] / figures[1]:>6.2f} {figures[2]:>10.1f} {base[2] / figures[2]:>6.2f}", flush=True)
    print(f"wall time {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
