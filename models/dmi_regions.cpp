#include "models/dmi_regions.h"

#include <algorithm>
#include <iterator>

namespace kpu::model {

DmiRegions::DmiRegions(uint64_t max_granule_bytes) {
    granule_shift_ = 0;
    while (granule_shift_ < 62 && (uint64_t(2) << granule_shift_) <= max_granule_bytes) ++granule_shift_;
}

template <class F>
void DmiRegions::each_overlapping(uint64_t lo, uint64_t hi, F&& f) const {
    for (const Bounds& b : recent_)
        if (b.lo < hi && lo < b.hi) f(b);
    // Regions never overlap, so only the one starting last at or before lo may reach into
    // [lo, hi) from the left.
    auto it = std::upper_bound(sorted_.begin(), sorted_.end(), Bounds{lo, 0, 0});
    if (it != sorted_.begin()) --it;
    for (; it != sorted_.end() && it->lo < hi; ++it)
        if (lo < it->hi) f(*it);
}

const DmiRegion* DmiRegions::find_behind(uint64_t addr, uint64_t bytes) {
    uint32_t found = kNone;
    each_overlapping(addr, addr + 1, [&](const Bounds& b) {
        if (found == kNone && regions_[b.region].holds(addr, bytes)) found = b.region;
    });
    if (found == kNone) return nullptr;
    index_[slot(addr)] = found;
    return &regions_[found];
}

const DmiRegion* DmiRegions::add(const DmiRegion& region) {
    if (region.hi <= region.lo) return nullptr;
    if (regions_.size() >= kMaxRegions) clear();
    bool overlaps = false;
    each_overlapping(region.lo, region.hi, [&](const Bounds&) { overlaps = true; });
    if (overlaps) forget(region.lo, region.hi - 1);  // a wider grant replaces the narrower ones it covers
    const uint32_t i = uint32_t(regions_.size());
    regions_.push_back(region);
    recent_.push_back({region.lo, region.hi, i});
    if (recent_.size() >= kRecent) {
        std::sort(recent_.begin(), recent_.end());
        const size_t middle = sorted_.size();
        sorted_.insert(sorted_.end(), recent_.begin(), recent_.end());
        std::inplace_merge(sorted_.begin(), sorted_.begin() + std::ptrdiff_t(middle), sorted_.end());
        recent_.clear();
    }
    uint32_t shift = granule_shift_;
    while (shift > 0 && (uint64_t(1) << shift) > region.hi - region.lo) --shift;
    if (shift != granule_shift_) {
        // Granules no larger than any region: every region covers whole granules' worth of slots.
        granule_shift_ = shift;
        indexed_ = 0;
        for (const DmiRegion& r : regions_)
            if (r.hi > r.lo) indexed_ += granules(r);
        rebuild(index_.size());
        return &regions_[i];
    }
    indexed_ += granules(region);
    if (index_.empty() || (2 * indexed_ > index_.size() && index_.size() < kMaxSlots))
        rebuild(index_.size());
    else
        enter(i);
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
    bool forgot = false;
    for (DmiRegion& r : regions_)
        if (r.hi > r.lo && r.lo <= hi_inclusive && r.hi - 1 >= lo) {
            indexed_ -= granules(r);
            r = DmiRegion{};  // its slots now miss
            forgot = true;
        }
    if (forgot) resort();
}

void DmiRegions::resort() {
    sorted_.clear();
    recent_.clear();
    for (uint32_t i = 0; i < regions_.size(); ++i)
        if (regions_[i].hi > regions_[i].lo) sorted_.push_back({regions_[i].lo, regions_[i].hi, i});
    std::sort(sorted_.begin(), sorted_.end());
}

void DmiRegions::clear() {
    regions_.clear();
    index_.clear();
    indexed_ = 0;
    sorted_.clear();
    recent_.clear();
}

}  // namespace kpu::model
