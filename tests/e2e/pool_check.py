#!/usr/bin/env python3
"""The CNN ops that are not Conv end to end: MaxPool, AveragePool (kernels 2, 3, 7, strides 1
and 2, pads 0, 1 and asymmetric, ceil_mode and count_include_pad both ways, dilation 2),
GlobalAveragePool, BatchNormalization, Resize (nearest, x2 and x3, scales and sizes) and
depthwise_conv (3x3 stride 1 and 2, 5x5, with and without bias) through kpu-compile +
kpu-sim --check, against a plain NumPy evaluation in float64 (each window's taps summed or
maxed in a loop over the kernel, the padding explicit), on minimal, edge and t64, batch 1
and 3. Tolerance 1e-5 of max(|ref|, 1): values of order one, sums of at most 49 taps.
Usage: pool_check.py BUILD_BIN_DIR SOURCE_DIR WORK_DIR"""
import sys

import numpy as np

from kpu_run import Checker, op, tensor

check = Checker(*sys.argv[1:4], tolerance=1e-5)
rng = np.random.default_rng(30)


def out_size(n, k, s, d, p0, p1, ceil):
    """ONNX's output size along an axis (ceil_mode: the last window starts inside the input
    or its leading pad)."""
    e = (k - 1) * d + 1
    span = n + p0 + p1 - e
    o = (-(-span // s) if ceil else span // s) + 1
    if ceil and (o - 1) * s >= n + p0:
        o -= 1
    return o


def window(x, kernel, strides, pads, dilations, ceil, kind, include_pad=False, w=None, b=None):
    """Each output of x [N, C, H, W] from its window's taps: 'max', 'avg' or 'dw' (weights
    w [C, 1, kH, kW], bias b [C])."""
    n, c, h, wd = x.shape
    (kh, kw), (sh, sw), (dh, dw) = kernel, strides, dilations
    oh = out_size(h, kh, sh, dh, pads[0], pads[2], ceil)
    ow = out_size(wd, kw, sw, dw, pads[1], pads[3], ceil)
    big = max(kh * dh, kw * dw) + max(sh, sw) * 2  # room for windows past the end (ceil_mode)
    fill = -np.inf if kind == "max" else 0.0
    xp = np.full((n, c, h + pads[0] + big, wd + pads[1] + big), fill)
    xp[:, :, pads[0]:pads[0] + h, pads[1]:pads[1] + wd] = x
    inside = np.zeros_like(xp)
    inside[:, :, pads[0]:pads[0] + h, pads[1]:pads[1] + wd] = 1
    padded = np.zeros_like(xp)
    padded[:, :, :h + pads[0] + pads[2], :wd + pads[1] + pads[3]] = 1
    y = np.full((n, c, oh, ow), fill)
    count = np.zeros((n, c, oh, ow))
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dh, j * dw
            tap = xp[:, :, r0:r0 + sh * oh:sh, c0:c0 + sw * ow:sw]
            if kind == "max":
                y = np.maximum(y, tap)
            elif kind == "avg":
                y = y + tap
                count += (padded if include_pad else inside)[:, :, r0:r0 + sh * oh:sh, c0:c0 + sw * ow:sw]
            else:
                y = y + tap * w[:, 0, i, j][None, :, None, None]
    if kind == "avg":
        y = y / count
    if kind == "dw" and b is not None:
        y = y + b[None, :, None, None]
    return y


def pool_case(kind, shape, kernel, strides, pads, ceil, dilations=(1, 1), include_pad=0):
    attrs = {"kernel_shape": list(kernel), "strides": list(strides), "pads": list(pads), "ceil_mode": ceil}
    if kind == "MaxPool" and dilations != (1, 1):
        attrs["dilations"] = list(dilations)
    if kind == "AveragePool":
        attrs["count_include_pad"] = include_pad
    graph = {"tensors": [tensor("x", list(shape), "input"), tensor("y", None, "output")],
             "ops": [op(kind, "pool", ["x"], ["y"], **attrs)]}
    inputs = {"x": rng.standard_normal(shape)}
    mode = "max" if kind == "MaxPool" else "avg"
    return graph, inputs, lambda t: window(t["x"], kernel, strides, pads, dilations, ceil, mode, include_pad)


def same_pads(n, k, s, upper):
    """auto_pad SAME_UPPER / SAME_LOWER along one axis: output ceil(n / s), the odd pad at the
    end (upper) or the beginning."""
    total = max(0, (-(-n // s) - 1) * s + k - n)
    first = total // 2 if upper else total - total // 2
    return first, total - first


def auto_pad_case(kind, shape, kernel, strides, auto_pad):
    attrs = {"kernel_shape": list(kernel), "strides": list(strides), "auto_pad": auto_pad}
    graph = {"tensors": [tensor("x", list(shape), "input"), tensor("y", None, "output")],
             "ops": [op(kind, "pool", ["x"], ["y"], **attrs)]}
    if auto_pad == "VALID":
        pads = [0, 0, 0, 0]
    else:
        (t, b), (l, r) = [same_pads(shape[2 + d], kernel[d], strides[d], auto_pad == "SAME_UPPER") for d in (0, 1)]
        pads = [t, l, b, r]
    mode = "max" if kind == "MaxPool" else "avg"
    return graph, {"x": rng.standard_normal(shape)}, lambda t: window(t["x"], kernel, strides, pads, (1, 1), 0, mode)


def depthwise_case(shape, k, stride, pad, bias, dilation=1):
    c = shape[1]
    names = ["x", "w"] + (["b"] if bias else [])
    tensors = [tensor("x", list(shape), "input"), tensor("w", [c, 1, k, k], "input")]
    inputs = {"x": rng.standard_normal(shape), "w": rng.standard_normal((c, 1, k, k)) * 0.3}
    if bias:
        tensors.append(tensor("b", [c], "input"))
        inputs["b"] = rng.standard_normal(c)
    tensors.append(tensor("y", None, "output"))
    pads = list(pad) if isinstance(pad, tuple) else [pad] * 4
    attrs = {"strides": [stride, stride], "pads": pads, "dilations": [dilation, dilation]}
    graph = {"tensors": tensors, "ops": [op("depthwise_conv", "dw", names, ["y"], **attrs)]}
    return graph, inputs, lambda t: window(t["x"], (k, k), (stride, stride), pads, (dilation, dilation), 0, "dw",
                                           w=t["w"], b=t.get("b"))


def batch_norm_case(shape, epsilon):
    c = shape[1]
    names = ["x", "scale", "bias", "mean", "var"]
    tensors = [tensor("x", list(shape), "input")] + [tensor(n, [c], "input") for n in names[1:]] + \
        [tensor("y", None, "output")]
    inputs = {"x": rng.standard_normal(shape), "scale": rng.standard_normal(c), "bias": rng.standard_normal(c),
              "mean": rng.standard_normal(c) * 0.5, "var": rng.uniform(0.5, 2.0, c)}
    graph = {"tensors": tensors, "ops": [op("BatchNormalization", "bn", names, ["y"], epsilon=epsilon)]}

    def want(t):
        per = (1, c) + (1,) * (len(shape) - 2)
        out = np.empty(shape)
        for ch in range(c):  # channel by channel
            s = t["scale"][ch] / np.sqrt(t["var"][ch] + np.float32(epsilon))
            out[:, ch] = (t["x"][:, ch] - t["mean"][ch]) * s + t["bias"][ch]
        assert out.shape == tuple(shape) and len(per) == len(shape)
        return out
    return graph, inputs, want


def global_average_case(shape):
    graph = {"tensors": [tensor("x", list(shape), "input"), tensor("y", None, "output")],
             "ops": [op("GlobalAveragePool", "gap", ["x"], ["y"])]}
    inputs = {"x": rng.standard_normal(shape)}

    def want(t):
        n, c = shape[:2]
        out = np.zeros((n, c) + (1,) * (len(shape) - 2))
        flat = t["x"].reshape(n, c, -1)
        for i in range(flat.shape[2]):
            out.reshape(n, c)[:, :] += flat[:, :, i]
        return out / flat.shape[2]
    return graph, inputs, want


def resize_case(shape, scale, use_sizes, transform, nearest):
    tensors = [tensor("x", list(shape), "input")]
    if use_sizes:
        sizes = [shape[0], shape[1], shape[2] * scale, shape[3] * scale]
        tensors.append(tensor("sizes", [4], "constant", dtype="int64", value=sizes))
        names = ["x", "", "", "sizes"]
    else:
        tensors.append(tensor("scales", [4], "constant", value=[1.0, 1.0, float(scale), float(scale)]))
        names = ["x", "", "scales"]
    tensors.append(tensor("y", None, "output"))
    graph = {"tensors": tensors, "ops": [op("Resize", "up", names, ["y"], mode="nearest",
                                            coordinate_transformation_mode=transform, nearest_mode=nearest)]}
    inputs = {"x": rng.standard_normal(shape)}

    def want(t):
        n, c, h, w = shape
        out = np.empty((n, c, h * scale, w * scale))
        for i in range(h * scale):
            for j in range(w * scale):
                out[:, :, i, j] = t["x"][:, :, i // scale, j // scale]
        return out
    return graph, inputs, want


def name_of(*parts):
    return "_".join(str(p).replace(" ", "").replace(",", "x").replace("(", "").replace(")", "").replace("[", "")
                    .replace("]", "") for p in parts)


POOLS = [  # kind, shape, kernel, strides, pads, ceil, dilations, count_include_pad
    ("MaxPool", (1, 3, 8, 8), (2, 2), (2, 2), (0, 0, 0, 0), 0, (1, 1), 0),
    ("MaxPool", (3, 4, 9, 7), (3, 3), (2, 2), (1, 1, 1, 1), 0, (1, 1), 0),
    ("MaxPool", (1, 2, 9, 7), (3, 3), (2, 2), (1, 1, 1, 1), 1, (1, 1), 0),
    ("MaxPool", (1, 3, 11, 13), (3, 3), (1, 1), (0, 1, 1, 0), 0, (2, 2), 0),
    ("MaxPool", (3, 2, 10, 10), (7, 7), (1, 1), (3, 3, 3, 3), 0, (1, 1), 0),
    ("MaxPool", (1, 5, 7, 9), (2, 2), (2, 2), (0, 0, 1, 1), 1, (1, 1), 0),
    ("AveragePool", (1, 3, 8, 8), (2, 2), (2, 2), (0, 0, 0, 0), 0, (1, 1), 0),
    ("AveragePool", (3, 4, 9, 7), (3, 3), (2, 2), (1, 1, 1, 1), 0, (1, 1), 1),
    ("AveragePool", (3, 4, 9, 7), (3, 3), (2, 2), (1, 1, 1, 1), 0, (1, 1), 0),
    ("AveragePool", (1, 2, 9, 7), (3, 3), (2, 2), (1, 1, 1, 1), 1, (1, 1), 1),
    ("AveragePool", (1, 2, 9, 7), (3, 3), (2, 2), (1, 1, 1, 1), 1, (1, 1), 0),
    ("AveragePool", (1, 3, 11, 13), (3, 3), (1, 1), (0, 1, 2, 0), 0, (1, 1), 1),
    ("AveragePool", (1, 2, 14, 14), (7, 7), (1, 1), (0, 0, 0, 0), 0, (1, 1), 0),
    ("AveragePool", (3, 2, 5, 5), (2, 2), (1, 1), (1, 1, 1, 1), 1, (1, 1), 0),
]

for config in ("minimal", "edge", "t64"):
    for kind, shape, kernel, strides, pads, ceil, dil, inc in POOLS:
        g, i, f = pool_case(kind, shape, kernel, strides, pads, ceil, dil, inc)
        check.run(g, config, i, f, name_of(kind, shape, "k", kernel, "s", strides, "p", pads, "ceil", ceil, "d",
                                           dil[0], "inc", inc), "y")
    for shape in ((1, 4, 7, 7), (3, 5, 6, 9)):
        g, i, f = global_average_case(shape)
        check.run(g, config, i, f, name_of("GlobalAveragePool", shape), "y")
    for shape in ((1, 4, 6, 7), (3, 5, 9, 6), (2, 3, 10), (4, 6)):
        g, i, f = batch_norm_case(shape, 1e-3)
        check.run(g, config, i, f, name_of("BatchNormalization", shape), "y")
    for shape, k, stride, pad, bias in (((1, 4, 9, 9), 3, 1, 1, True), ((3, 3, 10, 7), 3, 2, 1, False),
                                         ((1, 6, 11, 12), 3, 2, 1, True), ((1, 3, 9, 8), 5, 1, 2, True),
                                         ((3, 2, 12, 12), 5, 2, 2, False)):
        g, i, f = depthwise_case(shape, k, stride, pad, bias)
        check.run(g, config, i, f, name_of("depthwise", shape, "k", k, "s", stride, "p", pad, "b", int(bias)), "y")
    for shape, scale, sizes, transform, nearest in (((1, 3, 4, 5), 2, False, "asymmetric", "floor"),
                                                     ((3, 2, 5, 3), 3, True, "half_pixel", "round_prefer_floor"),
                                                     ((1, 2, 3, 4), 3, False, "half_pixel", "round_prefer_floor"),
                                                     ((1, 4, 6, 6), 2, True, "asymmetric", "floor")):
        g, i, f = resize_case(shape, scale, sizes, transform, nearest)
        check.run(g, config, i, f, name_of("Resize", shape, "x", scale, "sizes" if sizes else "scales", transform), "y")
    for kind, shape, kernel, strides, auto_pad in (("MaxPool", (1, 3, 9, 8), (3, 3), (2, 2), "SAME_UPPER"),
                                                    ("AveragePool", (3, 2, 7, 10), (2, 3), (2, 1), "SAME_LOWER"),
                                                    ("AveragePool", (1, 2, 9, 9), (3, 3), (2, 2), "VALID")):
        g, i, f = auto_pad_case(kind, shape, kernel, strides, auto_pad)
        check.run(g, config, i, f, name_of(kind, shape, "k", kernel, "s", strides, auto_pad), "y")
    g, i, f = depthwise_case((3, 4, 11, 9), 3, 1, (2, 0, 1, 2), True, dilation=2)
    check.run(g, config, i, f, name_of("depthwise", "3x4x11x9", "k3_d2_asymmetric"), "y")

# Full-size layers on t64: ResNet-18's stem pool, MobileNetV2's first depthwise and a batch
# normalization of ResNet's first stage.
for name, (g, i, f) in (("resnet_stem_maxpool", pool_case("MaxPool", (1, 64, 112, 112), (3, 3), (2, 2), (1, 1, 1, 1), 0)),
                        ("mobilenet_depthwise", depthwise_case((1, 32, 112, 112), 3, 1, 1, True)),
                        ("resnet_batch_norm", batch_norm_case((1, 64, 56, 56), 1e-5))):
    check.run(g, "t64", i, f, name, "y")

check.finish()
