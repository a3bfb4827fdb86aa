#include "models/paged_storage.h"

#include <algorithm>
#include <cstring>
#include <new>

#include <sys/mman.h>

namespace kpu::model {

namespace {
uint32_t log2_ceil(uint64_t v) {
    uint32_t shift = 0;
    while ((uint64_t(1) << shift) < v) ++shift;
    return shift;
}
}  // namespace

PageArena::~PageArena() {
    for (const Mapping& m : mappings_) ::munmap(m.data, m.bytes);
}

uint8_t* PageArena::allocate(uint64_t bytes) {
    const uint64_t align = std::min<uint64_t>(bytes, 4096);
    uint64_t at = mappings_.empty() ? 0 : (used_ + align - 1) / align * align;
    if (mappings_.empty() || at + bytes > mappings_.back().bytes) {
        const uint64_t size = std::max(kChunkBytes, (bytes + 4095) / 4096 * 4096);
        void* m = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED) throw std::bad_alloc();
        mappings_.push_back({static_cast<uint8_t*>(m), size});
        mapped_ += size;
        at = 0;
    }
    used_ = at + bytes;
    return mappings_.back().data + at;
}

PagedStorage::PagedStorage(uint64_t capacity, uint64_t page_bytes, PageArena* arena)
    : capacity_(capacity),
      page_shift_(log2_ceil(page_bytes ? page_bytes : std::min(kMaxPageBytes, std::max<uint64_t>(capacity, 1)))),
      arena_(arena),
      page_count_((capacity + (uint64_t(1) << page_shift_) - 1) >> page_shift_),
      // calloc, not a vector: a DRAM channel's table (65536 pages of 64 KiB per 4 GiB) comes
      // zeroed from the kernel and costs memory only where pages are used.
      pages_(static_cast<uint8_t**>(std::calloc(std::max<uint64_t>(page_count_, 1), sizeof(uint8_t*)))) {
    if (!pages_) throw std::bad_alloc();
}

PagedStorage::~PagedStorage() {
    if (!arena_)  // else its pages are the arena's
        for (uint64_t i = 0; i < page_count_; ++i) std::free(pages_[i]);
    std::free(pages_);
}

uint8_t* PagedStorage::page_at(uint64_t index) {
    uint8_t*& p = pages_[index];
    if (!p) {
        p = arena_ ? arena_->allocate(page_bytes()) : static_cast<uint8_t*>(std::calloc(1, page_bytes()));
        if (!p) throw std::bad_alloc();
        ++allocated_;
    }
    return p;
}

void PagedStorage::read(uint64_t offset, uint8_t* out, uint64_t len) const {
    const uint64_t mask = page_bytes() - 1;
    while (len) {
        const uint64_t in_page = offset & mask;
        const uint64_t n = std::min(len, page_bytes() - in_page);
        if (const uint8_t* p = pages_[offset >> page_shift_])
            std::memcpy(out, p + in_page, n);
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
