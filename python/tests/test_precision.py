"""KPUCompiler.compile's precisions (docs/quantization.md): the calibration behind INT8 is the
native one, checked against NumPy on a graph whose tensors NumPy computes exactly; the
options' errors (too few samples, a sample of the wrong shape, an unknown method, a
precision the config's fabric does not list) are one clear message each."""
import json

import numpy as np
import pytest

import kpu
from conftest import config_path
from kpu import _native
from kpu import calibration as cal
from test_calibration import GRAPH

# Small integers: every product and sum of the MatMul is exact in float32 and float64 alike.
RNG = np.random.default_rng(21)
WEIGHT = RNG.integers(-4, 5, (6, 5)).astype(np.float32)


def samples(n, shape=(4, 6), seed=22):
    rng = np.random.default_rng(seed)
    return [rng.integers(-8, 9, shape).astype(np.float32) for _ in range(n)]


@pytest.fixture
def model(tmp_path):
    """GRAPH with the weight inline, as a graph JSON file."""
    graph = json.loads(json.dumps(GRAPH))
    graph["tensors"][1]["value"] = WEIGHT.ravel().tolist()
    path = tmp_path / "mm.json"
    path.write_text(json.dumps(graph))
    return str(path)


def test_calibrate_runs_the_native_calibration_and_matches_numpy():
    data = samples(100)
    calibrator = cal.Calibrator((GRAPH, {"w": WEIGHT}))
    assert isinstance(calibrator.native, _native.Calibrator)
    for sample in data:
        calibrator.collect(sample)
    assert calibrator.samples == 100
    table = calibrator.table("minmax")
    ys = [d.astype(np.float64) @ WEIGHT.astype(np.float64) for d in data]
    assert table["x"].scale == max(np.abs(d).max() for d in data) / 127.0
    assert table["y"].scale == max(np.abs(y).max() for y in ys) / 127.0
    assert table["z"].scale == max(np.maximum(y, 0).max() for y in ys) / 127.0
    assert table["w"].kind == "weight" and table["w"].axis == [1]
    assert table["w"].scale == (np.abs(WEIGHT).astype(np.float64).max(axis=0) / 127.0).tolist()
    # The histogram of |y|: NumPy's over the final range.
    stats = table["y"].stats
    width = stats.range / cal.kHistogramBins
    values = np.abs(np.concatenate([y.ravel() for y in ys]))
    want = np.bincount(np.minimum((values / width).astype(np.int64), cal.kHistogramBins - 1),
                       minlength=cal.kHistogramBins)
    assert np.array_equal(stats.counts, want)


def test_int8_with_too_few_samples_is_refused(model):
    with pytest.raises(kpu.CalibrationError, match=r"^INT8 calibration requires at least 100 samples \(got 12\)$"):
        kpu.KPUCompiler().compile(model, config_path("edge"), precision=kpu.KPUPrecision.INT8,
                                  calibration_data=samples(12))
    with pytest.raises(kpu.CalibrationError, match=r"^INT8 calibration requires at least 100 samples \(got 0\)$"):
        kpu.KPUCompiler().compile(model, config_path("edge"), precision=kpu.KPUPrecision.INT8)


def test_int8_with_a_sample_of_the_wrong_shape_names_it(model):
    data = samples(100)
    data[7] = {"x": np.zeros((4, 7), np.float32)}
    with pytest.raises(kpu.CalibrationError,
                       match=r"^calibration sample 7: input 'x' has shape \[4, 7\], the graph's is \[4, 6\]$"):
        kpu.KPUCompiler().compile(model, config_path("edge"), precision=kpu.KPUPrecision.INT8, calibration_data=data)


def test_an_unknown_calibration_method_is_refused(model):
    with pytest.raises(kpu.CalibrationError, match=r"^calibration method 'kl' is not one of minmax, percentile, mse, "
                                                   r"entropy$"):
        kpu.KPUCompiler().compile(model, config_path("edge"), precision=kpu.KPUPrecision.INT8,
                                  calibration_data=samples(100), calibration_method="kl")


def test_a_precision_the_fabric_does_not_list_is_refused(model):
    with pytest.raises(kpu.CompilationError,
                       match=r"element type 'float16' is not supported by config 'edge' \(float32, bfloat16, int8\)"):
        kpu.KPUCompiler().compile(model, config_path("edge"), precision=kpu.KPUPrecision.FP16)
    with pytest.raises(kpu.CompilationError, match=r"^precision INT4: "):
        kpu.KPUCompiler().compile(model, config_path("edge"), precision=kpu.KPUPrecision.INT4)


def test_an_int8_program_runs_and_reports_its_macs_per_element_type(model):
    """The compiled int8 MatMul runs in both modes with the same outputs, and both count its
    4 x 6 x 5 MACs as int8 ones at edge's int8 energy per MAC."""
    config = kpu.KPUConfig.load(config_path("edge"))
    program = kpu.KPUCompiler().compile(model, config, precision=kpu.KPUPrecision.INT8, calibration_data=samples(100))
    runtime = kpu.KPURuntime(config)
    runtime.load_program(program)
    x = samples(1, seed=5)[0]
    results = [runtime.execute({"x": x}, mode)
               for mode in (kpu.SimulationMode.FUNCTIONAL, kpu.SimulationMode.CYCLE_ACCURATE)]
    pj = config.compute["element_types"]["int8"]["energy_pj_per_mac"]
    for result in results:
        int8 = result.metrics.by_element_type["int8"]
        assert int8["macs"] == 4 * 6 * 5
        assert int8["mac_energy_uj"] == pytest.approx(4 * 6 * 5 * pj * 1e-6)
    for name in program.output_ids:
        assert np.array_equal(results[0].outputs[name], results[1].outputs[name])
