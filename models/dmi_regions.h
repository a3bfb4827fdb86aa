// The DMI regions an initiator has been granted, and the index that finds the one holding an
// address. Plain C++ (no kernel, no socket): DmiCache asks the targets and keeps one of these.
//
// Memories never move or free their pages, so a grant stays valid until the target
// invalidates it, and an initiator that cycles through many regions (L1 buffers, DRAM
// interleave blocks, rows of a strided tile) is granted each once. Lookups go through a
// direct-mapped index over address granules no larger than the smallest region held (so a
// region covers whole granules), checked against the region's bounds; a slot holds the
// newest region entered on it. Behind the index, the regions' bounds sorted by address (the
// newest kRecent unsorted, merged in when there are that many) find a region whose slot
// another took (then entered again), so each region is granted once. Runs of kRunGranules granules keep their order in one cache
// line of slots (a sweep over consecutive regions finds them side by side); the runs are
// spread by Fibonacci hashing (the top bits of run x 2^64 / golden ratio), which places
// consecutive runs far apart and mixes the high address bits in, so that DRAM, L3, L2 and L1
// addresses with the same low bits do not take the same slots. The index starts at
// kMinSlots and doubles while it holds more granules than half its slots (up to kMaxSlots):
// an initiator that reaches a few buffers keeps its lookups in a few cache lines.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "models/timing_path.h"

namespace kpu::model {

struct DmiRegion {
    uint64_t lo = 0, hi = 0;  ///< device addresses [lo, hi); empty matches nothing
    uint8_t* data = nullptr;  ///< the byte at lo
    bool readable = false, writable = false;
    TimingPath path;          ///< the stages a b_transport to the region books (as far as the grant said)

    /// Holds all of [addr, addr + bytes) (bytes >= 1).
    bool holds(uint64_t addr, uint64_t bytes) const { return addr - lo < hi - lo && bytes <= hi - addr; }
    /// Granted for reads and writes, with every stage of its timing path filled in by the
    /// memory and the routers on the way: what a timed initiator may copy through and book
    /// itself. A grant whose path no memory filled in would be timed as zero: refused.
    bool timed() const { return readable && writable && path.complete && path.count > 0; }
};

class DmiRegions {
public:
    static constexpr size_t kMinSlots = 256, kMaxSlots = 4096;  ///< powers of two
    static constexpr size_t kMaxRegions = 8192;                ///< then start over (about 0.6 MB)
    static constexpr uint64_t kRunGranules = 16;                ///< a 64-byte line of uint32_t slots
    static constexpr size_t kRecent = 64;                       ///< bounds kept unsorted

    /// `max_granule_bytes`: an upper bound for the granule (the smallest region the caller
    /// expects; rounded down to a power of two). The granule shrinks further when a smaller
    /// region is added.
    explicit DmiRegions(uint64_t max_granule_bytes = uint64_t(1) << 62);

    /// The region holding [addr, addr + bytes), if one is known; valid until the next add,
    /// forget or clear.
    const DmiRegion* find(uint64_t addr, uint64_t bytes) {
        if (index_.empty()) return nullptr;
        const uint32_t i = index_[slot(addr)];
        if (i != kNone && regions_[i].holds(addr, bytes)) return &regions_[i];
        return find_behind(addr, bytes);
    }
    /// Remembers a granted region (a wider grant replaces the regions it overlaps); returns
    /// it as stored. An empty region is not stored (nullptr).
    const DmiRegion* add(const DmiRegion& region);
    /// Forgets every region overlapping [lo, hi_inclusive].
    void forget(uint64_t lo, uint64_t hi_inclusive);
    void clear();

    size_t size() const { return regions_.size(); }
    size_t slots() const { return index_.size(); }
    uint64_t granule() const { return uint64_t(1) << granule_shift_; }

private:
    static constexpr uint32_t kNone = ~0u;
    static constexpr uint64_t kHash = 0x9E3779B97F4A7C15ull;  ///< 2^64 / golden ratio
    size_t slot(uint64_t addr) const {
        const uint64_t g = addr >> granule_shift_;
        return size_t((((g / kRunGranules) * kHash) >> run_shift_) * kRunGranules + g % kRunGranules);
    }
    uint64_t granules(const DmiRegion& r) const { return ((r.hi - 1) >> granule_shift_) - (r.lo >> granule_shift_) + 1; }
    /// find() past the index: the sorted bounds, and the slot set to what they find.
    const DmiRegion* find_behind(uint64_t addr, uint64_t bytes);
    /// Enters regions_[i] on the slots of its granules (at most one pass over the index).
    void enter(uint32_t i);
    /// Sizes the index for `indexed_` granules and enters every region in order (the
    /// newest wins a slot).
    void rebuild(size_t at_least);

    /// A region's bounds, kept apart from it so that a search touches only these.
    struct Bounds {
        uint64_t lo, hi;
        uint32_t region;
        bool operator<(const Bounds& o) const { return lo < o.lo; }
    };
    /// Calls f(bounds) for each region held that overlaps [lo, hi).
    template <class F>
    void each_overlapping(uint64_t lo, uint64_t hi, F&& f) const;
    /// Sorts the regions' bounds anew (after some were forgotten).
    void resort();

    std::vector<DmiRegion> regions_;  ///< in grant order; a forgotten one is left empty
    std::vector<uint32_t> index_;
    uint64_t indexed_ = 0;         ///< granules entered since the index was last built
    uint32_t granule_shift_ = 62;  ///< log2 of the granule
    uint32_t run_shift_ = 64;      ///< 64 - log2(index_.size() / kRunGranules)
    std::vector<Bounds> sorted_;   ///< by lo
    std::vector<Bounds> recent_;   ///< the newest, unsorted (fewer than kRecent)
};

}  // namespace kpu::model
