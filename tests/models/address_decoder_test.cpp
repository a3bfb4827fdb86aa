// Routes of the chip interconnect and a tile switch, and the route cache: a cached route
// must never answer for an address outside its block or instance.
#include <gtest/gtest.h>

#include "hardware/address_map.h"
#include "hardware/config.h"
#include "models/address_decoder.h"
#include "tests/support/config.h"

namespace kpu::model {
namespace {

struct Maps {
    hw::Config config = test::config("edge");  // 2 channels, 2 KiB interleave, 4 tiles
    hw::AddressMap map{config};
};

TEST(AddressDecoder, ChipRoutesDramByInterleaveAndTilesByTile) {
    Maps m;
    AddressDecoder chip(m.config, m.map, AddressDecoder::kChip);
    Route r;
    ASSERT_TRUE(chip.route(3 * 2048 + 5, 64, r));  // block 3: row 1, rotated by 1: channel 0, its block 1
    EXPECT_EQ(r.port, 0u);
    EXPECT_EQ(3 * 2048 + 5 - r.delta, 2048u + 5);
    EXPECT_EQ(r.lo, 3u * 2048);
    EXPECT_EQ(r.hi, 4u * 2048);
    ASSERT_TRUE(chip.route(6 * 2048, 64, r));  // block 6: row 3 (two set bits), not rotated: channel 0, block 3
    EXPECT_EQ(r.port, 0u);
    EXPECT_EQ(6 * 2048 - r.delta, 3u * 2048);
    ASSERT_TRUE(chip.route(m.map.l2_base(2, 7) + 100, 64, r));
    EXPECT_EQ(r.port, 2u + 2);  // channels, then tiles
    EXPECT_EQ(r.delta, 0u);     // the tile switch decodes again
    EXPECT_EQ(chip.port_count(), 2u + 4);
}

TEST(AddressDecoder, TileRoutesItsOwnMemoriesLocallyAndTheRestUp) {
    Maps m;
    AddressDecoder tile(m.config, m.map, 1);
    Route r;
    ASSERT_TRUE(tile.route(m.map.l1_base(1, 3) + 10, 32, r));
    EXPECT_EQ(r.port, 1u + 8);  // L3, 8 L2 banks, then the L1 fanout for every buffer
    EXPECT_EQ(m.map.l1_base(1, 3) + 10 - r.delta, 3 * m.config.l1.capacity_bytes + 10);  // from the tile's first buffer
    EXPECT_EQ(r.lo, m.map.l1_base(1, 3));  // the route still covers one buffer
    EXPECT_EQ(r.hi, m.map.l1_base(1, 4));
    EXPECT_EQ(tile.port_count(), 1u + 8 + 1);
    ASSERT_TRUE(tile.route(m.map.l3_base(1), 64, r));
    EXPECT_EQ(r.port, 0u);
    ASSERT_TRUE(tile.route(m.map.l3_base(2), 64, r));  // another tile's L3
    EXPECT_EQ(r.port, AddressDecoder::kUplink);
    ASSERT_TRUE(tile.route(4096, 64, r));  // DRAM
    EXPECT_EQ(r.port, AddressDecoder::kUplink);
}

TEST(AddressDecoder, CacheNeverAnswersOutsideTheRouteItCached) {
    Maps m;
    AddressDecoder chip(m.config, m.map, AddressDecoder::kChip);
    Route r;
    EXPECT_FALSE(chip.route(m.map.dram_size(), 64, r));  // nothing cached yet: refused
    ASSERT_TRUE(chip.route(0, 64, r));                    // caches block 0 (channel 0)
    ASSERT_TRUE(chip.route(2048, 64, r));                 // next block: channel 1, not the cached route
    EXPECT_EQ(r.port, 1u);
    EXPECT_FALSE(chip.route(2048 - 32, 64, r));           // straddles blocks 0 and 1
    ASSERT_TRUE(chip.route(1000, 64, r));                 // a cache hit answers like a decode
    EXPECT_EQ(r.port, 0u);
    EXPECT_EQ(r.delta, 0u);
}

}  // namespace
}  // namespace kpu::model
