"""The package's exceptions (seed 4): every error the compiler or the runtime raises is a
KPUError; the C++ messages are kept whole."""
import builtins
import re


class KPUError(Exception):
    """Anything the KPU compiler or runtime refuses, with the reason in the message."""


class CompilationError(KPUError):
    """The model does not compile: the compiler's message names the op, the tensor and the numbers."""


class UnsupportedOpError(CompilationError):
    """Ops the KPU compiler does not take; `ops` lists every one, in the model's order."""

    def __init__(self, ops, message=None):
        self.ops = list(ops)
        super().__init__(message or "Unsupported operators: " + ", ".join(self.ops))


class CalibrationError(CompilationError):
    """INT8 calibration refused its data (kpu.calibration): too few samples, a sample of the
    wrong shape, a table that is not one; seed 4's "INT8 calibration requires at least N samples"."""


class MemoryError(KPUError, builtins.MemoryError):  # noqa: A001 - seed 4's name
    """The program does not fit the config's memory `memory_type`: `required` bytes, `available` bytes."""

    def __init__(self, required, available, memory_type, message=None):
        self.required, self.available, self.memory_type = int(required), int(available), memory_type
        super().__init__(message or f"{memory_type}: {self.required} bytes required, {self.available} available")


class InputValidationError(KPUError, ValueError):
    """Inputs that do not match the loaded program's (names, shapes, dtypes)."""


class ExecutionError(KPUError):
    """The device reported an error or the program got stuck."""


_UNSUPPORTED = re.compile(r"Unsupported operators: (.*)$", re.S)
_DRAM_GRAPH = re.compile(r"the graph's tensors need (\d+) bytes of DRAM .* has (\d+)")
_DRAM_TENSOR = re.compile(r"ends at DRAM byte (\d+) but DRAM has (\d+) bytes")
_DRAM_PLANNED = re.compile(r"DRAM memory exceeded: (\d+) bytes required, (\d+) available")
_DRAM_IMAGE = re.compile(r"tensors \((\d+) bytes\) and the program image \((\d+) bytes\) do not fit the (\d+) bytes of DRAM")


def split_op_list(text):
    """'GroupNorm (n1), Foo (n2: why, and more)' -> ['GroupNorm (n1)', 'Foo (n2: why, and more)']:
    splits at the commas outside parentheses."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            items.append(text[start:i].strip())
            start = i + 1
    items.append(text[start:].strip())
    return [item for item in items if item]


def translate(error):
    """The package's exception for a message from the C++ side (a RuntimeError's text)."""
    message = str(error)
    m = _UNSUPPORTED.search(message)
    if m:
        ops = [item.split(" (")[0] for item in split_op_list(m.group(1).strip())]
        return UnsupportedOpError(ops, message)
    m = _DRAM_GRAPH.search(message) or _DRAM_TENSOR.search(message) or _DRAM_PLANNED.search(message)
    if m:
        return MemoryError(m.group(1), m.group(2), "dram", message)
    m = _DRAM_IMAGE.search(message)
    if m:
        return MemoryError(int(m.group(1)) + int(m.group(2)), m.group(3), "dram", message)
    return CompilationError(message)
