"""KPURuntime (seed 4): runs a KPUProgram on numpy inputs and returns numpy outputs and
KPUPerformanceMetrics.

FUNCTIONAL: the outputs from the compiled graph evaluated in float32 with torch's kernels
(kpu.evaluate; the C++ reference, sc_main/reference.h, for an op it has no rule for), the
timing from the compiler's cost model (the whole program replayed on the config's engines,
kpu-compile's "whole program replayed").
CYCLE_ACCURATE: the SystemC platform. SystemC builds one module tree per process, so each
config gets a worker process (kpu._worker) that elaborates its platform once and runs every
execute() as a new program launch through the host interface, as a driver does; all
runtimes of one config in this process share it.
POWER_TRACE: CYCLE_ACCURATE plus a power trace."""
import atexit
import itertools
import json
import os
import pickle
import subprocess
import sys
import threading
from dataclasses import dataclass, field

import numpy as np

from .compiler import as_config
from .config import SimulationMode
from .errors import ExecutionError, InputValidationError, KPUError
from .evaluate import evaluate


@dataclass
class KPUPerformanceMetrics:
    total_cycles: int = 0
    total_time_us: float = 0.0
    compute_cycles: int = 0
    memory_stall_cycles: int = 0
    other_cycles: int = 0
    dram_reads_bytes: int = 0
    dram_writes_bytes: int = 0
    sram_reads_bytes: int = 0
    sram_writes_bytes: int = 0
    # None: the KPU's memories are software-managed scratchpads, nothing hits or misses (docs/stats.md).
    l1_hits: int = None
    l1_misses: int = None
    l2_hits: int = None
    l2_misses: int = None
    average_power_watts: float = 0.0
    total_energy_uj: float = 0.0
    compute_utilization: float = 0.0
    memory_bandwidth_utilization: float = 0.0
    op_metrics: dict = field(default_factory=dict)  # per graph op: cycles, time, bytes, ... (and its "layer")
    # CYCLE_ACCURATE: per source layer of the model (kpu-sim --report's columns, docs/stats.md):
    # attributed cycles adding up to total_cycles, FLOPs, DRAM bytes, roofline bound, what bounds it.
    layer_metrics: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)       # CYCLE_ACCURATE: kpu-sim's whole stats JSON (docs/stats.md)
    # CYCLE_ACCURATE: the highest byte + 1 the run's ops touched, {"dram", "l3", "l2", "l1"}
    # (docs/stats.md; SRAM per compute tile; each equals KPUProgram.estimate_memory()'s
    # "peak_dram" and "peak_sram_by_level")
    memory_high_water: dict = field(default_factory=dict)
    # Per element type of the fabric's operands ("float32", "bfloat16", "float16", "int8"):
    # "macs" and "mac_energy_uj" (each type at its own energy_pj_per_mac); CYCLE_ACCURATE adds
    # the vector engine's "vector_elements", "vector_alu_ops" and "vector_energy_uj" (kpu-sim's
    # stats "by_element_type", docs/stats.md).
    by_element_type: dict = field(default_factory=dict)


@dataclass
class KPUExecutionResult:
    success: bool
    error_message: str
    outputs: dict
    metrics: KPUPerformanceMetrics
    mode: SimulationMode
    power_trace: list = None  # POWER_TRACE: [(cycle, watts)], one entry per change


_SEED4_FIELDS = ("total_cycles", "total_time_us", "compute_cycles", "memory_stall_cycles", "other_cycles",
                 "dram_reads_bytes", "dram_writes_bytes", "sram_reads_bytes", "sram_writes_bytes", "l1_hits",
                 "l1_misses", "l2_hits", "l2_misses", "average_power_watts", "total_energy_uj",
                 "compute_utilization", "memory_bandwidth_utilization")


class _Worker:
    """One config's worker process and the program it holds."""

    def __init__(self, config):
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([package_parent] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        self.process = subprocess.Popen([sys.executable, "-m", "kpu._worker", config.path, *config.overrides],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.loaded = None  # token of the program it holds
        self.lock = threading.Lock()

    def call(self, *request):
        pickle.dump(request, self.process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self.process.stdin.flush()
        try:
            status, value = pickle.load(self.process.stdout)
        except EOFError:
            raise ExecutionError(f"the simulator's worker process ended (exit code {self.process.wait()})") from None
        if status != "ok":
            raise ExecutionError(value)
        return value

    def close(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait()


_workers = {}
_tokens = itertools.count(1)


def _worker_for(config):
    worker = _workers.get(config.key)
    if worker is None or worker.process.poll() is not None:
        worker = _workers[config.key] = _Worker(config)
    return worker


@atexit.register
def _close_workers():
    for worker in _workers.values():
        worker.close()


def worker_elaborations(config):
    """How many platforms the worker of `config` has elaborated (1 once it has run; tests)."""
    worker = _workers.get(as_config(config).key)
    return worker.elaborations if worker and hasattr(worker, "elaborations") else 0


def _shape_text(shape):
    return "(" + ",".join(str(d) for d in shape) + ")"


class KPURuntime:
    def __init__(self, config):
        self.config = as_config(config)
        self.program = None
        self._token = None
        self._replayed = None

    def load_program(self, program):
        """Makes `program` the one execute() runs; checks that it fits this runtime's config."""
        try:
            program.native.check_fits(self.config.path, list(self.config.overrides))
        except RuntimeError as e:
            from .errors import translate
            raise translate(e) from None
        missing = program.constants_without_values()
        if missing:
            raise KPUError(f"constants without values: {', '.join(missing)} (a graph JSON gives none: "
                           "program.set_weight(name, array) gives them)")
        self.program = program
        self._token = next(_tokens)
        self._replayed = None
        self._graph = None  # the .kpu's graph JSON, parsed on the first FUNCTIONAL execute()

    def unload_program(self):
        self.program = None
        self._token = None
        self._replayed = None

    def _loaded(self):
        if self.program is None:
            raise KPUError("no program loaded: call load_program(program) before execute()")
        return self.program

    def get_input_specs(self):
        p = self._loaded()
        return [(name, p.tensors[name].shape, p.tensors[name].dtype) for name in p.input_ids]

    def get_output_specs(self):
        p = self._loaded()
        return [(name, p.tensors[name].shape, p.tensors[name].dtype) for name in p.output_ids]

    def _validated(self, inputs):
        p = self._loaded()
        missing = [name for name in p.input_ids if name not in inputs]
        if missing:
            raise InputValidationError(f"Missing inputs: {', '.join(missing)} (the program's inputs: "
                                       f"{', '.join(p.input_ids)})")
        unknown = [name for name in inputs if name not in p.input_ids]
        if unknown:
            raise InputValidationError(f"Unknown inputs: {', '.join(unknown)} (the program's inputs: "
                                       f"{', '.join(p.input_ids)})")
        out = {}
        for name in p.input_ids:
            value = np.asarray(inputs[name])
            expected = p.tensors[name].shape
            if tuple(value.shape) != tuple(expected):
                raise InputValidationError(f"Input shape mismatch: expected {_shape_text(expected)}, "
                                           f"got {_shape_text(value.shape)}")
            if value.dtype.kind not in "f":
                raise InputValidationError(f"Input dtype mismatch: expected {p.tensors[name].dtype}, got {value.dtype} "
                                           f"(input '{name}')")
            out[name] = np.ascontiguousarray(value, dtype=np.float32)
        return out

    def execute(self, inputs, mode=SimulationMode.FUNCTIONAL):
        p = self._loaded()
        arrays = self._validated(inputs)
        if mode == SimulationMode.FUNCTIONAL:
            return self._functional(p, arrays)
        if mode in (SimulationMode.CYCLE_ACCURATE, SimulationMode.POWER_TRACE):
            return self._simulated(p, arrays, mode)
        raise KPUError(f"unknown simulation mode {mode!r}")

    # ---- FUNCTIONAL ----

    def _functional(self, p, arrays):
        if self._graph is None:
            self._graph = json.loads(p.native.kpu_text())["graph"]
        computed = evaluate(self._graph, arrays, p.native.weights())  # float32 with torch's kernels
        if computed is None:  # an op without a fast rule: the reference takes every op
            try:
                computed = p.native.reference(arrays)
            except RuntimeError as e:
                raise ExecutionError(str(e)) from None
        outputs = {name: computed[name] for name in p.output_ids}
        if self._replayed is None:
            self._replayed = int(round(p.native.replayed_cycles(self.config.path, list(self.config.overrides))))
        cycles = self._replayed
        hz = self.config.compute["fabric_hz"]
        time_s = cycles / hz
        reads = sum(op.dram_read_bytes for op in p.ops)
        writes = sum(op.dram_write_bytes for op in p.ops)
        macs = sum(op.macs for op in p.ops)
        energy = self.config.energy
        # Each op's MACs at its operands' type's energy (A's element type; float32's when unlisted).
        types, type_macs = self.config.compute.get("element_types", {}), {}
        for op in p.ops:
            if op.macs:
                t = p.tensors[op.input_ids[0]].dtype if op.input_ids and op.input_ids[0] in p.tensors else "float32"
                type_macs[t] = type_macs.get(t, 0) + op.macs
        mac_pj = {t: n * types.get(t, {}).get("energy_pj_per_mac", energy["pj_per_mac"]) for t, n in type_macs.items()}
        by_type = {t: {"macs": n, "mac_energy_uj": mac_pj[t] * 1e-6} for t, n in type_macs.items()}
        energy_pj = (sum(mac_pj.values()) + (reads + writes) * energy["dram_pj_per_byte"]
                     + energy["static_power_w"] * time_s * 1e12)
        compute_cycles = sum(op.macs for op in p.ops) / (self.config.compute["peak_flops"] / 2 / hz)
        metrics = KPUPerformanceMetrics(
            total_cycles=cycles, total_time_us=time_s * 1e6, compute_cycles=int(min(compute_cycles, cycles)),
            memory_stall_cycles=int(max(cycles - compute_cycles, 0)), other_cycles=0,
            dram_reads_bytes=reads, dram_writes_bytes=writes,
            average_power_watts=energy_pj * 1e-12 / time_s if time_s else 0.0, total_energy_uj=energy_pj * 1e-6,
            compute_utilization=2 * macs / (self.config.compute["peak_flops"] * time_s) if time_s else 0.0,
            memory_bandwidth_utilization=(reads + writes) / (self.config.memory["dram_bandwidth_bytes_per_s"] * time_s)
            if time_s else 0.0,
            op_metrics={op.id: {"estimated_cycles": float(op.estimated_cycles), "macs": float(op.macs),
                                "dram_read_bytes": float(op.dram_read_bytes),
                                "dram_write_bytes": float(op.dram_write_bytes),
                                "estimated_energy_pj": op.estimated_energy_pj} for op in p.ops},
            by_element_type=by_type)
        return KPUExecutionResult(True, None, outputs, metrics, SimulationMode.FUNCTIONAL)

    # ---- CYCLE_ACCURATE and POWER_TRACE ----

    def _simulated(self, p, arrays, mode):
        worker = _worker_for(self.config)
        with worker.lock:
            if worker.loaded != self._token:
                worker.call("load", p.native.kpu_text(), p.native.weights())
                worker.loaded = self._token
            reply = worker.call("run", arrays)
            worker.elaborations = reply[4]
        outputs, metrics = _simulated_metrics(p, reply)
        op_metrics = metrics.op_metrics
        result = KPUExecutionResult(True, None, outputs, metrics, mode)
        if mode == SimulationMode.POWER_TRACE:
            result.power_trace = power_trace(self.config, p, op_metrics, metrics.total_cycles)
        return result


def _simulated_metrics(program, reply):
    """KPUPerformanceMetrics of a worker's "run" or "finish" reply, and the outputs."""
    outputs, cycles, stats_text, op_metrics, elaborations = reply
    stats = json.loads(stats_text)
    metrics = KPUPerformanceMetrics(**{name: stats.get(name) for name in _SEED4_FIELDS})
    metrics.total_cycles = int(cycles)
    estimated = {op.id: op for op in program.ops}
    for name, m in op_metrics.items():
        m = dict(m)
        if name in estimated:
            m["estimated_cycles"] = float(estimated[name].estimated_cycles)
            m["macs"] = float(estimated[name].macs)
        op_metrics[name] = m
    metrics.op_metrics = op_metrics
    metrics.layer_metrics = {row["layer"]: row for row in stats.get("layers", [])}
    for layer, row in metrics.layer_metrics.items():
        for part in row["parts"].split(" "):
            if part in op_metrics:
                op_metrics[part]["layer"] = layer
    metrics.stats = stats
    metrics.memory_high_water = dict(stats.get("memory_high_water_bytes", {}))
    metrics.by_element_type = dict(stats.get("by_element_type", {}))
    return {name: outputs[name] for name in program.output_ids}, metrics


def power_trace(config, program, op_metrics, total_cycles):
    """Power per interval from the energy model: static power throughout, plus each graph
    op's dynamic energy (its MACs and DRAM bytes, the compiler's counts at the config's pJ
    figures) spread evenly over the time its engine ops ran. [(cycle, watts)]: the power
    from that cycle to the next entry's; the last entry is the end, at 0 W."""
    p = program
    hz = config.compute["fabric_hz"]
    energy = config.energy
    events = {0.0: 0.0}
    for op in p.ops:
        m = op_metrics.get(op.id)
        if not m or m["time_us"] <= 0:
            continue
        pj = op.macs * energy["pj_per_mac"] + (op.dram_read_bytes + op.dram_write_bytes) * energy["dram_pj_per_byte"]
        watts = pj * 1e-12 / (m["time_us"] * 1e-6)
        events[m["start_us"]] = events.get(m["start_us"], 0.0) + watts
        events[m["end_us"]] = events.get(m["end_us"], 0.0) - watts
    trace, level = [], energy["static_power_w"]
    for t in sorted(events):
        level += events[t]
        trace.append((int(round(t * 1e-6 * hz)), max(level, 0.0)))
    trace.append((int(total_cycles), 0.0))
    return trace


class KPUSimulator:
    """Seed 4's optional simulator interface: one program launch on the config's platform
    (its worker process, shared with the runtimes of that config), run step by step.
    `reset()` begins a launch with `inputs` (finishing one that runs); `step(cycles)`
    simulates that many more fabric cycles; `run_until_complete()` simulates to the end and
    returns the launch's cycles (then `result` holds its KPUExecutionResult);
    `get_state()`: cycle, done, device ops completed and total; `get_power_trace()` (after
    completion): [(cycle, watts)] as POWER_TRACE gives it; `get_memory_trace()`: (cycle,
    level, address, bytes) of each completed move, its source read when it started and its
    destination write when it completed."""

    def __init__(self, config, program, inputs):
        self.runtime = KPURuntime(config)
        self.runtime.load_program(program)
        self.inputs = self.runtime._validated(inputs)
        self.result = None
        self._running = False
        self.reset()

    def _call(self, *request):
        worker = _worker_for(self.runtime.config)
        with worker.lock:
            if worker.loaded != self.runtime._token:
                worker.call("load", self.runtime.program.native.kpu_text(), self.runtime.program.native.weights())
                worker.loaded = self.runtime._token
            return worker.call(*request)

    def reset(self):
        if self._running:
            self._call("finish")
        self._call("begin", self.inputs)
        self._running, self.result = True, None

    def step(self, cycles=1):
        if self._running:
            self._call("advance", int(cycles))

    def run_until_complete(self):
        if self._running:
            reply = self._call("finish")
            outputs, metrics = _simulated_metrics(self.runtime.program, reply)
            self.result = KPUExecutionResult(True, None, outputs, metrics, SimulationMode.CYCLE_ACCURATE)
            self.result.power_trace = power_trace(self.runtime.config, self.runtime.program, metrics.op_metrics,
                                                  metrics.total_cycles)
            self._running = False
        return self.result.metrics.total_cycles

    def get_state(self):
        state = self._call("state")
        state["done"] = bool(state["done"]) or not self._running
        return state

    def get_power_trace(self):
        if self.result is None:
            raise KPUError("the power trace is made from the finished launch: run_until_complete() first")
        return self.result.power_trace

    def get_memory_trace(self):
        return [tuple(entry) for entry in self._call("memory_trace")]
