"""Shared by the NumPy checks: compile a graph with kpu-compile and run it on kpu-sim with
.npy inputs, returning an output tensor as kpu-sim wrote it. With check=True kpu-sim also runs
--check (the C++ reference, every computed tensor within its op's tolerance), and a FAIL is
an error here."""
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))
from graph_json import op, tensor  # noqa: E402,F401  (the checks build their graphs with them)


def compile_and_simulate(bin_dir, source_dir, case, graph, config, inputs, output, check=False, sim_args=(),
                         compile_args=()):
    os.makedirs(os.path.join(case, "in"), exist_ok=True)
    with open(os.path.join(case, "graph.json"), "w") as f:
        json.dump(graph, f)
    for tensor, value in inputs.items():
        np.save(os.path.join(case, "in", tensor + ".npy"), value.astype(np.float32))
    cfg = os.path.join(source_dir, "configs", config + ".json")
    subprocess.run([os.path.join(bin_dir, "kpu-compile"), os.path.join(case, "graph.json"), "-o",
                    os.path.join(case, "p.kpu"), "--config", cfg] + list(compile_args), check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([os.path.join(bin_dir, "kpu-sim"), "--config", cfg, "--program", os.path.join(case, "p.kpu"),
                    "--inputs", os.path.join(case, "in"), "--outputs", os.path.join(case, "out")] +
                   (["--check"] if check else []) + list(sim_args),
                   check=True, stdout=subprocess.DEVNULL)
    return np.load(os.path.join(case, "out", output + ".npy"))


class Checker:
    """Runs cases (graph, inputs, an independent NumPy evaluation) on kpu-sim with --check and
    compares an output with NumPy in float64: max |got - want| / max(|want|, 1) below
    `tolerance`. Counts cases and failures; finish() prints them and exits non-zero on any."""

    def __init__(self, bin_dir, source_dir, work, tolerance):
        self.bin_dir, self.source_dir, self.work, self.tolerance = bin_dir, source_dir, work, tolerance
        self.cases = self.failures = 0
        os.makedirs(work, exist_ok=True)

    def run(self, graph, config, inputs, expected_fn, name, output, sim_args=(), compile_args=()):
        """Returns the case's directory (graph.json, p.kpu, in/, out/)."""
        self.cases += 1
        case = os.path.join(self.work, name + "_" + config)
        got = compile_and_simulate(self.bin_dir, self.source_dir, case, graph, config, inputs, output, check=True,
                                   sim_args=[a.replace("{case}", case) for a in sim_args], compile_args=compile_args)
        want = expected_fn({k: v.astype(np.float32).astype(np.float64) for k, v in inputs.items()})
        err = np.abs(got.astype(np.float64) - want).max() / max(np.abs(want).max(), 1.0)
        ok = got.shape == want.shape and err < self.tolerance
        print(f"{name} on {config}: shape {got.shape}, max error / max(|ref|, 1) = {err:.3g} -> {'ok' if ok else 'FAIL'}")
        self.failures += 0 if ok else 1
        return case

    def finish(self):
        print(f"{self.cases - self.failures} passed, {self.failures} failed")
        raise SystemExit(1 if self.failures else 0)
