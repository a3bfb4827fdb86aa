// The strict JSON reader every tool's document goes through (configs, graphs, .kpu programs):
// its type checks, unknown-key suggestions and one-line messages, on their own.
#include "hardware/json_reader.h"

#include <functional>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

namespace kpu::hw {
namespace {

using json = nlohmann::json;

/// Stands for a tool's own error type (ConfigError, CompileError).
struct ToolError : std::runtime_error {
    using std::runtime_error::runtime_error;
};
struct OtherToolError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// The message `read` raises on `text` read as "doc.json" (with `schema`, if given).
std::string error_of(const std::string& text, const std::function<void(JsonReader&)>& read,
                     const std::set<std::string>* schema = nullptr) {
    const json value = json::parse(text);
    try {
        JsonReader reader(value, "", "doc.json", throw_as<ToolError>, schema);
        read(reader);
    } catch (const ToolError& e) {
        const std::string what = e.what();
        EXPECT_EQ(what.find('\n'), std::string::npos) << "message must be one line: " << what;
        return what;
    }
    ADD_FAILURE() << "read without an error: " << text;
    return "";
}

struct Case {
    const char* text;
    std::function<void(JsonReader&)> read;
    const char* expected;
};

void expect_messages(const std::vector<Case>& cases, const std::set<std::string>* schema = nullptr) {
    for (const Case& c : cases) {
        SCOPED_TRACE(c.text);
        EXPECT_EQ(error_of(c.text, c.read, schema), c.expected);
    }
}

TEST(JsonReader, AKeyNotReadIsRejectedWithTheNearestReadKeySuggested) {
    expect_messages({
        {R"({"rows": 1, "rowz": 2})", [](JsonReader& r) { r.uint("rows"); r.finish(); },
         "doc.json: rowz: unknown field (did you mean 'rows'?)"},
        {R"({"rows": 1, "turbo": true})", [](JsonReader& r) { r.uint("rows"); r.finish(); },
         "doc.json: turbo: unknown field"},
        // Three edits away is too far to be a typo.
        {R"({"rows": 1, "rxxxs": 2})", [](JsonReader& r) { r.uint("rows"); r.finish(); },
         "doc.json: rxxxs: unknown field"},
        // Of two equally near keys, the first in name order.
        {R"({"ab": 1, "ba": 2, "aa": 3})", [](JsonReader& r) { r.uint("ab"); r.uint("ba"); r.finish(); },
         "doc.json: aa: unknown field (did you mean 'ab'?)"},
        {R"({"fabric": {"rows": 1, "rowz": 2}})",
         [](JsonReader& r) {
             JsonReader fabric = r.object("fabric");
             fabric.uint("rows");
             fabric.finish();
         },
         "doc.json: fabric.rowz: unknown field (did you mean 'rows'?)"},
    });
}

TEST(JsonReader, AKeyAskedAboutWithHasIsAcceptedAndSuggestedButNotOneAskedAboutWithContains) {
    expect_messages({
        {R"({"nme": 1})", [](JsonReader& r) { r.has("name"); r.finish(); },
         "doc.json: nme: unknown field (did you mean 'name'?)"},
        {R"({"nme": 1})", [](JsonReader& r) { r.contains("name"); r.finish(); }, "doc.json: nme: unknown field"},
        {R"({"name": 1})", [](JsonReader& r) { r.contains("name"); r.finish(); }, "doc.json: name: unknown field"},
        {R"({"nme": 1})", [](JsonReader& r) { r.optional("name"); r.finish(); },
         "doc.json: nme: unknown field (did you mean 'name'?)"},
    });
    const json value = json::parse(R"({"name": "x", "size": 1})");
    JsonReader reader(value, "", "doc.json", throw_as<ToolError>);
    EXPECT_TRUE(reader.has("name"));
    EXPECT_FALSE(reader.has("shape"));
    EXPECT_TRUE(reader.contains("size"));
    EXPECT_EQ(reader.optional("shape"), nullptr);
    EXPECT_EQ(reader.uint("size"), 1u);
    EXPECT_NO_THROW(reader.finish());
}

TEST(JsonReader, AValueOfTheWrongTypeNamesItsPathAndShowsTheValue) {
    expect_messages({
        {R"({"name": 5})", [](JsonReader& r) { r.string("name"); }, "doc.json: name: expected a string, got 5"},
        {R"({"n": -1})", [](JsonReader& r) { r.uint("n"); }, "doc.json: n: expected a non-negative integer, got -1"},
        {R"({"n": 1.5})", [](JsonReader& r) { r.uint("n"); }, "doc.json: n: expected a non-negative integer, got 1.5"},
        {R"({"x": [1, 2]})", [](JsonReader& r) { r.number("x", 0, 1); }, "doc.json: x: expected a number, got [1,2]"},
        {R"({"a": {}})", [](JsonReader& r) { r.array("a"); }, "doc.json: a: expected an array, got {}"},
        {R"({"clocks": 5})", [](JsonReader& r) { r.object("clocks"); }, "doc.json: clocks: expected an object, got 5"},
        {R"([1])", [](JsonReader&) {}, "doc.json: (top level): expected an object, got [1]"},
        {R"({"rows": "eight"})", [](JsonReader& r) { r.count("rows"); },
         "doc.json: rows: expected a positive integer, got \"eight\""},
        {R"({"rows": 8.5})", [](JsonReader& r) { r.count("rows"); },
         "doc.json: rows: expected a positive integer, got 8.5"},
        {R"({"types": []})", [](JsonReader& r) { r.strings("types"); },
         "doc.json: types: expected a non-empty array of strings, got []"},
        {R"({"types": ["a", 1]})", [](JsonReader& r) { r.strings("types"); },
         "doc.json: types[1]: expected a string, got 1"},
        {R"({"ops": [{"op": 1}]})",
         [](JsonReader& r) { r.child(r.array("ops")[0], r.path_of("ops", 0)).string("op"); },
         "doc.json: ops[0].op: expected a string, got 1"},
    });
    // A long value is cut to 60 characters.
    EXPECT_EQ(show(json(std::string(100, 'a'))), "\"" + std::string(56, 'a') + "...");
    EXPECT_EQ(show(json(std::string(58, 'a'))), "\"" + std::string(58, 'a') + "\"");
}

TEST(JsonReader, ANumberOutsideItsRangeSaysTheRange) {
    expect_messages({
        {R"({"rows": 0})", [](JsonReader& r) { r.count("rows"); }, "doc.json: rows: must be > 0, got 0"},
        {R"({"rows": -3})", [](JsonReader& r) { r.count("rows"); }, "doc.json: rows: must be > 0, got -3"},
        {R"({"rows": 9})", [](JsonReader& r) { r.count("rows", 8); }, "doc.json: rows: must be <= 8, got 9"},
        {R"({"burst": 12})", [](JsonReader& r) { r.power_of_two("burst"); },
         "doc.json: burst: must be a power of two, got 12"},
        {R"({"ghz": 2})", [](JsonReader& r) { r.number("ghz", 0.001, 1); },
         "doc.json: ghz: must be between 0.001 and 1, got 2"},
        {R"({"ghz": 100001})", [](JsonReader& r) { r.number("ghz", 1, 100000); },
         "doc.json: ghz: must be between 1 and 100000, got 100001"},
    });
    const json value = json::parse(R"({"rows": 8, "burst": 64, "ghz": 0.5, "types": ["a", "b"]})");
    JsonReader reader(value, "", "doc.json", throw_as<ToolError>);
    EXPECT_EQ(reader.count("rows", 8), 8u);
    EXPECT_EQ(reader.power_of_two("burst"), 64u);
    EXPECT_EQ(reader.number("ghz", 0.5, 0.5), 0.5);
    EXPECT_EQ(reader.strings("types"), (std::vector<std::string>{"a", "b"}));
}

TEST(JsonReader, AMissingFieldIsReportedAsATypoOnlyWhenTheSchemaNamesAreGiven) {
    const Case cases[] = {
        {R"({"rowz": 1})", [](JsonReader& r) { r.count("rows"); },
         "doc.json: rowz: unknown field (did you mean 'rows'?)"},
        // A near-namesake that is a field of the schema is not a typo.
        {R"({"cols": 1})", [](JsonReader& r) { r.count("rows"); }, "doc.json: rows: missing required field"},
        {R"({"clocks": {"colz": 1}})", [](JsonReader& r) { r.object("clocks").count("cols"); },
         "doc.json: clocks.colz: unknown field (did you mean 'cols'?)"},
        {R"({})", [](JsonReader& r) { r.count("rows"); }, "doc.json: rows: missing required field"},
    };
    const std::set<std::string> schema = {"rows", "cols", "clocks"};
    expect_messages({cases[0], cases[1], cases[2], cases[3]}, &schema);
    // Without them, every absent field is simply missing.
    expect_messages({
        {cases[0].text, cases[0].read, "doc.json: rows: missing required field"},
        {cases[2].text, cases[2].read, "doc.json: clocks.cols: missing required field"},
    });
}

TEST(JsonReader, EveryReaderOfADocumentThrowsTheErrorTypeTheDocumentNames) {
    const json value = json::parse(R"({"a": {"b": [{"c": "x"}]}})");
    JsonReader top(value, "", "doc.json", throw_as<OtherToolError>);
    EXPECT_THROW(top.uint("a"), OtherToolError);
    JsonReader a = top.object("a");
    JsonReader c = a.child(a.array("b")[0], a.path_of("b", 0));
    EXPECT_THROW(c.uint("c"), OtherToolError);
    EXPECT_THROW(c.fail("anywhere", "any problem"), OtherToolError);
    EXPECT_EQ(c.path(), "a.b[0]");
    EXPECT_EQ(c.source(), "doc.json");
    EXPECT_THROW(parse_document("{", "doc.json", "graph", throw_as<OtherToolError>), OtherToolError);
}

TEST(JsonReader, ParsingADocumentRefusesMalformedDuplicatedTooDeepOrWrongKindText) {
    struct TextCase {
        std::string text;
        const char* kind;
        const char* expected;
    };
    const TextCase cases[] = {
        {R"({"fabric": {"rows": 16, "rows": 32}})", "config",
         "doc.json: fabric.rows: named twice in one object (JSON would keep only the last)"},
        {std::string(200, '['), "graph", "doc.json: malformed JSON: nested deeper than 64 levels at byte 64"},
        {R"({"rows": 1e400})", "config", "doc.json: malformed JSON: number overflow parsing '1e400'"},
        {R"({"compute_tiles": 1})", "graph", "doc.json: is a config, not a graph"},
        {R"({"op": "matmul"})", "kpu",
         "doc.json: is a graph, not a .kpu program (compile it first: kpu-compile GRAPH.json -o X.kpu --config CFG)"},
    };
    for (const TextCase& c : cases) {
        SCOPED_TRACE(c.text.substr(0, 40));
        try {
            parse_document(c.text, "doc.json", c.kind, throw_as<ToolError>);
            ADD_FAILURE() << "parsed";
        } catch (const ToolError& e) {
            EXPECT_EQ(e.what(), std::string(c.expected));
        }
    }
    try {
        parse_document(R"({"op": )", "doc.json", "graph", throw_as<ToolError>);
        ADD_FAILURE() << "parsed";
    } catch (const ToolError& e) {
        EXPECT_EQ(std::string(e.what()).rfind("doc.json: malformed JSON: parse error at line 1, column 8: ", 0), 0u)
            << e.what();
    }
    // A document of the kind asked for, or of no recognisable kind, parses.
    EXPECT_EQ(parse_document(R"({"op": "matmul"})", "doc.json", "graph", throw_as<ToolError>)["op"], "matmul");
    EXPECT_EQ(parse_document(R"({"x": 1})", "doc.json", "config", throw_as<ToolError>)["x"], 1);
}

TEST(JsonReader, EditDistanceCountsInsertionsDeletionsAndSubstitutions) {
    const struct {
        const char* a;
        const char* b;
        size_t distance;
    } cases[] = {{"", "", 0},           {"rows", "rows", 0},        {"rows", "rowz", 1}, {"rows", "row", 1},
                 {"row", "rows", 1},    {"latency_cylces", "latency_cycles", 2}, {"", "abc", 3},
                 {"kitten", "sitting", 3}};
    for (const auto& c : cases) EXPECT_EQ(edit_distance(c.a, c.b), c.distance) << c.a << " / " << c.b;
}

}  // namespace
}  // namespace kpu::hw
