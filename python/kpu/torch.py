"""The PyTorch front end: kpu.torch.compile(module, example_inputs) returns a module that runs
on the KPU, and kpu.torch.backend(gm, example_inputs) has torch.compile's backend signature
(registered as backend "kpu" where torch._dynamo exists, torch >= 2).

How a module gets to the KPU: torch.fx traces it and every call_module and call_function
node is checked against the op set the compiler lowers (the unsupported ones, all of them,
are one UnsupportedOpError naming the torch modules or functions); the graph is then lowered
node by node into the compiler's graph JSON (kpu/fx.py). A node the lowering has no rule for,
or a module FX cannot trace (data-dependent control flow), is exported with torch.onnx.export
(opset 17) and compiled by the ONNX importer (compiler/onnx_import.h), whose check names what
it does not take (docs/python.md)."""
import inspect
import json
import os
import tempfile

import numpy as np
import torch
import torch.fx

from . import fx
from .compiler import KPUCompiler, as_config
from .config import SimulationMode
from .errors import UnsupportedOpError
from .runtime import KPURuntime

nn = torch.nn
F = torch.nn.functional

#: Module types whose ONNX export the compiler lowers (parts 1 and 2 of the op set).
SUPPORTED_MODULES = {
    nn.Linear, nn.Conv2d, nn.BatchNorm2d, nn.BatchNorm1d, nn.LayerNorm, nn.ReLU, nn.ReLU6, nn.GELU, nn.Sigmoid,
    nn.Tanh, nn.SiLU, nn.Softmax, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Dropout,
    nn.Identity, nn.Embedding, nn.Hardtanh, nn.LeakyReLU, nn.Hardsigmoid, nn.Hardswish,
}
#: Functions and methods with no ONNX op the compiler lowers; anything else not listed is
#: left to the importer, whose check names what it does not take.
UNSUPPORTED_CALLS = {
    F.group_norm: "group_norm", F.instance_norm: "instance_norm", torch.group_norm: "group_norm",
    torch.instance_norm: "instance_norm", F.grid_sample: "grid_sample", torch.stft: "stft", torch.fft.fft: "fft",
    torch.lstm: "lstm", torch.gru: "gru", torch.nonzero: "nonzero", torch.unique: "unique",
}


def check_module(module, example_inputs=None):
    """Raises UnsupportedOpError naming every module or function of `module` the KPU does not
    take (torch.fx's graph of it); returns the traced GraphModule, or None when FX cannot
    trace the module (then the ONNX importer checks)."""
    try:
        gm = module if isinstance(module, torch.fx.GraphModule) else torch.fx.symbolic_trace(module)
    except Exception:  # noqa: BLE001 - FX refuses data-dependent control flow: the importer checks
        return None
    unsupported = []
    modules = dict(gm.named_modules())
    for node in gm.graph.nodes:
        if node.op == "call_module":
            m = modules[node.target]
            if type(m) not in SUPPORTED_MODULES and not list(m.children()):
                unsupported.append(f"{type(m).__name__} ({node.target})")
        elif node.op == "call_function" and node.target in UNSUPPORTED_CALLS:
            unsupported.append(f"{UNSUPPORTED_CALLS[node.target]} ({node.name})")
    if unsupported:
        names = [u.split(" (")[0] for u in unsupported]
        raise UnsupportedOpError(names, "Unsupported operators: " + ", ".join(unsupported))
    return gm


def _input_names(module, count):
    try:
        params = [p for p in inspect.signature(module.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        names = [p.name for p in params][:count]
        if len(names) == count and len(set(names)) == count:
            return names
    except (TypeError, ValueError):
        pass
    return [f"input_{i}" for i in range(count)]


def _as_tuple(example_inputs):
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    return tuple(example_inputs)


def export_onnx(module, example_inputs, path):
    """Checks `module` (check_module) and exports it with torch.onnx.export at opset 17 to
    `path`; inputs are named as forward()'s parameters, outputs output_0, output_1, ..."""
    if example_inputs is None:
        raise ValueError("a torch.nn.Module needs example_inputs (its input tensors) to be compiled")
    args = _as_tuple(example_inputs)
    check_module(module, args)
    was_training = module.training
    module.eval()
    with torch.no_grad():
        outputs = module(*args)
    count = len(outputs) if isinstance(outputs, (tuple, list)) else 1
    # Exported with gradients on: torch's fused inference kernels (TransformerEncoderLayer's
    # fast path under no_grad) have no ONNX export, the ops they fuse do.
    with torch.enable_grad():
        torch.onnx.export(module, args, path, opset_version=17, input_names=_input_names(module, len(args)),
                          output_names=[f"output_{i}" for i in range(count)], do_constant_folding=True)
    module.train(was_training)
    return path


class KPUModule(torch.nn.Module):
    """A module compiled for the KPU: calling it runs the program (`mode`) and returns torch
    tensors like the source module's; `last_result` holds the last run's KPUExecutionResult
    (its metrics)."""

    def __init__(self, program, runtime, input_names, output_names, tuple_output, mode):
        super().__init__()
        self.program, self.runtime, self.mode = program, runtime, mode
        self.input_names, self.output_names, self.tuple_output = input_names, output_names, tuple_output
        self.last_result = None

    def forward(self, *args):
        inputs = {name: a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
                  for name, a in zip(self.input_names, args)}
        self.last_result = self.runtime.execute(inputs, self.mode)
        outs = [torch.from_numpy(np.asarray(self.last_result.outputs[n])) for n in self.output_names]
        return tuple(outs) if self.tuple_output else outs[0]


def _compile_fx(module, args, config, work):
    """The module through the FX lowering (kpu/fx.py); raises fx.NotLowered."""
    was_training = module.training
    module.eval()
    try:
        gm = check_module(module, args)
        if gm is None:
            raise fx.NotLowered("torch.fx cannot trace the module")
        # Inference: a BatchNorm2d right after a Conv2d folds into its weights and bias (torch's
        # own fx pass; torch.onnx.export folds them the same way), one conv instead of conv + BN.
        from torch.fx.experimental.optimization import fuse
        gm = fuse(gm, inplace=False)
        graph, weights = fx.lower(gm, args)
    finally:
        module.train(was_training)
    path = os.path.join(work, "model.json")
    with open(path, "w") as f:
        json.dump(graph, f)
    program = KPUCompiler().compile(path, config)
    for name, value in weights.items():
        program.set_weight(name, value)
    return program


def compile(module, example_inputs, config="t64", mode=SimulationMode.FUNCTIONAL, frontend="auto"):  # noqa: A001
    """`module` compiled for `config` (a KPUConfig, a config file or a shipped SKU's name) at
    the shapes of `example_inputs`; returns a KPUModule. `frontend`: "fx" (torch.fx's graph
    lowered node by node, kpu/fx.py), "onnx" (torch.onnx.export and the ONNX importer), or
    "auto": fx, and onnx when FX has no rule for some node (KPUModule.frontend says which)."""
    config = as_config(config)
    args = _as_tuple(example_inputs)
    program, used = None, frontend
    with tempfile.TemporaryDirectory(prefix="kpu-") as work:
        if frontend in ("auto", "fx"):
            try:
                program, used = _compile_fx(module, args, config, work), "fx"
            except fx.NotLowered:
                if frontend == "fx":
                    raise
        if program is None:
            path = export_onnx(module, args, os.path.join(work, "model.onnx"))
            program, used = KPUCompiler().compile(path, config), "onnx"
    program.source_model = type(module).__name__
    runtime = KPURuntime(config)
    runtime.load_program(program)
    with torch.no_grad():
        outputs = module(*args)
    tuple_output = isinstance(outputs, (tuple, list))
    count = len(outputs) if tuple_output else 1
    compiled = KPUModule(program, runtime, _input_names(module, len(args)), [f"output_{i}" for i in range(count)],
                         tuple_output, mode)
    compiled.frontend = used
    return compiled


def backend(gm, example_inputs):
    """torch.compile's backend signature: the GraphModule `gm` compiled for t64 (its FX graph
    lowered as compile() does), a callable that runs it on the KPU (FUNCTIONAL mode)."""
    compiled = compile(gm, example_inputs)
    return lambda *args: compiled(*args)


try:  # torch >= 2: torch.compile(model, backend="kpu")
    from torch._dynamo import register_backend

    register_backend(name="kpu")(backend)
except ImportError:
    pass
