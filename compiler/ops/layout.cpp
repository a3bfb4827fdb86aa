// Layout ops: data movement with ONNX's shape rules (opset 13, Reshape 14, Split 18).
// Constant inputs (Reshape's shape, Slice's starts/ends/axes/steps, Squeeze's and
// Unsqueeze's axes, Split's split) are int64 tensors with inline values.
#include <algorithm>
#include <set>

#include "compiler/copy_op.h"
#include "compiler/ops/op_schema.h"

namespace kpu::compiler {
namespace {

uint64_t product(const std::vector<uint64_t>& shape, size_t from, size_t to) {
    uint64_t n = 1;
    for (size_t d = from; d < to; ++d) n *= shape[d];
    return n;
}

/// Input i's inline int64 values.
const std::vector<int64_t>& constant(InferContext& c, size_t i) {
    c.need_dtype(i, {DType::Int64});
    return c.int_values(i);
}

void infer_reshape(InferContext& c) {
    const std::vector<int64_t>& target = constant(c, 1);
    const bool allow_zero = c.int_attr("allowzero") != 0;
    std::vector<uint64_t> out;
    std::optional<size_t> inferred;
    for (size_t i = 0; i < target.size(); ++i) {
        const int64_t v = target[i];
        if (v == -1) {
            if (inferred) c.fail("shape has -1 at " + std::to_string(*inferred) + " and at " + std::to_string(i));
            inferred = i;
            out.push_back(1);
        } else if (v == 0 && !allow_zero) {
            if (i >= c.rank(0)) c.fail("shape[" + std::to_string(i) + "] is 0 (copy) but the input has rank " + std::to_string(c.rank(0)));
            out.push_back(c.shape(0)[i]);
        } else if (v <= 0) {
            c.fail("shape[" + std::to_string(i) + "] is " + std::to_string(v));
        } else {
            out.push_back(uint64_t(v));
        }
    }
    const uint64_t have = product(c.shape(0), 0, c.rank(0)), known = product(out, 0, out.size());
    if (inferred && have % known == 0) out[*inferred] = have / known;
    if (product(out, 0, out.size()) != have || (inferred && have % known != 0))
        c.fail("cannot reshape " + c.describe(0) + " (" + std::to_string(have) + " elements) to " +
               attr_string(target));
    c.output(0, out, c.dtype(0));
}

void infer_flatten(InferContext& c) {
    const int64_t rank = int64_t(c.rank(0)), axis = c.int_attr("axis");
    if (axis < -rank || axis > rank)
        c.fail("attribute 'axis' is " + std::to_string(axis) + " but the rank is " + std::to_string(rank) +
               " (valid: " + std::to_string(-rank) + " to " + std::to_string(rank) + ")");
    const size_t a = size_t(axis < 0 ? axis + rank : axis);
    c.output(0, {product(c.shape(0), 0, a), product(c.shape(0), a, c.rank(0))}, c.dtype(0));
}

void infer_transpose(InferContext& c) {
    const size_t rank = c.rank(0);
    std::vector<int64_t> perm;
    if (c.has_attr("perm")) perm = c.ints_attr("perm");
    else
        for (size_t d = rank; d-- > 0;) perm.push_back(int64_t(d));
    std::vector<int64_t> sorted = perm;
    std::sort(sorted.begin(), sorted.end());
    for (size_t d = 0; d < std::max(sorted.size(), rank); ++d)
        if (sorted.size() != rank || sorted[d] != int64_t(d))
            c.fail("attribute 'perm' " + attr_string(perm) + " is not a permutation of the " + std::to_string(rank) +
                   " axes of " + c.describe(0));
    std::vector<uint64_t> out;
    for (int64_t p : perm) out.push_back(c.shape(0)[size_t(p)]);
    c.output(0, out, c.dtype(0));
}

/// The axes of input i normalized against `rank`, each once.
std::set<size_t> axes_of(InferContext& c, size_t i, size_t rank) {
    std::set<size_t> axes;
    const std::vector<int64_t>& values = constant(c, i);
    for (size_t j = 0; j < values.size(); ++j)
        if (!axes.insert(c.axis("axes[" + std::to_string(j) + "]", values[j], rank)).second)
            c.fail("axes[" + std::to_string(j) + "] repeats axis " + std::to_string(values[j]));
    return axes;
}

void infer_squeeze(InferContext& c) {
    const std::vector<uint64_t>& in = c.shape(0);
    std::set<size_t> axes;
    if (c.has_input(1)) {
        axes = axes_of(c, 1, in.size());
        for (size_t a : axes)
            if (in[a] != 1) c.fail("axis " + std::to_string(a) + " of " + c.describe(0) + " is " + std::to_string(in[a]) + ", not 1");
    } else {
        for (size_t d = 0; d < in.size(); ++d)
            if (in[d] == 1) axes.insert(d);
    }
    std::vector<uint64_t> out;
    for (size_t d = 0; d < in.size(); ++d)
        if (!axes.count(d)) out.push_back(in[d]);
    c.output(0, out, c.dtype(0));
}

void infer_unsqueeze(InferContext& c) {
    const size_t rank = c.rank(0) + constant(c, 1).size();
    const std::set<size_t> axes = axes_of(c, 1, rank);
    std::vector<uint64_t> out;
    for (size_t d = 0, next = 0; d < rank; ++d) out.push_back(axes.count(d) ? 1 : c.shape(0)[next++]);
    c.output(0, out, c.dtype(0));
}

void infer_concat(InferContext& c) {
    const size_t rank = c.rank(0), axis = c.axis("attribute 'axis'", c.int_attr("axis"), rank);
    std::vector<uint64_t> out = c.shape(0);
    for (size_t i = 1; i < c.input_count(); ++i) {
        c.same_dtype(0, i);
        if (c.rank(i) != rank) c.fail(c.describe(i) + " has rank " + std::to_string(c.rank(i)) + " but " + c.describe(0) + " has rank " + std::to_string(rank));
        for (size_t d = 0; d < rank; ++d)
            if (d != axis && c.shape(i)[d] != out[d])
                c.fail(c.describe(i) + " dimension " + std::to_string(d) + " is " + std::to_string(c.shape(i)[d]) +
                       " but " + c.describe(0) + " dimension " + std::to_string(d) + " is " + std::to_string(out[d]));
        out[axis] += c.shape(i)[axis];
    }
    c.output(0, out, c.dtype(0));
}

void infer_slice(InferContext& c) {
    const std::vector<uint64_t>& in = c.shape(0);
    const std::vector<int64_t>& starts = constant(c, 1);
    const std::vector<int64_t>& ends = constant(c, 2);
    const size_t n = starts.size();
    const auto same_count = [&](const std::vector<int64_t>& v, const char* name) {
        if (v.size() != n)
            c.fail(std::string("input '") + name + "' has " + std::to_string(v.size()) + " values but 'starts' has " +
                   std::to_string(n));
    };
    same_count(ends, "ends");
    std::vector<int64_t> axes(n), steps(n, 1);
    for (size_t i = 0; i < n; ++i) axes[i] = int64_t(i);
    if (c.has_input(3)) same_count(axes = constant(c, 3), "axes");
    if (c.has_input(4)) same_count(steps = constant(c, 4), "steps");
    std::vector<uint64_t> out = in;
    std::set<size_t> seen;
    for (size_t i = 0; i < n; ++i) {
        const size_t axis = c.axis("axes[" + std::to_string(i) + "]", axes[i], in.size());
        if (!seen.insert(axis).second) c.fail("axes[" + std::to_string(i) + "] repeats axis " + std::to_string(axis));
        const int64_t dim = int64_t(in[axis]), step = steps[i];
        if (step == 0) c.fail("steps[" + std::to_string(i) + "] is 0");
        const auto place = [&](int64_t v, int64_t lo, int64_t hi) { return std::clamp(v < 0 ? v + dim : v, lo, hi); };
        int64_t length;
        if (step > 0) length = (place(ends[i], 0, dim) - place(starts[i], 0, dim) + step - 1) / step;
        else length = (place(starts[i], 0, dim - 1) - place(ends[i], -1, dim - 1) - step - 1) / -step;
        out[axis] = uint64_t(std::max<int64_t>(0, length));
    }
    c.output(0, out, c.dtype(0));
}

void infer_split(InferContext& c) {
    const std::vector<uint64_t>& in = c.shape(0);
    const size_t axis = c.axis("attribute 'axis'", c.int_attr("axis"), in.size());
    const size_t parts = c.output_count();
    std::vector<uint64_t> sizes;
    if (c.has_input(1)) {
        if (c.has_attr("num_outputs")) c.fail("has both input 'split' and attribute 'num_outputs' (one or the other)");
        const std::vector<int64_t>& split = constant(c, 1);
        if (split.size() != parts)
            c.fail("input 'split' has " + std::to_string(split.size()) + " values but the op has " + std::to_string(parts) + " outputs");
        int64_t sum = 0;
        for (int64_t s : split) {
            if (s <= 0) c.fail("input 'split' " + attr_string(split) + " has a size " + std::to_string(s));
            sizes.push_back(uint64_t(s)), sum += s;
        }
        if (uint64_t(sum) != in[axis])
            c.fail("input 'split' " + attr_string(split) + " sums to " + std::to_string(sum) + " but dimension " +
                   std::to_string(axis) + " of " + c.describe(0) + " is " + std::to_string(in[axis]));
    } else {
        if (c.has_attr("num_outputs") && uint64_t(c.int_attr("num_outputs")) != parts)
            c.fail("attribute 'num_outputs' is " + std::to_string(c.int_attr("num_outputs")) + " but the op has " +
                   std::to_string(parts) + " outputs");
        const uint64_t each = (in[axis] + parts - 1) / parts;  // the last part takes the rest
        for (size_t i = 0; i < parts; ++i) sizes.push_back(std::min(each, in[axis] - std::min(in[axis], each * i)));
    }
    for (size_t i = 0; i < parts; ++i) {
        std::vector<uint64_t> out = in;
        out[axis] = sizes[i];
        c.output(i, out, c.dtype(0));
    }
}

void infer_gather(InferContext& c) {
    const std::vector<uint64_t>& data = c.shape(0);
    const size_t axis = c.axis("attribute 'axis'", c.int_attr("axis"), data.size());
    c.need_dtype(1, {DType::Int32, DType::Int64});
    if (const auto* indices = std::get_if<std::vector<int64_t>>(&c.input(1).value)) {
        const int64_t dim = int64_t(data[axis]);
        for (size_t i = 0; i < indices->size(); ++i)
            if ((*indices)[i] < -dim || (*indices)[i] >= dim)
                c.fail("indices[" + std::to_string(i) + "] is " + std::to_string((*indices)[i]) + " but dimension " +
                       std::to_string(axis) + " of " + c.describe(0) + " is " + std::to_string(dim));
    }
    std::vector<uint64_t> out(data.begin(), data.begin() + long(axis));
    out.insert(out.end(), c.shape(1).begin(), c.shape(1).end());
    out.insert(out.end(), data.begin() + long(axis) + 1, data.end());
    c.output(0, out, c.dtype(0));
}

OpSchema schema(const std::string& kind, std::vector<std::string> inputs, size_t min_inputs,
                void (*infer)(InferContext&), std::vector<AttrSpec> attributes = {}) {
    OpSchema s;
    s.kind = kind, s.inputs = std::move(inputs), s.min_inputs = min_inputs, s.outputs = {"output"};
    s.attributes = std::move(attributes), s.infer = infer;
    return s;
}

/// A view lowers as an alias of its input (its constant input is read at compile time).
std::string view_lowering_problem(const Graph&, const Op&) { return ""; }

OpSchema view_schema(OpSchema s) {
    s.view = true, s.lowering_problem = view_lowering_problem;
    if (s.inputs.size() > 1) s.compile_time_inputs = {1};  // shape or axes
    return s;
}

}  // namespace

void register_layout(OpRegistry& registry) {
    OpSchema reshape = schema("Reshape", {"data", "shape"}, 2, infer_reshape, {{"allowzero", AttrType::Int, int64_t(0)}});
    reshape.outputs = {"reshaped"};
    registry.add(view_schema(std::move(reshape)));
    registry.add(view_schema(schema("Flatten", {"input"}, 1, infer_flatten, {{"axis", AttrType::Int, int64_t(1)}})));
    OpSchema transpose = schema("Transpose", {"data"}, 1, infer_transpose, {{"perm", AttrType::Ints, std::nullopt}});
    transpose.outputs = {"transposed"};
    transpose.lowering_problem = copy_lowering_problem;  // the movers copy (copy_op.h) or transpose (vector_op.h)
    registry.add(std::move(transpose));
    OpSchema squeeze = schema("Squeeze", {"data", "axes"}, 1, infer_squeeze);
    squeeze.outputs = {"squeezed"};
    registry.add(view_schema(std::move(squeeze)));
    OpSchema unsqueeze = schema("Unsqueeze", {"data", "axes"}, 2, infer_unsqueeze);
    unsqueeze.outputs = {"expanded"};
    registry.add(view_schema(std::move(unsqueeze)));
    OpSchema concat = schema("Concat", {"inputs"}, 1, infer_concat, {{"axis", AttrType::Int, std::nullopt}});
    concat.variadic = true, concat.outputs = {"concat_result"}, concat.lowering_problem = copy_lowering_problem;
    registry.add(std::move(concat));
    OpSchema slice = schema("Slice", {"data", "starts", "ends", "axes", "steps"}, 3, infer_slice);
    slice.lowering_problem = copy_lowering_problem, slice.compile_time_inputs = {1, 2, 3, 4};
    registry.add(std::move(slice));
    OpSchema split = schema("Split", {"input", "split"}, 1, infer_split,
                            {{"axis", AttrType::Int, int64_t(0)}, {"num_outputs", AttrType::Int, std::nullopt}});
    split.outputs = {"outputs"}, split.variadic_outputs = true;
    split.lowering_problem = copy_lowering_problem, split.compile_time_inputs = {1};
    registry.add(std::move(split));
    OpSchema gather = schema("Gather", {"data", "indices"}, 2, infer_gather, {{"axis", AttrType::Int, int64_t(0)}});
    gather.lowering_problem = copy_lowering_problem, gather.compile_time_inputs = {1};  // inline indices only
    registry.add(std::move(gather));
}

}  // namespace kpu::compiler
