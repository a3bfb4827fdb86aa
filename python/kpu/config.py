"""KPUConfig, KPUPrecision and SimulationMode (seed 4), read from the simulator's config
files (configs/*.json, docs/config.md) with kpu-sim's --set overrides."""
import enum
import os
from dataclasses import dataclass, field

from . import _native
from .errors import KPUError


class KPUPrecision(enum.Enum):
    FP32 = "float32"
    FP16 = "float16"
    BF16 = "bfloat16"
    INT8 = "int8"
    INT4 = "int4"


class SimulationMode(enum.Enum):
    FUNCTIONAL = "functional"          # outputs from the reference evaluation, timing from the compiler's estimate
    CYCLE_ACCURATE = "cycle_accurate"  # the SystemC platform
    POWER_TRACE = "power_trace"        # the platform, plus power per op interval


def _configs_dir():
    """The shipped configs: installed with the package, else configs/ of the source tree the
    package was built in (build/python/kpu), else of the working directory."""
    here = os.path.dirname(os.path.abspath(__file__))
    for base in (here, os.path.join(here, "..", "..", ".."), os.getcwd()):
        candidate = os.path.normpath(os.path.join(base, "configs"))
        if os.path.isdir(candidate):
            return candidate
    return "configs"


@dataclass
class KPUConfig:
    name: str = "swkpu-v1"
    version: str = "1.0.0"
    memory: dict = field(default_factory=dict)   # bytes per level, DRAM bandwidth
    compute: dict = field(default_factory=dict)  # tiles, fabric, clock, peak FLOP/s and TOPS
    supported_precisions: list = field(default_factory=list)
    max_tensor_dims: int = 6
    max_batch_size: int = 16
    native_ops: list = field(default_factory=list)  # the graph op kinds the compiler takes
    path: str = ""                                  # the config file
    overrides: list = field(default_factory=list)   # "fabric.rows=32", as kpu-sim's --set takes them
    description: str = ""
    energy: dict = field(default_factory=dict)   # pJ per DRAM byte and per MAC, static W (the estimates)

    @classmethod
    def load(cls, path, overrides=()):
        """Reads and validates a config file; `path` may also be a shipped SKU's name ("t64")."""
        path = os.fspath(path)
        if not os.path.exists(path) and os.sep not in path and not path.endswith(".json"):
            path = os.path.join(_configs_dir(), path + ".json")
        try:
            info = _native.config_info(path, list(overrides))
        except RuntimeError as e:
            raise KPUError(str(e)) from None
        precisions = [p for p in KPUPrecision if p.value in info["precisions"]]
        return cls(name=info["name"], memory=dict(info["memory"]), compute=dict(info["compute"]),
                   supported_precisions=precisions, native_ops=list(_native.op_kinds()), path=os.path.abspath(path),
                   overrides=list(overrides), description=info["describe"], energy=dict(info["energy"]))

    @property
    def key(self):
        """What identifies the hardware: the file and the overrides."""
        return (self.path, tuple(self.overrides))
