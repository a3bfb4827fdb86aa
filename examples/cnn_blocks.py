#!/usr/bin/python3
"""The CNN examples: a ResNet-18 basic block with a downsampling shortcut and a MobileNetV2
inverted-residual block, as graph JSON (ONNX's vocabulary, NCHW), their inputs and an
independent NumPy evaluation (a direct convolution over the kernel taps, not im2col).

  examples/cnn_blocks.py          rewrites examples/resnet18_basic_block.json and mobilenetv2_block.json

- resnet18_basic_block (ResNet-18's layer2.0): x [1, 64, 56, 56] -> Conv 3x3/2 (128) -> BN ->
  Relu -> Conv 3x3 (128) -> BN, plus the shortcut Conv 1x1/2 (128) -> BN, Add, Relu ->
  y [1, 128, 28, 28].
- mobilenetv2_block (an inverted residual of expansion 6, stride 1): x [1, 24, 56, 56] ->
  Conv 1x1 (144) -> BN -> ReLU6 -> depthwise Conv 3x3 (144 groups) -> BN -> ReLU6 -> Conv 1x1
  (24) -> BN, plus x -> y [1, 24, 56, 56]. ReLU6 is Clip(0, 6).
tests/e2e/example_check.py checks kpu-sim against reference()."""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from graph_json import op, tensor, write  # noqa: E402

EXAMPLES = ("resnet18_basic_block", "mobilenetv2_block")


class _Builder:
    def __init__(self):
        self.tensors, self.ops, self.convs = [], [], {}

    def conv(self, name, x, c_in, c_out, k, stride, group=1):
        """Conv without bias (BN follows), pads k // 2."""
        self.tensors += [tensor(name + ".W", [c_out, c_in // group, k, k], "constant"), tensor(name, None, "intermediate")]
        self.convs[name] = (c_in, c_out, k, stride, group)
        self.ops.append(op("Conv", name + ".conv", [x, name + ".W"], [name], kernel_shape=[k, k], strides=[stride, stride],
                           pads=[k // 2] * 4, group=group))
        return name

    def bn(self, name, x, c, out=None):
        out = out or name
        self.tensors += [tensor(f"{name}.{p}", [c], "constant") for p in ("scale", "B", "mean", "var")]
        if out == name:
            self.tensors.append(tensor(out, None, "intermediate"))
        self.ops.append(op("BatchNormalization", name + ".bn", [x] + [f"{name}.{p}" for p in ("scale", "B", "mean", "var")],
                           [out], epsilon=1e-5))
        return out

    def unary(self, kind, name, x, **attributes):
        self.tensors.append(tensor(name, None, "intermediate"))
        self.ops.append(op(kind, name, [x], [name], **attributes))
        return name


def graph(name):
    b = _Builder()
    if name == "resnet18_basic_block":
        b.tensors.append(tensor("x", [1, 64, 56, 56], "input"))
        h = b.unary("Relu", "relu1", b.bn("bn1", b.conv("conv1", "x", 64, 128, 3, 2), 128))
        main = b.bn("bn2", b.conv("conv2", h, 128, 128, 3, 1), 128)
        short = b.bn("ds_bn", b.conv("ds_conv", "x", 64, 128, 1, 2), 128)
        b.tensors += [tensor("sum", None, "intermediate"), tensor("y", None, "output")]
        b.ops += [op("Add", "residual", [main, short], ["sum"]), op("Relu", "relu2", ["sum"], ["y"])]
    else:
        b.tensors += [tensor("x", [1, 24, 56, 56], "input"), tensor("six", None, "constant", value=6.0),
                      tensor("zero", None, "constant", value=0.0)]
        h = b.bn("bn_expand", b.conv("expand", "x", 24, 144, 1, 1), 144)
        h = b.unary("Clip", "relu6_1", h)
        b.ops[-1]["inputs"] += ["zero", "six"]
        h = b.bn("bn_dw", b.conv("dw", h, 144, 144, 3, 1, group=144), 144)
        h = b.unary("Clip", "relu6_2", h)
        b.ops[-1]["inputs"] += ["zero", "six"]
        p = b.bn("bn_project", b.conv("project", h, 144, 24, 1, 1), 24)
        b.tensors.append(tensor("y", None, "output"))
        b.ops.append(op("Add", "residual", ["x", p], ["y"]))
    return {"tensors": b.tensors, "ops": b.ops}


def inputs(name, rng):
    """Every input and constant without an inline value: x ~ N(0, 1), convolution weights
    scaled by sqrt(2 / fan-in) (He), BN statistics near identity with var > 0."""
    values = {}
    for t in graph(name)["tensors"]:
        if t.get("role") not in ("input", "constant") or "value" in t:
            continue
        shape, n = t["shape"], t["name"]
        if n.endswith(".W"):
            values[n] = rng.standard_normal(shape) * math.sqrt(2 / np.prod(shape[1:]))
        elif n.endswith(".var"):
            values[n] = 0.5 + rng.random(shape)
        elif n.endswith(".scale"):
            values[n] = 1 + 0.1 * rng.standard_normal(shape)
        else:
            values[n] = (1 if n == "x" else 0.1) * rng.standard_normal(shape)
    return values


def conv2d(x, w, stride, pad, group):
    """Direct convolution: a sum over the kernel taps of strided input windows times the
    tap's weights, per group (NCHW, weights [C_out, C_in / group, kH, kW])."""
    n, c, h, wd = x.shape
    c_out, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    y = np.zeros((n, c_out, oh, ow), dtype=x.dtype)
    per = c_out // group
    for g in range(group):
        xs = xp[:, g * cg:(g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                window = xs[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
                y[:, g * per:(g + 1) * per] += np.einsum("nchw,oc->nohw", window, w[g * per:(g + 1) * per, :, i, j])
    return y


def batch_norm(x, t, name):
    s = t[name + ".scale"] / np.sqrt(t[name + ".var"] + 1e-5)
    return (x - t[name + ".mean"][None, :, None, None]) * s[None, :, None, None] + t[name + ".B"][None, :, None, None]


def reference(name, t):
    """y of the example from its inputs `t` (a dict of arrays)."""
    x = t["x"]
    if name == "resnet18_basic_block":
        h = np.maximum(batch_norm(conv2d(x, t["conv1.W"], 2, 1, 1), t, "bn1"), 0)
        main = batch_norm(conv2d(h, t["conv2.W"], 1, 1, 1), t, "bn2")
        short = batch_norm(conv2d(x, t["ds_conv.W"], 2, 0, 1), t, "ds_bn")
        return np.maximum(main + short, 0)
    h = np.clip(batch_norm(conv2d(x, t["expand.W"], 1, 0, 1), t, "bn_expand"), 0, 6)
    h = np.clip(batch_norm(conv2d(h, t["dw.W"], 1, 1, 144), t, "bn_dw"), 0, 6)
    return x + batch_norm(conv2d(h, t["project.W"], 1, 0, 1), t, "bn_project")


if __name__ == "__main__":
    for example in EXAMPLES:
        write(graph(example), os.path.join(os.path.dirname(os.path.abspath(__file__)), example + ".json"))
