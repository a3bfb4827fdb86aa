#include "sc_main/calibration.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <sstream>

#include <nlohmann/json.hpp>

#include "compiler/passes/fold_batchnorm.h"
#include "sc_main/reference.h"

namespace kpu::cli {

using compiler::DType;
using compiler::Graph;
using compiler::Op;
using compiler::TensorRole;

CalibrationMethod parse_calibration_method(const std::string& name) {
    CalibrationMethod m;
    if (!hw::value_in(kCalibrationMethodNames, name, m)) {
        std::string names;
        for (const auto& entry : kCalibrationMethodNames) names += (names.empty() ? "" : ", ") + std::string(entry.name);
        throw CalibrationError("calibration method '" + name + "' is not one of " + names);
    }
    return m;
}

// ---- statistics ----

void TensorStats::add(const double* values, uint64_t n, const std::string& what) {
    if (n == 0) return;
    std::vector<double> magnitudes(n);
    uint64_t non_finite = 0;
    double top = 0, lo = min, hi = max;
    for (uint64_t i = 0; i < n; ++i) {
        const double v = values[i];
        if (!std::isfinite(v)) {
            ++non_finite;
            continue;
        }
        lo = std::min(lo, v), hi = std::max(hi, v);
        magnitudes[i] = std::fabs(v);
        top = std::max(top, magnitudes[i]);
    }
    if (non_finite)
        throw CalibrationError("calibration: " + what + " has " + std::to_string(non_finite) + " non-finite values");
    min = lo, max = hi;
    abs_max = std::max(abs_max, top);
    count += n;
    add_magnitudes(magnitudes, top);
}

void TensorStats::add(const float* values, uint64_t n, const std::string& what) {
    const std::vector<double> wide(values, values + n);
    add(wide.data(), n, what);
}

void TensorStats::add_magnitudes(const std::vector<double>& magnitudes, double top) {
    const uint64_t bins = counts.size();
    if (top == 0.0 && range == 0.0) {
        counts[0] += int64_t(magnitudes.size());
        return;
    }
    if (range == 0.0) range = std::exp2(std::floor(std::log2(top)) + 1);  // the smallest power of two above
    while (top >= range) double_range();
    const double width = bin_width();
    for (double x : magnitudes) ++counts[std::min(uint64_t(x / width), bins - 1)];
}

void TensorStats::double_range() {
    const size_t half = counts.size() / 2;
    for (size_t i = 0; i < half; ++i) counts[i] = counts[2 * i] + counts[2 * i + 1];
    std::fill(counts.begin() + half, counts.end(), 0);
    range *= 2;
}

// ---- thresholds ----

namespace {

double threshold_percentile(const TensorStats& s, double percentile) {
    if (!(percentile > 0 && percentile <= 100)) {
        std::ostringstream text;
        text << "calibration: percentile " << percentile << " is not in (0, 100]";
        throw CalibrationError(text.str());
    }
    std::vector<double> cumulative(s.counts.size());
    double sum = 0;
    for (size_t i = 0; i < s.counts.size(); ++i) cumulative[i] = sum += double(s.counts[i]);
    const double want = sum * percentile / 100.0;
    const size_t b = size_t(std::lower_bound(cumulative.begin(), cumulative.end(), want) - cumulative.begin());
    return std::min(double(b + 1) * s.bin_width(), s.abs_max);
}

/// The edge i * width (i = 1..bins) minimising sum_b counts[b] (c_b - q_b s)^2, c_b the centre
/// of bin b, s = edge / 127, q_b = min(round_half_even(c_b / s), 127).
double threshold_mse(const TensorStats& s) {
    const double width = s.bin_width();
    const size_t bins = s.counts.size();
    std::vector<double> centres, counts;
    for (size_t b = 0; b < bins; ++b)
        if (s.counts[b] > 0) centres.push_back((double(b) + 0.5) * width), counts.push_back(double(s.counts[b]));
    double best = HUGE_VAL, best_t = s.abs_max;
    for (size_t i = 1; i <= bins; ++i) {
        const double t = double(i) * width, scale = t / 127.0;
        double error = 0;
        for (size_t j = 0; j < centres.size(); ++j) {
            const double q = std::min(std::nearbyint(centres[j] / scale), 127.0);
            const double e = centres[j] - q * scale;
            error += e * e * counts[j];
        }
        if (error < best) best = error, best_t = t;
    }
    return std::min(best_t, s.abs_max);
}

/// `p` normalised, every zero bin given eps taken evenly from the non-zero ones; false when a
/// bin would not stay positive (or there is no mass).
bool smooth(std::vector<double>& p, double eps = 1e-4) {
    const double total = std::accumulate(p.begin(), p.end(), 0.0);
    if (total == 0) return false;
    size_t zeros = 0;
    for (double& v : p) v /= total, zeros += v == 0;
    const size_t nonzeros = p.size() - zeros;
    if (nonzeros == 0) return false;
    const double take = eps * double(zeros) / double(nonzeros);
    for (double& v : p) {
        v = v == 0 ? eps : v - take;
        if (!(v > 0)) return false;
    }
    return true;
}

double threshold_entropy(const TensorStats& s) {
    const std::vector<double> kl = kl_divergence_curve(s.counts);
    size_t best = kl.size();
    for (size_t k = 0; k < kl.size(); ++k)
        if (std::isfinite(kl[k]) && (best == kl.size() || kl[k] < kl[best])) best = k;
    if (best == kl.size()) return s.abs_max;
    return std::min(double(best + kQuantizedBins) * s.bin_width(), s.abs_max);
}

}  // namespace

std::vector<double> kl_divergence_curve(const std::vector<int64_t>& counts, uint32_t quantized_bins) {
    const size_t bins = counts.size();
    std::vector<double> tails(bins + 1, 0.0);  // tails[i] = sum(counts[i:])
    for (size_t i = bins; i-- > 0;) tails[i] = tails[i + 1] + double(counts[i]);
    std::vector<double> out;
    for (size_t i = quantized_bins; i <= bins; ++i) {
        std::vector<double> p(counts.begin(), counts.begin() + i);
        p[i - 1] += tails[i];
        // Q: counts[:i] in quantized_bins groups of i / quantized_bins bins (the last takes the
        // remainder), each group's sum spread evenly over its bins where p is non-zero.
        const size_t merged = i / quantized_bins;
        std::vector<double> q(i, 0.0);
        for (size_t g = 0; g < quantized_bins; ++g) {
            const size_t start = g * merged, stop = g + 1 == quantized_bins ? i : start + merged;
            double sum = 0, nonzero = 0;
            for (size_t b = start; b < stop; ++b) sum += double(counts[b]), nonzero += p[b] != 0;
            for (size_t b = start; b < stop; ++b) q[b] = p[b] != 0 ? sum / std::max(nonzero, 1.0) : 0.0;
        }
        double kl = HUGE_VAL;
        if (smooth(p) && smooth(q)) {
            kl = 0;
            for (size_t b = 0; b < i; ++b) kl += p[b] * std::log(p[b] / q[b]);
        }
        out.push_back(kl);
    }
    return out;
}

double choose_threshold(const TensorStats& stats, CalibrationMethod method, double percentile) {
    if (stats.abs_max == 0.0) return 0.0;
    switch (method) {
        case CalibrationMethod::MinMax: return stats.abs_max;
        case CalibrationMethod::Percentile: return threshold_percentile(stats, percentile);
        case CalibrationMethod::Mse: return threshold_mse(stats);
        case CalibrationMethod::Entropy: return threshold_entropy(stats);
    }
    return stats.abs_max;
}

std::pair<double, int32_t> activation_scale(const TensorStats& stats, double threshold, bool symmetric) {
    if (symmetric) return {threshold > 0 ? threshold / 127.0 : 1.0, 0};
    const double lo = std::min(std::max(stats.min, -threshold), 0.0), hi = std::max(std::min(stats.max, threshold), 0.0);
    if (hi - lo <= 0) return {1.0, 0};
    const double scale = (hi - lo) / 255.0;
    const double zero_point = std::clamp(std::nearbyint(-128.0 - lo / scale), -128.0, 127.0);
    return {scale, int32_t(zero_point)};
}

std::vector<double> weight_scales(const std::vector<double>& values, uint64_t channels) {
    const uint64_t per = channels ? values.size() / channels : 0;
    std::vector<double> scales(channels);
    for (uint64_t c = 0; c < channels; ++c) {
        double top = 0;
        for (uint64_t j = 0; j < per; ++j) top = std::max(top, std::fabs(values[c * per + j]));
        scales[c] = top > 0 ? top / 127.0 : 1.0;
    }
    return scales;
}

std::pair<uint64_t, std::vector<double>> channels_first(const std::vector<double>& values,
                                                        const std::vector<uint64_t>& shape,
                                                        const std::vector<uint32_t>& axes) {
    std::vector<uint32_t> order(axes);
    for (uint32_t d = 0; d < shape.size(); ++d)
        if (std::find(axes.begin(), axes.end(), d) == axes.end()) order.push_back(d);
    uint64_t channels = 1;
    for (uint32_t a : axes) channels *= shape[a];
    std::vector<uint64_t> strides(shape.size(), 1);
    for (size_t d = shape.size(); d-- > 1;) strides[d - 1] = strides[d] * shape[d];
    std::vector<double> out(values.size());
    std::vector<uint64_t> index(shape.size(), 0);  // over the permuted shape, row-major
    for (uint64_t k = 0; k < values.size(); ++k) {
        uint64_t source = 0;
        for (size_t j = 0; j < order.size(); ++j) source += index[j] * strides[order[j]];
        out[k] = values[source];
        for (size_t j = order.size(); j-- > 0;) {
            if (++index[j] < shape[order[j]]) break;
            index[j] = 0;
        }
    }
    return {channels, std::move(out)};
}

std::optional<std::pair<uint32_t, std::vector<uint32_t>>> mac_weight_axes(const Graph& graph, const Op& op) {
    if (op.inputs.size() < 2 || op.inputs[1] == compiler::kNoTensor) return std::nullopt;
    const uint32_t w = op.inputs[1];
    const auto rank = uint32_t(graph.tensor(w).shape.size());
    if (op.kind == "Conv" || op.kind == "depthwise_conv") return std::make_pair(w, std::vector<uint32_t>{0});
    if (op.kind == "conv_nhwc") return std::make_pair(w, std::vector<uint32_t>{0, 4});  // W [G, kH, kW, Cg, Cog]
    if (op.kind == "Gemm") {
        const auto it = op.attributes.find("transB");
        const bool trans = it != op.attributes.end() && std::get<int64_t>(it->second) != 0;
        return std::make_pair(w, std::vector<uint32_t>{trans ? 0u : 1u});
    }
    if ((op.kind == "MatMul" || op.kind == "matmul") && rank >= 1)
        return std::make_pair(w, std::vector<uint32_t>{rank - 1});
    return std::nullopt;
}

// ---- collecting ----

Calibrator::Calibrator(Graph graph, const compiler::Weights& weights) : graph_(std::move(graph)) {
    for (const auto& [name, w] : weights) {
        std::vector<float>& v = constants_[name];
        if (!w.values.empty()) v = w.values;
        else v.assign(w.integers.begin(), w.integers.end());
    }
    const auto& tensors = graph_.tensors();
    constant_derived_ = compiler::constant_derived(graph_);
    for (uint32_t t = 0; t < tensors.size(); ++t) {
        const auto* reals = std::get_if<std::vector<double>>(&tensors[t].value);
        // Inline values given as inputs too: the reference's fabric matmuls read no inline values.
        if (tensors[t].role == TensorRole::Constant && reals && !constants_.count(tensors[t].name))
            constants_[tensors[t].name].assign(reals->begin(), reals->end());
        if (tensors[t].role == TensorRole::Input) inputs_.push_back(t);
    }
}

void Calibrator::collect(const std::map<std::string, std::vector<float>>& sample,
                         const std::map<std::string, std::vector<uint64_t>>& shapes, const std::string& source) {
    std::map<std::string, std::vector<float>> given = constants_;
    for (uint32_t t : inputs_) {
        const compiler::Tensor& x = graph_.tensor(t);
        const auto it = sample.find(x.name);
        if (it == sample.end()) throw CalibrationError(source + ": no value for input '" + x.name + "'");
        const auto shape = shapes.find(x.name);
        if ((shape != shapes.end() && shape->second != x.shape) || it->second.size() != x.elements())
            throw CalibrationError(source + ": input '" + x.name + "' has " +
                                   (shape != shapes.end() ? "shape " + compiler::shape_string(shape->second)
                                                          : std::to_string(it->second.size()) + " elements") +
                                   ", the graph's is " + compiler::shape_string(x.shape));
        given[x.name] = it->second;
    }
    const std::map<std::string, ReferenceTensor> computed = run_reference(graph_, given);
    if (weight_values_.empty())
        for (const Op& op : graph_.ops()) {
            const auto w = mac_weight_axes(graph_, op);
            if (!w || !constant_derived_[w->first]) continue;
            const compiler::Tensor& t = graph_.tensor(w->first);
            std::vector<double> values;
            if (const auto g = given.find(t.name); g != given.end()) values.assign(g->second.begin(), g->second.end());
            else if (const auto c = computed.find(t.name); c != computed.end()) values = c->second.value;
            else if (const auto* inline_values = std::get_if<std::vector<double>>(&t.value)) values = *inline_values;
            if (!values.empty()) weight_values_[t.name] = {std::move(values), w->second};
        }
    for (uint32_t t : inputs_) {
        const std::string& name = graph_.tensor(t).name;
        const std::vector<float>& v = given.at(name);
        stats_.try_emplace(name).first->second.add(v.data(), v.size(), source + ": input '" + name + "'");
    }
    for (const auto& [name, tensor] : computed) {
        const auto t = graph_.find_tensor(name);
        if (!t || constant_derived_[*t] || graph_.tensor(*t).dtype != DType::Float32) continue;
        stats_.try_emplace(name).first->second.add(tensor.value.data(), tensor.value.size(),
                                                   source + ": tensor '" + name + "'");
    }
    ++samples_;
}

CalibrationTable Calibrator::table(CalibrationMethod method, bool symmetric, double percentile,
                                   uint64_t min_samples) const {
    if (samples_ < min_samples)
        throw CalibrationError("INT8 calibration requires at least " + std::to_string(min_samples) + " samples (got " +
                               std::to_string(samples_) + ")");
    CalibrationTable table;
    table.method = method, table.symmetric = symmetric, table.samples = samples_, table.percentile = percentile;
    for (const auto& [name, entry] : weight_values_) {
        const compiler::Tensor& t = graph_.tensor(*graph_.find_tensor(name));
        const auto [channels, rows] = channels_first(entry.first, t.shape, entry.second);
        TensorCalibration c;
        c.scale = weight_scales(rows, channels);
        c.zero_point.assign(c.scale.size(), 0);
        c.method = CalibrationMethod::MinMax, c.weight = true, c.axis = entry.second;
        table.tensors[name] = std::move(c);
    }
    for (const auto& [name, stats] : stats_) {
        const auto [scale, zero_point] = activation_scale(stats, choose_threshold(stats, method, percentile), symmetric);
        TensorCalibration c;
        c.scale = {scale}, c.zero_point = {zero_point}, c.method = method, c.stats = stats;
        table.tensors[name] = std::move(c);
    }
    return table;
}

compiler::QuantTable quant_table(const CalibrationTable& table) {
    compiler::QuantTable out;
    for (const auto& [name, t] : table.tensors) {
        compiler::Quantization q;
        q.scale.assign(t.scale.begin(), t.scale.end());
        q.zero_point = t.zero_point;
        q.axis = t.weight && !t.axis.empty() ? t.axis[0] : 0;
        out[name] = std::move(q);
    }
    return out;
}

Graph apply_precision(const Graph& graph, compiler::Weights& weights, DType type, const hw::Config& config,
                      const std::vector<CalibrationSample>& samples, CalibrationMethod method,
                      const compiler::PassSelection& passes) {
    if (type == DType::Float32) return graph;
    config.fabric_type(to_string(type));  // refused before anything is evaluated
    if (type == DType::Int8 && samples.size() < kMinCalibrationSamples)
        throw CalibrationError("INT8 calibration requires at least " + std::to_string(kMinCalibrationSamples) +
                               " samples (got " + std::to_string(samples.size()) + ")");
    const Graph folded = passes.enabled(compiler::Pass::FoldBatchnorm) ? compiler::fold_batchnorm(graph, &weights) : graph;
    if (type != DType::Int8) return compiler::to_float_precision(folded, weights, type, config);
    Calibrator calibrator(folded, weights);
    for (const CalibrationSample& s : samples) calibrator.collect(s.values, s.shapes, s.source);
    return compiler::quantize_int8(folded, weights, quant_table(calibrator.table(method)), config);
}

std::string calibration_table_json(const CalibrationTable& table) {
    using nlohmann::json;
    json tensors = json::object();
    for (const auto& [name, t] : table.tensors) {
        json entry = {{"kind", t.weight ? "weight" : "activation"}, {"method", to_string(t.method)}};
        if (t.weight) {
            entry["scale"] = t.scale, entry["zero_point"] = t.zero_point, entry["axis"] = t.axis;
        } else {
            entry["scale"] = t.scale.at(0), entry["zero_point"] = t.zero_point.at(0);
        }
        if (t.stats)
            entry["stats"] = {{"min", t.stats->min},
                              {"max", t.stats->max},
                              {"abs_max", t.stats->abs_max},
                              {"count", t.stats->count},
                              {"histogram", {{"range", t.stats->range}, {"counts", t.stats->counts}}}};
        tensors[name] = std::move(entry);
    }
    const json out = {{"format", "kpu-calibration"}, {"version", 1},           {"method", to_string(table.method)},
                      {"symmetric", table.symmetric}, {"percentile", table.percentile}, {"samples", table.samples},
                      {"tensors", std::move(tensors)}};
    return out.dump(1);
}

}  // namespace kpu::cli
