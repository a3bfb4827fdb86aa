// DmiCache: untimed copies through the regions a target grants, with transport_dbg where it
// grants none; each region asked for once, even as smaller grants shrink its index's granule.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include <systemc>
#include <tlm>
#include <tlm_utils/simple_initiator_socket.h>
#include <tlm_utils/simple_target_socket.h>

#include "models/dmi_cache.h"

namespace {

/// 64 KiB of bytes. DMI is granted in regions of different sizes: [0, 16 KiB) as one,
/// [16, 32) KiB in 1 KiB regions, [32, 48) KiB in 64-byte regions (so the index's 256 slots
/// alias: 256 granules of 64 bytes cover 16 KiB); [48, 64) KiB only by
/// transport_dbg. Each region's bytes live in their own allocation, so a pointer used past
/// its region's end reads and writes something else.
struct PatchyMemory : sc_core::sc_module {
    static constexpr uint64_t kBytes = 64 * 1024, kDmiEnd = 48 * 1024;
    tlm_utils::simple_target_socket<PatchyMemory> socket;
    std::vector<std::vector<unsigned char>> regions;  ///< by region_index()
    int grants = 0, debug_calls = 0;

    explicit PatchyMemory(sc_core::sc_module_name name) : sc_module(name), socket("socket") {
        socket.register_get_direct_mem_ptr(this, &PatchyMemory::get_direct_mem_ptr);
        socket.register_transport_dbg(this, &PatchyMemory::transport_dbg);
        socket.register_b_transport(this, &PatchyMemory::b_transport);
        for (uint64_t a = 0; a < kBytes; a += region_bytes(a)) regions.emplace_back(region_bytes(a) + 64, 0xee);
    }
    static uint64_t region_bytes(uint64_t addr) {
        return addr < 16384 ? 16384 : addr < 32768 ? 1024 : addr < kDmiEnd ? 64 : kBytes - kDmiEnd;
    }
    static uint64_t region_start(uint64_t addr) { return addr / region_bytes(addr) * region_bytes(addr); }
    static size_t region_index(uint64_t addr) {
        return addr < 16384 ? 0 : addr < 32768 ? 1 + (addr - 16384) / 1024 : addr < kDmiEnd ? 17 + (addr - 32768) / 64 : 273;
    }
    unsigned char& byte(uint64_t addr) { return regions[region_index(addr)][addr - region_start(addr)]; }
    std::vector<unsigned char> all() {
        std::vector<unsigned char> out(kBytes);
        for (uint64_t a = 0; a < kBytes; ++a) out[a] = byte(a);
        return out;
    }
    bool get_direct_mem_ptr(tlm::tlm_generic_payload& trans, tlm::tlm_dmi& dmi) {
        const uint64_t addr = trans.get_address();
        if (addr >= kDmiEnd) return false;
        ++grants;
        dmi.set_start_address(region_start(addr));
        dmi.set_end_address(region_start(addr) + region_bytes(addr) - 1);
        dmi.set_dmi_ptr(&byte(region_start(addr)));
        dmi.allow_read_write();
        return true;
    }
    unsigned int transport_dbg(tlm::tlm_generic_payload& trans) {
        ++debug_calls;
        const uint64_t addr = trans.get_address();
        const unsigned n = unsigned(std::min<uint64_t>(trans.get_data_length(), kBytes - addr));
        for (unsigned i = 0; i < n; ++i) {
            if (trans.is_write())
                byte(addr + i) = trans.get_data_ptr()[i];
            else
                trans.get_data_ptr()[i] = byte(addr + i);
        }
        return n;
    }
    void b_transport(tlm::tlm_generic_payload& trans, sc_core::sc_time&) {
        trans.set_response_status(tlm::TLM_GENERIC_ERROR_RESPONSE);
    }
};

struct Initiator : sc_core::sc_module {
    tlm_utils::simple_initiator_socket<Initiator> socket;
    explicit Initiator(sc_core::sc_module_name name) : sc_module(name), socket("socket") {}
};

TEST(DmiCache, CopiesExactlyAcrossRegionsOfEverySizeAndAsksForEachOnce) {
    PatchyMemory memory("memory");
    Initiator initiator("initiator");
    initiator.socket.bind(memory.socket);
    kpu::model::DmiCache cache(initiator.socket);
    for (uint64_t a = 0; a < PatchyMemory::kBytes; ++a) memory.byte(a) = (unsigned char)(a * 7 + a / 256);
    std::vector<unsigned char> expected = memory.all();

    // Large grants first, so the granule later shrinks twice (16 KiB -> 1 KiB -> 64 B).
    std::vector<unsigned char> all(PatchyMemory::kBytes);
    ASSERT_TRUE(cache.read(0, all.data(), all.size()));
    EXPECT_EQ(all, expected);
    EXPECT_EQ(memory.grants, 1 + 16 + 256);  // every region once
    EXPECT_EQ(memory.debug_calls, 1);        // the last 16 KiB in one debug transaction

    // Unaligned writes across region boundaries of each kind, then read back.
    const uint64_t starts[] = {16384 - 3, 32768 - 100, 32768 + 250, 49152 - 7, 100};
    unsigned char value = 1;
    for (uint64_t start : starts) {
        std::vector<unsigned char> data(700, value++);
        ASSERT_TRUE(cache.write(start, data.data(), data.size()));
        std::copy(data.begin(), data.end(), expected.begin() + std::ptrdiff_t(start));
    }
    EXPECT_EQ(memory.all(), expected);
    EXPECT_EQ(memory.grants, 1 + 16 + 256);  // all still cached, whichever index slot they were in

    // Row by row, as a fabric reads an operand: in place where one region holds the row.
    EXPECT_EQ(cache.readable_span(20000, 24), &memory.byte(20000));
    uint64_t room = 0;  // how far the pointer stays good: to the end of its 1 KiB region
    EXPECT_EQ(cache.readable_span(20000, 24, &room), &memory.byte(20000));
    EXPECT_EQ(room, 20480u - 20000u);
    EXPECT_EQ(cache.readable_span(20480 - 8, 16), nullptr);  // crosses two 1 KiB regions
    EXPECT_EQ(cache.readable_span(50000, 4), nullptr);       // no DMI there

    // After an invalidation the region is asked for again, and the bytes still match.
    cache.invalidate(16384, 17407);
    std::vector<unsigned char> row(2048);
    ASSERT_TRUE(cache.read(16384 - 1024, row.data(), row.size()));
    EXPECT_TRUE(std::equal(row.begin(), row.end(), expected.begin() + 16384 - 1024));
    EXPECT_EQ(memory.grants, 1 + 16 + 256 + 1);
}

// PatchyMemory grants DMI but puts no stage of its own on the grant's timing path: an
// untimed copy may use the region, a timed initiator (a mover) may not, or its bursts would
// cost nothing. It gets nullptr and falls back to b_transport.
TEST(DmiCache, ATimedInitiatorIsRefusedAGrantWhoseTimingPathNoMemoryFilledIn) {
    PatchyMemory memory("memory");
    Initiator initiator("initiator");
    initiator.socket.bind(memory.socket);
    kpu::model::DmiCache cache(initiator.socket);
    EXPECT_EQ(cache.ask_timed(100, 64), nullptr);
    EXPECT_EQ(memory.grants, 1);
    const kpu::model::DmiRegion* known = cache.known(100, 64);  // kept, but not for timing
    ASSERT_NE(known, nullptr);
    EXPECT_FALSE(known->timed());
    EXPECT_EQ(cache.readable_span(100, 64), &memory.byte(100));  // the same grant, untimed
    EXPECT_EQ(memory.grants, 1);
}

}  // namespace
