"""Shared by the optimization-pass checks (opt_passes_check.py, epilogue_check.py): a graph
compiled with given kpu-compile arguments and run on kpu-sim with --check and --stats, the
per-kernel DRAM bytes of a .kpu, and the NumPy pieces their references share."""
import json
import os

import numpy as np

from kpu_run import compile_and_simulate


def run_case(bin_dir, source_dir, case, graph, config, inputs, args):
    """(.kpu JSON, kpu-sim stats, {output: raw .npy bytes}) of `graph` compiled with `args` in
    directory `case`."""
    stats_path = os.path.join(case, "stats.json")
    outputs = [t["name"] for t in graph["tensors"] if t.get("role") == "output"]
    compile_and_simulate(bin_dir, source_dir, case, graph, config, inputs, outputs[0], check=True,
                         sim_args=["--stats", stats_path], compile_args=args)
    with open(os.path.join(case, "p.kpu")) as f:
        program = json.load(f)
    with open(stats_path) as f:
        stats = json.load(f)
    outs = {}
    for name in outputs:
        with open(os.path.join(case, "out", name + ".npy"), "rb") as f:
            outs[name] = f.read()
    return program, stats, outs


def kernel_traffic(program):
    """{op name: DRAM bytes read + written} from the .kpu's per-kernel hints."""
    out = {}
    for k in program["kernels"]:
        h = k["hints"]
        out[k["op"]] = out.get(k["op"], 0) + h["dram_read_bytes"] + h["dram_write_bytes"]
    return out


def check_dram(where, program, stats, stats0, want, note, fail):
    """Calls `fail` unless the DRAM bytes the .kpu's hints say and kpu-sim measured are both
    `want`; prints the case against the baseline's stats `stats0`."""
    hinted = program["hints"]["dram_read_bytes"] + program["hints"]["dram_write_bytes"]
    measured = stats["dram_reads_bytes"] + stats["dram_writes_bytes"]
    if not hinted == measured == want:
        fail(f"{where}: DRAM bytes hinted {hinted}, measured {measured}, closed form {want}")
    print(f"{where}: {note}; DRAM {stats0['dram_reads_bytes'] + stats0['dram_writes_bytes']} -> {measured} B,"
          f" cycles {stats0['total_cycles']} -> {stats['total_cycles']}")


def vals(a):
    """Inline values of an array, as float32 holds them."""
    return [float(v) for v in np.asarray(a, dtype=np.float32).ravel()]


def conv2d(x, w, b, pad):
    """Direct convolution in float64 (stride 1, groups 1, NCHW)."""
    n, c, h, wd = x.shape
    co, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1
    y = np.zeros((n, co, oh, ow))
    for i in range(kh):
        for j in range(kw):
            y += np.einsum("nchw,oc->nohw", xp[:, :, i:i + oh, j:j + ow], w[:, :, i, j])
    return y + (b[None, :, None, None] if b is not None else 0)
