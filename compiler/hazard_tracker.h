// Dependencies from buffer accesses: every access to a byte range of a space (a buffer, or a
// level of one compute tile) returns the earlier ops it must wait for: the last writer
// (read-after-write), and for a write also the readers since then (write-after-read) and the
// last writer (write-after-write). Partial overlaps are split exactly.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

namespace kpu::compiler {

class HazardTracker {
public:
    /// Records that `op` reads or writes [begin, end) of `space`; appends its deps to `deps`.
    void access(uint64_t space, uint64_t begin, uint64_t end, bool write, uint32_t op, std::vector<uint32_t>& deps);
    void clear() { spaces_.clear(), last_spans_ = nullptr; }
    /// Every byte of [begin, end) of `space` was last written by `op`.
    bool written_by(uint64_t space, uint64_t begin, uint64_t end, uint32_t op) const;
    /// Some byte of [begin, end) of `space` was last written by an op later than `op` (ops
    /// are numbered in program order).
    bool written_after(uint64_t space, uint64_t begin, uint64_t end, uint32_t op) const;

private:
    struct Span {
        uint64_t begin = 0, end = 0;
        int64_t writer = -1;
        std::vector<uint32_t> readers;
    };
    std::unordered_map<uint64_t, std::vector<Span>> spaces_;
    /// The space the last access went to (an op's accesses mostly share one), and the
    /// spans one access replaces the overlapping ones with (kept for its capacity).
    uint64_t last_space_ = 0;
    std::vector<Span>* last_spans_ = nullptr;
    std::vector<Span> out_;
};

/// Sorts, removes duplicates and `self`.
void normalize_deps(std::vector<uint32_t>& deps, uint32_t self);

}  // namespace kpu::compiler
