"""Writing graph JSON (docs/graph-format.md, the multi-op form) from Python: tensor() and op()
build its entries, write() saves a graph one tensor or op per line. Used by the examples'
generators and the NumPy checks (tests/e2e/)."""
import json


def tensor(name, shape=None, role=None, dtype="float32", value=None):
    """A tensor declaration; shape None: inferred from the op producing it."""
    t = {"name": name}
    if shape is not None:
        t["shape"] = list(shape)
    if dtype != "float32":
        t["dtype"] = dtype
    if role:
        t["role"] = role
    if value is not None:
        t["value"] = value
    return t


def op(kind, name, inputs, outputs, **attributes):
    """An op of ONNX's vocabulary with its attributes."""
    o = {"op": kind, "name": name, "inputs": inputs, "outputs": outputs}
    if attributes:
        o["attributes"] = attributes
    return o


def write(graph, path):
    """The graph as JSON, one tensor or op per line."""
    with open(path, "w") as f:
        f.write('{\n  "tensors": [\n' + ",\n".join("    " + json.dumps(x) for x in graph["tensors"]) +
                '\n  ],\n  "ops": [\n' + ",\n".join("    " + json.dumps(x) for x in graph["ops"]) + "\n  ]\n}\n")
