// The name tables next to each enum (hardware/enum_names.h): every value round-trips through
// to_string and its parser, unknown names are refused, and the names files, stats and traces
// use stay as they are. The enums of hardware/ that the compiler writes into files
// (Activation, Level) are checked here too.
#include <algorithm>
#include <cctype>
#include <iterator>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "compiler/ops/op_schema.h"
#include "compiler/bound_program.h"
#include "compiler/dfx.h"
#include "compiler/graph.h"
#include "hardware/address_map.h"
#include "hardware/enum_names.h"
#include "hardware/fabric_command.h"

namespace kpu::compiler {
namespace {

/// `values` lists every value of an enum by hand (not from its table), so a value the table
/// lacks fails: each has a name of its own that `parse` turns back into it.
template <typename E, size_t N, size_t T>
void expect_round_trips(const char* what, const E (&values)[N], const hw::EnumName<E> (&table)[T],
                        bool (*parse)(const std::string&, E&)) {
    SCOPED_TRACE(what);
    EXPECT_EQ(N, T) << "the table has an entry per value";
    for (const hw::EnumName<E>& entry : table)
        EXPECT_NE(std::find(std::begin(values), std::end(values), entry.value), std::end(values))
            << entry.name << " names a value the enum lacks";
    std::set<std::string> names;
    for (E value : values) {
        const std::string name = to_string(value);
        EXPECT_NE(name, "?") << "value " << int(value) << " has no name";
        EXPECT_TRUE(names.insert(name).second) << name << " names two values";
        E parsed = values[0] == value && N > 1 ? values[1] : values[0];  // another value, if any: overwritten
        ASSERT_TRUE(parse(name, parsed)) << name;
        EXPECT_EQ(parsed, value) << name;
    }
}

/// Names that are none of the table's: empty, "?" (what to_string prints for a value the
/// table lacks), a name in another case, with a space, or a prefix. `parse` refuses them and
/// leaves its output alone.
template <typename E, size_t T>
void expect_unknown_rejected(const char* what, const hw::EnumName<E> (&table)[T],
                             bool (*parse)(const std::string&, E&)) {
    SCOPED_TRACE(what);
    std::string upper = table[0].name, lower = table[0].name;
    for (char& c : upper) c = char(std::toupper(static_cast<unsigned char>(c)));
    for (char& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
    const std::string first = table[0].name;
    for (const std::string& name : {std::string(), std::string("?"), upper == first ? lower : upper, first + " ",
                                    " " + first, first.substr(0, first.size() - 1), std::string("nonsense")}) {
        E out = table[T - 1].value;
        EXPECT_FALSE(parse(name, out)) << "'" << name << "'";
        EXPECT_EQ(out, table[T - 1].value) << "'" << name << "' changed the output";
    }
}

TEST(EnumNames, EveryValueRoundTripsThroughItsName) {
    const Activation activations[] = {Activation::None,    Activation::Relu, Activation::Gelu, Activation::GeluErf,
                                      Activation::Sigmoid, Activation::Silu, Activation::Tanh};
    expect_round_trips("Activation", activations, hw::kActivationNames, parse_activation);
    const hw::Level levels[] = {hw::Level::Dram, hw::Level::L3, hw::Level::L2, hw::Level::L1};
    expect_round_trips("Level", levels, hw::kLevelNames, hw::parse_level);
    const DType dtypes[] = {DType::Float32, DType::Float16, DType::BFloat16, DType::Int8, DType::Int32, DType::Int64};
    expect_round_trips("DType", dtypes, kDTypeNames, parse_dtype);
    const TensorRole roles[] = {TensorRole::Input, TensorRole::Constant, TensorRole::Intermediate, TensorRole::Output};
    expect_round_trips("TensorRole", roles, kTensorRoleNames, parse_role);
    const AttrType attr_types[] = {AttrType::Int, AttrType::Float, AttrType::String, AttrType::Ints, AttrType::Floats};
    for (const AttrType type : attr_types) EXPECT_STRNE(to_string(type), "?");
    const Dataflow dataflows[] = {Dataflow::OutputStationary, Dataflow::WeightStationary};
    expect_round_trips("Dataflow", dataflows, kDataflowNames, parse_dataflow);
    const Buffer buffers[] = {Buffer::Panel, Buffer::Strip, Buffer::Out, Buffer::Bias3, Buffer::A2, Buffer::B2,
                              Buffer::C2,    Buffer::Bias2, Buffer::A1,  Buffer::B1,    Buffer::C1, Buffer::Bias1,
                              Buffer::Hidden, Buffer::Scale3, Buffer::Scale2, Buffer::Scale1,
                              Buffer::Residual3, Buffer::Residual2, Buffer::Residual1};
    static_assert(std::size(buffers) == kBufferCount);
    expect_round_trips("Buffer", buffers, kBufferNames, parse_buffer);
    const DfxOpKind dfx_kinds[] = {DfxOpKind::Load, DfxOpKind::Move, DfxOpKind::Store, DfxOpKind::Matmul,
                                   DfxOpKind::Drain, DfxOpKind::Vector};
    expect_round_trips("DfxOpKind", dfx_kinds, kDfxOpKindNames, parse_dfx_op_kind);
    const EngineKind engines[] = {EngineKind::Dma, EngineKind::BlockMover, EngineKind::Streamer, EngineKind::Fabric,
                                  EngineKind::Vector};
    expect_round_trips("EngineKind", engines, kEngineKindNames, parse_engine_kind);
    const BoundOp::Kind bound_kinds[] = {BoundOp::Kind::Move, BoundOp::Kind::Matmul, BoundOp::Kind::Drain,
                                         BoundOp::Kind::Vector};
    expect_round_trips("BoundOp::Kind", bound_kinds, BoundOp::kKindNames, parse_bound_op_kind);
}

TEST(EnumNames, UnknownNamesAreRejected) {
    expect_unknown_rejected("Activation", hw::kActivationNames, parse_activation);
    expect_unknown_rejected("Level", hw::kLevelNames, hw::parse_level);
    expect_unknown_rejected("DType", kDTypeNames, parse_dtype);
    expect_unknown_rejected("TensorRole", kTensorRoleNames, parse_role);
    expect_unknown_rejected("Dataflow", kDataflowNames, parse_dataflow);
    expect_unknown_rejected("Buffer", kBufferNames, parse_buffer);
    expect_unknown_rejected("DfxOpKind", kDfxOpKindNames, parse_dfx_op_kind);
    expect_unknown_rejected("EngineKind", kEngineKindNames, parse_engine_kind);
    expect_unknown_rejected("BoundOp::Kind", BoundOp::kKindNames, parse_bound_op_kind);
}

// What .kpu files, bound programs, stats, traces and messages say: a renamed value would
// change every file written after it.
TEST(EnumNames, FilesSpellTheValuesAsDocumented) {
    EXPECT_STREQ(to_string(Activation::Gelu), "gelu");
    EXPECT_STREQ(to_string(hw::Level::Dram), "DRAM");
    EXPECT_STREQ(to_string(DType::Float32), "float32");
    EXPECT_STREQ(to_string(TensorRole::Intermediate), "intermediate");
    EXPECT_NE(op_registry().find("matmul"), nullptr);  // the fused form keeps its name
    EXPECT_STREQ(to_string(DType::BFloat16), "bfloat16");
    EXPECT_STREQ(to_string(Dataflow::WeightStationary), "weight-stationary");
    EXPECT_STREQ(to_string(Buffer::Bias1), "L1.bias");
    EXPECT_STREQ(to_string(Buffer::Panel), "L3.panel");
    EXPECT_STREQ(to_string(DfxOpKind::Matmul), "MATMUL_TILE");
    EXPECT_STREQ(to_string(EngineKind::BlockMover), "block_mover");
    EXPECT_STREQ(to_string(BoundOp::Kind::Drain), "drain");
}

TEST(EnumNames, AValueOutsideTheTableIsAQuestionMark) {
    EXPECT_STREQ(to_string(EngineKind(200)), "?");
    EXPECT_STREQ(to_string(Activation(200)), "?");
}

TEST(EnumNames, ChoicesAreListedInTableOrder) {
    EXPECT_EQ(hw::names_in(kDataflowNames), "output-stationary, weight-stationary");
    EXPECT_EQ(hw::names_in(hw::kActivationNames), "none, relu, gelu, gelu_erf, sigmoid, silu, tanh");
    EXPECT_EQ(hw::names_in(kDTypeNames), "float32, float16, bfloat16, int8, int32, int64");
}

}  // namespace
}  // namespace kpu::compiler
