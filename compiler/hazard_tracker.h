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
    /// The ops that read a span since its last write: up to kInline of them in place (most
    /// spans: a copy or a split then costs no allocation), more on the heap.
    class Readers {
    public:
        Readers() = default;
        explicit Readers(uint32_t op) { push_back(op); }
        Readers(const Readers& other) { copy(other); }
        Readers(Readers&& other) noexcept { take(other); }
        Readers& operator=(const Readers& other) {
            if (this != &other) release(), copy(other);
            return *this;
        }
        Readers& operator=(Readers&& other) noexcept {
            if (this != &other) release(), take(other);
            return *this;
        }
        ~Readers() { release(); }
        void push_back(uint32_t op);
        const uint32_t* begin() const { return capacity_ > kInline ? heap_ : inline_; }
        const uint32_t* end() const { return begin() + size_; }

    private:
        static constexpr uint32_t kInline = 6;
        void copy(const Readers& other);
        void take(Readers& other);
        void release();
        uint32_t size_ = 0, capacity_ = kInline;
        union {
            uint32_t inline_[kInline];
            uint32_t* heap_;
        };
    };
    struct Span {
        uint64_t begin = 0, end = 0;
        int64_t writer = -1;
        Readers readers;
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

/// A space's id from the two numbers that name it: what is tracked (`region`: each user
/// numbers its own, e.g. a logical buffer or a memory level) and which copy of it
/// (`instance`: a buffer's slot, a compute tile).
constexpr uint64_t space_id(uint32_t region, uint32_t instance) { return uint64_t(region) << 32 | instance; }

/// One past the last unit `rows` rows of `row_units` units at `first`, `pitch` apart, touch
/// (the gaps between rows included): the end of the range an access records.
constexpr uint64_t hull_end(uint64_t first, uint64_t rows, uint64_t row_units, uint64_t pitch) {
    return first + (rows - 1) * pitch + row_units;
}

}  // namespace kpu::compiler
