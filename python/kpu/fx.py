"""torch.fx graph -> the compiler's graph JSON (docs/graph-format.md): the FX lowering of
kpu.torch. Every input node of the FX graph becomes a graph input, every parameter and buffer
a constant (its values travel with the program as a weight), and every call_module, call_function and
call_method node of the table below one or a few ONNX-named ops; shapes come from running the
graph on the example inputs (torch.fx's ShapeProp). A node outside the table raises
NotLowered naming it: kpu.torch then exports the module through torch.onnx instead."""
import operator

import numpy as np
import torch
import torch.fx
from torch.fx.passes.shape_prop import ShapeProp

nn = torch.nn
F = torch.nn.functional


class NotLowered(Exception):
    """A node the FX lowering has no rule for."""


_UNARY = {  # torch callable or method name -> ONNX op
    torch.relu: "Relu", F.relu: "Relu", "relu": "Relu", torch.sigmoid: "Sigmoid", "sigmoid": "Sigmoid",
    torch.tanh: "Tanh", "tanh": "Tanh", torch.exp: "Exp", "exp": "Exp", torch.sqrt: "Sqrt", "sqrt": "Sqrt",
    torch.abs: "Abs", "abs": "Abs", operator.neg: "Neg", torch.neg: "Neg", "neg": "Neg",
}
_BINARY = {operator.add: "Add", torch.add: "Add", "add": "Add", operator.sub: "Sub", torch.sub: "Sub", "sub": "Sub",
           operator.mul: "Mul", torch.mul: "Mul", "mul": "Mul", operator.truediv: "Div", torch.div: "Div",
           "div": "Div", operator.matmul: "MatMul", torch.matmul: "MatMul", "matmul": "MatMul", torch.bmm: "MatMul"}
_MODULE_UNARY = {nn.ReLU: "Relu", nn.Sigmoid: "Sigmoid", nn.Tanh: "Tanh"}


class _Lowering:
    def __init__(self, gm, example_inputs):
        self.gm = gm
        self.modules = dict(gm.named_modules())
        ShapeProp(gm).propagate(*example_inputs)
        self.tensors, self.ops, self.weights = [], [], {}
        self.name_of = {}  # FX node -> tensor name (or a tuple of names for multi-output nodes)
        self.names = set()
        self.last_axis_softmax = set()  # names of the Softmax ops over the last axis

    # ---- tensors ----

    def _fresh(self, base):
        base = base.replace("/", ".")
        name, i = base, 1
        while name in self.names:
            name, i = f"{base}_{i}", i + 1
        self.names.add(name)
        return name

    def weight(self, base, value):
        """A float constant with `value` (a tensor), its values a weight of the program."""
        name = self._fresh(base)
        array = value.detach().cpu().numpy().astype(np.float32)
        self.tensors.append({"name": name, "shape": list(array.shape), "role": "constant"})
        self.weights[name] = np.ascontiguousarray(array)
        return name

    def ints(self, base, values):
        name = self._fresh(base)
        self.tensors.append({"name": name, "shape": [len(values)], "dtype": "int64", "value": [int(v) for v in values]})
        return name

    def scalar(self, base, value):
        name = self._fresh(base)
        self.tensors.append({"name": name, "shape": [], "value": float(value)})
        return name

    def op(self, kind, inputs, node, attributes=None, part=None, outputs=1):
        """Appends op `kind`; its outputs are new tensors named after the node."""
        base = node.name if part is None else f"{node.name}.{part}"
        outs = [self._fresh(base if outputs == 1 else f"{base}_{i}") for i in range(outputs)]
        for name in outs:
            self.tensors.append({"name": name})
        entry = {"op": kind, "name": self._fresh("op." + base), "inputs": list(inputs), "outputs": outs}
        if attributes:
            entry["attributes"] = attributes
        self.ops.append(entry)
        return outs[0] if outputs == 1 else tuple(outs)

    # ---- nodes ----

    def operand(self, arg, node, i):
        if isinstance(arg, torch.fx.Node):
            name = self.name_of[arg]
            if isinstance(name, tuple):
                raise NotLowered(f"{arg.name}: a tuple used as a tensor")
            return name
        if isinstance(arg, (int, float)) and not isinstance(arg, bool):
            return self.scalar(f"{node.name}.c{i}", arg)
        raise NotLowered(f"{node.name}: operand {arg!r}")

    @staticmethod
    def shape(node):
        meta = node.meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape"):
            raise NotLowered(f"{node.name}: no tensor shape")
        return list(meta.shape)

    def reshape(self, node, x):
        return self.op("Reshape", [x, self.ints(f"{node.name}.shape", self.shape(node))], node)

    def lower(self, node):
        if node.op == "placeholder":  # torch.fx's name for an input node
            name = self._fresh(node.target)  # forward()'s parameter name
            self.tensors.append({"name": name, "shape": self.shape(node), "role": "input"})
            return name
        if node.op == "get_attr":
            value = self.gm
            for part in node.target.split("."):
                value = getattr(value, part)
            if value.dtype in (torch.int64, torch.int32):
                name = self._fresh(node.target)
                self.tensors.append({"name": name, "shape": list(value.shape), "dtype": "int64",
                                     "value": [int(v) for v in value.flatten().tolist()]})
                return name
            return self.weight(node.target, value)
        if node.op == "call_module":
            return self.module(node, self.modules[node.target])
        if node.op in ("call_function", "call_method"):
            return self.function(node)
        raise NotLowered(f"{node.name}: {node.op}")

    def module(self, node, m):
        x = self.operand(node.args[0], node, 0)
        t = node.target
        if isinstance(m, nn.Linear):
            y = self.op("MatMul", [x, self.weight(f"{t}.weight_t", m.weight.t())], node, part="matmul" if m.bias is not None else None)
            return self.op("Add", [y, self.weight(f"{t}.bias", m.bias)], node) if m.bias is not None else y
        if type(m) in _MODULE_UNARY:
            return self.op(_MODULE_UNARY[type(m)], [x], node)
        if isinstance(m, nn.GELU):
            return self.op("Gelu", [x], node, {"approximate": m.approximate} if m.approximate != "none" else None)
        if isinstance(m, nn.Softmax):
            return self.op("Softmax", [x], node, {"axis": int(m.dim)})
        if isinstance(m, nn.LayerNorm):
            axis = -len(m.normalized_shape)
            return self.op("LayerNormalization", [x, self.weight(f"{t}.weight", m.weight), self.weight(f"{t}.bias", m.bias)],
                           node, {"axis": axis, "epsilon": float(m.eps)})
        if isinstance(m, nn.Conv2d) and m.padding_mode == "zeros" and not isinstance(m.padding, str):
            inputs = [x, self.weight(f"{t}.weight", m.weight)]
            if m.bias is not None:
                inputs.append(self.weight(f"{t}.bias", m.bias))
            return self.op("Conv", inputs, node, {"kernel_shape": list(m.kernel_size), "strides": list(m.stride),
                                                  "pads": list(m.padding) * 2, "dilations": list(m.dilation),
                                                  "group": int(m.groups)})
        if isinstance(m, nn.BatchNorm2d) and not m.training:
            return self.op("BatchNormalization", [x, self.weight(f"{t}.weight", m.weight), self.weight(f"{t}.bias", m.bias),
                                                  self.weight(f"{t}.running_mean", m.running_mean),
                                                  self.weight(f"{t}.running_var", m.running_var)],
                           node, {"epsilon": float(m.eps)})
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            pair = lambda v: [v, v] if isinstance(v, int) else list(v)  # noqa: E731
            kernel, stride, pad = pair(m.kernel_size), pair(m.stride or m.kernel_size), pair(m.padding)
            if m.ceil_mode or (isinstance(m, nn.MaxPool2d) and pair(m.dilation) != [1, 1]):
                raise NotLowered(f"{node.name}: ceil_mode or dilation")
            attributes = {"kernel_shape": kernel, "strides": stride, "pads": pad + pad}
            if isinstance(m, nn.AvgPool2d):
                attributes["count_include_pad"] = int(m.count_include_pad)
            return self.op("MaxPool" if isinstance(m, nn.MaxPool2d) else "AveragePool", [x], node, attributes)
        if isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size in (1, (1, 1)):
            return self.op("GlobalAveragePool", [x], node)
        if isinstance(m, nn.Flatten):
            return self.reshape(node, x)
        if isinstance(m, (nn.Dropout, nn.Identity)):
            return x
        if isinstance(m, nn.ReLU6):
            return self.clip(node, x, 0.0, 6.0)
        if isinstance(m, nn.Hardtanh):
            return self.clip(node, x, m.min_val, m.max_val)
        if isinstance(m, nn.Hardswish):
            return self.op("HardSwish", [x], node)
        if isinstance(m, nn.Hardsigmoid):
            return self.op("HardSigmoid", [x], node, {"alpha": 1.0 / 6, "beta": 0.5})
        if isinstance(m, nn.LeakyReLU):
            return self.op("LeakyRelu", [x], node, {"alpha": float(m.negative_slope)})
        if isinstance(m, nn.SiLU):
            return self.op("Mul", [x, self.op("Sigmoid", [x], node, part="sigmoid")], node)
        if isinstance(m, nn.Embedding) and m.padding_idx is None and m.max_norm is None:
            return self.op("Gather", [self.weight(f"{t}.weight", m.weight), x], node, {"axis": 0})
        raise NotLowered(f"{node.name}: module {type(m).__name__}")

    def clip(self, node, x, low, high):
        return self.op("Clip", [x, self.scalar(f"{node.name}.min", low), self.scalar(f"{node.name}.max", high)], node)

    def attr_value(self, arg):
        """The parameter or buffer a get_attr node reads."""
        if not (isinstance(arg, torch.fx.Node) and arg.op == "get_attr"):
            raise NotLowered(f"{getattr(arg, 'name', arg)}: not a parameter")
        value = self.gm
        for part in arg.target.split("."):
            value = getattr(value, part)
        return value

    def function(self, node):
        f, args, kwargs = node.target, node.args, node.kwargs
        if f in ("contiguous",) or (f is operator.getitem and isinstance(self.name_of.get(args[0]), tuple)):
            if f == "contiguous":
                return self.operand(args[0], node, 0)
            return self.name_of[args[0]][args[1]]
        if f in _UNARY:
            return self.op(_UNARY[f], [self.operand(args[0], node, 0)], node)
        if f in _BINARY and len(args) == 2 and not kwargs:
            return self.op(_BINARY[f], [self.operand(a, node, i) for i, a in enumerate(args)], node)
        if f in (F.gelu,):
            approximate = kwargs.get("approximate", "none")
            return self.op("Gelu", [self.operand(args[0], node, 0)], node,
                           {"approximate": approximate} if approximate != "none" else None)
        if f in (torch.softmax, F.softmax, "softmax"):
            dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
            if dim is None:
                raise NotLowered(f"{node.name}: softmax without dim")
            y = self.op("Softmax", [self.operand(args[0], node, 0)], node, {"axis": int(dim)})
            if int(dim) in (-1, len(self.shape(node)) - 1):
                self.last_axis_softmax.add(self.ops[-1]["name"])
            return y
        if f in ("view", "reshape", torch.reshape, torch.flatten, "flatten"):
            return self.reshape(node, self.operand(args[0], node, 0))
        if f in ("permute", torch.permute):
            perm = args[1:] if f == "permute" else args[1]
            perm = list(perm[0]) if len(perm) == 1 and isinstance(perm[0], (list, tuple)) else list(perm)
            return self.op("Transpose", [self.operand(args[0], node, 0)], node, {"perm": [int(p) for p in perm]})
        if f in ("transpose", torch.transpose):
            rank = len(self.shape(node))
            a, b = (int(d) % rank for d in args[1:3])
            perm = list(range(rank))
            perm[a], perm[b] = perm[b], perm[a]
            return self.op("Transpose", [self.operand(args[0], node, 0)], node, {"perm": perm})
        if f is torch.cat:
            tensors = [self.operand(a, node, i) for i, a in enumerate(args[0])]
            return self.op("Concat", tensors, node, {"axis": int(kwargs.get("dim", args[1] if len(args) > 1 else 0))})
        if f in ("mean", torch.mean) and (len(args) > 1 or "dim" in kwargs):
            dims = kwargs.get("dim", args[1] if len(args) > 1 else None)
            dims = [dims] if isinstance(dims, int) else list(dims)
            keep = int(kwargs.get("keepdim", args[2] if len(args) > 2 else False))
            return self.op("ReduceMean", [self.operand(args[0], node, 0), self.ints(f"{node.name}.axes", dims)], node,
                           {"keepdims": keep})
        if f in ("split", torch.split) and not isinstance(args[1], (list, tuple)):
            dim = int(kwargs.get("dim", args[2] if len(args) > 2 else 0))
            size, total = int(args[1]), self.shape_of(args[0])[dim]
            sizes = [min(size, total - s) for s in range(0, total, size)]
            return self.op("Split", [self.operand(args[0], node, 0), self.ints(f"{node.name}.split", sizes)], node,
                           {"axis": dim}, outputs=len(sizes))
        arg = lambda i, key, default=None: kwargs.get(key, args[i] if len(args) > i else default)  # noqa: E731
        if f is F.linear:
            weight, bias = self.attr_value(args[1]), arg(2, "bias")
            y = self.op("MatMul", [self.operand(args[0], node, 0), self.weight(f"{args[1].target}_t", weight.t())], node,
                        part="matmul" if bias is not None else None)
            return self.op("Add", [y, self.operand(bias, node, 2)], node) if bias is not None else y
        if f is F.layer_norm:
            shape, weight, bias = arg(1, "normalized_shape"), arg(2, "weight"), arg(3, "bias")
            if weight is None or bias is None:
                raise NotLowered(f"{node.name}: layer_norm without weight or bias")
            return self.op("LayerNormalization", [self.operand(args[0], node, 0), self.operand(weight, node, 2),
                                                  self.operand(bias, node, 3)],
                           node, {"axis": -len(shape), "epsilon": float(arg(4, "eps", 1e-5))})
        if f in (F.relu6,) or (f is F.hardtanh):
            low, high = (0.0, 6.0) if f is F.relu6 else (float(arg(1, "min_val", -1.0)), float(arg(2, "max_val", 1.0)))
            return self.clip(node, self.operand(args[0], node, 0), low, high)
        if f in (torch.clamp, "clamp") and not isinstance(arg(1, "min"), torch.fx.Node):
            low, high = arg(1, "min"), arg(2, "max")
            if low is None or high is None:
                raise NotLowered(f"{node.name}: clamp with one bound")
            return self.clip(node, self.operand(args[0], node, 0), float(low), float(high))
        if f in (F.silu,):
            x = self.operand(args[0], node, 0)
            return self.op("Mul", [x, self.op("Sigmoid", [x], node, part="sigmoid")], node)
        if f is F.leaky_relu:
            return self.op("LeakyRelu", [self.operand(args[0], node, 0)], node,
                           {"alpha": float(arg(1, "negative_slope", 0.01))})
        if f is F.hardswish:
            return self.op("HardSwish", [self.operand(args[0], node, 0)], node)
        if f is F.hardsigmoid:
            return self.op("HardSigmoid", [self.operand(args[0], node, 0)], node, {"alpha": 1.0 / 6, "beta": 0.5})
        if f in (operator.pow, torch.pow, "pow") and args[1] == 2:
            x = self.operand(args[0], node, 0)
            return self.op("Mul", [x, x], node)
        if f in (F.max_pool2d, F.avg_pool2d):
            pair = lambda v: [v, v] if isinstance(v, int) else list(v)  # noqa: E731
            kernel = pair(arg(1, "kernel_size"))
            stride = pair(arg(2, "stride") or kernel)
            pad = pair(arg(3, "padding", 0))
            if arg(4 if f is F.avg_pool2d else 5, "ceil_mode", False) or (f is F.max_pool2d and pair(arg(4, "dilation", 1)) != [1, 1]):
                raise NotLowered(f"{node.name}: ceil_mode or dilation")
            attributes = {"kernel_shape": kernel, "strides": stride, "pads": pad + pad}
            if f is F.avg_pool2d:
                if arg(6, "divisor_override") is not None:
                    raise NotLowered(f"{node.name}: divisor_override")
                attributes["count_include_pad"] = int(arg(5, "count_include_pad", True))
            return self.op("MaxPool" if f is F.max_pool2d else "AveragePool", [self.operand(args[0], node, 0)], node,
                           attributes)
        if f is F.adaptive_avg_pool2d and arg(1, "output_size") in (1, (1, 1), [1, 1]):
            return self.op("GlobalAveragePool", [self.operand(args[0], node, 0)], node)
        if f in ("sum", torch.sum, "amax", torch.amax) and arg(1, "dim") is not None:
            dims = arg(1, "dim")
            dims = [dims] if isinstance(dims, int) else list(dims)
            kind = "ReduceSum" if f in ("sum", torch.sum) else "ReduceMax"
            return self.op(kind, [self.operand(args[0], node, 0), self.ints(f"{node.name}.axes", dims)], node,
                           {"keepdims": int(arg(2, "keepdim", False))})
        if f is operator.getitem and isinstance(args[0], torch.fx.Node) and not isinstance(self.name_of[args[0]], tuple):
            return self.slice(node, self.operand(args[0], node, 0), self.shape(args[0]), args[1])
        raise NotLowered(f"{node.name}: {node.op} {getattr(f, '__name__', f)}")

    def slice(self, node, x, shape, index):
        """x[index] for an index of steps-1 slices (and `:`), one per leading axis: a Slice."""
        index = index if isinstance(index, tuple) else (index,)
        starts, ends, axes = [], [], []
        for axis, item in enumerate(index):
            if not isinstance(item, slice) or item.step not in (None, 1) or axis >= len(shape):
                raise NotLowered(f"{node.name}: index {index!r}")
            if item == slice(None):
                continue
            start, stop, _ = item.indices(shape[axis])
            starts.append(start), ends.append(stop), axes.append(axis)
        if not axes:
            return x
        return self.op("Slice", [x, self.ints(f"{node.name}.starts", starts), self.ints(f"{node.name}.ends", ends),
                                 self.ints(f"{node.name}.axes", axes)], node)

    def shape_of(self, arg):
        return self.shape(arg)

    def fuse_masked_softmax(self):
        """softmax(x / c + mask) over the last axis -> masked_softmax(x, mask, scale = 1 / c), as
        the ONNX importer does: the mask then broadcasts over the heads, which Add does not."""
        producer = {o: i for i, op in enumerate(self.ops) for o in op["outputs"]}
        readers = {}
        for op in self.ops:
            for name in op["inputs"]:
                readers[name] = readers.get(name, 0) + 1
        scalars = {t["name"]: t["value"] for t in self.tensors if t.get("shape") == [] and "value" in t}
        dropped = set()
        for op in self.ops:
            if op["op"] != "Softmax" or op["name"] not in self.last_axis_softmax:
                continue
            add = producer.get(op["inputs"][0])
            if add is None or self.ops[add]["op"] != "Add" or readers.get(op["inputs"][0]) != 1:
                continue
            x, mask = self.ops[add]["inputs"]
            scale = 1.0
            div = producer.get(x)
            if div is not None and self.ops[div]["op"] == "Div" and readers.get(x) == 1 \
                    and self.ops[div]["inputs"][1] in scalars:
                scale = 1.0 / scalars[self.ops[div]["inputs"][1]]
                x = self.ops[div]["inputs"][0]
                dropped.add(div)
            dropped.add(add)
            op.update({"op": "masked_softmax", "inputs": [x, mask], "attributes": {"scale": scale}})
        self.ops = [op for i, op in enumerate(self.ops) if i not in dropped]

    def run(self):
        outputs = None
        for node in self.gm.graph.nodes:
            if node.op == "output":
                outputs = node.args[0]
                continue
            self.name_of[node] = self.lower(node)
        self.fuse_masked_softmax()
        outs = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
        renamed = {}
        for i, out in enumerate(outs):
            name = self.name_of.get(out) if isinstance(out, torch.fx.Node) else None
            produced = {o for op in self.ops for o in op["outputs"]}
            if name is None or isinstance(name, tuple) or name not in produced or name in renamed:
                raise NotLowered(f"output {i}: not a computed tensor")
            renamed[name] = f"output_{i}"
        for t in self.tensors:
            t["name"] = renamed.get(t["name"], t["name"])
        for op in self.ops:
            op["inputs"] = [renamed.get(n, n) for n in op["inputs"]]
            op["outputs"] = [renamed.get(n, n) for n in op["outputs"]]
        unused = {t["name"] for t in self.tensors} - {n for op in self.ops for n in op["inputs"] + op["outputs"]}
        self.tensors = [t for t in self.tensors if t["name"] not in unused or t.get("role") == "input"]
        self.weights = {n: w for n, w in self.weights.items() if n not in unused}
        return {"tensors": self.tensors, "ops": self.ops}, self.weights


def lower(gm, example_inputs):
    """The graph JSON of GraphModule `gm` at the shapes of `example_inputs`, and the weights
    (name -> float32 array). Raises NotLowered for a node it has no rule for."""
    with torch.no_grad():
        return _Lowering(gm, example_inputs).run()
