#include "compiler/hazard_tracker.h"

#include <algorithm>
#include <cstring>
#include <iterator>

namespace kpu::compiler {

namespace {

/// The spans of a sorted, disjoint list that overlap [begin, end).
template <typename Spans>
auto overlapping(Spans& spans, uint64_t begin, uint64_t end) {
    const auto first = std::partition_point(spans.begin(), spans.end(), [&](const auto& s) { return s.end <= begin; });
    auto last = first;
    while (last != spans.end() && last->begin < end) ++last;
    return std::make_pair(first, last);
}

}  // namespace

void HazardTracker::Readers::push_back(uint32_t op) {
    if (size_ == capacity_) {
        const uint32_t size = size_, capacity = capacity_ * 2;
        auto* grown = new uint32_t[capacity];
        std::memcpy(grown, begin(), size * sizeof(uint32_t));
        release();
        heap_ = grown, size_ = size, capacity_ = capacity;
    }
    (capacity_ > kInline ? heap_ : inline_)[size_++] = op;
}

void HazardTracker::Readers::copy(const Readers& other) {
    size_ = other.size_;
    capacity_ = std::max(kInline, size_);
    if (capacity_ > kInline) heap_ = new uint32_t[capacity_];
    std::memcpy(capacity_ > kInline ? heap_ : inline_, other.begin(), size_ * sizeof(uint32_t));
}

void HazardTracker::Readers::take(Readers& other) {
    size_ = other.size_, capacity_ = other.capacity_;
    if (capacity_ > kInline)
        heap_ = other.heap_;
    else
        std::memcpy(inline_, other.inline_, size_ * sizeof(uint32_t));
    other.size_ = 0, other.capacity_ = kInline;
}

void HazardTracker::Readers::release() {
    if (capacity_ > kInline) delete[] heap_;
    size_ = 0, capacity_ = kInline;
}

void HazardTracker::access(uint64_t space, uint64_t begin, uint64_t end, bool write, uint32_t op,
                           std::vector<uint32_t>& deps) {
    if (!last_spans_ || space != last_space_) last_spans_ = &spaces_[space], last_space_ = space;
    std::vector<Span>& spans = *last_spans_;
    // Only the spans overlapping [begin, end) change: they are replaced in place by what
    // covers their bytes afterwards.
    const auto [first, last] = overlapping(spans, begin, end);
    std::vector<Span>& out = out_;
    out.clear();
    uint64_t covered_to = begin;  // reads: bytes nobody touched yet get a span of their own
    auto fill_gap = [&](uint64_t upto) {
        if (!write && covered_to < upto) out.push_back({covered_to, upto, -1, Readers(op)});
    };
    for (auto it = first; it != last; ++it) {
        Span& s = *it;
        if (s.writer >= 0) deps.push_back(uint32_t(s.writer));
        if (write) deps.insert(deps.end(), s.readers.begin(), s.readers.end());
        if (s.begin < begin) out.push_back({s.begin, begin, s.writer, s.readers});
        const uint64_t lo = std::max(s.begin, begin), hi = std::min(s.end, end);
        fill_gap(lo);
        covered_to = hi;
        const bool past_end = s.end > end;  // then the part past end keeps the readers
        if (!write) {
            Span mid{lo, hi, s.writer, past_end ? s.readers : std::move(s.readers)};
            mid.readers.push_back(op);
            out.push_back(std::move(mid));
        }
        if (past_end) {
            if (write) out.push_back({begin, end, int64_t(op), Readers()});  // before the part past end
            out.push_back({end, s.end, s.writer, std::move(s.readers)});
        }
    }
    fill_gap(end);
    if (write && (first == last || std::prev(last)->end <= end)) out.push_back({begin, end, int64_t(op), Readers()});
    // Overwrite the overlapping spans in place, then erase or insert only the difference.
    auto at = first;
    const size_t replaced = size_t(last - first), common = std::min(replaced, out.size());
    for (size_t i = 0; i < common; ++i, ++at) *at = std::move(out[i]);
    if (replaced > common)
        spans.erase(at, last);
    else
        spans.insert(at, std::make_move_iterator(out.begin() + std::ptrdiff_t(common)), std::make_move_iterator(out.end()));
}

bool HazardTracker::written_by(uint64_t space, uint64_t begin, uint64_t end, uint32_t op) const {
    const auto it = spaces_.find(space);
    if (it == spaces_.end()) return false;
    uint64_t covered_to = begin;
    const auto [first, last] = overlapping(it->second, begin, end);
    for (auto s = first; s != last; ++s) {
        if (s->begin > covered_to || s->writer != int64_t(op)) return false;
        covered_to = s->end;
    }
    return covered_to >= end;
}

bool HazardTracker::written_after(uint64_t space, uint64_t begin, uint64_t end, uint32_t op) const {
    const auto it = spaces_.find(space);
    if (it == spaces_.end()) return false;
    const auto [first, last] = overlapping(it->second, begin, end);
    return std::any_of(first, last, [&](const Span& s) { return s.writer > int64_t(op); });
}

void normalize_deps(std::vector<uint32_t>& deps, uint32_t self) {
    std::sort(deps.begin(), deps.end());
    deps.erase(std::unique(deps.begin(), deps.end()), deps.end());
    deps.erase(std::remove(deps.begin(), deps.end(), self), deps.end());
}

}  // namespace kpu::compiler
