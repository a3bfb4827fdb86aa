#include "compiler/copy_op.h"

#include <algorithm>

#include "compiler/compile_error.h"
#include "compiler/dfx.h"
#include "compiler/ops/op_schema.h"
#include "compiler/vector_op.h"

namespace kpu::compiler {
namespace {

/// The leading dims of a shape: its 2D view's rows (a tensor of rank 0 or 1 is one row).
std::vector<uint64_t> row_dims(const std::vector<uint64_t>& shape) {
    return shape.empty() ? shape : std::vector<uint64_t>(shape.begin(), shape.end() - 1);
}

/// Columns of a tensor's 2D view: its last dim (1 for a scalar).
uint64_t last_dim(const std::vector<uint64_t>& shape) { return shape.empty() ? 1 : shape.back(); }

/// View rows between consecutive indices of each leading axis.
std::vector<uint64_t> row_strides(const std::vector<uint64_t>& shape) {
    std::vector<uint64_t> dims = row_dims(shape), strides(dims.size(), 1);
    for (size_t d = dims.size(); d-- > 1;) strides[d - 1] = strides[d] * dims[d];
    return strides;
}

/// Rows of a box of leading-axis indices, affine in both tensors' views: row i of the box
/// (a multi-index) is src row src_base + sum(i_d src_stride_d) and dst row dst_base +
/// sum(i_d dst_stride_d), each a run of `cols` at src_col and dst_col.
struct RowBlock {
    uint32_t src = 0, dst = 0;
    std::vector<uint64_t> box;
    std::vector<int64_t> src_stride;  ///< signed: a Slice may step backwards
    std::vector<uint64_t> dst_stride;
    int64_t src_base = 0;
    uint64_t dst_base = 0;
    uint64_t src_col = 0, dst_col = 0, cols = 0;
};

/// Appends `c` (one row, not transposed), merged into the last copy when it continues it: the
/// next row at one step on both sides, or the next columns of the same single row.
void append(std::vector<Copy>& out, const Copy& c) {
    if (!out.empty()) {
        Copy& last = out.back();
        const bool same = !last.transpose && last.src == c.src && last.dst == c.dst;
        if (same && last.src_col == c.src_col && last.dst_col == c.dst_col && last.cols == c.cols) {
            const int64_t ds = int64_t(c.src_row) - int64_t(last.src_row), dd = int64_t(c.dst_row) - int64_t(last.dst_row);
            if (last.rows == 1 && ds > 0 && dd > 0) {
                last.src_step = uint64_t(ds), last.dst_step = uint64_t(dd), last.rows = 2;
                return;
            }
            if (last.rows > 1 && ds == int64_t(last.rows * last.src_step) && dd == int64_t(last.rows * last.dst_step)) {
                ++last.rows;
                return;
            }
        }
        if (same && last.rows == 1 && last.src_row == c.src_row && last.dst_row == c.dst_row &&
            c.src_col == last.src_col + last.cols && c.dst_col == last.dst_col + last.cols) {
            last.cols += c.cols;
            return;
        }
    }
    out.push_back(c);
}

/// The block's rows, its longest axis innermost (the longest runs at one step).
void emit(const RowBlock& b, std::vector<Copy>& out) {
    for (uint64_t e : b.box)
        if (e == 0) return;
    const size_t n = b.box.size();
    std::vector<size_t> order(n);  // outermost first
    for (size_t d = 0; d < n; ++d) order[d] = d;
    if (n > 1) {
        size_t inner = n - 1;
        for (size_t d = n - 1; d-- > 0;)
            if (b.box[d] > b.box[inner]) inner = d;
        order.erase(order.begin() + long(inner));
        order.push_back(inner);
    }
    std::vector<uint64_t> i(n, 0);
    Copy c;
    c.src = b.src, c.dst = b.dst, c.src_col = b.src_col, c.dst_col = b.dst_col, c.rows = 1, c.cols = b.cols;
    while (true) {
        int64_t s = b.src_base;
        uint64_t d = b.dst_base;
        for (size_t k = 0; k < n; ++k) s += int64_t(i[k]) * b.src_stride[k], d += i[k] * b.dst_stride[k];
        c.src_row = uint64_t(s), c.dst_row = d;
        append(out, c);
        size_t k = n;
        while (k > 0 && ++i[order[k - 1]] == b.box[order[k - 1]]) i[order[--k]] = 0;
        if (k == 0) return;
    }
}

void transpose_copies(const Graph& g, const Op& op, std::vector<Copy>& out) {
    const uint32_t x = op.inputs.at(0), y = op.outputs.at(0);
    const std::vector<uint64_t>& s = g.tensor(x).shape;
    const std::vector<uint64_t>& o = g.tensor(y).shape;
    const std::vector<int64_t> perm = transpose_perm(g, op);
    const size_t r = s.size();
    const std::vector<uint64_t> in_rs = row_strides(s), out_rs = row_strides(o);
    if (r <= 1 || perm[r - 1] == int64_t(r - 1)) {  // the last axis stays: rows move whole
        RowBlock b;
        b.src = x, b.dst = y, b.box = row_dims(o), b.dst_stride = out_rs, b.cols = last_dim(s);
        for (size_t d = 0; d + 1 < r; ++d) b.src_stride.push_back(int64_t(in_rs[size_t(perm[d])]));
        return emit(b, out);
    }
    // The last axis moves: per index of the other input axes, the rows along input axis j
    // (which becomes the output's last) are one block that lands transposed, its columns on
    // the output's rows along axis q (where the input's last axis goes).
    std::vector<size_t> inv(r);
    for (size_t d = 0; d < r; ++d) inv[size_t(perm[d])] = d;
    const size_t j = size_t(perm[r - 1]), q = inv[r - 1];
    std::vector<size_t> others;
    for (size_t d = 0; d + 1 < r; ++d)
        if (d != j) others.push_back(d);
    std::vector<uint64_t> i(others.size(), 0);
    Copy c;
    c.src = x, c.dst = y, c.rows = s[j], c.cols = s[r - 1], c.src_step = in_rs[j], c.dst_step = out_rs[q];
    c.transpose = true;
    while (true) {
        c.src_row = c.dst_row = 0;
        for (size_t k = 0; k < others.size(); ++k)
            c.src_row += i[k] * in_rs[others[k]], c.dst_row += i[k] * out_rs[inv[others[k]]];
        out.push_back(c);
        size_t k = others.size();
        while (k > 0 && ++i[k - 1] == s[others[k - 1]]) i[--k] = 0;
        if (k == 0) return;
    }
}

/// Each of Split's parts along `axis` (ONNX: the `split` input, else equal parts of
/// ceil(dim / parts), the last one the rest), an omitted output's too.
std::vector<uint64_t> split_sizes(const Graph& g, const Op& op, size_t axis) {
    std::vector<uint64_t> sizes;
    if (op.inputs.size() > 1 && op.inputs[1] != kNoTensor) {
        for (int64_t v : std::get<std::vector<int64_t>>(g.tensor(op.inputs[1]).value)) sizes.push_back(uint64_t(v));
        return sizes;
    }
    const uint64_t dim = g.tensor(op.inputs.at(0)).shape[axis], parts = op.outputs.size(), each = (dim + parts - 1) / parts;
    for (uint64_t i = 0; i < parts; ++i) sizes.push_back(std::min(each, dim - std::min(dim, each * i)));
    return sizes;
}

/// Concat's inputs, or Split's outputs, as slices of the one tensor along `axis`, part i
/// `sizes[i]` long there (an omitted output is skipped).
void concat_copies(const Graph& g, uint32_t whole, const std::vector<uint32_t>& parts, const std::vector<uint64_t>& sizes,
                   size_t axis, bool into_whole, std::vector<Copy>& out) {
    const std::vector<uint64_t>& w = g.tensor(whole).shape;
    const size_t last = w.size() - 1;
    uint64_t offset = 0;
    for (size_t i = 0; i < parts.size(); offset += sizes[i++]) {
        const uint32_t t = parts[i];
        if (t == kNoTensor) continue;
        const std::vector<uint64_t>& p = g.tensor(t).shape;
        RowBlock b;
        b.src = into_whole ? t : whole, b.dst = into_whole ? whole : t;
        b.box = row_dims(p);
        const std::vector<uint64_t> part_rs = row_strides(p), whole_rs = row_strides(w);
        for (size_t d = 0; d < b.box.size(); ++d) {
            b.src_stride.push_back(int64_t(into_whole ? part_rs[d] : whole_rs[d]));
            b.dst_stride.push_back(into_whole ? whole_rs[d] : part_rs[d]);
        }
        b.cols = p[last];
        const uint64_t whole_row = axis == last ? 0 : offset * whole_rs[axis], whole_col = axis == last ? offset : 0;
        if (into_whole)
            b.dst_base = whole_row, b.dst_col = whole_col;
        else
            b.src_base = int64_t(whole_row), b.src_col = whole_col;
        emit(b, out);
    }
}

/// Slice's constant inputs per axis of the data: first index, step (ONNX's clamping).
void slice_starts(const Graph& g, const Op& op, std::vector<int64_t>& start, std::vector<int64_t>& step,
                  std::vector<size_t>& given) {
    const std::vector<uint64_t>& s = g.tensor(op.inputs.at(0)).shape;
    const auto values = [&](size_t i) { return std::get<std::vector<int64_t>>(g.tensor(op.inputs[i]).value); };
    const std::vector<int64_t> starts = values(1);
    std::vector<int64_t> axes(starts.size()), steps(starts.size(), 1);
    for (size_t i = 0; i < axes.size(); ++i) axes[i] = int64_t(i);
    if (op.inputs.size() > 3 && op.inputs[3] != kNoTensor) axes = values(3);
    if (op.inputs.size() > 4 && op.inputs[4] != kNoTensor) steps = values(4);
    start.assign(s.size(), 0), step.assign(s.size(), 1), given.assign(s.size(), SIZE_MAX);
    for (size_t i = 0; i < starts.size(); ++i) {
        const size_t a = size_t(axes[i] < 0 ? axes[i] + int64_t(s.size()) : axes[i]);
        const int64_t dim = int64_t(s[a]), v = starts[i] < 0 ? starts[i] + dim : starts[i];
        step[a] = steps[i], given[a] = i;
        start[a] = steps[i] > 0 ? std::clamp<int64_t>(v, 0, dim) : std::clamp<int64_t>(v, 0, dim - 1);
    }
}

void slice_copies(const Graph& g, const Op& op, std::vector<Copy>& out) {
    const uint32_t x = op.inputs.at(0), y = op.outputs.at(0);
    const std::vector<uint64_t>& s = g.tensor(x).shape;
    std::vector<int64_t> start, step;
    std::vector<size_t> given;
    slice_starts(g, op, start, step, given);
    const std::vector<uint64_t> in_rs = row_strides(s);
    RowBlock b;
    b.src = x, b.dst = y, b.box = row_dims(g.tensor(y).shape), b.dst_stride = row_strides(g.tensor(y).shape);
    for (size_t d = 0; d + 1 < s.size(); ++d) {
        b.src_stride.push_back(step[d] * int64_t(in_rs[d]));
        b.src_base += start[d] * int64_t(in_rs[d]);
    }
    b.src_col = uint64_t(start.back()), b.cols = g.tensor(y).shape.back();
    emit(b, out);
}

/// Gather's axis, made non-negative.
size_t gather_axis(const Graph& g, const Op& op) {
    const int64_t axis = std::get<int64_t>(*attribute_of(op, schema_of(op), "axis"));
    return size_t(axis < 0 ? axis + int64_t(g.tensor(op.inputs.at(0)).shape.size()) : axis);
}

void gather_copies(const Graph& g, const Op& op, std::vector<Copy>& out) {
    const uint32_t x = op.inputs.at(0), y = op.outputs.at(0);
    const std::vector<uint64_t>& s = g.tensor(x).shape;
    const std::vector<int64_t>& indices = std::get<std::vector<int64_t>>(g.tensor(op.inputs.at(1)).value);
    const size_t q = g.tensor(op.inputs[1]).shape.size();
    const size_t a = gather_axis(g, op);
    const auto place = [&](int64_t v) { return uint64_t(v < 0 ? v + int64_t(s[a]) : v); };
    if (s.size() == 1) {  // elements of a vector: each lands at its place in y's view
        const uint64_t y_cols = g.tensor(y).shape.size() >= 2 ? g.tensor(y).shape.back() : indices.size();
        for (uint64_t k = 0; k < indices.size(); ++k) {
            Copy c;
            c.src = x, c.dst = y, c.src_col = place(indices[k]), c.dst_row = k / y_cols, c.dst_col = k % y_cols;
            c.rows = 1, c.cols = 1;
            append(out, c);
        }
        return;
    }
    const std::vector<uint64_t> in_rs = row_strides(s), out_rs = row_strides(g.tensor(y).shape);
    for (uint64_t k = 0; k < indices.size(); ++k) {
        RowBlock b;
        b.src = x, b.dst = y, b.box = row_dims(s), b.box[a] = 1, b.cols = s.back();
        for (size_t d = 0; d + 1 < s.size(); ++d) {
            b.src_stride.push_back(int64_t(in_rs[d]));
            b.dst_stride.push_back(d < a ? out_rs[d] : d == a ? 0 : out_rs[d - 1 + q]);
        }
        b.src_base = int64_t(place(indices[k]) * in_rs[a]);
        b.dst_base = q ? k * out_rs[a + q - 1] : 0;
        emit(b, out);
    }
}

}  // namespace

bool Copy::operator==(const Copy& o) const {
    return src == o.src && dst == o.dst && src_row == o.src_row && src_col == o.src_col && src_step == o.src_step &&
           dst_row == o.dst_row && dst_col == o.dst_col && dst_step == o.dst_step && rows == o.rows && cols == o.cols &&
           transpose == o.transpose;
}

std::vector<int64_t> transpose_perm(const Graph& graph, const Op& op) {
    if (const std::optional<AttrValue> p = attribute_of(op, schema_of(op), "perm"))
        return std::get<std::vector<int64_t>>(*p);
    std::vector<int64_t> perm;
    for (size_t d = graph.tensor(op.inputs.at(0)).shape.size(); d-- > 0;) perm.push_back(int64_t(d));
    return perm;
}

bool swaps_last_two_axes(const std::vector<int64_t>& perm) {
    const size_t rank = perm.size();
    bool swaps = rank >= 2 && perm[rank - 1] == int64_t(rank - 2) && perm[rank - 2] == int64_t(rank - 1);
    for (size_t d = 0; d + 2 < rank; ++d) swaps = swaps && perm[d] == int64_t(d);
    return swaps;
}

bool is_copy_op(const Graph& graph, const Op& op) {
    if (op.kind == "Transpose") return !swaps_last_two_axes(transpose_perm(graph, op));
    return op.kind == "Concat" || op.kind == "Slice" || op.kind == "Split" || op.kind == "Gather";
}

std::string copy_lowering_problem(const Graph& graph, const Op& op) {
    if (!is_copy_op(graph, op)) return vector_lowering_problem(graph, op);
    const std::vector<uint64_t>& s = graph.tensor(op.inputs.at(0)).shape;
    if (op.kind == "Slice") {
        std::vector<int64_t> start, step;
        std::vector<size_t> given;
        slice_starts(graph, op, start, step, given);
        if (step.back() != 1 && graph.tensor(op.outputs.at(0)).shape.back() > 1)
            return "steps[" + std::to_string(given.back()) + "] = " + std::to_string(step.back()) + " on the last axis (" +
                   std::to_string(s.size() - 1) + ") not yet supported (only 1 there; any step on the other axes)";
    }
    if (op.kind == "Gather") {
        const Tensor& indices = graph.tensor(op.inputs.at(1));
        if (!std::holds_alternative<std::vector<int64_t>>(indices.value))
            return "input 'indices' ('" + indices.name + "') without an inline value not yet supported (only constant indices)";
        const size_t axis = gather_axis(graph, op);
        if (s.size() >= 2 && axis + 1 == s.size())
            return "axis = " + std::to_string(axis) + " (the last axis) not yet supported (only an axis before the last)";
    }
    return "";
}

std::vector<Copy> copy_list(const Graph& graph, uint32_t index) {
    const Op& op = graph.ops().at(index);
    const std::string problem = copy_lowering_problem(graph, op);
    if (!problem.empty() || !is_copy_op(graph, op))
        throw CompileError("op '" + op.name + "' (" + op.kind + "): " + (problem.empty() ? "not a copy" : problem));
    std::vector<Copy> out;
    const auto axis = [&](uint32_t t) {
        const int64_t a = std::get<int64_t>(*attribute_of(op, schema_of(op), "axis"));
        return size_t(a < 0 ? a + int64_t(graph.tensor(t).shape.size()) : a);
    };
    if (op.kind == "Transpose") transpose_copies(graph, op, out);
    else if (op.kind == "Slice") slice_copies(graph, op, out);
    else if (op.kind == "Gather") gather_copies(graph, op, out);
    else if (op.kind == "Concat") {
        const size_t a = axis(op.outputs.at(0));
        std::vector<uint64_t> sizes;
        for (uint32_t t : op.inputs) sizes.push_back(graph.tensor(t).shape[a]);
        concat_copies(graph, op.outputs[0], op.inputs, sizes, a, true, out);
    } else {  // Split
        const size_t a = axis(op.inputs.at(0));
        concat_copies(graph, op.inputs[0], op.outputs, split_sizes(graph, op, a), a, false, out);
    }
    return out;
}

CopyOperands copy_operands(const Graph& graph, uint32_t op) {
    CopyOperands out;
    out.copies = copy_list(graph, op);
    for (const Copy& c : out.copies) {
        out.max_rows = std::max(out.max_rows, c.rows);
        out.max_cols = std::max(out.max_cols, c.cols);
        out.transposes = out.transposes || c.transpose;
    }
    return out;
}

void for_each_piece(const std::vector<Copy>& copies, uint32_t tm, uint32_t tn, uint32_t tk, uint32_t r0, uint32_t r1,
                    uint32_t c0, uint32_t c1, const std::function<void(const CopyPiece&)>& visit) {
    const uint64_t first = uint64_t(r0) * tm, end = std::min<uint64_t>(copies.size(), uint64_t(r1) * tm);
    for (uint64_t i = first; i < end; ++i) {
        const Copy& c = copies[i];
        for (uint64_t r = uint64_t(c0) * tn; r < std::min<uint64_t>(c.rows, uint64_t(c1) * tn); r += tn)
            for (uint64_t k = 0; k < c.cols; k += tk) {
                CopyPiece p{uint32_t(i), c};
                Copy& x = p.copy;
                x.rows = std::min<uint64_t>(tn, c.rows - r), x.cols = std::min<uint64_t>(tk, c.cols - k);
                x.src_row += r * c.src_step, x.src_col += k;
                if (c.transpose)  // its columns are the destination's rows
                    x.dst_row += k * c.dst_step, x.dst_col += r;
                else
                    x.dst_row += r * c.dst_step, x.dst_col += k;
                visit(p);
            }
    }
}

}  // namespace kpu::compiler
