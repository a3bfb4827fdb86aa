#!/usr/bin/env python3
"""The examples a generator module writes (examples/<MODULE>.py: EXAMPLES, graph(name),
inputs(name, rng), reference(name, t)) end to end on edge and t64: kpu-compile + kpu-sim
--check (every tensor against the C++ reference within its op's tolerance) and y against the
module's NumPy evaluation in float64, max |got - want| / max(|want|, 1) below TOLERANCE. Also
checks that the committed examples/<name>.json is what the module writes.
  transformer_blocks: a BERT-base layer and a GPT-2 block (tolerance 1e-4: float32 sums of up
    to 3072 products and two layer norms);
  cnn_blocks: a ResNet-18 basic block and a MobileNetV2 inverted residual (1e-4).
Usage: example_check.py BUILD_BIN_DIR SOURCE_DIR WORK_DIR MODULE TOLERANCE"""
import importlib
import json
import os
import sys

import numpy as np

from kpu_run import Checker

bin_dir, source_dir, work, module, tolerance = sys.argv[1:6]
sys.path.insert(0, os.path.join(source_dir, "examples"))
blocks = importlib.import_module(module)

check = Checker(bin_dir, source_dir, work, tolerance=float(tolerance))
for name in blocks.EXAMPLES:
    with open(os.path.join(source_dir, "examples", name + ".json")) as f:
        if json.load(f) != blocks.graph(name):
            print(f"examples/{name}.json is not what examples/{module}.py writes: run it")
            check.failures += 1
    inputs = blocks.inputs(name, np.random.default_rng(7))
    for config in ("edge", "t64"):
        check.run(blocks.graph(name), config, inputs, lambda t, name=name: blocks.reference(name, t), name, "y")
check.finish()
