#include "hardware/address_map.h"

#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "tests/support/config.h"

namespace kpu::hw {
namespace {

TEST(AddressMap, DramInterleavesAcrossChannelsAtTheConfiguredGranularity) {
    Config c = test::config("minimal");  // 2 channels, 1024-byte interleave
    c.dram.channel_select = ChannelSelect::Modulo;
    AddressMap map(c);
    Location where;
    ASSERT_TRUE(map.decode(0, 64, where));
    EXPECT_EQ(where.level, Level::Dram);
    EXPECT_EQ(where.index, 0u);
    EXPECT_EQ(where.offset, 0u);
    ASSERT_TRUE(map.decode(1024 + 8, 8, where));
    EXPECT_EQ(where.index, 1u);
    EXPECT_EQ(where.offset, 8u);
    ASSERT_TRUE(map.decode(2048 + 16, 8, where));
    EXPECT_EQ(where.index, 0u);
    EXPECT_EQ(where.offset, 1024u + 16);
    EXPECT_FALSE(map.decode(1000, 64, where)) << "crosses an interleave block";
    EXPECT_FALSE(map.decode(map.dram_size() - 8, 16, where));
}

// Hashed: block b goes to (b + digit sum of b / channels in base channels) mod channels.
// minimal: 2 channels, so the rotation is the parity of the set bits of b / 2.
TEST(AddressMap, HashedDramRotatesEachRowOfBlocksByTheDigitSumOfItsIndex) {
    Config c = test::config("minimal");
    ASSERT_EQ(c.dram.channel_select, ChannelSelect::Hashed) << "the shipped configs hash";
    AddressMap map(c);
    const uint32_t expected[8] = {0, 1,   // row 0: no rotation
                                  1, 0,   // row 1 (one bit): rotated
                                  1, 0,   // row 2 (one bit)
                                  0, 1};  // row 3 (two bits)
    for (uint64_t b = 0; b < 8; ++b) {
        EXPECT_EQ(map.dram_channel(b), expected[b]) << "block " << b;
        Location where;
        ASSERT_TRUE(map.decode(b * 1024 + 40, 8, where));
        EXPECT_EQ(where.index, expected[b]);
        EXPECT_EQ(where.offset, (b / 2) * 1024 + 40) << "a channel keeps a row's blocks in order";
    }
}

// Every device byte has exactly one (channel, offset) and back, and every row of `channels`
// consecutive blocks uses each channel once (so linear streams keep full bandwidth).
TEST(AddressMap, HashedDramIsABijectionThatCoversEveryChannelPerRow) {
    for (const char* sku : {"minimal", "edge", "t64"}) {
        Config c = test::config(sku);
        AddressMap map(c);
        const uint64_t block = c.dram.interleave_bytes, channels = c.dram.count;
        for (uint64_t row = 0; row < 4096; row += (row < 64 ? 1 : 97)) {
            std::vector<int> seen(channels, 0);
            for (uint64_t col = 0; col < channels; ++col) {
                const uint64_t addr = (row * channels + col) * block + 3 * col;
                Location where;
                ASSERT_TRUE(map.decode(addr, 1, where)) << sku;
                ++seen[where.index];
                EXPECT_EQ(where.offset, row * block + 3 * col) << sku;
                EXPECT_EQ(map.dram_address(where.index, where.offset), addr) << sku << " row " << row;
            }
            for (uint64_t ch = 0; ch < channels; ++ch)
                EXPECT_EQ(seen[ch], 1) << sku << " row " << row << " channel " << ch;
        }
    }
}

// Rows of a tensor whose pitch is a power of two of at least one interleave block: under
// modulo, 8 rows 32 KiB apart on t64 (8 channels x 4 KiB) all sit on one channel; hashed,
// every such pitch up to 2^30 bytes spreads 8 rows over all 8 channels.
TEST(AddressMap, HashedDramSpreadsPowerOfTwoRowPitchesOverAllChannels) {
    Config c = test::config("t64");
    AddressMap hashed(c);
    Config m = c;
    m.dram.channel_select = ChannelSelect::Modulo;
    AddressMap modulo(m);
    auto channels_hit = [&](const AddressMap& map, uint64_t pitch) {
        std::set<uint32_t> hit;
        for (uint64_t row = 0; row < 8; ++row) hit.insert(map.dram_channel(row * pitch / c.dram.interleave_bytes));
        return hit.size();
    };
    EXPECT_EQ(channels_hit(modulo, 32 << 10), 1u);
    EXPECT_EQ(channels_hit(modulo, 16 << 10), 2u);
    for (uint64_t pitch = 4096; pitch <= (1ull << 30); pitch *= 2) EXPECT_EQ(channels_hit(hashed, pitch), 8u) << pitch;
}

TEST(AddressMap, OnChipInstancesArePackedPerTile) {
    Config c = test::config("edge");  // 4 tiles, 8 banks, 128 buffers
    AddressMap map(c);
    Location where;
    ASSERT_TRUE(map.decode(map.l2_base(2, 5) + 100, 4, where));
    EXPECT_EQ(where.level, Level::L2);
    EXPECT_EQ(where.tile, 2u);
    EXPECT_EQ(where.index, 5u);
    EXPECT_EQ(where.offset, 100u);
    EXPECT_EQ(map.l2_base(2, 6), map.l2_base(2, 5) + c.l2.capacity_bytes);
    EXPECT_EQ(map.l1_base(3, 0), map.l1_base(2, 127) + c.l1.capacity_bytes);
    ASSERT_TRUE(map.decode(map.l3_base(3), c.l3.capacity_bytes, where));
    EXPECT_EQ(where.level, Level::L3);
    EXPECT_EQ(where.tile, 3u);
}

TEST(AddressMap, RefusesUnmappedAndBoundaryCrossingRanges) {
    Config c = test::config("minimal");
    AddressMap map(c);
    Location where;
    EXPECT_FALSE(map.decode(map.l3_base(1), 4, where)) << "only one L3 tile";
    EXPECT_FALSE(map.decode(map.l1_base(0, 0) + c.l1.capacity_bytes - 4, 8, where));
    EXPECT_FALSE(map.decode(kL1Base + kRegionSize, 4, where));
    EXPECT_FALSE(map.decode(0, 0, where));
    EXPECT_NE(map.explain(map.dram_size(), 4).find("outside DRAM (134217728 bytes)"), std::string::npos)
        << map.explain(map.dram_size(), 4);
    EXPECT_NE(map.explain(map.l3_base(1), 4).find("is not mapped"), std::string::npos);
}

}  // namespace
}  // namespace kpu::hw
