"""The package's names, configs, compiler, program files and the errors of seed 4."""
import json
import os

import numpy as np
import pytest

import kpu
from conftest import SOURCE_DIR, agree, config_path

EXAMPLE = os.path.join(SOURCE_DIR, "examples", "ffn_block.json")


def test_names_importable():
    for name in ("KPUError", "CompilationError", "UnsupportedOpError", "MemoryError", "KPUConfig", "KPUPrecision",
                 "SimulationMode", "KPUCompiler", "KPUProgram", "KPURuntime", "KPUPerformanceMetrics",
                 "KPUExecutionResult", "KPUOp", "KPUTensor", "TileConfig"):
        assert hasattr(kpu, name), name
    assert issubclass(kpu.UnsupportedOpError, kpu.CompilationError)
    assert issubclass(kpu.MemoryError, kpu.KPUError)
    assert {m.name for m in kpu.SimulationMode} == {"FUNCTIONAL", "CYCLE_ACCURATE", "POWER_TRACE"}


def test_config_load_and_overrides():
    with open(config_path("t64")) as f:
        raw = json.load(f)
    c = kpu.KPUConfig.load(config_path("t64"))
    assert c.name == "t64"
    assert c.compute["compute_tiles"] == raw["compute_tiles"]
    assert kpu.KPUPrecision.FP32 in c.supported_precisions
    assert "MatMul" in c.native_ops
    o = kpu.KPUConfig.load(config_path("t64"), overrides=["fabric.rows=32"])
    assert o.compute["fabric_rows"] == 32 and o.overrides == ["fabric.rows=32"]
    assert kpu.KPUConfig.load("edge").name == "edge"  # a shipped SKU by name
    with pytest.raises(kpu.KPUError):
        kpu.KPUConfig.load(config_path("t64"), overrides=["fabric.rows=-1"])


def test_config_gives_each_element_types_rate_and_energy():
    with open(config_path("t64")) as f:
        raw = json.load(f)["fabric"]["element_types"]
    c = kpu.KPUConfig.load(config_path("t64"))
    types = c.compute["element_types"]
    assert set(types) == set(raw) == {p.value for p in c.supported_precisions}
    fp32_peak = c.compute["peak_flops"] / 2
    for name, entry in raw.items():
        assert types[name]["macs_per_pe_cycle"] == entry["macs_per_pe_cycle"]
        assert types[name]["energy_pj_per_mac"] == entry["energy_pj_per_mac"]
        assert types[name]["peak_macs_per_s"] == fp32_peak * entry["macs_per_pe_cycle"]
    assert c.energy["pj_per_mac"] == raw["float32"]["energy_pj_per_mac"]


def test_compile_graph_json_and_program_fields():
    p = kpu.KPUCompiler().compile(EXAMPLE, config_path("edge"), opt_level=0)  # the graph's ops, unfused
    with open(EXAMPLE) as f:
        graph = json.load(f)
    assert [op.id for op in p.ops] == [o["name"] for o in graph["ops"]]
    assert [op.schedule_order for op in p.ops] == list(range(len(p.ops)))
    assert p.input_ids == ["x"] and p.output_ids == ["y"]
    fc1 = p.ops[0]
    assert fc1.op_type == "MatMul" and fc1.tiling is not None and set(fc1.tiling.tile_sizes) == {"M", "N", "K"}
    assert fc1.macs == 128 * 256 * 512
    assert p.estimated_total_cycles > 0 and p.estimated_total_energy_uj > 0
    assert p.tensors["x"].shape == (128, 256) and p.tensors["x"].bytes == 128 * 256 * 4
    assert p.weight_bytes == sum(t.bytes for t in p.tensors.values() if t.role == "constant")


def test_the_fused_matmul_form_reads_as_an_op():
    """A graph in the fused form ({"op": "matmul", "A", "B", "C"}) has no inputs/outputs keys."""
    p = kpu.KPUCompiler().compile(os.path.join(SOURCE_DIR, "examples", "mlp.json"), config_path("edge"), opt_level=0)
    fc1 = p.ops[0]
    assert fc1.op_type == "matmul" and fc1.input_ids == ["x", "W1", "b1"] and fc1.output_ids == ["h"]
    assert fc1.attributes == {"activation": "relu"} and fc1.fused_with == []
    fused = kpu.KPUCompiler().compile(os.path.join(SOURCE_DIR, "examples", "mlp.json"), config_path("minimal"))
    assert [(op.id, op.op_type, op.fused_with) for op in fused.ops] == [("fc2", "ffn", ["fc1"])]


def test_fused_ops_list_what_they_absorbed():
    # -O2's fuse-epilogue takes fc1's bias Add and GELU and fc2's bias Add into the matmuls' drains.
    # fuse-ffn then makes one op of both (named as the second) where it pays, as on edge.
    ffn = kpu.KPUCompiler().compile(EXAMPLE, config_path("edge"))
    plan = ffn.passes.index("plan-memory")  # the passes after it (keep-in-l3) depend on the tiling
    assert ffn.passes[plan - 3:plan] == ["fuse-epilogue", "fuse-ffn", "fuse-rows"]
    # fuse-rows makes the residual Add and the LayerNorm after it one vector_chain (named as the norm).
    assert ffn.fused_with == {"fc2": ["fc1", "fc1_bias", "act", "fc2_bias"], "ln": ["residual"]}
    p = kpu.KPUCompiler().compile(EXAMPLE, config_path("edge"), disable_passes=["fuse-ffn"])
    assert "fuse-epilogue" in p.passes
    assert p.fused_with == {"fc1": ["fc1_bias", "act"], "fc2": ["fc2_bias"], "ln": ["residual"]}
    fc1 = next(op for op in p.ops if op.id == "fc1")
    assert fc1.op_type == "matmul" and fc1.input_ids == ["x", "W1", "b1"] and fc1.output_ids == ["g"]
    assert fc1.attributes == {"activation": "gelu_erf"}
    p0 = kpu.KPUCompiler().compile(EXAMPLE, config_path("edge"), opt_level=0)
    assert p0.passes == [] and p0.fused_with == {}
    p1 = kpu.KPUCompiler().compile(EXAMPLE, config_path("edge"), disable_passes=["fuse-epilogue"])
    # Without fuse-epilogue the bias Add stays a vector op: fuse-rows chains it with the residual and the norm.
    assert "fuse-epilogue" not in p1.passes and p1.fused_with == {"ln": ["fc2_bias", "residual"]}


def test_precision_other_than_fp32_is_refused():
    with pytest.raises(kpu.CompilationError, match="INT8"):
        kpu.KPUCompiler().compile(EXAMPLE, config_path("edge"), precision=kpu.KPUPrecision.INT8)


def test_save_load_roundtrip_with_weights(tmp_path):
    torch = pytest.importorskip("torch")
    m = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8)).eval()
    x = torch.randn(4, 16)
    p = kpu.KPUCompiler().compile(m, config_path("edge"), example_inputs=(x,))
    # The weight matrices travel as weights; the biases (at most 64 elements) inline in the graph.
    assert p.weights_blob is not None and len(p.weights_blob) == 4 * (16 * 32 + 32 * 8)
    p.save(tmp_path / "mlp.kpu")
    assert (tmp_path / "mlp.weights").is_dir()
    q = kpu.KPUProgram.load(tmp_path / "mlp.kpu")
    assert q.target_config.name == "edge" and [o.id for o in q.ops] == [o.id for o in p.ops]
    r = kpu.KPURuntime(config_path("edge"))
    r.load_program(q)
    out = r.execute({"input": x.numpy()} if "input" in q.input_ids else {q.input_ids[0]: x.numpy()})
    agree(out.outputs[q.output_ids[0]], m(x).detach().numpy())


def test_validate_and_estimate_memory():
    c = kpu.KPUCompiler()
    assert c.validate_model(EXAMPLE, config_path("edge")) == []
    est = c.estimate_memory(EXAMPLE, config_path("edge"))
    assert set(est) == {"weights", "activations", "peak_sram", "peak_dram"}
    assert est["weights"] == 4 * (256 * 512 + 512 + 512 * 256 + 256 + 256 + 256)
    assert 0 < est["peak_sram"] <= est["peak_dram"]


def test_execute_before_load_is_a_clear_error():
    r = kpu.KPURuntime(config_path("edge"))
    with pytest.raises(kpu.KPUError, match="no program loaded"):
        r.execute({"x": np.zeros((128, 256), np.float32)})


def test_constants_need_values():
    p = kpu.KPUCompiler().compile(EXAMPLE, config_path("edge"))
    r = kpu.KPURuntime(config_path("edge"))
    with pytest.raises(kpu.KPUError, match="constants without values: W1, b1, W2, b2, gamma, beta"):
        r.load_program(p)
    with pytest.raises(kpu.KPUError, match=r"constant 'W1': shape \(2, 2\) given, the program's is \(256, 512\)"):
        p.set_weight("W1", np.zeros((2, 2)))


def _loaded_example():
    p = kpu.KPUCompiler().compile(EXAMPLE, config_path("edge"))
    for name in p.constants_without_values():
        p.set_weight(name, np.ones(p.tensors[name].shape, np.float32))
    r = kpu.KPURuntime(config_path("edge"))
    r.load_program(p)
    return r


def test_input_shape_mismatch_message():
    r = _loaded_example()
    assert r.get_input_specs() == [("x", (128, 256), "float32")]
    assert r.get_output_specs() == [("y", (128, 256), "float32")]
    with pytest.raises(kpu.KPUError, match=r"^Input shape mismatch: expected \(128,256\), got \(1,3,640,640\)$"):
        r.execute({"x": np.zeros((1, 3, 640, 640), np.float32)})
    r.unload_program()
    with pytest.raises(kpu.KPUError, match="no program loaded"):
        r.get_input_specs()


def test_unsupported_ops_name_both(tmp_path):
    torch = pytest.importorskip("torch")

    class Norms(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gn = torch.nn.GroupNorm(2, 4)
            self.inorm = torch.nn.InstanceNorm2d(4)

        def forward(self, x):
            return self.inorm(self.gn(x))

    x = torch.randn(1, 4, 8, 8)
    with pytest.raises(kpu.UnsupportedOpError) as e:
        kpu.KPUCompiler().compile(Norms(), config_path("edge"), example_inputs=(x,))
    assert e.value.ops == ["GroupNorm", "InstanceNorm2d"]
    assert str(e.value).startswith("Unsupported operators: GroupNorm (gn), InstanceNorm2d (inorm)")
    issues = kpu.KPUCompiler().validate_model(Norms(), config_path("edge"), example_inputs=(x,))
    assert issues == ["unsupported operator: GroupNorm", "unsupported operator: InstanceNorm2d"]
    # The same model through torch.onnx.export and the ONNX importer: its op names.
    path = str(tmp_path / "norms.onnx")
    torch.onnx.export(Norms(), (x,), path, opset_version=17)
    with pytest.raises(kpu.UnsupportedOpError) as e:
        kpu.KPUCompiler().compile(path, config_path("edge"))
    assert "InstanceNormalization" in e.value.ops


def test_model_too_large_raises_memory_error():
    torch = pytest.importorskip("torch")
    m = torch.nn.Linear(1024, 1024)
    small = kpu.KPUConfig.load(config_path("edge"), overrides=["dram.capacity_mib=1"])
    with pytest.raises(kpu.MemoryError) as e:
        kpu.KPUCompiler().compile(m, small, example_inputs=(torch.randn(4, 1024),))
    assert e.value.memory_type == "dram"
    assert e.value.required > e.value.available > 0


def test_saved_program_runs_in_kpu_sim(tmp_path):
    """A program compiled and saved from Python is what kpu-compile writes: kpu-sim runs it,
    its weights from the directory beside it, and checks it against the reference."""
    import subprocess
    torch = pytest.importorskip("torch")
    kpu_sim = os.path.join(os.path.dirname(kpu.__file__), "..", "..", "bin", "kpu-sim")
    if not os.path.exists(kpu_sim):
        pytest.skip("no kpu-sim beside the package (an installed package)")
    m = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.GELU(), torch.nn.Linear(64, 8)).eval()
    p = kpu.KPUCompiler().compile(m, config_path("edge"), example_inputs=(torch.randn(4, 16),))
    p.save(tmp_path / "mlp.kpu")
    r = subprocess.run([kpu_sim, "--config", config_path("edge"), "--program", str(tmp_path / "mlp.kpu"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "check             PASS" in r.stdout
