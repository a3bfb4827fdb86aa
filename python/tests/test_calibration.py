"""INT8 calibration (kpu.calibration) against plain NumPy computations of the same quantities:
each method on distributions whose answer is known, per-channel weight scales and
quantization bit-exact, the sample-count error, the JSON round trip, and a small torch model
calibrated end to end through the compiled graph."""
import json
import math

import numpy as np
import pytest

import kpu
from conftest import config_path
from kpu import calibration as cal


def stats_of(x, passes=100, bins=cal.kHistogramBins):
    s = cal.TensorStats(bins)
    for chunk in np.array_split(x, passes):
        s.add(chunk)
    return s


def gaussian_with_outliers(seed, n=200_000, outliers=20, magnitude=16.0):
    """N(0, 1) with `outliers` values of |x| in [magnitude / 2, magnitude], spread over the passes."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    where = rng.choice(n, outliers, replace=False)
    x[where] = rng.uniform(magnitude / 2, magnitude, outliers) * rng.choice([-1.0, 1.0], outliers)
    return x


def raw_mse(x, t):
    """Squared quantize-dequantize error of the raw values at clip threshold t (symmetric int8)."""
    s = t / 127.0
    return float(np.sum((x - np.clip(np.rint(x / s), -127, 127) * s) ** 2))


def test_minmax_is_exact_on_uniform_data():
    x = np.random.default_rng(1).uniform(-3.0, 2.0, 100_000)
    s = stats_of(x)
    assert s.min == x.min() and s.max == x.max() and s.abs_max == np.abs(x).max() and s.count == x.size
    assert s.counts.sum() == x.size
    t = cal.choose_threshold(s, "minmax")
    scale, zp = cal.activation_scale(s, t, symmetric=True)
    assert scale == np.abs(x).max() / 127.0 and zp == 0
    scale, zp = cal.activation_scale(s, t, symmetric=False)  # [min, max] onto [-128, 127]
    want_scale = (x.max() - x.min()) / 255.0
    assert scale == want_scale
    assert zp == int(np.rint(-128 - x.min() / want_scale))
    q = cal.quantize(x, scale, zp)
    assert q.min() == -128 and q.max() == 127  # both ends of the range reached, none saturated beyond
    assert np.max(np.abs(cal.dequantize(q, scale, zp) - x)) <= scale / 2 + 1e-12


def test_histogram_growth_keeps_every_count_in_its_bin():
    """Ranges doubled by later passes: the histogram equals NumPy's of |x| over the final range."""
    rng = np.random.default_rng(2)
    parts = [rng.uniform(-1, 1, 1000), rng.uniform(-5, 5, 1000), rng.uniform(-40, 40, 1000)]
    s = cal.TensorStats()
    for p in parts:
        s.add(p)
    x = np.abs(np.concatenate(parts))
    assert s.range == 2.0 ** (math.floor(math.log2(x.max())) + 1)  # the smallest power of two above
    want = np.minimum((x / s.bin_width).astype(np.int64), cal.kHistogramBins - 1)
    assert np.array_equal(s.counts, np.bincount(want, minlength=cal.kHistogramBins))


def test_percentile_matches_numpy_within_a_bin():
    x = gaussian_with_outliers(3)
    s = stats_of(x)
    for p in (99.0, 99.9, cal.DEFAULT_PERCENTILE):
        t = cal.choose_threshold(s, "percentile", percentile=p)
        assert abs(t - np.percentile(np.abs(x), p)) <= s.bin_width, p
    assert cal.choose_threshold(s, "percentile") < 0.5 * s.abs_max  # the outliers are clipped


def test_mse_matches_a_brute_force_search_on_the_raw_values():
    x = gaussian_with_outliers(4)
    s = stats_of(x)
    t = cal.choose_threshold(s, "mse")
    candidates = np.linspace(1.0, np.abs(x).max(), 250)
    best = min(raw_mse(x, c) for c in candidates)
    assert raw_mse(x, t) <= 1.02 * best
    assert t < s.abs_max


def plain_kl_threshold(counts, width, quantized=128):
    """TensorRT's entropy calibration written with plain loops (an independent reading of it)."""
    counts = [float(c) for c in counts]
    best, best_i = math.inf, None
    for i in range(quantized, len(counts) + 1):
        p = counts[:i]
        p[-1] += sum(counts[i:])
        merged = i // quantized
        q = [0.0] * i
        for j in range(quantized):
            start, stop = j * merged, (i if j == quantized - 1 else (j + 1) * merged)
            total = sum(counts[start:stop])
            nonzero = [b for b in range(start, stop) if p[b] != 0]
            for b in nonzero:
                q[b] = total / len(nonzero)

        def smooth(d, eps=1e-4):
            s = sum(d)
            d = [v / s for v in d]
            zeros = sum(1 for v in d if v == 0)
            nonzeros = len(d) - zeros
            return [eps if v == 0 else v - eps * zeros / nonzeros for v in d]

        if sum(q) == 0:
            continue
        ps, qs = smooth(p), smooth(q)
        if min(ps) <= 0 or min(qs) <= 0:  # smoothing took a bin below zero: no such candidate
            continue
        kl = sum(a * math.log(a / b) for a, b in zip(ps, qs))
        if kl < best:
            best, best_i = kl, i
    return best_i * width


def test_entropy_matches_a_plain_implementation_and_clips_near_4_sigma():
    x = gaussian_with_outliers(5)
    small = stats_of(x, bins=512)  # the plain loops are quadratic in the bins
    assert cal.choose_threshold(small, "entropy") == pytest.approx(plain_kl_threshold(small.counts, small.bin_width),
                                                                   rel=1e-12)
    s = stats_of(x)
    t = cal.choose_threshold(s, "entropy")
    # The known good clip of N(0, 1) at 8 bits: the raw-value MSE optimum without the
    # outliers (about 3.9 sigma). KL's threshold lies within 25 % of it (docs/python.md).
    clean = np.random.default_rng(5).standard_normal(200_000)
    grid = np.linspace(2.0, 6.0, 401)
    good = grid[int(np.argmin([raw_mse(clean, g) for g in grid]))]
    assert 0.75 * good <= t <= 1.25 * good, (t, good)
    assert t < s.abs_max


def test_every_method_clips_below_the_outliers():
    s = stats_of(gaussian_with_outliers(6))
    for method in ("percentile", "mse", "entropy"):
        assert cal.choose_threshold(s, method) < s.abs_max, method


def test_weight_scales_per_output_channel_are_bit_exact():
    rng = np.random.default_rng(7)
    w = rng.standard_normal((8, 3, 3, 3)) * rng.uniform(0.01, 2.0, (8, 1, 1, 1))
    w[5] = 0.0  # an all-zero channel: scale 1, quantizes to 0
    scales = cal.weight_scales(w, 0)
    top = np.abs(w).reshape(8, -1).max(axis=1)
    want = np.where(top > 0, top / 127.0, 1.0)
    assert np.array_equal(scales, want)
    q = cal.quantize(w, scales, axis=0)
    ref = np.clip(np.rint(w / want[:, None, None, None]), -128, 127).astype(np.int8)
    assert q.dtype == np.int8 and np.array_equal(q, ref)
    assert np.array_equal(np.abs(q).reshape(8, -1).max(axis=1), [0 if c == 5 else 127 for c in range(8)])


def test_rounding_is_half_to_even_and_saturates():
    q = cal.quantize([0.5, 1.5, 2.5, -0.5, -2.5, 1000.0, -1000.0], 1.0)
    assert q.tolist() == [0, 2, 2, 0, -2, 127, -128]
    assert cal.quantize([-1000.0, 1000.0], 1.0, zero_point=-100).tolist() == [-128, 127]


GRAPH = {"tensors": [{"name": "x", "shape": [4, 6], "role": "input"},
                     {"name": "w", "shape": [6, 5], "role": "constant"},
                     {"name": "y", "shape": [4, 5], "role": "intermediate"},
                     {"name": "z", "shape": [4, 5], "role": "output"}],
         "ops": [{"op": "MatMul", "name": "mm", "inputs": ["x", "w"], "outputs": ["y"]},
                 {"op": "Relu", "name": "act", "inputs": ["y"], "outputs": ["z"]}]}
WEIGHTS = {"w": np.random.default_rng(8).standard_normal((6, 5)).astype(np.float32)}


def samples(n, seed=9, shape=(4, 6)):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]


def test_too_few_samples_is_refused():
    with pytest.raises(kpu.CalibrationError, match=r"^INT8 calibration requires at least 100 samples \(got 99\)$"):
        cal.calibrate((GRAPH, WEIGHTS), samples(99))
    assert cal.MIN_SAMPLES == 100


def test_bad_samples_are_refused():
    with pytest.raises(kpu.CalibrationError, match=r"input 'x' has shape \(4, 7\), the graph's is \(4, 6\)"):
        cal.calibrate((GRAPH, WEIGHTS), samples(1, shape=(4, 7)))
    with pytest.raises(kpu.CalibrationError, match="calibration method 'kl' is not one of"):
        cal.calibrate((GRAPH, WEIGHTS), samples(100), method="kl")


def test_a_table_round_trips_through_json(tmp_path):
    table = cal.calibrate((GRAPH, WEIGHTS), samples(100), method="mse", symmetric=False)
    assert set(table.tensors) == {"x", "w", "y", "z"}
    assert table["w"].kind == "weight" and table["w"].axis == [1]
    assert table["w"].scale == (np.abs(WEIGHTS["w"]).astype(np.float64).max(axis=0) / 127.0).tolist()
    assert table["z"].zero_point == -128  # a ReLU's output: lo = 0 onto -128
    path = tmp_path / "calibration.json"
    table.save(path)
    back = cal.CalibrationTable.load(path)
    assert back.to_json() == table.to_json()
    assert json.loads(path.read_text())["format"] == "kpu-calibration"
    data = table.to_json()
    data["tensors"]["y"]["scale"] = 0.0
    with pytest.raises(kpu.CalibrationError, match=r"tensor 'y': scale 0.0 is not finite and positive"):
        cal.CalibrationTable.from_json(data, "t.json")
    data = table.to_json()
    data["tensors"]["y"]["zero_point"] = 300
    with pytest.raises(kpu.CalibrationError, match=r"tensor 'y': zero point 300 is not an integer in \[-128, 127\]"):
        cal.CalibrationTable.from_json(data, "t.json")


def test_a_torch_model_calibrates_end_to_end():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.fc = nn.Linear(8 * 6 * 6, 10)

        def forward(self, x):
            return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))

    torch.manual_seed(0)
    model = Net().eval()
    example = torch.randn(1, 3, 6, 6)
    program = kpu.KPUCompiler().compile(model, config_path("edge"), example_inputs=(example,))
    data = samples(100, seed=10, shape=(1, 3, 6, 6))
    calibrator = cal.Calibrator(program)
    for sample in data:
        calibrator.collect(sample)
    graph = json.loads(program.native.kpu_text())["graph"]
    activations = set(program.input_ids)  # the input and everything computed from it
    for op in graph["ops"]:
        if any(n in activations for n in op["inputs"]):
            activations.update(op["outputs"])
    assert len(activations) >= 8
    for method in cal.METHODS:
        table = calibrator.table(method)
        for name in activations:
            scale = table[name].scale
            assert math.isfinite(scale) and scale > 0, (method, name, scale)
        # The conv's weight: one scale per output channel, max |w| / 127 of torch's own weight.
        conv_scales = [t for t in table.tensors.values() if t.kind == "weight" and len(t.scale) == 8]
        assert len(conv_scales) == 1
        want = model.conv.weight.detach().double().abs().reshape(8, -1).max(dim=1).values / 127.0
        np.testing.assert_array_equal(conv_scales[0].scale, want.numpy())
        assert "conv.weight" not in table and "fc.weight" in table  # the conv reads the weight re-laid
    # The input's min-max scale is its max |x| over the samples.
    assert calibrator.table("minmax")[program.input_ids[0]].scale == float(max(np.abs(d).max() for d in data)) / 127.0
