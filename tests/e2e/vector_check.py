#!/usr/bin/env python3
"""Vector-engine ops end to end: kpu-compile + kpu-sim --check (the C++ reference, each tensor
within its op's tolerance) and, independently, against NumPy in float64 on odd shapes (one
row, primes, rows ragged against the lanes, reductions with keepdims both ways), on edge and
t64; and the layout ops the movers copy (Transpose of every perm, Concat, Slice, Split, Gather),
exactly.
Tolerance: max |got - want| / max(|want|, 1) below 1e-5 (float32 arithmetic plus the engine's
exp, tanh and erf at a few ulp, on values of order one; LayerNorm and Softmax stay of order
one by construction).
Usage: vector_check.py BUILD_BIN_DIR SOURCE_DIR WORK_DIR"""
import json
import math
import os
import sys

import numpy as np

from kpu_run import Checker, op, tensor

bin_dir, source_dir, work = sys.argv[1:4]
rng = np.random.default_rng(29)
check = Checker(bin_dir, source_dir, work, tolerance=1e-5)
run = check.run


erf = np.vectorize(math.erf)


def gelu(x):
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


def layer_norm(x, w, b, eps=1e-5):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# MatMul -> Add(bias row) -> Gelu -> LayerNormalization: a transformer's FFN output.
def ffn(m, k, n):
    graph = {"tensors": [tensor("x", [m, k], "input"), tensor("W", [k, n], "constant"),
                         tensor("b", [n], "constant"), tensor("h", None, "intermediate"),
                         tensor("hb", None, "intermediate"), tensor("g", None, "intermediate"),
                         tensor("gamma", [n], "constant"), tensor("beta", [n], "constant"),
                         tensor("y", None, "output")],
             "ops": [op("MatMul", "mm", ["x", "W"], ["h"]), op("Add", "bias", ["h", "b"], ["hb"]),
                     op("Gelu", "act", ["hb"], ["g"]),
                     op("LayerNormalization", "ln", ["g", "gamma", "beta"], ["y"], axis=-1, epsilon=1e-5)]}
    inputs = {"x": rng.standard_normal((m, k)) / math.sqrt(k), "W": rng.standard_normal((k, n)),
              "b": rng.standard_normal(n), "gamma": rng.standard_normal(n), "beta": rng.standard_normal(n)}
    return graph, inputs, lambda t: layer_norm(gelu(t["x"] @ t["W"] + t["b"]), t["gamma"], t["beta"])


def lone(kind, shape, b_shape=None, **attributes):
    tensors = [tensor("x", shape, "input"), tensor("y", None, "output")]
    inputs = {"x": rng.standard_normal(shape) * 2}
    names = ["x"]
    if b_shape is not None:
        tensors.insert(1, tensor("b", b_shape, "input"))
        inputs["b"] = rng.standard_normal(b_shape) + (3 if kind == "Div" else 0)
        names.append("b")
    return {"tensors": tensors, "ops": [op(kind, "v", names, ["y"], **attributes)]}, inputs


for config in ("edge", "t64"):
    for m, k, n in ((37, 64, 96), (1, 16, 17)):
        g, i, f = ffn(m, k, n)
        run(g, config, i, f, f"ffn_{m}x{k}x{n}", "y")
    for shape in ((1, 1), (1, 131), (7, 13), (67, 129), (3, 5, 37)):
        g, i = lone("Softmax", list(shape), axis=-1)
        run(g, config, i, lambda t: softmax(t["x"]), "softmax_" + "x".join(map(str, shape)), "y")
    # Other axes: Softmax between Transposes swapping its axis with the last; the norms over a
    # [rows, normalized elements] view.
    for shape, axis in (((7, 13), 0), ((3, 5, 7), 1), ((3, 5, 7), -3), ((2, 3, 4, 5), 1)):
        g, i = lone("Softmax", list(shape), axis=axis)
        run(g, config, i, lambda t, a=axis: np.moveaxis(softmax(np.moveaxis(t["x"], a, -1)), -1, a),
            "softmax_" + "x".join(map(str, shape)) + f"_axis{axis}", "y")
    for shape, axis in (((3, 5, 7), 1), ((2, 3, 4, 5), -3)):
        norm = tuple(shape[axis:])
        g = {"tensors": [tensor("x", list(shape), "input"), tensor("w", list(norm), "constant"),
                         tensor("c", list(norm), "constant"), tensor("y", None, "output")],
             "ops": [op("LayerNormalization", "ln", ["x", "w", "c"], ["y"], axis=axis)]}
        i = {"x": rng.standard_normal(shape), "w": rng.standard_normal(norm), "c": rng.standard_normal(norm)}

        def ln_axes(t, axis=axis):
            axes = tuple(range(axis % len(t["x"].shape), len(t["x"].shape)))
            mean = t["x"].mean(axis=axes, keepdims=True)
            var = ((t["x"] - mean) ** 2).mean(axis=axes, keepdims=True)
            return (t["x"] - mean) / np.sqrt(var + 1e-5) * t["w"] + t["c"]
        run(g, config, i, ln_axes, "layer_norm_" + "x".join(map(str, shape)) + f"_axis{axis}", "y")
    unary = {"Relu": lambda x: np.maximum(x, 0), "Sigmoid": lambda x: 1 / (1 + np.exp(-x)), "Tanh": np.tanh,
             "Exp": np.exp, "Neg": lambda x: -x, "Abs": np.abs}
    sigmoid = unary["Sigmoid"]
    unary.update({
        "Silu": lambda x: x * sigmoid(x), "Erf": erf, "Sqrt": np.sqrt, "Reciprocal": lambda x: 1 / x,
        "HardSwish": lambda x: x * np.clip(x / 6 + 0.5, 0, 1)})
    for kind, fn in unary.items():
        g, i = lone(kind, [11, 23])
        if kind in ("Sqrt", "Reciprocal"):  # away from 0 and its poles
            i["x"] = np.abs(i["x"]) + 0.25
        run(g, config, i, lambda t, fn=fn: fn(t["x"]), kind.lower() + "_11x23", "y")
    g, i = lone("LeakyRelu", [2, 3, 17], alpha=0.1)
    run(g, config, i, lambda t: np.where(t["x"] < 0, 0.1 * t["x"], t["x"]), "leaky_relu_2x3x17", "y")
    g, i = lone("HardSigmoid", [2, 3, 17], alpha=0.3, beta=0.4)
    run(g, config, i, lambda t: np.clip(0.3 * t["x"] + 0.4, 0, 1), "hard_sigmoid_2x3x17", "y")
    g, i = lone("Gelu", [13, 29], approximate="tanh")
    run(g, config, i,
        lambda t: 0.5 * t["x"] * (1 + np.tanh(math.sqrt(2 / math.pi) * (t["x"] + 0.044715 * t["x"] ** 3))),
        "gelu_tanh_13x29", "y")
    g, i = lone("Pow", [7, 11], [11])
    i["x"] = np.abs(i["x"]) + 0.5
    i["b"] = rng.uniform(-2, 2, 11)
    run(g, config, i, lambda t: t["x"] ** t["b"], "pow_7x11_by_11", "y")
    binary = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Max": np.maximum,
              "Min": np.minimum}
    for kind, fn in binary.items():
        for b_shape in ([5, 3, 19], [19], [1], [5, 3, 1]):
            g, i = lone(kind, [5, 3, 19], b_shape)
            run(g, config, i, lambda t, fn=fn: fn(t["x"], t["b"]),
                f"{kind.lower()}_5x3x19_by_" + "x".join(map(str, b_shape)), "y")
    g, i = lone("RMSNormalization", [9, 31], None, axis=-1, epsilon=1e-5)
    g["tensors"].insert(1, tensor("s", [31], "constant"))
    g["ops"][0]["inputs"].append("s")
    i["s"] = rng.standard_normal(31)
    run(g, config, i, lambda t: t["x"] / np.sqrt((t["x"] ** 2).mean(axis=-1, keepdims=True) + 1e-5) * t["s"],
        "rms_norm_9x31", "y")
    # A constant with its value inline in the graph (no .npy): kpu-sim feeds the program's value.
    g, i = lone("Mul", [6, 23])
    scale = [round(0.25 * (j - 11), 2) for j in range(23)]
    c = tensor("c", [23], "constant")
    c["value"] = scale
    g["tensors"].insert(1, c)
    g["ops"][0]["inputs"].append("c")
    run(g, config, i, lambda t: t["x"] * np.array(scale), "mul_6x23_by_inline_23", "y")


def reduce_graph(kind, shape, axes, **attributes):
    """y = kind(x, axes) with the int64 axes inline (a compile-time value, no DRAM tensor)."""
    tensors = [tensor("x", list(shape), "input"), tensor("y", None, "output")]
    names = ["x"]
    if axes is not None:
        tensors.insert(1, {"name": "axes", "dtype": "int64", "role": "constant", "value": axes})
        names.append("axes")
    return {"tensors": tensors, "ops": [op(kind, "r", names, ["y"], **attributes)]}, {"x": rng.standard_normal(shape)}


reductions = {"ReduceSum": np.sum, "ReduceMean": np.mean, "ReduceMax": np.max}
for config in ("edge", "t64"):
    # One element, one row, primes, 3-D with keepdims both ways, rows ragged against the lanes.
    for shape, axes, keepdims in (((1, 1), [-1], 1), ((1, 131), [1], 0), ((67, 129), [-1], 1), ((5, 65), [1], 0),
                                  ((3, 5, 37), [-1], 1), ((3, 5, 37), [2], 0), ((13,), None, 0), ((2, 3, 1), [-1], 0)):
        for kind, fn in reductions.items():
            g, i = reduce_graph(kind, shape, axes, keepdims=keepdims)
            run(g, config, i, lambda t, fn=fn, k=keepdims: fn(t["x"], axis=-1, keepdims=bool(k)),
                f"{kind.lower()}_" + "x".join(map(str, shape)) + f"_keepdims{keepdims}", "y")
    # Other axes: expanded into a Transpose moving them last (none when they already are), a
    # view, the reduction over the last axis and a view to the output's shape.
    for shape, axes, keepdims in (((2, 3, 4, 5), [2, 3], 1), ((2, 3, 4, 5), [-2, -1], 0), ((7, 13), None, 0),
                                  ((7, 13), None, 1), ((7, 13), [0], 1), ((3, 5, 7), [0], 0), ((3, 5, 7), [0, 2], 1),
                                  ((3, 5, 7), [1], 0)):
        for kind, fn in reductions.items():
            g, i = reduce_graph(kind, shape, axes, keepdims=keepdims)
            run(g, config, i, lambda t, fn=fn, a=axes, k=keepdims: fn(t["x"], axis=None if a is None else tuple(a),
                                                                        keepdims=bool(k)),
                f"{kind.lower()}_" + "x".join(map(str, shape)) + "_axes" + ("all" if axes is None else
                                                                             "_".join(map(str, axes))) +
                f"_keepdims{keepdims}", "y")
    # Rows longer than edge's L2 holds: reductions in two passes, elementwise ops on shorter rows.
    for kind, fn in reductions.items():
        g, i = reduce_graph(kind, (3, 70000), [-1], keepdims=1)
        run(g, config, i, lambda t, fn=fn: fn(t["x"], axis=-1, keepdims=True), f"{kind.lower()}_3x70000_long_rows", "y")
    g, i = lone("Add", [2, 100000], [2, 100000])
    run(g, config, i, lambda t: t["x"] + t["b"], "add_2x100000_long_rows", "y")
    g, i = lone("Exp", [1, 100000])
    run(g, config, i, lambda t: np.exp(t["x"]), "exp_1x100000_long_rows", "y")
    g, i = reduce_graph("ReduceSum", (7, 13), None, noop_with_empty_axes=1)
    run(g, config, i, lambda t: t["x"], "reduce_sum_7x13_noop", "y")
    # A reduction's rows feed another op's rows of a different 2D view: [6, 7, 33] -> [6, 7].
    g, i = reduce_graph("ReduceMean", (6, 7, 33), [-1], keepdims=0)
    g["tensors"][2]["role"] = "intermediate"
    g["tensors"].append(tensor("z", None, "output"))
    g["ops"].append(op("Exp", "e", ["y"], ["z"]))
    run(g, config, i, lambda t: np.exp(t["x"].mean(axis=-1)), "reduce_mean_6x7x33_then_exp", "z")
    for lo, hi in ((-0.5, 0.75), (None, 0.75), (-0.5, None), (None, None)):
        g, i = lone("Clip", [5, 3, 19])
        names = ["x", "", ""]
        for slot, (bound, value) in enumerate((("lo", lo), ("hi", hi)), start=1):
            if value is not None:
                g["tensors"].insert(1, {"name": bound, "dtype": "float32", "role": "constant", "value": value})
                names[slot] = bound
        g["ops"][0]["inputs"] = names[:3 if hi is not None else 2 if lo is not None else 1]
        run(g, config, i, lambda t, lo=lo, hi=hi: np.clip(t["x"], -np.inf if lo is None else lo,
                                                          np.inf if hi is None else hi),
            f"clip_5x3x19_{lo}_{hi}", "y")


def int64(name, values):
    """A compile-time int64 tensor (a view's shape or axes): inline, no DRAM tensor."""
    return {"name": name, "dtype": "int64", "role": "constant", "value": values}


# Views lower as aliases (no data movement): their readers read the aliased bytes.
for config in ("edge", "t64"):
    # MatMul -> Reshape (0 copies a dim, -1 infers one) -> Softmax over the new last axis.
    g = {"tensors": [tensor("a", [6, 10], "input"), tensor("w", [10, 12], "constant"), tensor("p", None, "intermediate"),
                     int64("shape", [0, -1, 4]), tensor("r", None, "intermediate"), tensor("y", None, "output")],
         "ops": [op("MatMul", "mm", ["a", "w"], ["p"]), op("Reshape", "view", ["p", "shape"], ["r"]),
                 op("Softmax", "sm", ["r"], ["y"], axis=-1)]}
    i = {"a": rng.standard_normal((6, 10)), "w": rng.standard_normal((10, 12)) / math.sqrt(10)}
    run(g, config, i, lambda t: softmax((t["a"] @ t["w"]).reshape(6, 3, 4)), "matmul_reshape_softmax", "y")
    # Unsqueeze -> Tanh -> Squeeze: the elementwise op reads and writes through views.
    g = {"tensors": [tensor("x", [5, 7], "input"), int64("ax0", [0, -1]), tensor("u", None, "intermediate"),
                     tensor("t", None, "intermediate"), int64("ax1", [0, 3]), tensor("y", None, "output")],
         "ops": [op("Unsqueeze", "up", ["x", "ax0"], ["u"]), op("Tanh", "th", ["u"], ["t"]),
                 op("Squeeze", "down", ["t", "ax1"], ["y"])]}
    i = {"x": rng.standard_normal((5, 7))}
    run(g, config, i, lambda t: np.tanh(t["x"]), "unsqueeze_tanh_squeeze", "y")
    # Flatten of a 3-D tensor (computed, then viewed) feeding a MatMul.
    g = {"tensors": [tensor("x", [3, 4, 5], "input"), tensor("e", None, "intermediate"), tensor("f", None, "intermediate"),
                     tensor("w", [5, 9], "constant"), tensor("y", None, "output")],
         "ops": [op("Exp", "ex", ["x"], ["e"]), op("Flatten", "flat", ["e"], ["f"], axis=2),
                 op("MatMul", "mm", ["f", "w"], ["y"])]}
    i = {"x": rng.standard_normal((3, 4, 5)), "w": rng.standard_normal((5, 9)) / math.sqrt(5)}
    run(g, config, i, lambda t: np.exp(t["x"]).reshape(12, 5) @ t["w"], "exp_flatten_matmul", "y")
    # Outputs that are views of the graph's input and of another output: kpu-sim reads them at
    # the shared address.
    g = {"tensors": [tensor("x", [2, 6], "input"), tensor("v", None, "output"), tensor("y", None, "output"),
                     tensor("z", None, "output")],
         "ops": [op("Flatten", "fx", ["x"], ["v"], axis=0), op("Relu", "re", ["x"], ["y"]),
                 op("Flatten", "fy", ["y"], ["z"], axis=0)]}
    i = {"x": rng.standard_normal((2, 6))}
    run(g, config, i, lambda t: t["x"].reshape(1, 12), "output_view_of_input", "v")
    run(g, config, i, lambda t: np.maximum(t["x"], 0).reshape(1, 12), "output_view_of_output", "z")
# Transpose of the last two axes: data movement by the movers (no compute), exact.
for config in ("edge", "t64"):
    for shape in ((7, 13), (3, 5, 37)):
        perm = list(range(len(shape) - 2)) + [len(shape) - 1, len(shape) - 2]
        g, i = lone("Transpose", list(shape), perm=perm)
        run(g, config, i, lambda t, perm=perm: t["x"].transpose(perm), "transpose_" + "x".join(map(str, shape)), "y")
    # MatMul -> Transpose -> Softmax over the transposed rows.
    g = {"tensors": [tensor("a", [11, 6], "input"), tensor("w", [6, 9], "constant"), tensor("p", None, "intermediate"),
                     tensor("t", None, "intermediate"), tensor("y", None, "output")],
         "ops": [op("MatMul", "mm", ["a", "w"], ["p"]), op("Transpose", "tr", ["p"], ["t"], perm=[1, 0]),
                 op("Softmax", "sm", ["t"], ["y"], axis=-1)]}
    i = {"a": rng.standard_normal((11, 6)), "w": rng.standard_normal((6, 9)) / math.sqrt(6)}
    run(g, config, i, lambda t: softmax((t["a"] @ t["w"]).T), "matmul_transpose_softmax", "y")
# Layout ops: copies by the movers (strided rows, transposed blocks when the last axis
# moves), exact. Each float input is random; each int64 input a compile-time constant.
def layout(kind, shapes, consts=(), outputs=("y",), **attributes):
    tensors = [tensor(n, list(s), "input") for n, s in shapes.items()]
    for n, v in consts:  # a nested list: its shape, its values row-major
        t = int64(n, np.array(v).ravel().tolist() if np.ndim(v) else v)
        if np.ndim(v) > 1:
            t["shape"] = list(np.shape(v))
        tensors.append(t)
    tensors += [tensor(o, None, "output") for o in outputs]
    names = list(shapes) + [n for n, _ in consts]
    inputs = {n: rng.standard_normal(s) for n, s in shapes.items()}
    return {"tensors": tensors, "ops": [op(kind, "l", names, list(outputs), **attributes)]}, inputs


def slice_ref(x, starts, ends, axes, steps):
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        index[a] = slice(s, e, st)
    return x[tuple(index)]


for config in ("edge", "t64"):
    perms = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]]
    for shape, perm_list in (((3, 5, 7), perms), ((3, 5, 7, 2), [[0, 2, 1, 3], [1, 0, 2, 3], [3, 2, 1, 0],
                                                                   [2, 0, 3, 1], [1, 3, 0, 2], [0, 3, 1, 2]]),
                             ((1, 9, 4, 8), [[0, 2, 1, 3]]), ((1, 4, 9, 8), [[0, 2, 1, 3]]),
                             ((2, 3, 1, 2, 3, 5), [[5, 3, 1, 0, 4, 2], [0, 2, 4, 1, 3, 5]])):
        for perm in perm_list:
            g, i = layout("Transpose", {"x": shape}, perm=perm)
            run(g, config, i, lambda t, perm=perm: t["x"].transpose(perm),
                "transpose_" + "x".join(map(str, shape)) + "_" + "".join(map(str, perm)), "y")
    for shape, perm in (((300, 2, 400), [2, 1, 0]), ((700, 3, 256), [1, 0, 2])):  # copies larger than a tile
        g, i = layout("Transpose", {"x": shape}, perm=perm)
        run(g, config, i, lambda t, perm=perm: t["x"].transpose(perm),
            "transpose_pieces_" + "x".join(map(str, shape)), "y")
    g, i = layout("Transpose", {"x": (2, 3, 4)})  # ONNX's default: every axis reversed
    run(g, config, i, lambda t: t["x"].transpose(), "transpose_default", "y")
    for axis in (0, 1, 2, -1, -2):
        shapes = {}
        for n, extra in (("a", 2), ("b", 1), ("c", 3)):
            s = [3, 4, 5]
            s[axis] = extra
            shapes[n] = tuple(s)
        g, i = layout("Concat", shapes, axis=axis)
        run(g, config, i, lambda t, axis=axis: np.concatenate([t["a"], t["b"], t["c"]], axis=axis),
            f"concat3_axis{axis}", "y")
    g, i = layout("Concat", {"a": (5,), "b": (3,)}, axis=0)
    run(g, config, i, lambda t: np.concatenate([t["a"], t["b"]]), "concat_rank1", "y")
    for name, shape, starts, ends, axes, steps in (
            ("neg_clamped", (7, 9, 11), [-5, 1], [100, -2], [0, 2], [1, 1]),
            ("steps", (7, 9, 11), [1, 0, 2], [7, 9, 9], [0, 1, 2], [3, 2, 1]),
            ("backwards", (7, 9, 11), [-1, 8], [-100, 0], [0, 1], [-2, -3]),
            ("rank1", (13,), [-9], [12], [0], [1]),
            ("last_one", (6, 10), [1, 4], [5, 5], [0, 1], [2, 3])):
        g, i = layout("Slice", {"x": shape}, (("starts", starts), ("ends", ends), ("axes", axes), ("steps", steps)))
        run(g, config, i, lambda t, a=(starts, ends, axes, steps): slice_ref(t["x"], *a), "slice_" + name, "y")
    outs = ("y0", "y1", "y2")
    g, i = layout("Split", {"x": (7, 5)}, (("split", [2, 4, 1]),), outputs=outs, axis=0)
    for k, o in enumerate(outs):
        run(g, config, i, lambda t, k=k: np.split(t["x"], [2, 6])[k], f"split_rows_{o}", o)
    g, i = layout("Split", {"x": (3, 4, 10)}, outputs=outs, axis=-1, num_outputs=3)
    for k, o in enumerate(outs):
        run(g, config, i, lambda t, k=k: np.split(t["x"], [4, 8], axis=-1)[k], f"split_cols_{o}", o)
    g = {"tensors": [tensor("x", [9, 4], "input"), tensor("y0", None, "output"), tensor("y2", None, "output")],
         "ops": [op("Split", "l", ["x"], ["y0", "", "y2"], axis=0)]}  # the middle part omitted
    i = {"x": rng.standard_normal((9, 4))}
    run(g, config, i, lambda t: t["x"][6:], "split_omitted_y2", "y2")
    for name, shape, idx, axis in (("rows", (11, 6), [3, -1, 0, 3, 10], 0), ("2d", (11, 6), [[1, 2], [-3, 4]], 0),
                                   ("scalar", (11, 6), 7, 0), ("vector", (9,), [[4, -1, 0]], 0),
                                   ("axis1", (4, 7, 5), [6, -7, 2], 1)):
        g, i = layout("Gather", {"x": shape}, (("indices", idx),), axis=axis)
        run(g, config, i, lambda t, idx=idx, axis=axis: np.take(t["x"], np.array(idx), axis=axis), "gather_" + name, "y")
    # Transpose -> Add -> Transpose: each waits for the stores of the one before.
    g = {"tensors": [tensor("x", [6, 5, 7], "input"), tensor("b", [5, 6, 7], "input"), tensor("t", None, "intermediate"),
                     tensor("s", None, "intermediate"), tensor("y", None, "output")],
         "ops": [op("Transpose", "t1", ["x"], ["t"], perm=[1, 0, 2]), op("Add", "add", ["t", "b"], ["s"]),
                 op("Transpose", "t2", ["s"], ["y"], perm=[2, 1, 0])]}
    i = {"x": rng.standard_normal((6, 5, 7)), "b": rng.standard_normal((5, 6, 7))}
    run(g, config, i, lambda t: (t["x"].transpose(1, 0, 2) + t["b"]).transpose(2, 1, 0), "transpose_add_transpose", "y")
    # Two channel mixes in NHWC with a Relu and a per-channel bias between them in NCHW: the
    # layout pass (compiler/layout_pass.h) runs those in NHWC and cancels the inner Transposes.
    g = {"tensors": [tensor("x", [2, 3, 5, 7], "input"), tensor("w1", [3, 4], "constant"), tensor("b", [4, 1, 1], "constant"),
                     tensor("w2", [4, 2], "constant")] +
                    [tensor(n, None, "intermediate") for n in ("xt", "m", "mc", "r", "a", "at", "m2")] +
                    [tensor("y", None, "output")],
         "ops": [op("Transpose", "in", ["x"], ["xt"], perm=[0, 2, 3, 1]), op("MatMul", "mm1", ["xt", "w1"], ["m"]),
                 op("Transpose", "out1", ["m"], ["mc"], perm=[0, 3, 1, 2]), op("Relu", "relu", ["mc"], ["r"]),
                 op("Add", "bias", ["r", "b"], ["a"]), op("Transpose", "in2", ["a"], ["at"], perm=[0, 2, 3, 1]),
                 op("MatMul", "mm2", ["at", "w2"], ["m2"]), op("Transpose", "out2", ["m2"], ["y"], perm=[0, 3, 1, 2])]}
    i = {"x": rng.standard_normal((2, 3, 5, 7)), "w1": rng.standard_normal((3, 4)), "b": rng.standard_normal((4, 1, 1)),
         "w2": rng.standard_normal((4, 2))}

    def nhwc_chain(t):
        a = np.maximum(np.einsum("nchw,cd->ndhw", t["x"], t["w1"]), 0) + t["b"]
        return np.einsum("nchw,cd->ndhw", a, t["w2"])
    run(g, config, i, nhwc_chain, "layout_pass_nhwc_chain", "y")
# Attention heads as BERT and GPT-2 split and merge them: a projection viewed as [1, S, H, E],
# Transpose [0, 2, 1, 3] to heads, a softmax per head row, back and viewed as [S, H E] for the
# output projection; K^T per head (Transpose [0, 2, 3, 1]) beside it.
for config in ("edge", "t64"):
    s_, h_, e_ = 32, 4, 24
    g = {"tensors": [tensor("x", [s_, h_ * e_], "input"), tensor("wq", [h_ * e_, h_ * e_], "constant"),
                     tensor("wo", [h_ * e_, h_ * e_], "constant"), tensor("q", None, "intermediate"),
                     int64("s4", [1, s_, h_, e_]), tensor("q4", None, "intermediate"), tensor("qh", None, "intermediate"),
                     tensor("kt", None, "intermediate"), tensor("sm", None, "intermediate"),
                     tensor("m4", None, "intermediate"), int64("s2", [s_, h_ * e_]), tensor("m", None, "intermediate"),
                     tensor("y", None, "output"), tensor("z", None, "output")],
         "ops": [op("MatMul", "proj", ["x", "wq"], ["q"]), op("Reshape", "split_view", ["q", "s4"], ["q4"]),
                 op("Transpose", "heads", ["q4"], ["qh"], perm=[0, 2, 1, 3]),
                 op("Transpose", "k_t", ["q4"], ["kt"], perm=[0, 2, 3, 1]),
                 op("Softmax", "sm", ["qh"], ["sm"], axis=-1),
                 op("Transpose", "merge", ["sm"], ["m4"], perm=[0, 2, 1, 3]),
                 op("Reshape", "merge_view", ["m4", "s2"], ["m"]), op("MatMul", "out", ["m", "wo"], ["y"]),
                 op("Softmax", "smk", ["kt"], ["z"], axis=-1)]}
    d = h_ * e_
    i = {"x": rng.standard_normal((s_, d)), "wq": rng.standard_normal((d, d)) / math.sqrt(d),
         "wo": rng.standard_normal((d, d)) / math.sqrt(d)}
    heads = lambda t: (t["x"] @ t["wq"]).reshape(1, s_, h_, e_)
    run(g, config, i, lambda t: softmax(heads(t).transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3).reshape(s_, d) @ t["wo"],
        "attention_heads_merge", "y")
    run(g, config, i, lambda t: softmax(heads(t).transpose(0, 2, 3, 1)), "attention_heads_k_t", "z")
# examples/ffn_block.json: fc1 + bias, gelu, fc2 + bias, a residual, layernorm.
with open(os.path.join(source_dir, "examples", "ffn_block.json")) as f:
    block = json.load(f)
shapes = {t["name"]: t.get("shape") for t in block["tensors"]}
block_inputs = {n: rng.standard_normal(s) / (math.sqrt(s[0]) if n.startswith("W") else 1)
                for n, s in shapes.items() if s}
for config in ("edge", "t64"):
    run(block, config, block_inputs,
        lambda t: layer_norm(gelu(t["x"] @ t["W1"] + t["b1"]) @ t["W2"] + t["b2"] + t["x"], t["gamma"], t["beta"]),
        "ffn_block", "y")
check.finish()
