// INT8 calibration (docs/quantization.md): calibration samples evaluated through the float32
// graph by the reference (run_reference), per-tensor statistics and histograms of |x|
// collected, and a scale and zero point chosen for every tensor by one of four methods. The
// one implementation: kpu-compile --calibration and Python's kpu.calibration both call it.
//
// Quantization: q = saturate(round_half_even(x / scale) + zero_point) to [-128, 127].
// - Weights (the B / W operand of a Conv, MatMul or Gemm that follows from the constants
//   alone): symmetric, one scale per output channel, max |w_c| / 127 (1 for an all-zero
//   channel), zero point 0.
// - Activations (every tensor the graph reads or computes that does not follow from the
//   constants): one scale per tensor; symmetric by default (scale = threshold / 127, zero
//   point 0); asymmetric: the range [max(min, -t), min(max, t)] widened to include 0 maps onto
//   all 256 levels, scale = (hi - lo) / 255, zero point round_half_even(-128 - lo / scale).
//
// The histogram of |x| has kHistogramBins bins over [0, range): range starts at the smallest
// power of two above the first non-zero max |x| and doubles (bins merged pairwise, exactly:
// the widths are powers of two) whenever a later value reaches it.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "compiler/compile_error.h"
#include "compiler/graph.h"
#include "compiler/passes.h"
#include "compiler/passes/precision.h"
#include "hardware/config.h"
#include "hardware/enum_names.h"

namespace kpu::cli {

/// TensorRT's bin count.
constexpr uint32_t kHistogramBins = 2048;
/// The entropy method's quantized bins: the int8 magnitudes 0..127.
constexpr uint32_t kQuantizedBins = 128;
/// The percentile method's default: one value in 10^4 saturates.
constexpr double kDefaultPercentile = 99.99;
/// The fewest forward passes a table is made from. For exchangeable samples, the chance that a
/// new input exceeds a tensor's largest value over n samples is 1 / (n + 1) (order
/// statistics): below 1 %, the INT8 accuracy tolerance, from 100 on. Fewer samples also leave
/// the histograms' tails, which the percentile, MSE and entropy methods weigh, too sparse.
constexpr uint64_t kMinCalibrationSamples = 100;

/// How a tensor's clipping magnitude t of |x| is chosen.
enum class CalibrationMethod : uint8_t {
    MinMax,      ///< t = max |x| over every sample
    Percentile,  ///< the upper edge of the bin where the cumulative count reaches the percentile
    Mse,         ///< the bin edge minimising the histogram's quantize-dequantize squared error
    Entropy,     ///< TensorRT's: the bin edge minimising KL(P || Q)
};
inline constexpr hw::EnumName<CalibrationMethod> kCalibrationMethodNames[] = {
    {CalibrationMethod::MinMax, "minmax"},
    {CalibrationMethod::Percentile, "percentile"},
    {CalibrationMethod::Mse, "mse"},
    {CalibrationMethod::Entropy, "entropy"}};
inline const char* to_string(CalibrationMethod m) { return hw::name_in(kCalibrationMethodNames, m); }
/// The method called `name`; CalibrationError "calibration method 'kl' is not one of minmax, ...".
CalibrationMethod parse_calibration_method(const std::string& name);

/// Refused calibration data: too few samples, a sample of the wrong shape, a non-finite value.
class CalibrationError : public compiler::CompileError {
public:
    using compiler::CompileError::CompileError;
};

/// Running statistics of one tensor over the samples.
struct TensorStats {
    explicit TensorStats(uint32_t bins = kHistogramBins) : counts(bins, 0) {}
    double min = HUGE_VAL;        ///< smallest value seen
    double max = -HUGE_VAL;       ///< largest value seen
    double abs_max = 0;           ///< largest |x| seen
    uint64_t count = 0;           ///< values seen
    std::vector<int64_t> counts;  ///< the histogram of |x| over [0, range)
    double range = 0;             ///< 0 until a non-zero value is seen, then a power of two

    double bin_width() const { return range / double(counts.size()); }
    /// Adds `n` values; CalibrationError naming `what` on a NaN or an infinity.
    void add(const double* values, uint64_t n, const std::string& what = "a tensor");
    void add(const float* values, uint64_t n, const std::string& what = "a tensor");

private:
    void add_magnitudes(const std::vector<double>& magnitudes, double top);
    void double_range();
};

/// The clipping magnitude of |x| by `method` (0 for an all-zero tensor); `percentile` in (0, 100].
double choose_threshold(const TensorStats& stats, CalibrationMethod method, double percentile = kDefaultPercentile);
/// KL(P || Q) for every candidate bin count i in [quantized_bins, counts.size()] (the entropy
/// method), +inf where either side has no mass or smoothing fails.
std::vector<double> kl_divergence_curve(const std::vector<int64_t>& counts, uint32_t quantized_bins = kQuantizedBins);

/// (scale, zero point) of an activation clipped at `threshold`; an all-zero tensor gets scale 1.
std::pair<double, int32_t> activation_scale(const TensorStats& stats, double threshold, bool symmetric = true);

/// Per-output-channel symmetric scales, max |w_c| / 127 (1 for an all-zero channel), of
/// `values` laid out as `channels` rows of equal length.
std::vector<double> weight_scales(const std::vector<double>& values, uint64_t channels);

/// `values` of `shape` as [channels, rest]: the `axes` moved to the front (in that order) and
/// flattened, the others after in their order. Returns the channel count and the values.
std::pair<uint64_t, std::vector<double>> channels_first(const std::vector<double>& values,
                                                        const std::vector<uint64_t>& shape,
                                                        const std::vector<uint32_t>& axes);

/// The weight operand of a MAC op (Conv, depthwise_conv, conv_nhwc, Gemm, MatMul, matmul) and
/// its output-channel axes in that op's layout; nullopt for any other op or without a second input.
std::optional<std::pair<uint32_t, std::vector<uint32_t>>> mac_weight_axes(const compiler::Graph& graph,
                                                                          const compiler::Op& op);

/// One tensor's entry. Activations: one scale and zero point, and the statistics; weights:
/// one per output channel along `axis` (flattened group-major when there are two axes).
struct TensorCalibration {
    std::vector<double> scale;          ///< one (activation) or one per output channel (weight)
    std::vector<int32_t> zero_point;    ///< as many as scale
    CalibrationMethod method = CalibrationMethod::MinMax;  ///< what chose it (minmax for weights)
    bool weight = false;                ///< a weight (per output channel) rather than an activation
    std::vector<uint32_t> axis;         ///< a weight's output-channel axes
    std::optional<TensorStats> stats;   ///< an activation's statistics
};

/// Scales and zero points of a graph's tensors, by name.
struct CalibrationTable {
    std::map<std::string, TensorCalibration> tensors;  ///< by tensor name
    CalibrationMethod method = CalibrationMethod::Entropy;  ///< the activations' method
    bool symmetric = true;                              ///< activations symmetric (zero point 0)
    uint64_t samples = 0;                               ///< forward passes behind it
    double percentile = kDefaultPercentile;             ///< the percentile method's parameter
};

/// Collects statistics over forward passes of a float32 graph: collect() each sample, then
/// table() as often as wanted.
class Calibrator {
public:
    /// `graph` checked; `weights` the values of its constants not inline.
    Calibrator(compiler::Graph graph, const compiler::Weights& weights);
    /// The graph's float inputs, in graph order.
    const std::vector<uint32_t>& inputs() const { return inputs_; }
    /// One forward pass on `sample` (every input by name). `source` names the sample in
    /// messages ("calibration sample 3", a file): CalibrationError on a missing input or one
    /// of the wrong element count or shape (`shapes`: the given shapes, when known).
    void collect(const std::map<std::string, std::vector<float>>& sample,
                 const std::map<std::string, std::vector<uint64_t>>& shapes, const std::string& source);
    uint64_t samples() const { return samples_; }
    /// The table by `method`; CalibrationError "INT8 calibration requires at least 100 samples
    /// (got 12)" with fewer than `min_samples` passes.
    CalibrationTable table(CalibrationMethod method, bool symmetric = true, double percentile = kDefaultPercentile,
                           uint64_t min_samples = kMinCalibrationSamples) const;

private:
    compiler::Graph graph_;                 ///< the float32 graph evaluated
    std::map<std::string, std::vector<float>> constants_;  ///< its constants' values, as the reference takes them
    std::vector<uint32_t> inputs_;          ///< the graph's inputs
    std::vector<bool> constant_derived_;    ///< per tensor: follows from the constants alone
    std::map<std::string, TensorStats> stats_;  ///< per activation
    /// Per MAC op's weight, by name: its values (as laid out) and output-channel axes.
    std::map<std::string, std::pair<std::vector<double>, std::vector<uint32_t>>> weight_values_;
    uint64_t samples_ = 0;                  ///< passes collected
};

/// One calibration sample: every input by name.
struct CalibrationSample {
    std::string source;                                  ///< what messages call it: a file, "calibration sample 3"
    std::map<std::string, std::vector<float>> values;    ///< by input name, row-major
    std::map<std::string, std::vector<uint64_t>> shapes; ///< by input name, when known
};

/// The calibrated quantizations `table` holds, as the int8 pass takes them.
compiler::QuantTable quant_table(const CalibrationTable& table);

/// What kpu-compile --precision and KPUCompiler.compile(precision=...) do before compile():
/// `graph` (checked, float32) unchanged for float32; otherwise its BatchNormalizations folded
/// first when `passes` enables fold-batchnorm (the folded conv is what gets converted: once
/// converted it would no longer fold), then in bfloat16 / float16 through to_float_precision,
/// in int8 calibrated on `samples` by `method` (CalibrationError with fewer than
/// kMinCalibrationSamples) and rewritten by quantize_int8. `weights` follow.
compiler::Graph apply_precision(const compiler::Graph& graph, compiler::Weights& weights, compiler::DType type,
                                const hw::Config& config, const std::vector<CalibrationSample>& samples,
                                CalibrationMethod method, const compiler::PassSelection& passes);

/// The table as JSON text (the "kpu-calibration" format of docs/quantization.md).
std::string calibration_table_json(const CalibrationTable& table);

}  // namespace kpu::cli
