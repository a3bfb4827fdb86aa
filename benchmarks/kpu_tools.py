"""What the -O benchmarks share: a model compiled by kpu-compile and simulated by kpu-sim."""
import json
import os
import subprocess


def compile_and_simulate(bin_dir, config, model, base, compile_args=()):
    """Compiles `model` (graph JSON or ONNX) to BASE.kpu with `compile_args`, simulates it with
    --stats BASE.stats.json; returns (the .kpu's JSON, the stats' JSON, kpu-compile's output)."""
    kpu, stats = base + ".kpu", base + ".stats.json"
    text = subprocess.run([os.path.join(bin_dir, "kpu-compile"), model, "-o", kpu, "--config", config] +
                          list(compile_args), check=True, capture_output=True, text=True).stdout
    subprocess.run([os.path.join(bin_dir, "kpu-sim"), "--config", config, "--program", kpu, "--stats", stats],
                   check=True, stdout=subprocess.DEVNULL)
    with open(kpu) as f:
        program = json.load(f)
    with open(stats) as f:
        return program, json.load(f), text
