// The run report's accounting per element type (sc_main/report.h): each type's MACs charged at
// its own fabric energy, the vector engines' work per operand type, and the stats JSON's
// by_element_type object; float32 at the energies it always had.
#include "sc_main/report.h"

#include <gtest/gtest.h>

#include "models/vector_engine.h"
#include "tests/support/config.h"
#include "tests/support/test_memory.h"

namespace kpu::cli {
namespace {

compiler::BoundOp matmul(uint32_t m, uint32_t n, uint32_t k, hw::DType type) {
    compiler::BoundOp op;
    op.kind = compiler::BoundOp::Kind::Matmul;
    op.engine = compiler::EngineKind::Fabric;
    op.matmul.m = m, op.matmul.n = n, op.matmul.k = k, op.matmul.type = type;
    return op;
}

// t64: fabric float32 0.8 pJ per MAC, bfloat16 0.4, int8 0.2; the vector engine's int8 ALU
// op energy_pj_per_op / 4 (its list-form rate) = 0.1 pJ.
TEST(ReportByElementType, EachTypesMacsAndVectorOpsAreChargedAtItsOwnEnergy) {
    const hw::Config config = test::config("t64");
    compiler::BoundProgram program;
    program.ops = {matmul(16, 16, 32, hw::DType::Float32), matmul(20, 9, 19, hw::DType::Int8),
                   matmul(8, 8, 8, hw::DType::BFloat16), matmul(4, 4, 4, hw::DType::Int8)};
    compiler::BoundOp drain;
    drain.kind = compiler::BoundOp::Kind::Drain;
    program.ops.push_back(drain);

    // One vector engine that ran an int8 relu of 3 x 40.
    model::VectorEngine vector("vector", config);
    test::TestMemory mem("mem", 0x1000, 4096);
    vector.socket.bind(mem.socket);
    hw::VectorCommand relu;
    relu.function = hw::VectorFunction::Relu;
    relu.rows = 3, relu.cols = 40;
    relu.a = {0x1000, 40, hw::Broadcast::None, {hw::DType::Int8, 0.5f, 3}};
    relu.y = {0x1800, 40, hw::Broadcast::None, {hw::DType::Int8, 0.5f, 3}};
    vector.submit({1, relu});
    sc_core::sc_start();
    ASSERT_EQ(vector.commands(), 1u);

    const std::vector<ElementTypeActivity> types = element_type_activity(config, program, {&vector});
    ASSERT_EQ(types.size(), 3u);
    EXPECT_EQ(types[0].type, "float32");
    EXPECT_EQ(types[0].macs, 16u * 16 * 32);
    EXPECT_EQ(types[0].mac_pj, double(16 * 16 * 32) * config.fabric.energy_pj_per_mac);
    EXPECT_DOUBLE_EQ(types[0].mac_pj, 16 * 16 * 32 * 0.8);
    EXPECT_EQ(types[0].vector_elements, 0u);
    EXPECT_EQ(types[1].type, "bfloat16");
    EXPECT_EQ(types[1].macs, 512u);
    EXPECT_DOUBLE_EQ(types[1].mac_pj, 512 * 0.4);
    EXPECT_EQ(types[2].type, "int8");
    EXPECT_EQ(types[2].macs, 20u * 9 * 19 + 64);
    EXPECT_DOUBLE_EQ(types[2].mac_pj, (20 * 9 * 19 + 64) * 0.2);
    EXPECT_EQ(types[2].vector_elements, 120u);
    EXPECT_EQ(types[2].vector_alu_ops, 120u);
    EXPECT_DOUBLE_EQ(types[2].vector_pj, 120 * 0.1);
    EXPECT_DOUBLE_EQ(types[2].vector_pj, vector.energy_pj());

    // The stats JSON names each type with its numbers.
    RunReport report;
    report.levels = {{"dram"}, {"l3"}, {"l2"}, {"l1"}};
    report.by_element_type = types;
    const nlohmann::json stats = stats_json(report, nullptr);
    ASSERT_TRUE(stats.contains("by_element_type"));
    const nlohmann::json& by_type = stats["by_element_type"];
    EXPECT_EQ(by_type.size(), 3u);
    EXPECT_EQ(by_type["int8"]["macs"], 20u * 9 * 19 + 64);
    EXPECT_DOUBLE_EQ(by_type["int8"]["mac_energy_uj"].get<double>(), (20 * 9 * 19 + 64) * 0.2 * 1e-6);
    EXPECT_EQ(by_type["int8"]["vector_elements"], 120u);
    EXPECT_DOUBLE_EQ(by_type["int8"]["vector_energy_uj"].get<double>(), 120 * 0.1 * 1e-6);
    EXPECT_EQ(by_type["float32"]["macs"], 16u * 16 * 32);
    EXPECT_NE(element_type_summary(report).find("int8 3484 MACs"), std::string::npos) << element_type_summary(report);
}

// A float32-only program: one entry, and the summary gains no line.
TEST(ReportByElementType, AFloat32ProgramHasTheOneEntryAndNoSummaryLine) {
    const hw::Config config = test::config("edge");
    compiler::BoundProgram program;
    program.ops = {matmul(16, 16, 32, hw::DType::Float32)};
    RunReport report;
    report.by_element_type = element_type_activity(config, program, {});
    ASSERT_EQ(report.by_element_type.size(), 1u);
    EXPECT_EQ(report.by_element_type[0].mac_pj, double(16 * 16 * 32) * config.fabric.energy_pj_per_mac);
    EXPECT_EQ(element_type_summary(report), "");
}

}  // namespace
}  // namespace kpu::cli
