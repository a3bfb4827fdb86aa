"""KPUProgram and its parts (seed 4), read from the .kpu the compiler wrote (docs/kpu-format.md):
the graph's ops in schedule order with their tiling and the compiler's estimates, the
tensors, and the weights that travel with the program."""
import hashlib
import json
import os
from dataclasses import dataclass, field

import numpy as np

from . import _native
from .config import KPUConfig, KPUPrecision
from .errors import KPUError

_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1, "int32": 4, "int64": 8}


@dataclass
class TileConfig:
    tile_sizes: dict                # {"M": 64, "N": 64, "K": 128}: the matmul's C tile and K step
    loop_order: list                # outer to inner
    double_buffer: bool = True      # the movers overlap the next tile's loads with this tile's compute
    prefetch_distance: int = 1


@dataclass
class KPUTensor:
    id: str
    shape: tuple
    dtype: str
    role: str                       # input, output, constant, intermediate
    bytes: int


@dataclass
class KPUOp:
    id: str
    op_type: str
    input_ids: list
    output_ids: list
    attributes: dict
    tiling: TileConfig = None
    schedule_order: int = 0
    fused_with: list = field(default_factory=list)  # source ops an optimization pass fused into this one
    estimated_cycles: int = 0
    estimated_energy_pj: float = 0.0
    macs: int = 0
    dram_read_bytes: int = 0
    dram_write_bytes: int = 0


_LOOP_ORDER = {"output-stationary": ["M", "N", "K"], "weight-stationary": ["N", "K", "M"],
               "input-stationary": ["M", "K", "N"]}


@dataclass
class KPUProgram:
    name: str
    version: str
    source_model: str
    source_hash: str
    target_config: KPUConfig
    precision: KPUPrecision
    ops: list
    tensors: dict
    input_ids: list
    output_ids: list
    peak_sram_bytes: int
    peak_dram_bytes: int
    weight_bytes: int
    activation_bytes: int
    estimated_total_cycles: int
    estimated_total_energy_uj: float
    weights_blob: bytes = field(default=None, repr=False)
    native: object = field(default=None, repr=False)  # kpu._native.Program: what the runtime loads
    inline_constants: set = field(default_factory=set, repr=False)  # constants whose values are in the graph
    passes: list = field(default_factory=list)  # the optimization passes that ran, in order (docs/compiler.md)
    # Per compute tile, each SRAM level's high-water mark on target_config ("L3", "L2", "L1"):
    # what a run measures (KPUPerformanceMetrics.memory_high_water's "l3", "l2", "l1").
    peak_sram_bytes_by_level: dict = field(default_factory=dict)

    @property
    def fused_with(self):
        """{op id: the source ops an optimization pass fused into it}, for the ops that have any."""
        return {o.id: o.fused_with for o in self.ops if o.fused_with}

    @classmethod
    def from_native(cls, native, config, source_model="", precision=KPUPrecision.FP32, name=None):
        text = native.kpu_text()
        data = json.loads(text)
        graph = data["graph"]
        tensors, inline = {}, set()
        for t in graph["tensors"]:
            shape = tuple(t["shape"])
            if "value" in t:
                inline.add(t["name"])
            tensors[t["name"]] = KPUTensor(t["name"], shape, t["dtype"], t["role"],
                                           int(np.prod(shape, dtype=np.int64)) * _BYTES.get(t["dtype"], 4))
        kernels = {k["op"]: k for k in data["kernels"]}
        energy = config.energy or {}
        pj_byte, pj_mac = energy.get("dram_pj_per_byte", 0.0), energy.get("pj_per_mac", 0.0)
        ops = []
        for order, o in enumerate(graph["ops"]):
            k = kernels.get(o["name"])
            hints = k["hints"] if k else {}
            tiling = None
            if k and k.get("tile") and hints.get("macs", 0):  # a matmul: C tile, K step (and K pass)
                m, n, kk = k["tile"][:3]
                sizes = {"M": m, "N": n, "K": kk}
                if len(k["tile"]) > 3:
                    sizes["K_pass"] = k["tile"][3]
                tiling = TileConfig(sizes, _LOOP_ORDER.get(k["dataflow"], ["M", "N", "K"]))
            elif k and k.get("tile"):  # a vector or layout op: row tiles of whole rows (docs/kpu-format.md)
                tiling = TileConfig({"rows": k["tile"][0], "cols": k["tile"][1]}, ["rows"], double_buffer=False)
            read, write, macs = hints.get("dram_read_bytes", 0), hints.get("dram_write_bytes", 0), hints.get("macs", 0)
            if "inputs" in o:
                ins, outs, attributes = list(o["inputs"]), list(o["outputs"]), dict(o.get("attributes", {}))
            else:  # the fused matmul's own keys (docs/graph-format.md)
                ins = [o["A"], o["B"]] + [o[k] for k in ("bias", "scale", "residual") if o.get(k)]
                outs, attributes = [o["C"]], {"activation": o.get("activation", "none")}
            ops.append(KPUOp(o["name"], o["op"], ins, outs, attributes,
                             tiling, order, list(o.get("fused_with", [])), int(hints.get("estimated_cycles", 0)),
                             float(macs * pj_mac + (read + write) * pj_byte), int(macs), int(read), int(write)))
        roles = lambda *rs: [t for t in tensors.values() if t.role in rs]  # noqa: E731
        memory = native.estimate_memory(config.path, list(config.overrides))
        weights = native.weights()
        blob = b"".join(np.ascontiguousarray(weights[n], np.float32).tobytes() for n in sorted(weights)) or None
        total = data["hints"]
        est_cycles = int(total.get("estimated_cycles", 0))
        hz = config.compute.get("fabric_hz", 1e9)
        est_energy_pj = (total.get("macs", 0) * pj_mac
                         + (total.get("dram_read_bytes", 0) + total.get("dram_write_bytes", 0)) * pj_byte
                         + energy.get("static_power_w", 0.0) * est_cycles / hz * 1e12)
        return cls(name=name or os.path.splitext(os.path.basename(source_model))[0] or "program", version="1",
                   source_model=source_model, source_hash=hashlib.sha256(text.encode()).hexdigest(),
                   target_config=config, precision=precision, ops=ops, tensors=tensors,
                   input_ids=[t.id for t in roles("input")], output_ids=[t.id for t in roles("output")],
                   peak_sram_bytes=memory["peak_sram"], peak_dram_bytes=memory["peak_dram"],
                   weight_bytes=memory["weights"], activation_bytes=memory["activations"],
                   estimated_total_cycles=est_cycles, estimated_total_energy_uj=est_energy_pj * 1e-6,
                   weights_blob=blob, native=native, inline_constants=inline, passes=list(data.get("passes", [])),
                   peak_sram_bytes_by_level=dict(memory["peak_sram_by_level"]))

    def estimate_memory(self):
        """estimate_memory from the program's memory plan (docs/compiler.md, "Memory planning"),
        in bytes: `weights` (the constants in DRAM), `activations` (the most the other tensors
        hold at once over the schedule), `peak_sram_by_level` (per compute tile, one past the
        highest byte of L3, L2 and L1 the program's ops touch in one tile's share of the level,
        bound on the program's config: what a run measures, memory_high_water's "l3", "l2",
        "l1"), `peak_sram` (their sum) and `peak_dram` (the highest DRAM byte a tensor
        occupies, + 1: with plan-memory, dead tensors' space reused)."""
        return dict(self.native.estimate_memory(self.target_config.path, list(self.target_config.overrides)))

    def weights(self):
        """The weights that travel with the program (an ONNX model's initializers), by tensor."""
        return self.native.weights()

    def set_weight(self, name, value):
        """Gives constant `name` its values (a graph JSON's constants have none)."""
        t = self.tensors.get(name)
        if t is None or t.role != "constant":
            raise KPUError(f"'{name}' is not a constant of the program")
        # A float32 constant takes any numeric array; a reduced-precision one its own dtype
        # (int8, int32, float16; bfloat16 as uint16 bit patterns), as kpu-sim's .npy files.
        value = np.ascontiguousarray(value, np.float32 if t.dtype == "float32" else None)
        if tuple(value.shape) != tuple(t.shape):
            raise KPUError(f"constant '{name}': shape {tuple(value.shape)} given, the program's is {tuple(t.shape)}")
        self.native.set_weight(name, value)
        weights = self.native.weights()
        self.weights_blob = b"".join(weights[n].tobytes() for n in sorted(weights))

    def constants_without_values(self):
        """Constants that have neither an inline value nor a weight (a graph JSON's)."""
        weights = set(self.native.weights())
        return [n for n, t in self.tensors.items()
                if t.role == "constant" and n not in weights and n not in self.inline_constants]

    def save(self, path):
        """Writes the .kpu and, when the program has weights, <stem>.weights/<tensor>.npy beside it
        (what kpu-compile writes: kpu-sim runs the pair)."""
        path = os.fspath(path)
        weights = self.native.weights()
        if weights:
            dir_name = os.path.splitext(os.path.basename(path))[0] + ".weights"
            directory = os.path.join(os.path.dirname(path), dir_name)
            os.makedirs(directory, exist_ok=True)
            for name, value in weights.items():
                np.save(os.path.join(directory, name + ".npy"), value)
            self.native.weights_dir = dir_name
        with open(path, "w") as f:
            f.write(self.native.kpu_text())

    @classmethod
    def load(cls, path, config=None):
        """Reads a .kpu (and its weights directory); `config` defaults to the one it was compiled for."""
        path = os.fspath(path)
        with open(path) as f:
            text = f.read()
        try:
            native = _native.Program.from_kpu(text, path)
        except RuntimeError as e:
            raise KPUError(str(e)) from None
        if native.weights_dir:
            directory = os.path.join(os.path.dirname(path), native.weights_dir)
            for file in sorted(os.listdir(directory)):
                if file.endswith(".npy"):
                    native.set_weight(file[:-4], np.load(os.path.join(directory, file)))
        if config is None:
            target = json.loads(text)["target"]
            config = KPUConfig.load(target["config"], target.get("overrides", []))
        return cls.from_native(native, config, source_model=path)
