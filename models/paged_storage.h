// The bytes of one memory instance, allocated lazily: a page exists only once something
// wrote to it (or asked for a direct pointer into it); untouched memory reads as zeros. This
// is what lets a datacenter config with 65536 L1 buffers and 96 GiB of DRAM elaborate in
// milliseconds and use memory only for what a workload touches. Plain C++, no SystemC.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <vector>

namespace kpu::model {

/// Zeroed memory for the pages of a platform's memories, carved one after the other from
/// large anonymous mappings: a page costs a few instructions, not a system call or a calloc
/// that clears it, and its memory is faulted in only where, and when, it is first written
/// (often by a mover's helper thread). Pages are never given back one by one: the arena
/// unmaps everything when it goes, after the memories that use it. One per platform (no
/// global state); only the simulation thread allocates.
class PageArena {
public:
    static constexpr uint64_t kChunkBytes = 64ull << 20;  ///< address space per mapping

    PageArena() = default;
    ~PageArena();
    PageArena(const PageArena&) = delete;
    PageArena& operator=(const PageArena&) = delete;

    /// `bytes` of zeros, aligned to min(bytes, 4096) (pages are powers of two).
    uint8_t* allocate(uint64_t bytes);
    uint64_t mapped_bytes() const { return mapped_; }

private:
    struct Mapping {
        uint8_t* data;
        uint64_t bytes;
    };
    std::vector<Mapping> mappings_;
    uint64_t used_ = 0;  ///< of the newest mapping
    uint64_t mapped_ = 0;
};

class PagedStorage {
public:
    /// Largest page: big enough that a 64-byte burst rarely straddles two pages, small
    /// enough that touching one byte of DRAM costs 64 KiB, not megabytes.
    static constexpr uint64_t kMaxPageBytes = 64 * 1024;

    /// page_bytes == 0 picks min(kMaxPageBytes, capacity rounded up to a power of two);
    /// otherwise it must be a power of two. Pages come from `arena` (which must outlive the
    /// storage) when given, else each from calloc.
    explicit PagedStorage(uint64_t capacity, uint64_t page_bytes = 0, PageArena* arena = nullptr);
    ~PagedStorage();

    PagedStorage(const PagedStorage&) = delete;
    PagedStorage& operator=(const PagedStorage&) = delete;

    /// [offset, offset+len) must lie inside the capacity (callers check; this does not).
    void read(uint64_t offset, uint8_t* out, uint64_t len) const;
    void write(uint64_t offset, const uint8_t* in, uint64_t len);

    /// Host pointer to the page holding `offset`, allocating it; [page_start, page_start +
    /// page_len) is the range it covers (clipped to the capacity). Pages never move or free,
    /// so the pointer stays valid for the storage's lifetime (what DMI needs).
    uint8_t* page(uint64_t offset, uint64_t& page_start, uint64_t& page_len);

    uint64_t capacity() const { return capacity_; }
    uint64_t page_bytes() const { return uint64_t(1) << page_shift_; }
    uint64_t pages_allocated() const { return allocated_; }

private:
    uint8_t* page_at(uint64_t index);

    uint64_t capacity_;
    uint32_t page_shift_;
    PageArena* arena_;  ///< owns the pages when set; else each page is calloc'd
    uint64_t allocated_ = 0;
    uint64_t page_count_;
    uint8_t** pages_;  ///< page_count_ of them; nullptr: never written, reads as zeros
};

}  // namespace kpu::model
