#!/usr/bin/env python3
"""ONNX models end to end: torch.onnx.export (opsets 11, 13 and 17) or onnx.helper writes a
model, kpu-compile imports it (weights beside the .kpu), kpu-sim runs it with --check and
only the model's input given, and its output is compared with PyTorch's (or NumPy's) in
float32: max |got - want| <= 1e-4 x max(|want|, 1). Also: the shape computations a dynamic
reshape exports are folded, erf-GELU, tanh-GELU and LayerNorm below opset 17 become one op,
and unsupported ops are all named in one error.
Usage: onnx_check.py BUILD_BIN_DIR SOURCE_DIR WORK_DIR"""
import os
import subprocess
import sys

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

bin_dir, source_dir, work = sys.argv[1:4]
os.makedirs(work, exist_ok=True)
torch.manual_seed(11)
failures = cases = 0


def compile_model(path, case, config):
    kpu = os.path.join(case, "model.kpu")
    r = subprocess.run([os.path.join(bin_dir, "kpu-compile"), path, "-o", kpu, "--config",
                        os.path.join(source_dir, "configs", config + ".json")], capture_output=True, text=True)
    return r, kpu


def run_model(name, path, inputs, want, config, expect_ops=None):
    """Compiles and simulates `path` with `inputs` (name -> array), compares output y."""
    global failures, cases
    cases += 1
    case = os.path.join(work, f"{name}_{config}")
    os.makedirs(os.path.join(case, "in"), exist_ok=True)
    r, kpu = compile_model(path, case, config)
    if r.returncode != 0:
        print(f"{name} on {config}: kpu-compile failed: {r.stderr.strip()} -> FAIL")
        failures += 1
        return
    kinds = [line.split()[1] for line in r.stdout.splitlines() if line.startswith("op '")]
    for tensor, value in inputs.items():
        np.save(os.path.join(case, "in", tensor + ".npy"), value.astype(np.float32))
    s = subprocess.run([os.path.join(bin_dir, "kpu-sim"), "--config", os.path.join(source_dir, "configs", config + ".json"),
                        "--program", kpu, "--inputs", os.path.join(case, "in"), "--outputs", os.path.join(case, "out"),
                        "--check"], capture_output=True, text=True)
    if s.returncode != 0 or "seeded" in s.stderr:
        print(f"{name} on {config}: kpu-sim failed: {s.stderr.strip()[-400:]} -> FAIL")
        failures += 1
        return
    got = np.load(os.path.join(case, "out", "y.npy"))
    err = np.abs(got - want).max() / max(np.abs(want).max(), 1.0)
    ok = got.shape == want.shape and err <= 1e-4
    missing = [k for k in (expect_ops or []) if not any(k in line for line in r.stdout.splitlines())]
    if missing:
        ok = False
    print(f"{name} on {config}: shape {got.shape}, max error / max(|ref|, 1) = {err:.3g}"
          f"{' (missing ' + ', '.join(missing) + ')' if missing else ''} -> {'ok' if ok else 'FAIL'}")
    failures += 0 if ok else 1


def export(module, x, name, opset):
    path = os.path.join(work, f"{name}_opset{opset}.onnx")
    module.eval()
    with torch.no_grad():
        torch.onnx.export(module, (x,), path, opset_version=opset, input_names=["x"], output_names=["y"])
        want = module(x).numpy()
    return path, want


class Mlp(torch.nn.Module):
    """Linear (Gemm transB=1), ReLU, Linear, erf GELU, LayerNorm, a residual."""
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.ln = torch.nn.Linear(24, 40), torch.nn.Linear(40, 24), torch.nn.LayerNorm(24)

    def forward(self, x):
        return self.ln(x + torch.nn.functional.gelu(self.fc2(torch.relu(self.fc1(x)))))


class Block(torch.nn.Module):
    """A small causal attention block: heads split with view/permute, tanh GELU."""
    def __init__(self, d=32, h=4):
        super().__init__()
        self.h, self.qkv, self.o = h, torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)
        self.ln1, self.ln2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.up, self.down = torch.nn.Linear(d, 2 * d), torch.nn.Linear(2 * d, d)
        self.register_buffer("mask", torch.triu(torch.full((13, 13), float("-inf")), 1))

    def forward(self, x):
        s, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        heads = lambda t: t.view(s, self.h, d // self.h).permute(1, 0, 2)  # noqa: E731
        a = torch.softmax(heads(q) @ heads(k).transpose(-1, -2) / (d // self.h) ** 0.5 + self.mask, dim=-1)
        x = x + self.o((a @ heads(v)).permute(1, 0, 2).reshape(s, d))
        return x + self.down(torch.nn.functional.gelu(self.up(self.ln2(x)), approximate="tanh"))


class Misc(torch.nn.Module):
    """Reductions, softmax over another axis, flatten, concat, slices, clamp, activations."""
    def forward(self, x):
        a = torch.softmax(x, dim=1) + x.mean(dim=-1, keepdim=True) + x.amax(dim=2, keepdim=True)
        b = torch.cat([torch.sigmoid(a[:, :2]), torch.tanh(a[:, 2:]).clamp(-0.5, 0.5)], dim=1)
        return torch.nn.functional.hardswish(b).flatten(1) * 2 - x.flatten(1).sum(dim=1, keepdim=True)


for opset in (11, 13, 17):
    for module, shape, tag, ops in ((Mlp(), (5, 24), "mlp", ["= gelu(", "layer_norm("]),
                                    (Block(), (13, 32), "block", ["gelu_tanh(", "layer_norm("]),
                                    (Misc(), (3, 4, 7), "misc", [])):
        x = torch.randn(*shape)
        path, want = export(module, x, tag, opset)
        for config in ("edge", "t64"):
            run_model(f"{tag}_opset{opset}", path, {"x": x.numpy()}, want, config, ops)

# A reshape whose shape comes from the input's (Shape -> Gather -> Unsqueeze -> Concat), as a
# dynamic export has it: folded at import; weights large enough to travel beside the .kpu.
w = np.random.default_rng(5).standard_normal((6, 20)).astype(np.float32)
nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
         helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]), helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
         helper.make_node("Reshape", ["x", "shape"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["y"])]
inits = [helper.make_tensor("zero", TensorProto.INT64, [], [0]), helper.make_tensor("axes0", TensorProto.INT64, [1], [0]),
         helper.make_tensor("minus1", TensorProto.INT64, [1], [-1]), helper.make_tensor("w", TensorProto.FLOAT, [6, 20], w.flatten())]
graph = helper.make_graph(nodes, "fold", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 20])], inits)
path = os.path.join(work, "fold.onnx")
onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
x = np.random.default_rng(6).standard_normal((4, 2, 3)).astype(np.float32)
for config in ("edge", "t64"):
    run_model("folded_shape", path, {"x": x}, x.reshape(4, -1) @ w, config)

# Every unsupported op in one error, with its node name.
cases += 1
nodes = [helper.make_node("InstanceNormalization", ["x", "s", "b"], ["g"], name="inorm"),
         helper.make_node("LRN", ["g"], ["y"], name="lrn", size=3)]
graph = helper.make_graph(nodes, "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 3, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 3, 3])],
                          [helper.make_tensor("s", TensorProto.FLOAT, [4], [1] * 4), helper.make_tensor("b", TensorProto.FLOAT, [4], [0] * 4)])
path = os.path.join(work, "bad.onnx")
onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
r, _ = compile_model(path, os.path.join(work, "bad"), "edge")
expected = "Unsupported operators: InstanceNormalization (inorm), LRN (lrn)"
ok = r.returncode == 1 and expected in r.stderr
print(f"unsupported ops named: {r.stderr.strip()} -> {'ok' if ok else 'FAIL'}")
failures += 0 if ok else 1

# Damaged files: one line naming the file, exit status 1, never a crash.
good = open(os.path.join(work, "mlp_opset17.onnx"), "rb").read()
for tag, data in (("truncated", good[:len(good) // 2]), ("random", bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8))),
                  ("empty", b"")):
    cases += 1
    path = os.path.join(work, tag + ".onnx")
    open(path, "wb").write(data)
    r, _ = compile_model(path, os.path.join(work, tag), "edge")
    line = r.stderr.strip()
    ok = r.returncode == 1 and line.startswith("kpu-compile: error: " + path) and "\n" not in line
    print(f"{tag} file: {line} -> {'ok' if ok else 'FAIL'}")
    failures += 0 if ok else 1

print(f"{cases - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
