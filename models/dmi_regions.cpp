#include "models/dmi_regions.h"

#include <algorithm>

namespace kpu::model {

DmiRegions::DmiRegions(uint64_t max_granule_bytes) {
    granule_shift_ = 0;
    while (granule_shift_ < 62 && (uint64_t(2) << granule_shift_) <= max_granule_bytes) ++granule_shift_;
}

const DmiRegion* DmiRegions::find_ordered(uint64_t addr, uint64_t bytes) {
    auto it = by_start_.upper_bound(addr);
    if (it == by_start_.begin()) return nullptr;
    const uint32_t i = std::prev(it)->second;
    if (!regions_[i].holds(addr, bytes)) return nullptr;
    index_[slot(addr)] = i;
    return &regions_[i];
}

const DmiRegion* DmiRegions::add(const DmiRegion& region) {
    if (region.hi <= region.lo) return nullptr;
    if (regions_.size() >= kMaxRegions) clear();
    auto next = by_start_.lower_bound(region.lo);  // the first region starting at or after lo
    if ((next != by_start_.end() && next->first < region.hi) ||
        (next != by_start_.begin() && regions_[std::prev(next)->second].hi > region.lo)) {
        forget(region.lo, region.hi - 1);  // a wider grant replaces the narrower ones it covers
        next = by_start_.lower_bound(region.lo);
    }
    const uint32_t i = uint32_t(regions_.size());
    regions_.push_back(region);
    by_start_.emplace_hint(next, region.lo, i);
    uint32_t shift = granule_shift_;
    while (shift > 0 && (uint64_t(1) << shift) > region.hi - region.lo) --shift;
    indexed_ += granules(region);
    if (shift != granule_shift_) {
        // Granules no larger than any region: every region covers whole granules' worth of slots.
        granule_shift_ = shift;
        indexed_ = 0;
        for (const DmiRegion& r : regions_)
            if (r.hi > r.lo) indexed_ += granules(r);
        rebuild(index_.size());
    } else if (index_.empty() || (2 * indexed_ > index_.size() && index_.size() < kMaxSlots)) {
        rebuild(index_.size());
    } else {
        enter(i);
    }
    return &regions_[i];
}

void DmiRegions::rebuild(size_t at_least) {
    size_t slots = std::max(kMinSlots, at_least);
    while (slots < 2 * indexed_ && slots < kMaxSlots) slots *= 2;
    index_.assign(slots, kNone);
    run_shift_ = 64;
    for (size_t n = slots / kRunGranules; n > 1; n >>= 1) --run_shift_;
    for (uint32_t j = 0; j < regions_.size(); ++j) enter(j);  // in grant order: the newest wins a slot
}

void DmiRegions::enter(uint32_t i) {
    const DmiRegion& r = regions_[i];
    if (r.hi <= r.lo) return;
    const uint64_t granule = uint64_t(1) << granule_shift_;
    for (uint64_t g = r.lo & ~(granule - 1), n = 0; g < r.hi && n < index_.size(); g += granule, ++n)
        index_[slot(g)] = i;
}

void DmiRegions::forget(uint64_t lo, uint64_t hi_inclusive) {
    auto it = by_start_.upper_bound(lo);
    if (it != by_start_.begin()) --it;  // the region before lo may reach into the range
    while (it != by_start_.end() && it->first <= hi_inclusive) {
        DmiRegion& r = regions_[it->second];
        if (r.hi - 1 >= lo) {
            indexed_ -= granules(r);
            r = DmiRegion{};  // its slots now miss
            it = by_start_.erase(it);
        } else {
            ++it;
        }
    }
}

void DmiRegions::clear() {
    regions_.clear();
    by_start_.clear();
    index_.clear();
    indexed_ = 0;
}

}  // namespace kpu::model
