#include "hardware/address_map.h"

#include <gtest/gtest.h>

namespace kpu::hw {
namespace {

Config minimal() { return load_config(std::string(KPU_SOURCE_DIR) + "/configs/minimal.json"); }

TEST(AddressMap, DramInterleavesAcrossChannelsAtTheConfiguredGranularity) {
    Config c = minimal();  // 2 channels, 1024-byte interleave
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

TEST(AddressMap, OnChipInstancesArePackedPerTile) {
    Config c = load_config(std::string(KPU_SOURCE_DIR) + "/configs/edge.json");  // 4 tiles, 8 banks, 128 buffers
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
    Config c = minimal();
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
