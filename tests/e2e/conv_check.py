#!/usr/bin/env python3
"""ONNX Conv end to end: kpu-compile + kpu-sim --check against a direct convolution in NumPy
(float64, a loop over the kernel taps of the zero-padded input, no im2col), on minimal and
t64: kernels 1, 3, 5, 7 and 1x7, strides 1-3, pads 0, 1, 3 and asymmetric, dilation 2,
groups 1, 2 and depthwise, odd and 1x1 images, a 224x224 stem, batch 1 and 3, with and
without bias, auto_pad. For each case also the DRAM traffic: the conv_nhwc kernel's hints
equal the closed form of docs/compiler.md ("Convolution") computed here from the program's
tiles and tasks, and the program's hints added up equal the bytes kpu-sim moved.
Usage: conv_check.py BUILD_BIN_DIR SOURCE_DIR WORK_DIR"""
import json
import os
import sys

import numpy as np

from kpu_run import Checker, op, tensor

check = Checker(*sys.argv[1:4], tolerance=1e-5)
rng = np.random.default_rng(30)
traffic_failures = 0


def out_size(size, k, stride, before, after, dilation):
    return (size + before + after - ((k - 1) * dilation + 1)) // stride + 1


def direct_conv(x, w, b, strides, pads, dilations, group):
    """y[n, o, i, j] = sum over c, p, q of x_pad[n, c, i s + p d, j s + q d] w[o, c, p, q] (+ b[o])."""
    n, cin, h, wd = x.shape
    cout, cg, kh, kw = w.shape
    sh, sw = strides
    dh, dw = dilations
    oh = out_size(h, kh, sh, pads[0], pads[2], dh)
    ow = out_size(wd, kw, sw, pads[1], pads[3], dw)
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    y = np.zeros((n, cout, oh, ow))
    cog = cout // group
    for g in range(group):
        xs = xp[:, g * cg:(g + 1) * cg]
        ws = w[g * cog:(g + 1) * cog]
        for p in range(kh):
            for q in range(kw):
                patch = xs[:, :, p * dh:p * dh + (oh - 1) * sh + 1:sh, q * dw:q * dw + (ow - 1) * sw + 1:sw]
                y[:, g * cog:(g + 1) * cog] += np.einsum("nchw,oc->nohw", patch, ws[:, :, p, q])
    if b is not None:
        y += b[None, :, None, None]
    return y


def same_pads(size, k, stride, dilation, upper):
    out = -(-size // stride)
    need = max(0, (out - 1) * stride + (k - 1) * dilation + 1 - size)
    return (need // 2, need - need // 2) if upper else (need - need // 2, need // 2)


def closed_form(program):
    """The conv_nhwc kernel's DRAM bytes by docs/compiler.md's closed form, from its tiles and
    tasks: per task its input rows (halo included), K x its columns of W, its bias columns;
    its output block written once."""
    g = program["graph"]
    shapes = {t["name"]: t.get("shape") for t in g["tensors"]}
    ops = {o["name"]: o for o in g["ops"]}
    kernel_index, kernel = next((i, k) for i, k in enumerate(program["kernels"]) if ops[k["op"]]["op"] == "conv_nhwc")
    conv = ops[kernel["op"]]
    _, groups, h, wd, cg = shapes[conv["inputs"][0]]
    _, kh, kw, _, cog = shapes[conv["inputs"][1]]
    _, _, oh, ow, _ = shapes[conv["outputs"][0]]
    bias = len(conv["inputs"]) > 2
    sh, _ = conv["attributes"]["strides"]
    dh, _ = conv["attributes"]["dilations"]
    top = conv["attributes"]["pads"][0]
    tm, tn = kernel["tile"][0], kernel["tile"][1]
    m, k = oh * ow, kh * kw * cg
    read = write = 0
    for task in program["tasks"]:
        if task["kernel"] != kernel_index:
            continue
        p0, p1 = task["rows"][0] * tm, min(m, task["rows"][1] * tm)
        c0, c1 = task["cols"][0] * tn, min(cog, task["cols"][1] * tn)
        first = max(0, (p0 // ow) * sh - top)
        end = min(h, ((p1 - 1) // ow) * sh - top + (kh - 1) * dh + 1)
        read += 4 * (max(0, end - first) * wd * cg + k * (c1 - c0) + (c1 - c0 if bias else 0))
        write += 4 * (p1 - p0) * (c1 - c0)
    return kernel["hints"], read, write


def case(name, n, cin, hw, cout, kernel, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1, bias=True,
         auto_pad=None, configs=("minimal", "t64")):
    global traffic_failures
    h, wd = hw
    kh, kw = kernel
    attributes = {"group": group, "strides": list(strides), "dilations": list(dilations)}
    if auto_pad:
        attributes["auto_pad"] = auto_pad
        if auto_pad == "VALID":
            pads = (0, 0, 0, 0)
        else:
            (t, bo), (le, r) = (same_pads(h, kh, strides[0], dilations[0], auto_pad == "SAME_UPPER"),
                                same_pads(wd, kw, strides[1], dilations[1], auto_pad == "SAME_UPPER"))
            pads = (t, le, bo, r)
    else:
        attributes["pads"] = list(pads)
    if kernel != (3, 3):
        attributes["kernel_shape"] = list(kernel)
    tensors = [tensor("x", [n, cin, h, wd], "input"), tensor("w", [cout, cin // group, kh, kw], "input")]
    inputs = {"x": rng.standard_normal((n, cin, h, wd)), "w": rng.standard_normal((cout, cin // group, kh, kw))}
    names = ["x", "w"]
    if bias:
        tensors.append(tensor("b", [cout], "input"))
        inputs["b"] = rng.standard_normal(cout)
        names.append("b")
    tensors.append(tensor("y", None, "output"))
    graph = {"tensors": tensors, "ops": [op("Conv", "conv", names, ["y"], **attributes)]}

    def want(t):
        return direct_conv(t["x"], t["w"], t.get("b"), strides, pads, dilations, group)

    for config in configs:
        # Depthwise cases on the fabric too: this checks the implicit GEMM (pool_check.py the engine's).
        where = check.run(graph, config, inputs, want, name, "y", sim_args=["--stats", "{case}/stats.json"],
                          compile_args=["--depthwise-on", "fabric"])
        with open(os.path.join(where, "p.kpu")) as f:
            program = json.load(f)
        with open(os.path.join(where, "stats.json")) as f:
            stats = json.load(f)
        hints, read, write = closed_form(program)
        total = program["hints"]
        ok = (hints["dram_read_bytes"], hints["dram_write_bytes"]) == (read, write) and \
             (total["dram_read_bytes"], total["dram_write_bytes"]) == (stats["dram_reads_bytes"], stats["dram_writes_bytes"])
        print(f"  conv DRAM: hints {hints['dram_read_bytes']} + {hints['dram_write_bytes']}, closed form {read} + {write}; "
              f"program hints {total['dram_read_bytes']} + {total['dram_write_bytes']}, simulated "
              f"{stats['dram_reads_bytes']} + {stats['dram_writes_bytes']} -> {'ok' if ok else 'FAIL'}")
        traffic_failures += 0 if ok else 1


case("k1_s1_p0_nobias", 1, 3, (7, 9), 4, (1, 1), bias=False)
case("k1_s2_batch3", 3, 8, (10, 12), 16, (1, 1), strides=(2, 2))
case("k3_s1_p1", 1, 4, (7, 9), 6, (3, 3), pads=(1, 1, 1, 1))
case("k3_s2_p1_nobias", 1, 4, (7, 9), 6, (3, 3), strides=(2, 2), pads=(1, 1, 1, 1), bias=False)
case("k3_s3_p0", 1, 5, (11, 13), 7, (3, 3), strides=(3, 3))
case("k3_asym_pads", 1, 4, (7, 9), 6, (3, 3), pads=(0, 1, 2, 0))
case("k3_dilation2_p1", 1, 4, (9, 9), 4, (3, 3), pads=(1, 1, 1, 1), dilations=(2, 2))
case("k3_dilation2_s2_p3", 3, 3, (11, 9), 5, (3, 3), strides=(2, 2), pads=(3, 3, 3, 3), dilations=(2, 2))
case("k5_s1_p3", 1, 5, (9, 11), 8, (5, 5), pads=(3, 3, 3, 3))
case("k5_s3_p1_asym", 1, 4, (9, 7), 6, (5, 5), strides=(3, 2), pads=(1, 0, 2, 1))
case("k7_s2_p3", 1, 3, (11, 13), 5, (7, 7), strides=(2, 2), pads=(3, 3, 3, 3))
case("k1x7_p0x3_batch3", 3, 4, (7, 9), 6, (1, 7), pads=(0, 3, 0, 3))
case("k3_group2", 1, 4, (7, 9), 6, (3, 3), pads=(1, 1, 1, 1), group=2)
case("k3_group2_s3_asym_batch3", 3, 6, (7, 9), 4, (3, 3), strides=(3, 3), pads=(1, 0, 1, 2), group=2)
case("k3_depthwise", 1, 6, (7, 9), 6, (3, 3), pads=(1, 1, 1, 1), group=6)
case("k3_depthwise_s2_batch3_nobias", 3, 8, (7, 9), 8, (3, 3), strides=(2, 2), pads=(1, 1, 1, 1), group=8, bias=False)
case("k5_depthwise_dilation2", 1, 4, (9, 9), 8, (5, 5), pads=(3, 3, 3, 3), dilations=(2, 2), group=4)
case("image1x1_k1", 1, 4, (1, 1), 5, (1, 1))
case("image1x1_k3_p1", 1, 3, (1, 1), 4, (3, 3), pads=(1, 1, 1, 1))
case("k3_c16_c32", 1, 16, (14, 14), 32, (3, 3), pads=(1, 1, 1, 1))
case("k3_c256_k_in_passes", 1, 256, (7, 7), 32, (3, 3), pads=(1, 1, 1, 1))  # minimal: K in passes
case("same_upper_s2", 1, 4, (7, 9), 6, (3, 3), strides=(2, 2), auto_pad="SAME_UPPER")
case("same_lower_k4", 1, 4, (7, 9), 6, (4, 4), auto_pad="SAME_LOWER")
case("valid_k3", 1, 4, (7, 9), 6, (3, 3), auto_pad="VALID")
case("stem_224_k7_s2_p3", 1, 3, (224, 224), 64, (7, 7), strides=(2, 2), pads=(3, 3, 3, 3))
case("k7x1_p3x0_s2", 1, 5, (13, 8), 6, (7, 1), strides=(2, 1), pads=(3, 0, 3, 0))
case("k5_s2_p0_nobias_batch3", 3, 3, (11, 12), 7, (5, 5), strides=(2, 2), bias=False)
case("k3_s2_dilation2_group3", 1, 6, (13, 11), 9, (3, 3), strides=(2, 2), pads=(2, 2, 2, 2), dilations=(2, 2),
     group=3)
case("k1_group4_batch3", 3, 8, (5, 7), 12, (1, 1), group=4)
case("k7_depthwise_p3", 1, 5, (11, 11), 5, (7, 7), pads=(3, 3, 3, 3), group=5)
case("k3_s1_p3_asym_kernel_larger_than_image", 1, 2, (2, 3), 3, (3, 3), pads=(3, 1, 2, 3))

print(f"DRAM traffic: {traffic_failures} case(s) off the closed form")
if traffic_failures:
    check.failures += traffic_failures
check.finish()
