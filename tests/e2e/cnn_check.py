#!/usr/bin/env python3
"""examples/resnet18_basic_block.json and examples/mobilenetv2_block.json end to end on edge
and t64: kpu-compile + kpu-sim --check (every tensor against the C++ reference within its
op's tolerance) and y against examples/cnn_blocks.py's NumPy evaluation in float64 (a direct
convolution over the kernel taps). Tolerance: max |got - want| / max(|want|, 1) below 1e-4
(float32 sums of up to 1152 products through three layers). Also checks that the committed
JSON is what cnn_blocks.py writes.
Usage: cnn_check.py BUILD_BIN_DIR SOURCE_DIR WORK_DIR"""
import json
import os
import sys

import numpy as np

from kpu_run import Checker

bin_dir, source_dir, work = sys.argv[1:4]
sys.path.insert(0, os.path.join(source_dir, "examples"))
import cnn_blocks as blocks  # noqa: E402

check = Checker(bin_dir, source_dir, work, tolerance=1e-4)
for name in blocks.EXAMPLES:
    with open(os.path.join(source_dir, "examples", name + ".json")) as f:
        if json.load(f) != blocks.graph(name):
            print(f"examples/{name}.json is not what examples/cnn_blocks.py writes: run it")
            check.failures += 1
    inputs = blocks.inputs(name, np.random.default_rng(7))
    for config in ("edge", "t64"):
        check.run(blocks.graph(name), config, inputs, lambda t, name=name: blocks.reference(name, t), name, "y")
check.finish()
