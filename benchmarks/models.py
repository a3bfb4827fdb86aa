#!/usr/bin/python3
"""The model zoo's networks on one config, measured side by side in one run
(docs/benchmarks.md, "Whole networks"):

  /usr/bin/python3 benchmarks/models.py [--config configs/t64.json] [--build-dir build]
      [--work DIR] [--models resnet18,bert,...] [--markdown FILE]

Per model of examples/models/zoo.py (full size, seeded weights, batch 1): the export is not
timed; kpu-compile's wall time; kpu-sim's (the whole process: loading, simulating with real
values, writing outputs, stats and the per-layer report); the simulated cycles, inferences
per second of the KPU (1 / simulated time) and energy per inference (the stats' total); the
efficiency against the per-layer roofline sum (the sum of the layers' roofline bounds over
the simulated time, kpu-sim --report); PyTorch eager on this CPU for the same inference (the
median of 3 forward passes after a warm-up, torch.no_grad, the default threads), the ratio of
kpu-sim's wall time to it, and whether the outputs agree with PyTorch's (zoo.py compare).
Prints one Markdown table.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "examples", "models"))

import zoo  # noqa: E402


def timed(cmd, log):
    start = time.perf_counter()
    with open(log, "w") as f:
        code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
    return code, time.perf_counter() - start


def eager_seconds(model, options, runs=3):
    """PyTorch eager on the CPU: the median of `runs` forward passes after a warm-up."""
    import torch
    net, x, _ = zoo.build(model, options, 0)
    with torch.no_grad():
        net(x)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=os.path.join(REPO, "configs", "t64.json"))
    p.add_argument("--build-dir", default=os.path.join(REPO, "build"))
    p.add_argument("--work", help="where models and runs go (default BUILD/bench-models)")
    p.add_argument("--models", default=",".join(zoo.MODELS))
    p.add_argument("--markdown", help="also write the table to this file")
    args = p.parse_args(argv)
    work = os.path.abspath(args.work or os.path.join(args.build_dir, "bench-models"))
    binaries = [os.path.join(args.build_dir, "bin", b) for b in ("kpu-compile", "kpu-sim")]
    for b in binaries:
        if not os.access(b, os.X_OK):
            sys.exit("benchmarks/models.py: %s not found (build kpu-compile and kpu-sim, or give --build-dir)" % b)
    config_name = os.path.splitext(os.path.basename(args.config))[0]
    header = ("| model | size | GMACs | compile s | cycles | inferences/s | energy/inference | roofline sum / time "
              "| time / roofline sum | kpu-sim wall s | PyTorch eager s | wall / eager | outputs |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for model in args.models.split(","):
        options = zoo.default_options(model)
        model_dir = os.path.join(work, model)
        meta = zoo.export(model, model_dir, options, 0)
        run = os.path.join(model_dir, "run-" + config_name)
        os.makedirs(run, exist_ok=True)
        kpu = os.path.join(run, "model.kpu")
        code, compile_s = timed([binaries[0], os.path.join(model_dir, "model.onnx"), "-o", kpu, "--config", args.config],
                                os.path.join(run, "compile.log"))
        size = " ".join("%s=%s" % kv for kv in options.items())
        if code != 0:
            lines.append("| %s | %s | %.3g | kpu-compile failed (%s) |" % (model, size, meta["macs"] / 1e9,
                                                                       os.path.join(run, "compile.log")))
            continue
        stats_path = os.path.join(run, "stats.json")
        code, sim_s = timed([binaries[1], "--config", args.config, "--program", kpu, "--inputs",
                             os.path.join(model_dir, "inputs"), "--outputs", os.path.join(run, "outputs"), "--stats",
                             stats_path, "--report", os.path.join(run, "layers.csv")], os.path.join(run, "sim.log"))
        if code != 0:
            lines.append("| %s | %s | %.3g | %.2f | kpu-sim failed (%s) |" % (model, size, meta["macs"] / 1e9, compile_s,
                                                                          os.path.join(run, "sim.log")))
            continue
        with open(stats_path) as f:
            stats = json.load(f)
        _, agree = zoo.compare(model_dir, os.path.join(run, "outputs"), zoo.DEFAULT_TOLERANCE)
        eager_s = eager_seconds(model, options)
        ratio = stats["layer_report"]["roofline_ratio"]
        lines.append("| %s | %s | %.3g | %.2f | %d | %.0f | %.1f mJ | %.0f %% | %.2f | %.2f | %.3f | %.0f | %s |" % (
            model, size, meta["macs"] / 1e9, compile_s, stats["total_cycles"], 1e6 / stats["total_time_us"],
            stats["total_energy_uj"] * 1e-3, 100 / ratio if ratio else 0, ratio, sim_s, eager_s, sim_s / eager_s,
            "match" if agree else "DIFFER"))
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print("\nOn %s (%s), kpu-sim %s:\n\n%s" % (config_name, args.config, binaries[1], table))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
