"""KPUPerformanceMetrics.layer_metrics: the per-layer report of a CYCLE_ACCURATE run (kpu-sim
--report's columns, docs/stats.md), from an ONNX model with scoped node names."""
import os

import numpy as np
import pytest

import kpu
from conftest import config_path

torch = pytest.importorskip("torch")


class _Block(torch.nn.Module):
    """Conv, ReLU, a residual Add, then Linear: expanded parts (the Conv's transposes) and
    plain vector ops."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8 * 6 * 6, 10)

    def forward(self, x):
        return self.fc((x + torch.relu(self.conv(x))).flatten(1))


def test_layers_add_up_and_are_node_names(tmp_path):
    onnx = pytest.importorskip("onnx")
    torch.manual_seed(0)
    model, x = _Block().eval(), torch.randn(1, 8, 6, 6)
    path = os.path.join(tmp_path, "block.onnx")
    torch.onnx.export(model, (x,), path, opset_version=17, input_names=["x"], output_names=["y"])
    p = kpu.KPUCompiler().compile(path, config_path("edge"))
    r = kpu.KPURuntime(config_path("edge"))
    r.load_program(p)
    result = r.execute({"x": x.numpy()}, kpu.SimulationMode.CYCLE_ACCURATE)
    with torch.no_grad():
        np.testing.assert_allclose(result.outputs["y"], model(x).numpy(), rtol=1e-4, atol=1e-4)
    m = result.metrics
    layers = m.layer_metrics
    nodes = {n.name for n in onnx.load(path).graph.node}
    assert layers and set(layers) <= nodes
    assert {"/conv/Conv", "/fc/Gemm"} <= set(layers)
    assert sum(row["cycles"] for row in layers.values()) == m.total_cycles
    assert sum(row["macs"] for row in layers.values()) == m.stats["macs"]
    assert sum(row["dram_bytes"] for row in layers.values()) == m.dram_reads_bytes + m.dram_writes_bytes
    for row in layers.values():
        assert row["bound_by"] in ("fabric", "vector", "dram", "block_mover", "streamer")
        assert row["roofline_cycles"] == max(row[b + "_cycles"] for b in
                                             ("fabric", "vector", "dram", "block_mover", "streamer"))
    # Every graph op names its layer, and the Conv's expanded parts name the Conv.
    assert all(om["layer"] in layers for om in m.op_metrics.values())
    assert {name for name, om in m.op_metrics.items() if om["layer"] == "/conv/Conv"} >= {"/conv/Conv.conv"}
    assert m.stats["layer_report"]["layers"] == len(layers)
