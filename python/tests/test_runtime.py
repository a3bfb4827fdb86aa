"""The runtime's modes on the platform: repeated launches on one elaborated platform, two
configs in one process, metrics from the run, the power trace."""
import json
import os

import numpy as np
import pytest

import kpu
from kpu import runtime as kpu_runtime
from conftest import SOURCE_DIR, agree, config_path

EXAMPLE = os.path.join(SOURCE_DIR, "examples", "ffn_block.json")


def _program(config):
    return kpu.KPUCompiler().compile(EXAMPLE, config_path(config))


def _inputs(program, seed=1):
    rng = np.random.default_rng(seed)
    return {name: rng.uniform(-1, 1, program.tensors[name].shape).astype(np.float32) for name in program.input_ids}


def _constants(program, seed=2):
    """The graph JSON's constants have no values: give them."""
    rng = np.random.default_rng(seed)
    for name, t in program.tensors.items():
        if t.role == "constant":
            program.set_weight(name, rng.uniform(-1, 1, t.shape).astype(np.float32))
    return program


def test_two_launches_same_outputs_and_cycles_one_elaboration():
    p = _constants(_program("edge"))
    r = kpu.KPURuntime(config_path("edge"))
    r.load_program(p)
    x = _inputs(p)
    first = r.execute(x, kpu.SimulationMode.CYCLE_ACCURATE)
    second = r.execute(x, kpu.SimulationMode.CYCLE_ACCURATE)
    assert first.success and first.mode == kpu.SimulationMode.CYCLE_ACCURATE
    np.testing.assert_array_equal(first.outputs["y"], second.outputs["y"])
    assert first.metrics.total_cycles == second.metrics.total_cycles > 0
    assert first.metrics.dram_reads_bytes == second.metrics.dram_reads_bytes
    assert first.metrics.dram_writes_bytes == second.metrics.dram_writes_bytes
    assert first.metrics.total_energy_uj == pytest.approx(second.metrics.total_energy_uj, rel=1e-9)
    assert kpu_runtime.worker_elaborations(config_path("edge")) == 1
    # The run's DRAM bytes are the compiler's (docs/stats.md), per launch.
    assert first.metrics.dram_reads_bytes == sum(op.dram_read_bytes for op in p.ops)
    assert first.metrics.dram_writes_bytes == sum(op.dram_write_bytes for op in p.ops)
    # FUNCTIONAL (the reference) gives the same outputs within fp32 rounding.
    functional = r.execute(x)
    agree(first.outputs["y"], functional.outputs["y"])
    assert functional.metrics.total_cycles == int(round(p.native.replayed_cycles(config_path("edge"))))
    # Other inputs: other outputs, from the same platform.
    third = r.execute(_inputs(p, seed=5), kpu.SimulationMode.CYCLE_ACCURATE)
    assert not np.array_equal(third.outputs["y"], first.outputs["y"])
    assert kpu_runtime.worker_elaborations(config_path("edge")) == 1


def test_metrics_fields_filled():
    p = _constants(_program("edge"))
    r = kpu.KPURuntime(config_path("edge"))
    r.load_program(p)
    m = r.execute(_inputs(p), kpu.SimulationMode.CYCLE_ACCURATE).metrics
    assert m.compute_cycles + m.memory_stall_cycles + m.other_cycles == m.total_cycles
    assert m.total_time_us > 0 and m.sram_reads_bytes > 0 and m.sram_writes_bytes > 0
    assert m.average_power_watts > 0 and m.total_energy_uj > 0
    assert 0 < m.compute_utilization <= 1 and 0 < m.memory_bandwidth_utilization <= 1
    assert m.l1_hits is None  # scratchpads: nothing hits or misses (docs/stats.md)
    assert set(m.op_metrics) == {op.id for op in p.ops}
    for name, om in m.op_metrics.items():
        assert 0 <= om["start_us"] <= om["end_us"] <= m.total_time_us + 1e-6, name
        assert om["cycles"] >= 0 and om["engine_ops"] > 0


def test_planned_peak_dram_is_the_simulated_high_water_mark():
    p = _constants(_program("edge"))  # -O2: plan-memory reuses h's space
    est = p.estimate_memory()
    r = kpu.KPURuntime(config_path("edge"))
    r.load_program(p)
    m = r.execute(_inputs(p), kpu.SimulationMode.CYCLE_ACCURATE).metrics
    assert set(m.memory_high_water) == {"dram", "l3", "l2", "l1"}
    assert m.memory_high_water["dram"] == est["peak_dram"] == p.peak_dram_bytes
    unplanned = kpu.KPUCompiler().compile(EXAMPLE, config_path("edge"), opt_level=0).estimate_memory()
    assert est["peak_dram"] < unplanned["peak_dram"]
    assert est["weights"] == unplanned["weights"] == p.weight_bytes
    assert est["peak_sram"] == sum(est["peak_sram_by_level"].values())
    # The SRAM marks too, level by level: the planned ones are the simulated ones.
    for level in ("L3", "L2", "L1"):
        assert m.memory_high_water[level.lower()] == est["peak_sram_by_level"][level] > 0, level
    assert p.peak_sram_bytes_by_level == est["peak_sram_by_level"]
    assert p.peak_sram_bytes == est["peak_sram"]


def test_two_configs_in_one_process():
    results = {}
    for config in ("edge", "t64"):
        p = _constants(_program(config))
        r = kpu.KPURuntime(config_path(config))
        r.load_program(p)
        results[config] = r.execute(_inputs(p), kpu.SimulationMode.CYCLE_ACCURATE)
    agree(results["edge"].outputs["y"], results["t64"].outputs["y"])
    assert results["edge"].metrics.stats["config"] == "edge" and results["t64"].metrics.stats["config"] == "t64"
    assert results["edge"].metrics.total_cycles != results["t64"].metrics.total_cycles


def test_power_trace():
    p = _constants(_program("edge"))
    r = kpu.KPURuntime(config_path("edge"))
    r.load_program(p)
    res = r.execute(_inputs(p), kpu.SimulationMode.POWER_TRACE)
    trace = res.power_trace
    assert trace[0][0] == 0 and trace[-1] == (res.metrics.total_cycles, 0.0)
    assert all(a[0] <= b[0] for a, b in zip(trace, trace[1:]))
    static = r.config.energy["static_power_w"]
    assert all(w >= static - 1e-9 for _, w in trace[:-1]) and max(w for _, w in trace) > static


def test_simulator_steps_to_the_same_result():
    p = _constants(_program("edge"))
    x = _inputs(p)
    r = kpu.KPURuntime(config_path("edge"))
    r.load_program(p)
    whole = r.execute(x, kpu.SimulationMode.CYCLE_ACCURATE)
    sim = kpu.KPUSimulator(config_path("edge"), p, x)
    state = sim.get_state()
    assert not state["done"] and state["ops_completed"] == 0
    sim.step(20000)
    mid = sim.get_state()
    assert not mid["done"] and 0 < mid["ops_completed"] < mid["ops_total"]
    assert mid["cycle"] == 20000
    early = sim.get_memory_trace()
    cycles = sim.run_until_complete()
    assert cycles == whole.metrics.total_cycles
    np.testing.assert_array_equal(sim.result.outputs["y"], whole.outputs["y"])
    assert sim.get_state()["done"]
    trace = sim.get_memory_trace()
    assert len(early) < len(trace) and all(t[0] <= cycles for t in trace)
    assert {level for _, level, _, _ in trace} >= {"DRAM", "L3", "L2", "L1"}
    # Every DRAM byte the run moved is in the trace: reads from DRAM and writes to it.
    dram = [t for t in trace if t[1] == "DRAM"]
    assert sum(b for _, _, _, b in dram) == whole.metrics.dram_reads_bytes + whole.metrics.dram_writes_bytes
    assert sim.get_power_trace()[-1] == (cycles, 0.0)
    sim.reset()
    assert sim.run_until_complete() == cycles
    assert kpu_runtime.worker_elaborations(config_path("edge")) == 1
