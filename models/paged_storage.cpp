#include "models/paged_storage.h"

#include <algorithm>
#include <cstring>
#include <new>

namespace kpu::model {

namespace {
uint32_t log2_ceil(uint64_t v) {
    uint32_t shift = 0;
    while ((uint64_t(1) << shift) < v) ++shift;
    return shift;
}
}  // namespace

PagedStorage::PagedStorage(uint64_t capacity, uint64_t page_bytes)
    : capacity_(capacity),
      page_shift_(log2_ceil(page_bytes ? page_bytes : std::min(kMaxPageBytes, std::max<uint64_t>(capacity, 1)))),
      pages_((capacity + (uint64_t(1) << page_shift_) - 1) >> page_shift_) {}

uint8_t* PagedStorage::page_at(uint64_t index) {
    auto& p = pages_[index];
    if (!p) {
        p.reset(static_cast<uint8_t*>(std::calloc(1, page_bytes())));  // a fresh page reads as zeros
        if (!p) throw std::bad_alloc();
        ++allocated_;
    }
    return p.get();
}

void PagedStorage::read(uint64_t offset, uint8_t* out, uint64_t len) const {
    const uint64_t mask = page_bytes() - 1;
    while (len) {
        const uint64_t in_page = offset & mask;
        const uint64_t n = std::min(len, page_bytes() - in_page);
        const auto& p = pages_[offset >> page_shift_];
        if (p)
            std::memcpy(out, p.get() + in_page, n);
        else
            std::memset(out, 0, n);
        out += n, offset += n, len -= n;
    }
}

void PagedStorage::write(uint64_t offset, const uint8_t* in, uint64_t len) {
    const uint64_t mask = page_bytes() - 1;
    while (len) {
        const uint64_t in_page = offset & mask;
        const uint64_t n = std::min(len, page_bytes() - in_page);
        std::memcpy(page_at(offset >> page_shift_) + in_page, in, n);
        in += n, offset += n, len -= n;
    }
}

uint8_t* PagedStorage::page(uint64_t offset, uint64_t& page_start, uint64_t& page_len) {
    const uint64_t index = offset >> page_shift_;
    page_start = index << page_shift_;
    page_len = std::min(page_bytes(), capacity_ - page_start);
    return page_at(index);
}

}  // namespace kpu::model
