#include "compiler/const_eval.h"

#include <algorithm>
#include <cmath>
#include <variant>

namespace kpu::compiler {
namespace {

int64_t int_attr(const std::map<std::string, AttrValue>& attributes, const std::string& name, int64_t fallback) {
    const auto it = attributes.find(name);
    return it != attributes.end() && std::holds_alternative<int64_t>(it->second) ? std::get<int64_t>(it->second)
                                                                                  : fallback;
}

/// Add, Sub, Mul, Div, Equal, Where of small constants (numpy broadcasting).
std::optional<ConstValue> elementwise(const std::string& kind, const std::vector<const ConstValue*>& ins) {
    std::vector<uint64_t> shape;
    for (const ConstValue* c : ins) {
        std::vector<uint64_t> s = c->shape, out(std::max(shape.size(), s.size()), 1);
        for (size_t d = 0; d < out.size(); ++d) {
            const uint64_t a = d < out.size() - shape.size() ? 1 : shape[d - (out.size() - shape.size())];
            const uint64_t b = d < out.size() - s.size() ? 1 : s[d - (out.size() - s.size())];
            if (a != b && a != 1 && b != 1) return std::nullopt;
            out[d] = std::max(a, b);
        }
        shape = out;
    }
    ConstValue c{kind == "Where" ? ins[1]->dtype : kind == "Equal" ? DType::Int8 : ins[0]->dtype, shape, {}};
    const uint64_t total = c.elements();
    if (total > kFoldLimit) return std::nullopt;
    auto at = [&](const ConstValue& x, uint64_t flat) {  // x's element broadcast to index `flat` of shape
        uint64_t index = 0, stride = 1;
        for (size_t d = shape.size(); d-- > 0;) {
            const size_t xd = d + x.shape.size() - shape.size();
            const uint64_t coord = flat % shape[d];
            flat /= shape[d];
            if (d >= shape.size() - x.shape.size()) {
                if (x.shape[xd] != 1) index += coord * stride;
                stride *= x.shape[xd];
            }
        }
        return x.values[index];
    };
    for (uint64_t i = 0; i < total; ++i) {
        const double a = at(*ins[0], i), b = at(*ins[1], i);
        double v = 0;
        if (kind == "Add") v = a + b;
        else if (kind == "Sub") v = a - b;
        else if (kind == "Mul") v = a * b;
        else if (kind == "Div") v = is_integer(c.dtype) ? std::trunc(a / b) : a / b;
        else if (kind == "Equal") v = a == b;
        else v = a != 0 ? b : at(*ins[2], i);
        c.values.push_back(v);
    }
    return c;
}

/// ONNX Transpose (perm: reversed axes by default).
std::optional<ConstValue> transpose(const std::map<std::string, AttrValue>& attributes, const ConstValue& x) {
    const size_t rank = x.shape.size();
    std::vector<int64_t> perm;
    if (const auto it = attributes.find("perm"); it != attributes.end()) perm = std::get<std::vector<int64_t>>(it->second);
    else for (size_t d = rank; d-- > 0;) perm.push_back(int64_t(d));
    if (perm.size() != rank) return std::nullopt;
    ConstValue c{x.dtype, std::vector<uint64_t>(rank), std::vector<double>(x.values.size())};
    std::vector<uint64_t> in_stride(rank, 1), out_stride(rank, 1);
    for (size_t d = 0; d < rank; ++d) {
        if (perm[d] < 0 || size_t(perm[d]) >= rank) return std::nullopt;
        c.shape[d] = x.shape[size_t(perm[d])];
    }
    for (size_t d = rank; d-- > 1;) in_stride[d - 1] = in_stride[d] * x.shape[d], out_stride[d - 1] = out_stride[d] * c.shape[d];
    for (uint64_t i = 0; i < c.values.size(); ++i) {  // output element i reads input element `from`
        uint64_t from = 0, rest = i;
        for (size_t d = 0; d < rank; ++d) from += rest / out_stride[d] * in_stride[size_t(perm[d])], rest %= out_stride[d];
        c.values[i] = x.values[from];
    }
    return c;
}

}  // namespace

std::vector<int64_t> ConstValue::ints() const {
    std::vector<int64_t> out;
    for (double v : values) out.push_back(v >= 9.2e18 ? INT64_MAX : v <= -9.2e18 ? INT64_MIN : int64_t(v));
    return out;
}

std::optional<ConstValue> known_value(const Graph& graph, uint32_t t, const Weights* weights) {
    const Tensor& x = graph.tensor(t);
    ConstValue c{x.dtype, x.shape, {}};
    if (const auto* ints = std::get_if<std::vector<int64_t>>(&x.value)) {
        c.values.assign(ints->begin(), ints->end());
    } else if (const auto* doubles = std::get_if<std::vector<double>>(&x.value)) {
        for (double v : *doubles) c.values.push_back(double(float(v)));
    } else if (x.role == TensorRole::Constant && weights && weights->count(x.name)) {
        const std::vector<float>& w = weights->at(x.name).values;
        c.values.assign(w.begin(), w.end());
    } else {
        return std::nullopt;
    }
    return c;
}

void drop_unused_weights(const Graph& graph, const std::vector<std::string>& names, Weights* weights) {
    if (!weights) return;
    for (const std::string& name : names)
        if (!graph.find_tensor(name)) weights->erase(name);
}

ConstValue shape_value(const std::vector<uint64_t>& shape, int64_t start, int64_t end) {
    const int64_t rank = int64_t(shape.size());
    start = std::clamp(start < 0 ? start + rank : start, int64_t(0), rank);
    end = std::clamp(end < 0 ? end + rank : end, int64_t(0), rank);
    ConstValue c{DType::Int64, {uint64_t(std::max<int64_t>(0, end - start))}, {}};
    for (int64_t d = start; d < end; ++d) c.values.push_back(double(shape[size_t(d)]));
    return c;
}

std::optional<ConstValue> evaluate_constant(const std::string& k, const std::map<std::string, AttrValue>& attributes,
                                            const std::vector<const ConstValue*>& inputs) {
    for (size_t i = 0; i < inputs.size(); ++i)  // only the optional inputs the evaluations test may be omitted
        if (!inputs[i] && !((k == "Unsqueeze" || k == "Squeeze") && i == 1) && !(k == "Slice" && i >= 3))
            return std::nullopt;
    if (inputs.empty() || !inputs[0]) return std::nullopt;
    const auto in = [&](size_t i) -> const ConstValue& { return *inputs.at(i); };
    if (k == "Identity") return in(0);
    if (k == "Transpose") return transpose(attributes, in(0));
    if (k == "Reshape") {
        ConstValue c = in(0);
        std::vector<int64_t> target = in(1).ints();
        uint64_t known = 1;
        int64_t infer = -1;
        for (size_t d = 0; d < target.size(); ++d) {
            if (target[d] == 0 && d < c.shape.size()) target[d] = int64_t(c.shape[d]);
            if (target[d] == -1) infer = int64_t(d);
            else known *= uint64_t(target[d]);
        }
        if (infer >= 0) target[size_t(infer)] = known ? int64_t(c.elements() / known) : 0;
        c.shape.assign(target.begin(), target.end());
        return c;
    }
    if (k == "Unsqueeze" || k == "Squeeze") {
        ConstValue c = in(0);
        std::vector<int64_t> axes;
        if (inputs.size() > 1 && inputs[1]) axes = in(1).ints();
        else if (const auto it = attributes.find("axes"); it != attributes.end())
            axes = std::get<std::vector<int64_t>>(it->second);
        const int64_t rank = int64_t(c.shape.size()) + (k == "Unsqueeze" ? int64_t(axes.size()) : 0);
        for (int64_t& a : axes) a = a < 0 ? a + rank : a;
        std::sort(axes.begin(), axes.end());
        if (k == "Unsqueeze") {
            for (int64_t a : axes) c.shape.insert(c.shape.begin() + std::min<int64_t>(a, int64_t(c.shape.size())), 1);
        } else {
            std::vector<uint64_t> shape;
            for (size_t d = 0; d < c.shape.size(); ++d)
                if (axes.empty() ? c.shape[d] != 1 : !std::binary_search(axes.begin(), axes.end(), int64_t(d)))
                    shape.push_back(c.shape[d]);
            c.shape = shape;
        }
        return c;
    }
    if (k == "Concat") {
        const int64_t rank = int64_t(in(0).shape.size());
        int64_t axis = int_attr(attributes, "axis", 0);
        axis = axis < 0 ? axis + rank : axis;
        if (rank != 1 || axis != 0) return std::nullopt;  // shape vectors only
        ConstValue c{in(0).dtype, {0}, {}};
        for (size_t i = 0; i < inputs.size(); ++i) c.values.insert(c.values.end(), in(i).values.begin(), in(i).values.end());
        c.shape[0] = c.values.size();
        return c;
    }
    if (k == "Gather") {
        const ConstValue& data = in(0);
        const ConstValue& idx = in(1);
        int64_t axis = int_attr(attributes, "axis", 0);
        if (data.shape.empty()) return std::nullopt;
        axis = axis < 0 ? axis + int64_t(data.shape.size()) : axis;
        uint64_t outer = 1, inner = 1;
        for (int64_t d = 0; d < axis; ++d) outer *= data.shape[size_t(d)];
        for (size_t d = size_t(axis) + 1; d < data.shape.size(); ++d) inner *= data.shape[d];
        const uint64_t size = data.shape[size_t(axis)];
        ConstValue c{data.dtype, {}, {}};
        c.shape.assign(data.shape.begin(), data.shape.begin() + axis);
        c.shape.insert(c.shape.end(), idx.shape.begin(), idx.shape.end());
        c.shape.insert(c.shape.end(), data.shape.begin() + axis + 1, data.shape.end());
        for (uint64_t o = 0; o < outer; ++o)
            for (double iv : idx.values) {
                const int64_t i = int64_t(iv) < 0 ? int64_t(iv) + int64_t(size) : int64_t(iv);
                if (i < 0 || uint64_t(i) >= size) return std::nullopt;
                for (uint64_t r = 0; r < inner; ++r) c.values.push_back(data.values[(o * size + uint64_t(i)) * inner + r]);
            }
        return c;
    }
    if (k == "Slice") {
        const ConstValue& data = in(0);
        if (data.shape.size() != 1) return std::nullopt;
        const int64_t size = int64_t(data.shape[0]);
        int64_t start = in(1).ints().at(0), end = in(2).ints().at(0), step = 1;
        if (inputs.size() > 4 && inputs[4]) step = in(4).ints().at(0);
        if (step == 0) return std::nullopt;
        start = start < 0 ? start + size : start;
        end = end < 0 ? end + size : end;
        start = std::clamp<int64_t>(start, step > 0 ? 0 : -1, step > 0 ? size : size - 1);
        end = std::clamp<int64_t>(end, step > 0 ? 0 : -1, step > 0 ? size : size - 1);
        ConstValue c{data.dtype, {0}, {}};
        for (int64_t i = start; step > 0 ? i < end : i > end; i += step) c.values.push_back(data.values[size_t(i)]);
        c.shape[0] = c.values.size();
        return c;
    }
    if (k == "Range") {
        const double start = in(0).values.at(0), limit = in(1).values.at(0), delta = in(2).values.at(0);
        if (delta == 0) return std::nullopt;
        ConstValue c{in(0).dtype, {0}, {}};
        for (double v = start; delta > 0 ? v < limit : v > limit; v += delta) {
            if (c.values.size() >= kFoldLimit) return std::nullopt;
            c.values.push_back(v);
        }
        c.shape[0] = c.values.size();
        return c;
    }
    if (k == "Add" || k == "Sub" || k == "Mul" || k == "Div" || k == "Equal" || k == "Where") return elementwise(k, inputs);
    return std::nullopt;
}

}  // namespace kpu::compiler
