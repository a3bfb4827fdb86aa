#!/usr/bin/env python3
"""Attention end to end: masked_softmax (scale, causal, every mask broadcast) and ONNX's
Attention (4-D and 3-D forms, grouped heads, masks, causal with a sequence length not a
multiple of any tile) through kpu-compile + kpu-sim --check, against NumPy in float64, on
edge and t64. Tolerance as vector_check.py's (values of order one).
Usage: attention_check.py BUILD_BIN_DIR SOURCE_DIR WORK_DIR"""
import sys

import numpy as np

import attention_cases
from attention_cases import causal_mask, softmax
from kpu_run import Checker, op, tensor

check = Checker(*sys.argv[1:4], tolerance=1e-5)
rng = np.random.default_rng(23)


def masked_softmax_case(shape, mask_shape, scale, causal):
    tensors = [tensor("x", list(shape), "input"), tensor("y", None, "output")]
    inputs = {"x": rng.standard_normal(shape) * 3}
    names = ["x"]
    if mask_shape is not None:
        tensors.insert(1, tensor("mask", list(mask_shape), "input"))
        inputs["mask"] = rng.standard_normal(mask_shape)
        names.append("mask")
    graph = {"tensors": tensors, "ops": [op("masked_softmax", "sm", names, ["y"], scale=scale, is_causal=int(causal))]}

    def want(t):
        s = t["x"] * scale + (t["mask"] if mask_shape is not None else 0)
        if causal:
            s = s + causal_mask(shape[-2], shape[-1])
        return softmax(s)
    return graph, inputs, want


for config in ("edge", "t64"):
    for shape, mask_shape, causal in (((7, 13), None, True), ((3, 5, 17), None, True), ((2, 3, 19, 23), (19, 23), False),
                                      ((2, 3, 19, 23), (2, 1, 1, 23), True), ((2, 3, 19, 23), (23,), True),
                                      ((2, 3, 19, 23), (3, 19, 23), True), ((2, 3, 5, 7), (2, 3, 5, 7), False),
                                      ((4, 9), (1,), True), ((1, 1), None, True), ((131, 67), None, False)):
        g, i, f = masked_softmax_case(shape, mask_shape, 0.37, causal)
        name = "masked_softmax_" + "x".join(map(str, shape)) + ("_mask" + "x".join(map(str, mask_shape))
                                                                 if mask_shape else "") + ("_causal" if causal else "")
        check.run(g, config, i, f, name, "y")



def attention_case(*args, **kwargs):
    return attention_cases.attention_case(rng, *args, **kwargs)


for config in ("edge", "t64"):
    # A causal attention whose sequence (67) is a multiple of no tile; grouped heads; masks
    # per query, per batch (padding) and per head; the 3-D form with and without groups.
    for args in ((1, 4, 4, 67, 67, 16, 16, None, True, True), (2, 4, 2, 19, 23, 8, 5, (19, 23), False, True),
                 (2, 6, 3, 13, 13, 8, 8, (2, 1, 1, 13), True, True), (1, 3, 1, 7, 11, 4, 6, (3, 7, 11), False, True),
                 (2, 4, 4, 29, 29, 16, 16, None, True, False), (1, 6, 2, 9, 17, 8, 4, (9, 17), False, False),
                 (1, 2, 2, 1, 31, 8, 8, None, False, True)):
        g, i, f = attention_case(*args)
        b, hq, hkv, sq, skv, e, ev, mask, causal, four = args
        name = (f"attention_{'4d' if four else '3d'}_b{b}_h{hq}x{hkv}_s{sq}x{skv}_e{e}x{ev}" +
                ("_mask" + "x".join(map(str, mask)) if mask else "") + ("_causal" if causal else ""))
        check.run(g, config, i, f, name, "y")
    g, i, f = attention_case(1, 2, 2, 5, 5, 8, 8, None, False, True, scale=0.3)
    check.run(g, config, i, f, "attention_4d_scale0.3", "y")

check.finish()
