"""INT8 calibration (seed 4's workflow; docs/quantization.md): calibration samples run through
the float32 graph on the host, per-tensor statistics and histograms collected, and a scale (and
zero point) chosen for every tensor by one of four methods. A thin wrapper of the C++
implementation (sc_main/calibration.h) that kpu-compile --calibration and
KPUCompiler.compile(precision=KPUPrecision.INT8) use too: the forward pass is the C++
reference's, which returns every tensor the graph computes.

What it produces is a CalibrationTable: per tensor a scale, a zero point, the method and the
statistics, written and read as JSON (docs/python.md, Calibration).

Quantization (seed 4's format): q = clamp(round_half_even(x / scale) + zero_point, -128, 127),
x ~ (q - zero_point) * scale.
- Weights (the W/B operand of a conv, matmul or Gemm, when it is a constant or computed from
  constants only, e.g. the layout Transpose the importer puts between a Conv's weight and
  conv_nhwc): symmetric, one scale per output channel, scale_c = max |w_c| / 127, zero point
  0 (min-max: every weight value is known, so nothing is gained by clipping them). The entry
  is under the tensor the MAC op reads.
- Activations (every tensor the graph reads or computes that does not follow from the
  constants alone): one scale per tensor, by
  `method`; symmetric by default (zero point 0, scale = threshold / 127, the range
  [-threshold, threshold] onto [-127, 127]). Asymmetric (symmetric=False): the method's
  clipping magnitude t clips the observed range to [lo, hi] = [max(min, -t), min(max, t)]
  (widened to include 0, so that 0 is exact), and that range maps onto all 256 levels
  [-128, 127] as a uint8 quantizer would onto [0, 255]: scale = (hi - lo) / 255,
  zero_point = round_half_even(-128 - lo / scale), clamped to [-128, 127]. A ReLU's output
  (lo = 0) then gets twice the resolution of the symmetric scale.

Methods (each chooses the clipping magnitude t of |x|):
- "minmax": t = max |x| over every sample.
- "percentile": t = the upper edge of the histogram bin where the cumulative count of |x|
  reaches `percentile` % (default 99.99: one value in 10^4 saturates).
- "mse": t minimising the squared quantize-dequantize error of the histogram (each bin's
  count at its centre), over every bin edge as a candidate.
- "entropy": TensorRT's method: t = the bin edge i minimising KL(P || Q), P the histogram's
  first i bins with the counts beyond them added to bin i - 1, Q the same bins merged into 128
  quantized bins (the int8 magnitudes 0..127) and expanded back evenly over each group's
  non-empty bins; i from 128 to the number of bins.

The histogram of |x| has kHistogramBins = 2048 bins (TensorRT's count) over [0, range). Its
range starts at the smallest power of two above the first non-zero max |x| seen and, when a
later sample reaches it, doubles until it covers it: doubling merges the bins pairwise, and
with bin widths that are powers of two every value's bin is computed exactly, so the
histogram is the one NumPy would give over the final range. The range is therefore the
smallest power of two above max |x|, at most 2 x max |x|: at least 1024 bins cover the values.
"""
import json

import numpy as np

from . import _native
from .errors import CalibrationError

#: The fewest forward passes calibrate() takes. For exchangeable samples, the chance that a
#: new input exceeds the largest value of a tensor over n calibration samples is 1 / (n + 1)
#: (order statistics); with 100 it is below 1 %, seed 4's INT8 accuracy tolerance, and 100 is
#: the count of seed 4's message. Fewer samples also leave the histograms' tails (which the
#: percentile, MSE and entropy methods weigh) too sparse to place a threshold in.
MIN_SAMPLES = _native.MIN_CALIBRATION_SAMPLES
kHistogramBins = _native.HISTOGRAM_BINS
kQuantizedBins = _native.QUANTIZED_BINS  # int8 magnitudes 0..127: the entropy method's Q
METHODS = ("minmax", "percentile", "mse", "entropy")
DEFAULT_PERCENTILE = _native.DEFAULT_PERCENTILE
QMIN, QMAX = -128, 127
_FORMAT = "kpu-calibration"


def _broadcast(scale, zero_point, ndim, axis):
    """Scale and zero point as float64 arrays that broadcast against an array of `ndim`
    dimensions: per channel along `axis`, or as they are when `axis` is None."""
    scale, zero_point = np.asarray(scale, np.float64), np.asarray(zero_point, np.float64)
    if axis is None:
        return scale, zero_point
    shape = [1] * ndim
    shape[axis] = -1
    return scale.reshape(shape), zero_point.reshape(shape)


def quantize(x, scale, zero_point=0, axis=None):
    """int8 of `x`: round half to even of x / scale, plus the zero point, saturated to [-128, 127].
    With `axis`, `scale` and `zero_point` are per channel along that axis of x."""
    x = np.asarray(x, np.float64)
    scale, zero_point = _broadcast(scale, zero_point, x.ndim, axis)
    return np.clip(np.rint(x / scale) + zero_point, QMIN, QMAX).astype(np.int8)


def dequantize(q, scale, zero_point=0, axis=None):
    """float32 of int8 `q`: (q - zero_point) * scale."""
    q = np.asarray(q, np.float64)
    scale, zero_point = _broadcast(scale, zero_point, q.ndim, axis)
    return ((q - zero_point) * scale).astype(np.float32)


def _native_call(function, *args):
    """`function(*args)` with the C++ side's CalibrationError as the package's."""
    try:
        return function(*args)
    except _native.CalibrationError as e:
        raise CalibrationError(str(e)) from None


class TensorStats:
    """Running statistics of one tensor over the calibration samples: min, max, max |x|, the
    count of values, and the histogram of |x| (module docstring: bins and range growth)."""

    def __init__(self, bins=kHistogramBins):
        self.native = _native.TensorStats(int(bins))

    min = property(lambda self: self.native.min)
    max = property(lambda self: self.native.max)
    abs_max = property(lambda self: self.native.abs_max)
    count = property(lambda self: self.native.count)
    range = property(lambda self: self.native.range)  # the histogram covers [0, range)
    counts = property(lambda self: self.native.counts)
    bin_width = property(lambda self: self.native.bin_width)

    def add(self, values):
        _native_call(self.native.add, np.asarray(values, np.float64).ravel())

    def to_json(self):
        return {"min": self.min, "max": self.max, "abs_max": self.abs_max, "count": self.count,
                "histogram": {"range": self.range, "counts": self.counts.tolist()}}

    @classmethod
    def from_json(cls, data):
        s = cls(len(data["histogram"]["counts"]))
        n = s.native
        n.min, n.max, n.abs_max = float(data["min"]), float(data["max"]), float(data["abs_max"])
        n.count = int(data["count"])
        n.range = float(data["histogram"]["range"])
        n.counts = np.asarray(data["histogram"]["counts"], np.int64)
        return s


# ---- thresholds: the clipping magnitude of |x| by each method ----

def threshold_minmax(stats):
    return choose_threshold(stats, "minmax")


def threshold_percentile(stats, percentile=DEFAULT_PERCENTILE):
    """The upper edge of the bin where the cumulative count reaches `percentile` %."""
    return choose_threshold(stats, "percentile", percentile)


def threshold_mse(stats):
    """The bin edge minimising sum_b counts[b] * (c_b - dequant(quant(c_b)))^2, c_b the centre of
    bin b, over every edge (1..bins) as the candidate threshold."""
    return choose_threshold(stats, "mse")


def kl_divergence_curve(counts, quantized_bins=kQuantizedBins):
    """KL(P || Q) for every candidate bin count i in [quantized_bins, len(counts)] (TensorRT's
    method, module docstring), as (i values, divergences); inf where either side has no mass."""
    divergences = np.asarray(_native.kl_divergence_curve(np.asarray(counts, np.int64), int(quantized_bins)))
    return np.arange(quantized_bins, len(counts) + 1), divergences


def threshold_entropy(stats):
    """The upper edge of bin i - 1 for the i minimising KL(P || Q)."""
    return choose_threshold(stats, "entropy")


def choose_threshold(stats, method, percentile=DEFAULT_PERCENTILE):
    return _native_call(_native.calibration_threshold, stats.native, method, float(percentile))


def activation_scale(stats, threshold, symmetric=True):
    """(scale, zero_point) of a per-tensor activation clipped at `threshold` (module docstring).
    An all-zero tensor gets scale 1: it quantizes to 0 whatever the scale."""
    return _native.activation_scale(stats.native, float(threshold), bool(symmetric))


def weight_scales(weight, axis):
    """Per-output-channel symmetric scales of a weight: max |w| over every axis but `axis`,
    divided by 127 (1 for an all-zero channel)."""
    w = np.asarray(weight, np.float64)
    rows = np.moveaxis(w, axis % w.ndim, 0).reshape(w.shape[axis % w.ndim], -1) if w.ndim else w.reshape(1, 1)
    return np.asarray(_native.weight_scales(np.ascontiguousarray(rows).ravel(), rows.shape[0]))


# ---- the table ----

class TensorCalibration:
    """One tensor's entry: scale and zero point (floats for an activation; lists, one per output
    channel, for a weight, whose `axis` lists the weight's output-channel axes, flattened
    group-major when there are two), the method that chose it, the kind ("activation" or
    "weight") and the statistics (None for weights)."""

    def __init__(self, name, scale, zero_point, method, kind="activation", axis=None, stats=None):
        self.name, self.scale, self.zero_point, self.method = name, scale, zero_point, method
        self.kind, self.axis, self.stats = kind, axis, stats

    def to_json(self):
        out = {"kind": self.kind, "method": self.method, "scale": self.scale, "zero_point": self.zero_point}
        if self.axis is not None:
            out["axis"] = self.axis
        if self.stats is not None:
            out["stats"] = self.stats.to_json()
        return out


class CalibrationTable:
    """Scales and zero points of every tensor of a graph, by name (what `kpu-compile
    --calibration` will read). `samples` is the count of forward passes behind it."""

    def __init__(self, tensors=None, method="entropy", symmetric=True, samples=0, percentile=DEFAULT_PERCENTILE):
        self.tensors = dict(tensors or {})
        self.method, self.symmetric, self.samples, self.percentile = method, symmetric, samples, percentile

    def __getitem__(self, name):
        return self.tensors[name]

    def __contains__(self, name):
        return name in self.tensors

    def to_json(self):
        return {"format": _FORMAT, "version": 1, "method": self.method, "symmetric": self.symmetric,
                "percentile": self.percentile, "samples": self.samples,
                "tensors": {name: t.to_json() for name, t in sorted(self.tensors.items())}}

    def save(self, path):
        with open(path, "w") as f:
            json.dump(self.to_json(), f, indent=1)

    @classmethod
    def from_json(cls, data, source="calibration table"):
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise CalibrationError(f"{source}: not a calibration table (no \"format\": \"{_FORMAT}\")")
        if data.get("version") != 1:
            raise CalibrationError(f"{source}: calibration table version {data.get('version')!r}; this reads 1")
        tensors = {}
        for name, t in data["tensors"].items():
            scales = np.atleast_1d(np.asarray(t["scale"], np.float64))
            if not np.all(np.isfinite(scales)) or np.any(scales <= 0):
                raise CalibrationError(f"{source}: tensor '{name}': scale {t['scale']!r} is not finite and positive")
            zps = np.atleast_1d(np.asarray(t["zero_point"]))
            if np.any(zps < QMIN) or np.any(zps > QMAX) or np.any(zps != np.rint(zps)):
                raise CalibrationError(f"{source}: tensor '{name}': zero point {t['zero_point']!r} is not an "
                                       f"integer in [{QMIN}, {QMAX}]")
            stats = TensorStats.from_json(t["stats"]) if "stats" in t else None
            tensors[name] = TensorCalibration(name, t["scale"], t["zero_point"], t["method"],
                                              t.get("kind", "activation"), t.get("axis"), stats)
        return cls(tensors, data["method"], bool(data["symmetric"]), int(data["samples"]),
                   float(data.get("percentile", DEFAULT_PERCENTILE)))

    @classmethod
    def load(cls, path):
        with open(path) as f:
            return cls.from_json(json.load(f), str(path))


# ---- collecting: the forward passes ----

def _graph_of(program):
    """(graph JSON, weights) of a KPUProgram, or of a (graph, weights) pair."""
    if isinstance(program, tuple):
        graph, weights = program
        return graph, dict(weights)
    return json.loads(program.native.kpu_text())["graph"], dict(program.native.weights())


class Calibrator:
    """Collects statistics over forward passes of a program's float32 graph: collect() each
    sample, then table(method) as often as wanted (the histograms are kept)."""

    def __init__(self, program):
        self.graph, weights = _graph_of(program)
        self.shapes = {t["name"]: tuple(t.get("shape", ())) for t in self.graph["tensors"]}
        self.inputs = [t["name"] for t in self.graph["tensors"] if t.get("role") == "input"]
        weights = {name: np.ascontiguousarray(value, np.float32) for name, value in weights.items()}
        self.native = _native_call(_native.Calibrator, json.dumps(self.graph), weights)

    @property
    def samples(self):
        return self.native.samples

    def _as_inputs(self, sample):
        if not isinstance(sample, dict):
            if len(self.inputs) != 1:
                raise CalibrationError(f"calibration sample: the graph has {len(self.inputs)} inputs "
                                       f"({', '.join(self.inputs)}): give each sample as a dict by name")
            sample = {self.inputs[0]: sample}
        out = {}
        for name in self.inputs:
            if name not in sample:
                raise CalibrationError(f"calibration sample {self.samples}: no value for input '{name}'")
            value = np.asarray(sample[name])
            if tuple(value.shape) != tuple(self.shapes[name]):
                raise CalibrationError(f"calibration sample {self.samples}: input '{name}' has shape "
                                       f"{tuple(value.shape)}, the graph's is {tuple(self.shapes[name])}")
            out[name] = np.ascontiguousarray(value, np.float32)
        return out

    def collect(self, sample):
        """One forward pass: `sample` is an array (a one-input graph) or a dict by input name."""
        _native_call(self.native.collect, self._as_inputs(sample))

    def table(self, method="entropy", symmetric=True, percentile=DEFAULT_PERCENTILE, min_samples=MIN_SAMPLES):
        """The CalibrationTable by `method` (module docstring)."""
        text = _native_call(self.native.table_json, method, bool(symmetric), float(percentile), int(min_samples))
        return CalibrationTable.from_json(json.loads(text), "calibration")


def calibrate(program, samples, method="entropy", symmetric=True, percentile=DEFAULT_PERCENTILE,
              min_samples=MIN_SAMPLES):
    """A CalibrationTable of `program` (a KPUProgram, or a (graph JSON, weights) pair) from
    `samples`, an iterable of arrays (a one-input graph) or of dicts by input name, each one
    forward pass. Fewer than `min_samples` passes: CalibrationError."""
    if method not in METHODS:
        raise CalibrationError(f"calibration method '{method}' is not one of {', '.join(METHODS)}")
    calibrator = Calibrator(program)
    for sample in samples:
        calibrator.collect(sample)
    return calibrator.table(method, symmetric, percentile, min_samples)
