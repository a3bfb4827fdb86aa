"""FUNCTIONAL's fast path (kpu.evaluate) against the C++ reference (an independent evaluation
in double), on graphs of the index-heavy ops: Slice with negative and clamped bounds and
negative steps, uneven Split, Gather with negative indices, Transpose, a reduction over other
axes, masked_softmax with a causal mask."""
import json

import numpy as np

import kpu
from conftest import agree, config_path
from kpu.evaluate import evaluate


def ints(name, values, shape=None):
    t = {"name": name, "dtype": "int64", "role": "constant", "value": values}
    if shape:
        t["shape"] = shape
    return t


GRAPH = {
    "tensors": [{"name": "x", "shape": [6, 5, 7], "role": "input"},
                ints("starts", [-1, -5, 1]), ints("ends", [-100, 100, 6]), ints("axes", [0, 2, 1]), ints("steps", [-2, 1, 2]),
                {"name": "s"}, ints("split", [2, 4]), {"name": "a"}, {"name": "b"}, ints("idx", [4, -1, 0, -5], [2, 2]),
                {"name": "g"}, {"name": "t"}, ints("raxes", [0, 2]), {"name": "r", "role": "output"},
                {"name": "m", "role": "output"}, {"name": "y", "role": "output"}],
    "ops": [{"op": "Slice", "name": "sl", "inputs": ["x", "starts", "ends", "axes", "steps"], "outputs": ["s"]},
            {"op": "Split", "name": "sp", "inputs": ["x", "split"], "outputs": ["a", "b"], "attributes": {"axis": 0}},
            {"op": "Gather", "name": "ga", "inputs": ["b", "idx"], "outputs": ["g"], "attributes": {"axis": 1}},
            {"op": "Transpose", "name": "tr", "inputs": ["a"], "outputs": ["t"], "attributes": {"perm": [2, 0, 1]}},
            {"op": "ReduceMean", "name": "re", "inputs": ["s", "raxes"], "outputs": ["r"]},
            {"op": "masked_softmax", "name": "ms", "inputs": ["t"], "outputs": ["m"],
             "attributes": {"scale": 0.5, "is_causal": 1}},
            {"op": "Add", "name": "add", "inputs": ["g", "g"], "outputs": ["y"]}]}


def test_fast_path_matches_the_reference(tmp_path):
    path = tmp_path / "g.json"
    path.write_text(json.dumps(GRAPH))
    program = kpu.KPUCompiler().compile(str(path), config_path("edge"))
    graph = json.loads(program.native.kpu_text())["graph"]
    x = np.random.default_rng(3).standard_normal((6, 5, 7)).astype(np.float32)
    fast = evaluate(graph, {"x": x}, {})
    assert fast is not None, "an op fell back to the reference"
    reference = program.native.reference({"x": x})
    for name in ("s", "a", "b", "g", "t", "r", "m", "y"):
        if name in reference:
            agree(fast[name], reference[name])
    # Independently of both: NumPy's own slicing of the same bounds.
    agree(fast["s"], x[-1:-7:-2, 1:6:2, -5:])
    agree(fast["g"], np.take(x[2:], [[4, -1], [0, -5]], axis=1))


def fused_fast_path(tmp_path, graph, config, kind, shapes):
    """`graph` compiled for `config` into one op of `kind`: the program, random inputs of
    `shapes` (name, shape) and the fast path's outputs on them (not the reference's)."""
    path = tmp_path / "fused.json"
    path.write_text(json.dumps(graph))
    program = kpu.KPUCompiler().compile(str(path), config_path(config))
    compiled = json.loads(program.native.kpu_text())["graph"]
    assert [o["op"] for o in compiled["ops"]] == [kind]
    rng = np.random.default_rng(5)
    t = {n: rng.standard_normal(s).astype(np.float32) for n, s in shapes}
    fast = evaluate(compiled, t, {})
    assert fast is not None, f"the {kind} op fell back to the reference"
    return program, t, fast


def test_fused_ffn_matches_the_reference_and_numpy(tmp_path):
    """fuse-ffn makes the MLP one ffn op on minimal: the fast path's rule for it against the C++
    reference and NumPy."""
    graph = {"tensors": [{"name": "x", "shape": [100, 72], "role": "input"},
                         {"name": "W1", "shape": [72, 200], "role": "input"}, {"name": "b1", "shape": [200], "role": "input"},
                         {"name": "h"}, {"name": "W2", "shape": [200, 40], "role": "input"},
                         {"name": "b2", "shape": [40], "role": "input"}, {"name": "y", "role": "output"}],
             "ops": [{"op": "matmul", "name": "fc1", "A": "x", "B": "W1", "bias": "b1", "activation": "gelu", "C": "h"},
                     {"op": "matmul", "name": "fc2", "A": "h", "B": "W2", "bias": "b2", "C": "y"}]}
    program, t, fast = fused_fast_path(tmp_path, graph, "minimal", "ffn", (
        ("x", (100, 72)), ("W1", (72, 200)), ("b1", (200,)), ("W2", (200, 40)), ("b2", (40,))))
    agree(fast["y"], program.native.reference(t)["y"])
    h = t["x"].astype(np.float64) @ t["W1"] + t["b1"]
    h = 0.5 * h * (1 + np.tanh(np.sqrt(2 / np.pi) * (h + 0.044715 * h ** 3)))  # the drain's gelu
    agree(fast["y"], h @ t["W2"] + t["b2"])
def test_drain_epilogue_matches_the_reference_and_numpy(tmp_path):
    """fuse-epilogue takes a per-channel Mul, a residual Add and a Relu into a matmul: the fast
    path's rule for its scale and residual against the C++ reference and NumPy."""
    graph = {"tensors": [{"name": "x", "shape": [30, 20], "role": "input"}, {"name": "W", "shape": [20, 12], "role": "input"},
                         {"name": "s", "shape": [12], "role": "input"}, {"name": "r", "shape": [30, 12], "role": "input"},
                         {"name": "t"}, {"name": "u"}, {"name": "v"}, {"name": "y", "role": "output"}],
             "ops": [{"op": "MatMul", "name": "mm", "inputs": ["x", "W"], "outputs": ["t"]},
                     {"op": "Mul", "name": "scale", "inputs": ["t", "s"], "outputs": ["u"]},
                     {"op": "Add", "name": "skip", "inputs": ["r", "u"], "outputs": ["v"]},
                     {"op": "Relu", "name": "act", "inputs": ["v"], "outputs": ["y"]}]}
    path = tmp_path / "mm.json"
    path.write_text(json.dumps(graph))
    program = kpu.KPUCompiler().compile(str(path), config_path("edge"))
    compiled = json.loads(program.native.kpu_text())["graph"]
    assert [(o["op"], o.get("scale"), o.get("residual")) for o in compiled["ops"]] == [("matmul", "s", "r")]
    rng = np.random.default_rng(7)
    t = {n: rng.standard_normal(s).astype(np.float32) for n, s in
         (("x", (30, 20)), ("W", (20, 12)), ("s", (12,)), ("r", (30, 12)))}
    fast = evaluate(compiled, t, {})
    assert fast is not None, "the fused matmul fell back to the reference"
    agree(fast["y"], program.native.reference(t)["y"])
    agree(fast["y"], np.maximum((t["x"].astype(np.float64) @ t["W"]) * t["s"] + t["r"], 0))


def attention_graph(four):
    """Attention with grouped heads, a mask per query and causal masking: the pass fuses it."""
    q, k, v = ([1, 4, 9, 8], [1, 2, 9, 8], [1, 2, 9, 6]) if four else ([1, 9, 32], [1, 9, 16], [1, 9, 12])
    attributes = {"is_causal": 1} if four else {"is_causal": 1, "q_num_heads": 4, "kv_num_heads": 2}
    return {"tensors": [{"name": "q", "shape": q, "role": "input"}, {"name": "k", "shape": k, "role": "input"},
                        {"name": "v", "shape": v, "role": "input"}, {"name": "m", "shape": [9, 9], "role": "input"},
                        {"name": "y", "role": "output"}],
            "ops": [{"op": "Attention", "name": "att", "inputs": ["q", "k", "v", "m"], "outputs": ["y"],
                     "attributes": attributes}]}


def test_flash_attention_matches_the_reference(tmp_path):
    rng = np.random.default_rng(5)
    for four in (True, False):
        graph_json = attention_graph(four)
        path = tmp_path / "a.json"
        path.write_text(json.dumps(graph_json))
        program = kpu.KPUCompiler().compile(str(path), config_path("edge"))
        graph = json.loads(program.native.kpu_text())["graph"]
        assert [o["op"] for o in graph["ops"]] == ["flash_attention"]
        inputs = {t["name"]: rng.standard_normal(t["shape"]).astype(np.float32)
                  for t in graph_json["tensors"] if t.get("role") == "input"}
        fast = evaluate(graph, inputs, {})
        assert fast is not None, "flash_attention fell back to the reference"
        agree(fast["y"], program.native.reference(inputs)["y"])


def test_vector_chain_matches_the_reference_and_numpy(tmp_path):
    """fuse-rows makes BERT's residual Add and LayerNorm, then a Gelu, one vector_chain: the fast
    path runs its steps in turn, against the C++ reference and NumPy."""
    graph = {"tensors": [{"name": "x", "shape": [2, 13, 48], "role": "input"},
                         {"name": "r", "shape": [2, 13, 48], "role": "input"},
                         {"name": "g", "shape": [48], "role": "input"}, {"name": "b", "shape": [48], "role": "input"},
                         {"name": "s"}, {"name": "n"}, {"name": "y", "role": "output"}],
             "ops": [{"op": "Add", "name": "add", "inputs": ["x", "r"], "outputs": ["s"]},
                     {"op": "LayerNormalization", "name": "ln", "inputs": ["s", "g", "b"], "outputs": ["n"],
                      "attributes": {"epsilon": 1e-6}},
                     {"op": "Gelu", "name": "gelu", "inputs": ["n"], "outputs": ["y"],
                      "attributes": {"approximate": "tanh"}}]}
    program, t, fast = fused_fast_path(tmp_path, graph, "edge", "vector_chain", (
        ("x", (2, 13, 48)), ("r", (2, 13, 48)), ("g", (48,)), ("b", (48,))))
    agree(fast["y"], program.native.reference(t)["y"])
    s = t["x"].astype(np.float64) + t["r"]
    d = s - s.mean(axis=-1, keepdims=True)
    n = d / np.sqrt((d * d).mean(axis=-1, keepdims=True) + 1e-6) * t["g"] + t["b"]
    agree(fast["y"], 0.5 * n * (1 + np.tanh(np.sqrt(2 / np.pi) * (n + 0.044715 * n ** 3))))
