#!/usr/bin/python3
"""The transformer examples: a BERT-base encoder layer and a GPT-2 small block as graph JSON
(ONNX's vocabulary), their inputs and an independent NumPy evaluation.

  examples/transformer_blocks.py          rewrites examples/bert_base_layer.json and gpt2_block.json

Both take x [128, 768] (sequence 128, hidden 768, 12 heads of 64, FFN 3072); linear layers are
Gemm with a bias row, attention is ONNX's Attention in its 3-D form.
- bert_base_layer: post-LN; y = LN2(h1 + FFN(h1)), h1 = LN1(x + Attn(x, mask)), erf GELU, an
  additive padding mask [1, 1, 1, 128] (0 for the first 100 keys, -10000 after), epsilon 1e-12.
- gpt2_block: pre-LN; r = x + Attn(LN1(x)) causal; y = r + FFN(LN2(r)), tanh GELU, epsilon 1e-5.
tests/e2e/example_check.py checks kpu-sim against reference(); benchmarks/transformer_blocks.py
times both."""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from graph_json import op, tensor, write  # noqa: E402

SEQ, HIDDEN, HEADS, FFN = 128, 768, 12, 3072
EXAMPLES = ("bert_base_layer", "gpt2_block")


class _Builder:
    def __init__(self):
        self.tensors, self.ops = [], []

    def linear(self, name, x, n_in, n_out, out):
        self.tensors += [tensor(name + ".W", [n_in, n_out], "constant"), tensor(name + ".b", [n_out], "constant")]
        self.ops.append(op("Gemm", name, [x, name + ".W", name + ".b"], [out]))

    def layer_norm(self, name, x, out, epsilon):
        self.tensors += [tensor(name + ".gamma", [HIDDEN], "constant"), tensor(name + ".beta", [HIDDEN], "constant")]
        self.ops.append(op("LayerNormalization", name, [x, name + ".gamma", name + ".beta"], [out], axis=-1,
                            epsilon=epsilon))

    def attention(self, x, causal, mask=None):
        """q, k, v projections, Attention (3-D form, 12 heads), the output projection."""
        for p in "qkv":
            self.tensors.append(tensor(f"attn.{p}", None, "intermediate"))
            self.linear(f"attn.{p}_proj", x, HIDDEN, HIDDEN, f"attn.{p}")
        self.tensors.append(tensor("attn.seq_shape", [3], "constant", "int64", [1, SEQ, HIDDEN]))
        for p in "qkv":
            self.tensors.append(tensor(f"attn.{p}3", None, "intermediate"))
            self.ops.append(op("Reshape", f"attn.{p}_batch", [f"attn.{p}", "attn.seq_shape"], [f"attn.{p}3"]))
        self.tensors += [tensor("attn.ctx3", None, "intermediate"), tensor("attn.ctx", None, "intermediate"),
                         tensor("attn.flat_shape", [2], "constant", "int64", [SEQ, HIDDEN]),
                         tensor("attn.out", None, "intermediate")]
        inputs = ["attn.q3", "attn.k3", "attn.v3"] + ([mask] if mask else [])
        self.ops.append(op("Attention", "attn.sdpa", inputs, ["attn.ctx3"], q_num_heads=HEADS, kv_num_heads=HEADS,
                            is_causal=int(causal)))
        self.ops.append(op("Reshape", "attn.unbatch", ["attn.ctx3", "attn.flat_shape"], ["attn.ctx"]))
        self.linear("attn.o_proj", "attn.ctx", HIDDEN, HIDDEN, "attn.out")
        return "attn.out"

    def intermediates(self, *names):
        self.tensors += [tensor(n, None, "intermediate") for n in names]

    def graph(self):
        return {"tensors": self.tensors, "ops": self.ops}


def graph(name):
    b = _Builder()
    b.tensors.append(tensor("x", [SEQ, HIDDEN], "input"))
    if name == "bert_base_layer":
        b.tensors.append(tensor("mask", [1, 1, 1, SEQ], "input"))
        a = b.attention("x", False, "mask")
        b.intermediates("res1", "h1", "ffn.up", "ffn.act", "ffn.down", "res2")
        b.ops.append(op("Add", "residual1", ["x", a], ["res1"]))
        b.layer_norm("ln1", "res1", "h1", 1e-12)
        b.linear("ffn.fc1", "h1", HIDDEN, FFN, "ffn.up")
        b.ops.append(op("Gelu", "ffn.gelu", ["ffn.up"], ["ffn.act"]))
        b.linear("ffn.fc2", "ffn.act", FFN, HIDDEN, "ffn.down")
        b.ops.append(op("Add", "residual2", ["h1", "ffn.down"], ["res2"]))
        b.layer_norm("ln2", "res2", "y", 1e-12)
    else:
        b.intermediates("h")
        b.layer_norm("ln_1", "x", "h", 1e-5)
        a = b.attention("h", True)
        b.intermediates("res1", "h2", "mlp.up", "mlp.act", "mlp.down")
        b.ops.append(op("Add", "residual1", ["x", a], ["res1"]))
        b.layer_norm("ln_2", "res1", "h2", 1e-5)
        b.linear("mlp.c_fc", "h2", HIDDEN, FFN, "mlp.up")
        b.ops.append(op("Gelu", "mlp.gelu", ["mlp.up"], ["mlp.act"], approximate="tanh"))
        b.linear("mlp.c_proj", "mlp.act", FFN, HIDDEN, "mlp.down")
        b.ops.append(op("Add", "residual2", ["res1", "mlp.down"], ["y"]))
    b.tensors.append(tensor("y", None, "output"))
    return b.graph()


def inputs(name, rng):
    """Every input and constant of the example with random values of order one (weights
    scaled by 1/sqrt(fan-in), so activations stay of order one through the layer)."""
    values = {}
    for t in graph(name)["tensors"]:
        if t.get("role") not in ("input", "constant") or "value" in t:
            continue
        shape = t["shape"]
        if t["name"] == "mask":
            values["mask"] = np.where(np.arange(SEQ) < 100, 0.0, -10000.0).reshape(shape)
        elif t["name"].endswith(".W"):
            values[t["name"]] = rng.standard_normal(shape) / math.sqrt(shape[0])
        elif t["name"].endswith(".gamma"):
            values[t["name"]] = 1 + 0.1 * rng.standard_normal(shape)
        else:
            values[t["name"]] = (0.1 if t["name"] != "x" else 1) * rng.standard_normal(shape)
    return values


def _layer_norm(x, gamma, beta, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _gelu(x, tanh):
    if tanh:
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    erf = np.vectorize(math.erf, otypes=[x.dtype])
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


def _attention(t, x, causal, mask):
    def heads(z):  # [S, H*E] -> [H, S, E]
        return z.reshape(SEQ, HEADS, HIDDEN // HEADS).transpose(1, 0, 2)
    q, k, v = (heads(x @ t[f"attn.{p}_proj.W"] + t[f"attn.{p}_proj.b"]) for p in "qkv")
    s = q @ k.transpose(0, 2, 1) / math.sqrt(HIDDEN // HEADS)
    if mask is not None:
        s = s + mask.reshape(1, 1, SEQ)
    if causal:
        s = np.where(np.arange(SEQ)[None, None, :] > np.arange(SEQ)[None, :, None], -np.inf, s)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    ctx = (p @ v).transpose(1, 0, 2).reshape(SEQ, HIDDEN)
    return ctx @ t["attn.o_proj.W"] + t["attn.o_proj.b"]


def reference(name, t):
    """y of the example from its inputs `t` (a dict of arrays; their dtype is the arithmetic's)."""
    x = t["x"]
    if name == "bert_base_layer":
        h1 = _layer_norm(x + _attention(t, x, False, t["mask"]), t["ln1.gamma"], t["ln1.beta"], 1e-12)
        f = _gelu(h1 @ t["ffn.fc1.W"] + t["ffn.fc1.b"], False) @ t["ffn.fc2.W"] + t["ffn.fc2.b"]
        return _layer_norm(h1 + f, t["ln2.gamma"], t["ln2.beta"], 1e-12)
    r = x + _attention(t, _layer_norm(x, t["ln_1.gamma"], t["ln_1.beta"], 1e-5), True, None)
    h2 = _layer_norm(r, t["ln_2.gamma"], t["ln_2.beta"], 1e-5)
    return r + _gelu(h2 @ t["mlp.c_fc.W"] + t["mlp.c_fc.b"], True) @ t["mlp.c_proj.W"] + t["mlp.c_proj.b"]


if __name__ == "__main__":
    for example in EXAMPLES:
        write(graph(example), os.path.join(os.path.dirname(os.path.abspath(__file__)), example + ".json"))
