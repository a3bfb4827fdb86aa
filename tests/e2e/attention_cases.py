"""The Attention cases the NumPy checks share (attention_check.py, flash_attention_check.py):
ONNX Attention graphs with random inputs and their evaluation in NumPy float64."""
import numpy as np

from kpu_run import op, tensor


def softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def causal_mask(sq, skv):
    """0 where key j may be seen from query i (j <= i, ONNX's upper-left alignment), else -inf."""
    return np.where(np.arange(skv)[None, :] > np.arange(sq)[:, None], -np.inf, 0.0)


def attention_case(rng, b, hq, hkv, sq, skv, e, ev, mask_shape, causal, four, scale=None):
    """ONNX Attention: 4-D Q [B, Hq, Sq, E] or 3-D Q [B, Sq, Hq*E] (K, V alike), query head h
    on key/value head h / (Hq / Hkv), inputs drawn from `rng`."""
    qs, ks, vs = ((b, hq, sq, e), (b, hkv, skv, e), (b, hkv, skv, ev)) if four else \
        ((b, sq, hq * e), (b, skv, hkv * e), (b, skv, hkv * ev))
    tensors = [tensor("q", qs, "input"), tensor("k", ks, "input"), tensor("v", vs, "input")]
    inputs = {"q": rng.standard_normal(qs), "k": rng.standard_normal(ks), "v": rng.standard_normal(vs)}
    names = ["q", "k", "v"]
    if mask_shape is not None:
        tensors.append(tensor("mask", mask_shape, "input"))
        inputs["mask"] = rng.standard_normal(mask_shape)
        names.append("mask")
    tensors.append(tensor("y", None, "output"))
    attributes = {"is_causal": int(causal)}
    if not four:
        attributes.update(q_num_heads=hq, kv_num_heads=hkv)
    if scale is not None:
        attributes["scale"] = scale
    graph = {"tensors": tensors, "ops": [op("Attention", "att", names, ["y"], **attributes)]}

    def want(t):
        def heads(x, h, size):  # -> [B, H, S, size]
            return x if four else x.reshape(b, -1, h, size).transpose(0, 2, 1, 3)
        q, k, v = heads(t["q"], hq, e), heads(t["k"], hkv, e), heads(t["v"], hkv, ev)
        k, v = np.repeat(k, hq // hkv, axis=1), np.repeat(v, hq // hkv, axis=1)
        s = q @ k.transpose(0, 1, 3, 2) * (scale if scale is not None else 1 / np.sqrt(e))
        if mask_shape is not None:
            s = s + t["mask"]
        if causal:
            s = s + causal_mask(sq, skv)
        y = softmax(s) @ v
        return y if four else y.transpose(0, 2, 1, 3).reshape(b, sq, hq * ev)
    return graph, inputs, want
