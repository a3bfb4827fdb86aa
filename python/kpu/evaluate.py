"""FUNCTIONAL mode's fast path: the compiled graph (the .kpu's, composites expanded) evaluated
in float32 with torch's kernels, op by op, with ONNX's semantics (docs/graph-format.md). An
op kind without a rule here makes evaluate() return None, and the runtime falls back to the C++
reference (sc_main/reference.h), which takes every op but works in double precision with error
bounds (far slower). Nothing here checks anything: `kpu-sim --check` and the tests do that.
A graph with reduced-precision tensors (bfloat16, float16, int8, int32: docs/quantization.md)
takes the reference too: its rounding and integer arithmetic are the reference's to give."""
import math

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # the package works without torch; FUNCTIONAL then uses the reference
    torch = None


def _ints(a, name, default=None):
    value = a.get(name, default)
    return None if value is None else list(value)


def _axes(t, i, a, name="axes"):
    """A Reduce/Squeeze op's axes: its inline input i (opset 18 form) or its attribute."""
    if len(t) > i and t[i] is not None:
        return [int(v) for v in t[i].flatten().tolist()]
    return _ints(a, name)


def _conv_nchw(x, w, b, a, groups):
    top, left, bottom, right = _ints(a, "pads", [0, 0, 0, 0])
    x = F.pad(x, (left, right, top, bottom))
    return F.conv2d(x, w, b, stride=_ints(a, "strides", [1, 1]), dilation=_ints(a, "dilations", [1, 1]), groups=groups)


def _pool(kind, x, a):
    k = _ints(a, "kernel_shape")
    s = _ints(a, "strides", [1, 1])
    top, left, bottom, right = _ints(a, "pads", [0, 0, 0, 0])
    if a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID") or a.get("ceil_mode", 0):
        raise KeyError("pool form")
    d = _ints(a, "dilations", [1, 1])
    if kind == "MaxPool":
        x = F.pad(x, (left, right, top, bottom), value=-math.inf)
        return F.max_pool2d(x, k, s, dilation=d)
    if a.get("count_include_pad", 0):
        return F.avg_pool2d(F.pad(x, (left, right, top, bottom)), k, s)
    ones = F.pad(torch.ones_like(x[:1, :1]), (left, right, top, bottom))
    summed = F.avg_pool2d(F.pad(x, (left, right, top, bottom)), k, s, divisor_override=1)
    return summed / F.avg_pool2d(ones, k, s, divisor_override=1)


def _slices(shape, t, a):
    """ONNX Slice's index per axis (starts, ends, axes, steps inline), clamped as ONNX does."""
    starts, ends = t[1].tolist(), t[2].tolist()
    axes = t[3].tolist() if len(t) > 3 and t[3] is not None else list(range(len(starts)))
    steps = t[4].tolist() if len(t) > 4 and t[4] is not None else [1] * len(starts)
    index = [slice(None)] * len(shape)
    for s, e, axis, step in zip(starts, ends, axes, steps):
        dim = shape[axis]
        s, e = s + dim if s < 0 else s, e + dim if e < 0 else e
        if step > 0:
            s, e = min(max(s, 0), dim), min(max(e, 0), dim)
        else:
            s, e = min(max(s, -1), dim - 1), min(max(e, -1), dim - 1)
            if s < 0:
                s, e = 0, 0  # nothing selected
        index[axis % len(shape)] = slice(s, None if step < 0 and e < 0 else e, step)
    return tuple(index)


if torch is not None:
    _UNARY = {"Relu": torch.relu, "Sigmoid": torch.sigmoid, "Tanh": torch.tanh, "Exp": torch.exp, "Erf": torch.erf,
              "Sqrt": torch.sqrt, "Reciprocal": torch.reciprocal, "Neg": torch.neg, "Abs": torch.abs, "Silu": F.silu}
    _BINARY = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div, "Max": torch.maximum,
               "Min": torch.minimum, "Pow": torch.pow}


def _flash_attention(t, a):
    """flash_attention (the fuse-attention pass's Attention): softmax(Q K^T scale + mask, causal) V
    over [B, H, S, E] (the 3-D form [B, S, H E] split into heads and merged back), query head h
    on key/value head h / (Hq / Hkv)."""
    q, k, v = t[0], t[1], t[2]
    four = q.dim() == 4
    if not four:
        hq, hkv = a["q_num_heads"], a["kv_num_heads"]
        q = q.reshape(q.shape[0], q.shape[1], hq, -1).transpose(1, 2)
        k = k.reshape(k.shape[0], k.shape[1], hkv, -1).transpose(1, 2)
        v = v.reshape(v.shape[0], v.shape[1], hkv, -1).transpose(1, 2)
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    s = q @ k.transpose(-1, -2) * a.get("scale", 1 / math.sqrt(q.shape[-1]))
    if len(t) > 3 and t[3] is not None:
        s = s + t[3]
    if a.get("is_causal", 0):
        sq, skv = s.shape[-2], s.shape[-1]
        s = s.masked_fill(torch.ones(sq, skv, dtype=torch.bool).triu(1), -math.inf)
    y = torch.softmax(s, dim=-1) @ v
    return y if four else y.transpose(1, 2).reshape(y.shape[0], y.shape[2], -1)


def _op(kind, t, a, out_shapes):
    """Outputs of one op from its inputs `t` (torch tensors or None) and attributes `a`."""
    x = t[0] if t else None
    if kind in _UNARY:
        return [_UNARY[kind](x)]
    if kind in _BINARY:
        return [_BINARY[kind](x, t[1])]
    if kind == "LeakyRelu":
        return [F.leaky_relu(x, a.get("alpha", 0.01))]
    if kind == "Gelu":
        return [F.gelu(x, approximate=a.get("approximate", "none"))]
    if kind == "HardSigmoid":
        return [torch.clamp(a.get("alpha", 0.2) * x + a.get("beta", 0.5), 0, 1)]
    if kind == "HardSwish":
        return [F.hardswish(x)]
    if kind == "Clip":
        lo = t[1].item() if len(t) > 1 and t[1] is not None else None
        hi = t[2].item() if len(t) > 2 and t[2] is not None else None
        return [torch.clamp(x, lo, hi)]
    if kind in ("Reshape", "Flatten", "Squeeze", "Unsqueeze"):
        return [x.reshape(out_shapes[0])]
    if kind == "Transpose":
        perm = _ints(a, "perm") or list(range(x.dim()))[::-1]
        return [x.permute(*perm).contiguous()]
    if kind == "Concat":
        return [torch.cat([v for v in t if v is not None], dim=a["axis"])]
    if kind == "Slice":
        return [torch.from_numpy(np.ascontiguousarray(x.numpy()[_slices(x.shape, t, a)]))]
    if kind == "Split":
        axis = a.get("axis", 0) % x.dim()
        return list(torch.split(x, [s[axis] for s in out_shapes], dim=axis))
    if kind == "Gather":
        return [torch.from_numpy(np.take(x.numpy(), t[1].numpy(), axis=a.get("axis", 0)))]
    if kind == "Resize":
        raise KeyError(kind)  # the reference takes it (ONNX's coordinate rules, written once there)
    if kind in ("MatMul",):
        return [torch.matmul(x, t[1])]
    if kind == "Gemm":
        A = x.t() if a.get("transA", 0) else x
        B = t[1].t() if a.get("transB", 0) else t[1]
        y = a.get("alpha", 1.0) * (A @ B)
        if len(t) > 2 and t[2] is not None:
            y = y + a.get("beta", 1.0) * t[2]
        return [y]
    if kind == "Softmax":
        return [torch.softmax(x, dim=a.get("axis", -1))]
    if kind == "masked_softmax":
        s = x * a.get("scale", 1.0)
        if len(t) > 1 and t[1] is not None:
            s = s + t[1]
        if a.get("is_causal", 0):
            sq, skv = s.shape[-2], s.shape[-1]
            s = s.masked_fill(torch.ones(sq, skv, dtype=torch.bool).triu(1), -math.inf)
        return [torch.softmax(s, dim=-1)]
    if kind == "flash_attention":
        return [_flash_attention(t, a)]
    if kind in ("LayerNormalization", "RMSNormalization"):
        axis = a.get("axis", -1) % x.dim()
        dims = tuple(range(axis, x.dim()))
        eps = a.get("epsilon", 1e-5)
        if kind == "LayerNormalization":
            y = F.layer_norm(x, x.shape[axis:], None, None, eps) * t[1]
            return [y + t[2] if len(t) > 2 and t[2] is not None else y]
        return [x * torch.rsqrt(x.pow(2).mean(dim=dims, keepdim=True) + eps) * t[1]]
    if kind in ("ReduceSum", "ReduceMean", "ReduceMax"):
        axes = _axes(t, 1, a)
        keep = bool(a.get("keepdims", 1))
        if not axes:
            if a.get("noop_with_empty_axes", 0):
                return [x]
            axes = list(range(x.dim()))
        fn = {"ReduceSum": torch.sum, "ReduceMean": torch.mean}.get(kind)
        y = fn(x, dim=axes, keepdim=keep) if fn else torch.amax(x, dim=axes, keepdim=keep)
        return [y.reshape(out_shapes[0])]
    if kind == "conv_nhwc":  # X [N, G, H, W, Cg], W [G, kH, kW, Cg, Cog], B [G, Cog] -> [N, G, OH, OW, Cog]
        n, g, h, w, cg = x.shape
        _, kh, kw, _, cog = t[1].shape
        xn = x.permute(0, 1, 4, 2, 3).reshape(n, g * cg, h, w)
        wn = t[1].permute(0, 4, 3, 1, 2).reshape(g * cog, cg, kh, kw)
        b = t[2].reshape(-1) if len(t) > 2 and t[2] is not None else None
        y = _conv_nchw(xn, wn, b, a, g)
        y = y.reshape(n, g, cog, y.shape[-2], y.shape[-1]).permute(0, 1, 3, 4, 2).contiguous()
        return [_DRAIN_ACTIVATIONS[a.get("activation", "none")](_epilogue(y, t, t[3].reshape(g, 1, 1, cog)
                                                                          if len(t) > 3 and t[3] is not None else None))]
    if kind == "depthwise_conv":
        if a.get("auto_pad", "NOTSET") != "NOTSET":
            raise KeyError("depthwise auto_pad")
        b = t[2] if len(t) > 2 and t[2] is not None else None
        return [_conv_nchw(x, t[1], b, a, x.shape[1])]
    if kind in ("MaxPool", "AveragePool"):
        return [_pool(kind, x, a)]
    if kind == "matmul":  # ours: act((A @ B (+ bias)) (* scale) (+ residual))
        y = x @ t[1]
        if len(t) > 2 and t[2] is not None:
            y = y + t[2]
        return [_DRAIN_ACTIVATIONS[a.get("activation", "none")](_epilogue(y, t, t[3] if len(t) > 3 else None))]
    if kind == "vector_chain":  # ours (fuse-rows): its steps one after the other
        return [_vector_chain(t, a, out_shapes)]
    if kind == "ffn":  # ours (fuse-ffn): act(X @ W1 (+ B1)) @ W2 (+ B2), the drain's activation
        h = x @ t[1] + (t[3] if len(t) > 3 and t[3] is not None else 0)
        h = _DRAIN_ACTIVATIONS[a.get("activation", "none")](h)
        return [h @ t[2] + (t[4] if len(t) > 4 and t[4] is not None else 0)]
    raise KeyError(kind)


def _epilogue(y, t, scale):
    """The drain's stages between the bias and the activation (hardware/fabric_command.h): times
    the per-channel scale (broadcast as given), then plus the residual t[4], each in fp32."""
    if scale is not None:
        y = y * scale
    if len(t) > 4 and t[4] is not None:
        y = y + t[4]
    return y


def _vector_chain(t, a, out_shapes):
    """vector_chain (the fuse-rows pass's): each step an op of its kind on the chain's inputs
    (`sources`: -1 the previous step's result, -2 omitted, k the chain's input k)."""
    kinds, approximate = a["kinds"].split(","), a["approximate"].split(",")
    at, y = 0, None
    for s, kind in enumerate(kinds):
        ins = []
        for src in a["sources"][at:at + a["arity"][s]]:
            ins.append(y if src == -1 else None if src == -2 else t[src])
        at += a["arity"][s]
        step = {"epsilon": a["epsilon"][s]} if kind.endswith("Normalization") else {}
        if kind == "Gelu":
            step["approximate"] = approximate[s]
        y = _op(kind, ins, step, out_shapes)[0]
    return y


# The fused matmul's activations (hardware/fabric_command.h): "gelu" is the tanh approximation.
_DRAIN_ACTIVATIONS = {
    "none": lambda y: y,
    "relu": lambda y: torch.relu(y),
    "gelu": lambda y: F.gelu(y, approximate="tanh"),
    "gelu_erf": lambda y: F.gelu(y),
    "sigmoid": lambda y: torch.sigmoid(y),
    "silu": lambda y: F.silu(y),
    "tanh": lambda y: torch.tanh(y),
}


# Element types whose arithmetic (rounding on store, integer accumulation) evaluate() leaves to the reference.
_REDUCED = ("float16", "bfloat16", "int8", "int32")


def evaluate(graph, inputs, weights):
    """Every tensor the graph computes, as float32 numpy arrays, or None when torch is missing or
    some op has no rule here. `graph` is the .kpu's graph JSON; `inputs` and `weights` map
    tensor names to arrays."""
    if torch is None or any(t.get("dtype", "float32") in _REDUCED for t in graph["tensors"]):
        return None
    values, shapes = {}, {}
    for t in graph["tensors"]:
        shapes[t["name"]] = tuple(t["shape"])
        if "value" in t:
            v = np.asarray(t["value"], dtype=np.float64).reshape(t["shape"])
            values[t["name"]] = torch.from_numpy(v.astype(np.int64 if t.get("dtype", "float32").startswith("int")
                                                          else np.float32))
    for source in (weights, inputs):
        for name, v in source.items():
            values[name] = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
    computed = {}
    with torch.no_grad():
        for o in graph["ops"]:
            if "inputs" in o:
                ins, outs, attributes = o["inputs"], o["outputs"], o.get("attributes", {})
            else:  # the fused matmul's own keys
                ins = [o["A"], o["B"], o.get("bias", ""), o.get("scale", ""), o.get("residual", "")]
                outs, attributes = [o["C"]], {"activation": o.get("activation", "none")}
            try:
                results = _op(o["op"], [values.get(n) if n else None for n in ins], attributes,
                              [shapes.get(n) for n in outs])
            except KeyError:
                return None
            for name, v in zip(outs, results):
                if name:
                    values[name] = v
                    computed[name] = v.numpy().astype(np.float32, copy=False)
    return computed
