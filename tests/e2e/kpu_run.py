"""Shared by the NumPy checks: compile a graph with kpu-compile and run it on kpu-sim with
.npy inputs, returning an output tensor as kpu-sim wrote it. With check=True kpu-sim also runs
--check (the C++ reference, every computed tensor within its op's tolerance), and a FAIL is
an error here."""
import json
import os
import subprocess

import numpy as np


def compile_and_simulate(bin_dir, source_dir, case, graph, config, inputs, output, check=False):
    os.makedirs(os.path.join(case, "in"), exist_ok=True)
    with open(os.path.join(case, "graph.json"), "w") as f:
        json.dump(graph, f)
    for tensor, value in inputs.items():
        np.save(os.path.join(case, "in", tensor + ".npy"), value.astype(np.float32))
    cfg = os.path.join(source_dir, "configs", config + ".json")
    subprocess.run([os.path.join(bin_dir, "kpu-compile"), os.path.join(case, "graph.json"), "-o",
                    os.path.join(case, "p.kpu"), "--config", cfg], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([os.path.join(bin_dir, "kpu-sim"), "--config", cfg, "--program", os.path.join(case, "p.kpu"),
                    "--inputs", os.path.join(case, "in"), "--outputs", os.path.join(case, "out")] +
                   (["--check"] if check else []),
                   check=True, stdout=subprocess.DEVNULL)
    return np.load(os.path.join(case, "out", output + ".npy"))
