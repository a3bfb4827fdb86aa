"""INT8 calibration (seed 4's workflow): calibration samples run through the float32 graph on
the host, per-tensor statistics and histograms collected, and a scale (and zero point) chosen
for every tensor by one of four methods. NumPy only; the forward pass is FUNCTIONAL mode's
(kpu.evaluate, or the C++ reference for an op it has no rule for), which already returns every
tensor the graph computes.

What it produces is a CalibrationTable: per tensor a scale, a zero point, the method and the
statistics, written and read as JSON (docs/python.md, Calibration). The simulator does not run
int8 programs yet; the table is what the int8 compilation will consume.

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
import math

import numpy as np

from .errors import CalibrationError

#: The fewest forward passes calibrate() takes. For exchangeable samples, the chance that a
#: new input exceeds the largest value of a tensor over n calibration samples is 1 / (n + 1)
#: (order statistics); with 100 it is below 1 %, seed 4's INT8 accuracy tolerance, and 100 is
#: the count of seed 4's message. Fewer samples also leave the histograms' tails (which the
#: percentile, MSE and entropy methods weigh) too sparse to place a threshold in.
MIN_SAMPLES = 100
kHistogramBins = 2048
kQuantizedBins = 128  # int8 magnitudes 0..127: the entropy method's Q
METHODS = ("minmax", "percentile", "mse", "entropy")
DEFAULT_PERCENTILE = 99.99
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


class TensorStats:
    """Running statistics of one tensor over the calibration samples: min, max, max |x|, the
    count of values, and the histogram of |x| (module docstring: bins and range growth)."""

    def __init__(self, bins=kHistogramBins):
        self.min, self.max, self.abs_max, self.count = math.inf, -math.inf, 0.0, 0
        self.counts = np.zeros(bins, np.int64)
        self.range = 0.0  # the histogram covers [0, range); 0 until a non-zero value is seen

    @property
    def bin_width(self):
        return self.range / len(self.counts)

    def add(self, values):
        x = np.abs(np.asarray(values, np.float64).ravel())
        if x.size == 0:
            return
        if not np.all(np.isfinite(x)):
            raise CalibrationError(f"calibration: a tensor has {int(np.sum(~np.isfinite(x)))} non-finite values")
        v = np.asarray(values, np.float64)
        self.min, self.max = min(self.min, float(v.min())), max(self.max, float(v.max()))
        top = float(x.max())
        self.abs_max, self.count = max(self.abs_max, top), self.count + x.size
        if top == 0.0 and self.range == 0.0:
            self.counts[0] += x.size
            return
        if self.range == 0.0:  # the smallest power of two above the first non-zero max |x|
            self.range = 2.0 ** (math.floor(math.log2(top)) + 1)
        while top >= self.range:
            self._double()
        bins = len(self.counts)
        index = np.minimum((x / self.bin_width).astype(np.int64), bins - 1)
        self.counts += np.bincount(index, minlength=bins)

    def _double(self):
        """The range twice as wide, bins merged pairwise (exact: bin i of the old histogram lies
        wholly in bin i // 2 of the new)."""
        merged = self.counts.reshape(-1, 2).sum(axis=1)
        self.counts = np.concatenate([merged, np.zeros(len(merged), np.int64)])
        self.range *= 2

    def to_json(self):
        return {"min": self.min, "max": self.max, "abs_max": self.abs_max, "count": self.count,
                "histogram": {"range": self.range, "counts": self.counts.tolist()}}

    @classmethod
    def from_json(cls, data):
        s = cls(len(data["histogram"]["counts"]))
        s.min, s.max, s.abs_max = float(data["min"]), float(data["max"]), float(data["abs_max"])
        s.count = int(data["count"])
        s.range = float(data["histogram"]["range"])
        s.counts = np.asarray(data["histogram"]["counts"], np.int64)
        return s


# ---- thresholds: the clipping magnitude of |x| by each method ----

def threshold_minmax(stats):
    return stats.abs_max


def threshold_percentile(stats, percentile=DEFAULT_PERCENTILE):
    """The upper edge of the bin where the cumulative count reaches `percentile` %."""
    if not 0 < percentile <= 100:
        raise CalibrationError(f"calibration: percentile {percentile} is not in (0, 100]")
    cumulative = np.cumsum(stats.counts)
    b = int(np.searchsorted(cumulative, cumulative[-1] * percentile / 100.0))
    return min((b + 1) * stats.bin_width, stats.abs_max)


def threshold_mse(stats):
    """The bin edge minimising sum_b counts[b] * (c_b - dequant(quant(c_b)))^2, c_b the centre of
    bin b, over every edge (1..bins) as the candidate threshold."""
    width = stats.bin_width
    bins = len(stats.counts)
    centres = (np.arange(bins) + 0.5) * width
    used = stats.counts > 0
    centres, counts = centres[used], stats.counts[used].astype(np.float64)
    thresholds = np.arange(1, bins + 1) * width
    errors = np.empty(bins)
    for start in range(0, bins, 256):  # 256 candidates at a time bounds the memory
        t = thresholds[start:start + 256, None]
        scale = t / 127.0
        q = np.minimum(np.rint(centres[None, :] / scale), 127.0)
        errors[start:start + 256] = ((centres[None, :] - q * scale) ** 2 * counts[None, :]).sum(axis=1)
    return min(float(thresholds[int(np.argmin(errors))]), stats.abs_max)


def _smooth(p, eps=1e-4):
    """The distribution with every zero bin given eps, taken evenly from the non-zero ones (so
    that KL stays finite); p is normalised."""
    zero = p == 0
    n_zero, n_nonzero = int(zero.sum()), int(p.size - zero.sum())
    if n_nonzero == 0:
        return None
    out = p.astype(np.float64).copy()
    out[zero] = eps
    out[~zero] -= eps * n_zero / n_nonzero
    return out if np.all(out > 0) else None


def kl_divergence_curve(counts, quantized_bins=kQuantizedBins):
    """KL(P || Q) for every candidate bin count i in [quantized_bins, len(counts)] (TensorRT's
    method, module docstring), as (i values, divergences); inf where either side has no mass."""
    counts = np.asarray(counts, np.float64)
    bins = len(counts)
    tails = np.concatenate([np.cumsum(counts[::-1])[::-1], [0.0]])  # tails[i] = sum(counts[i:])
    candidates = np.arange(quantized_bins, bins + 1)
    divergences = np.full(len(candidates), np.inf)
    for k, i in enumerate(candidates):
        p = counts[:i].copy()
        p[-1] += tails[i]
        sliced = counts[:i]
        merged = i // quantized_bins
        starts = np.arange(quantized_bins) * merged  # the last group takes the remainder
        q_sums = np.add.reduceat(sliced, starts)
        nonzero = (p != 0).astype(np.float64)
        norms = np.add.reduceat(nonzero, starts)
        group = np.minimum(np.arange(i) // merged, quantized_bins - 1)
        q = np.where(nonzero > 0, q_sums[group] / np.maximum(norms[group], 1), 0.0)
        if p.sum() == 0 or q.sum() == 0:
            continue
        ps, qs = _smooth(p / p.sum()), _smooth(q / q.sum())
        if ps is None or qs is None:
            continue
        divergences[k] = float(np.sum(ps * np.log(ps / qs)))
    return candidates, divergences


def threshold_entropy(stats):
    """The upper edge of bin i - 1 for the i minimising KL(P || Q)."""
    candidates, divergences = kl_divergence_curve(stats.counts)
    if not np.any(np.isfinite(divergences)):
        return stats.abs_max
    return min(float(candidates[int(np.argmin(divergences))]) * stats.bin_width, stats.abs_max)


def choose_threshold(stats, method, percentile=DEFAULT_PERCENTILE):
    if method not in METHODS:
        raise CalibrationError(f"calibration method '{method}' is not one of {', '.join(METHODS)}")
    if stats.abs_max == 0.0:
        return 0.0
    if method == "minmax":
        return threshold_minmax(stats)
    if method == "percentile":
        return threshold_percentile(stats, percentile)
    if method == "mse":
        return threshold_mse(stats)
    return threshold_entropy(stats)


def activation_scale(stats, threshold, symmetric=True):
    """(scale, zero_point) of a per-tensor activation clipped at `threshold` (module docstring).
    An all-zero tensor gets scale 1: it quantizes to 0 whatever the scale."""
    if symmetric:
        return (threshold / 127.0 if threshold > 0 else 1.0), 0
    lo, hi = min(max(stats.min, -threshold), 0.0), max(min(stats.max, threshold), 0.0)
    if hi - lo <= 0:
        return 1.0, 0
    scale = (hi - lo) / 255.0
    zero_point = int(np.clip(np.rint(QMIN - lo / scale), QMIN, QMAX))
    return scale, zero_point


def weight_scales(weight, axis):
    """Per-output-channel symmetric scales of a weight: max |w| over every axis but `axis`,
    divided by 127 (1 for an all-zero channel)."""
    w = np.abs(np.asarray(weight, np.float64))
    others = tuple(a for a in range(w.ndim) if a != axis % w.ndim)
    top = w.max(axis=others) if others else w
    return np.where(top > 0, top / 127.0, 1.0)


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

def _weight_axes(op, graph_shapes):
    """The operand of a MAC op that is its weight, and that weight's output-channel axes in the
    compiled graph's layouts (docs/graph-format.md); (None, None) for any other op. A weight
    with two such axes (conv_nhwc's groups and channels) gets one scale per (group, channel),
    group-major."""
    kind = op["op"]
    ins = op.get("inputs") or [op.get("A"), op.get("B")]
    attributes = op.get("attributes", {})
    if len(ins) < 2 or not ins[1]:
        return None, None
    if kind in ("Conv", "depthwise_conv"):  # W [Cout, Cin/group, kH, kW]
        return ins[1], [0]
    if kind == "conv_nhwc":  # W [G, kH, kW, Cg, Cog]
        return ins[1], [0, 4]
    if kind == "Gemm":  # B [K, N], or [N, K] with transB
        return ins[1], [0 if attributes.get("transB", 0) else 1]
    if kind in ("MatMul", "matmul"):  # B [..., K, N]
        return ins[1], [len(graph_shapes.get(ins[1], (0, 0))) - 1]
    return None, None


def _channels(weight, axes):
    """A weight as [channels, rest]: its output-channel axes moved to the front and flattened."""
    w = np.asarray(weight, np.float64)
    moved = np.moveaxis(w, axes, list(range(len(axes))))
    return moved.reshape(int(np.prod([w.shape[a] for a in axes])), -1)


def _graph_of(program):
    """(graph JSON, weights, evaluate function) of a KPUProgram, or of a (graph, weights) pair."""
    if isinstance(program, tuple):
        graph, weights = program
        return graph, dict(weights), None
    graph = json.loads(program.native.kpu_text())["graph"]
    return graph, dict(program.native.weights()), program.native.reference


class Calibrator:
    """Collects statistics over forward passes of a program's float32 graph: collect() each
    sample, then table(method) as often as wanted (the histograms are kept)."""

    def __init__(self, program):
        self.graph, self.weights, self._reference = _graph_of(program)
        self.shapes = {t["name"]: tuple(t.get("shape", ())) for t in self.graph["tensors"]}
        self.inputs = [t["name"] for t in self.graph["tensors"] if t.get("role") == "input"]
        # Tensors that follow from the constants alone (constants, inline values, and what ops
        # compute from them only): weights, not activations.
        self.constant_derived = {t["name"] for t in self.graph["tensors"] if t.get("role") == "constant"}
        for op in self.graph["ops"]:
            ins = [n for n in (op.get("inputs") or [op.get(k) for k in ("A", "B", "bias", "scale", "residual")]) if n]
            if ins and all(n in self.constant_derived for n in ins):
                outs = op.get("outputs") or [op.get("C")]
                self.constant_derived.update(n for n in outs if n)
        self.weight_values = {}  # each MAC op's weight operand, by name: what weight_entries() scales
        self.stats = {}
        self.samples = 0

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
        from .evaluate import evaluate
        arrays = self._as_inputs(sample)
        computed = evaluate(self.graph, arrays, self.weights)
        if computed is None:
            if self._reference is None:
                raise CalibrationError("calibration: the graph has an op kpu.evaluate has no rule for; "
                                       "calibrate the compiled KPUProgram instead")
            computed = self._reference(arrays)
        if not self.weight_values:
            for op in self.graph["ops"]:
                name, axes = _weight_axes(op, self.shapes)
                if name in self.constant_derived:
                    value = self.weights.get(name, computed.get(name))
                    if value is not None:
                        self.weight_values[name] = (np.asarray(value), axes)
        for name, value in list(arrays.items()) + list(computed.items()):
            if name not in self.constant_derived:
                self.stats.setdefault(name, TensorStats()).add(value)
        self.samples += 1

    def weight_entries(self):
        """Per-output-channel symmetric scales of every MAC op's weight operand."""
        out = {}
        for name, (value, axes) in self.weight_values.items():
            scales = weight_scales(_channels(value, axes), 0)
            out[name] = TensorCalibration(name, [float(s) for s in scales], [0] * len(scales), "minmax", "weight",
                                          axes)
        return out

    def table(self, method="entropy", symmetric=True, percentile=DEFAULT_PERCENTILE, min_samples=MIN_SAMPLES):
        """The CalibrationTable by `method` (module docstring)."""
        if self.samples < min_samples:
            raise CalibrationError(f"INT8 calibration requires at least {min_samples} samples"
                                   f" (got {self.samples})")
        tensors = self.weight_entries()
        for name, stats in self.stats.items():
            threshold = choose_threshold(stats, method, percentile)
            scale, zero_point = activation_scale(stats, threshold, symmetric)
            tensors[name] = TensorCalibration(name, float(scale), int(zero_point), method, "activation", None, stats)
        return CalibrationTable(tensors, method, symmetric, self.samples, percentile)


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
