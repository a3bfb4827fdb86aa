// The bounded reader and JSON parser every tool's text input goes through.
#include "hardware/input_file.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "hardware/config.h"

namespace kpu::hw {
namespace {

std::string parse_problem(const std::string& text) {
    nlohmann::json value;
    std::string problem;
    EXPECT_FALSE(parse_json_text(text, value, problem)) << "parsed: " << text.substr(0, 40);
    return problem;
}

TEST(InputFile, JsonNestedDeeperThanTheLimitIsRejectedWhereItGetsTooDeep) {
    // 200000 levels would overflow the stack of anything that walks the value recursively.
    EXPECT_EQ(parse_problem(std::string(200000, '[')), "malformed JSON: nested deeper than 64 levels at byte 64");
    EXPECT_EQ(parse_problem("{\"a\": " + std::string(100, '{')), "malformed JSON: nested deeper than 64 levels at byte 69");
    // Exactly the limit parses; brackets inside strings do not count.
    nlohmann::json value;
    std::string problem;
    EXPECT_TRUE(parse_json_text(std::string(64, '[') + std::string(64, ']'), value, problem)) << problem;
    EXPECT_TRUE(parse_json_text("[\"" + std::string(100, '[') + "\\\"\"]", value, problem)) << problem;
    EXPECT_EQ(value[0].get<std::string>(), std::string(100, '[') + "\"");
}

TEST(InputFile, NumbersNoDoubleHoldsAndSyntaxErrorsSayWhere) {
    EXPECT_EQ(parse_problem("{\"rows\": 1e400}"), "malformed JSON: number overflow parsing '1e400'");
    EXPECT_EQ(parse_problem("{\"rows\": }").rfind("malformed JSON: parse error at line 1, column 10: ", 0), 0u);
}

TEST(InputFile, AKeyNamedTwiceInOneObjectIsRefusedWithItsPath) {
    // nlohmann keeps the last of two equal keys silently: a config with a leftover
    // "rows": 32 after "rows": 16 would simulate a 32-row fabric.
    EXPECT_EQ(parse_problem(R"({"fabric": {"rows": 16, "rows": 32}})"),
              "fabric.rows: named twice in one object (JSON would keep only the last)");
    EXPECT_EQ(parse_problem(R"({"tensors": [{"name": "x"}, [1, 2], {"name": "y", "shape": [1], "name": "z"}]})"),
              "tensors[2].name: named twice in one object (JSON would keep only the last)");
    EXPECT_EQ(parse_problem(R"({"a": 1, "a": 1})"), "a: named twice in one object (JSON would keep only the last)");
    // The same key in different objects, and in nested ones, is fine.
    nlohmann::json value;
    std::string problem;
    EXPECT_TRUE(parse_json_text(R"({"a": {"a": {"a": 1}}, "b": [{"a": 1}, {"a": 2}]})", value, problem)) << problem;
    EXPECT_EQ(value["b"][1]["a"], 2);
}

TEST(InputFile, DirectoriesDevicesAndHugeFilesGetOneLineNotAHang) {
    std::string text, problem;
    EXPECT_FALSE(read_input_file("/nonexistent/x.json", "config", text, problem));
    EXPECT_EQ(problem, "cannot open config file");
    EXPECT_FALSE(read_input_file(std::filesystem::temp_directory_path().string(), "graph", text, problem));
    EXPECT_EQ(problem, "is a directory, not a graph file");
    // A device with no end: read up to the bound, then refused.
    EXPECT_FALSE(read_input_file("/dev/zero", "program", text, problem));
    EXPECT_EQ(problem, "is larger than 64 MiB: not a program file");
    // The bound is exact: a file of kMaxInputBytes reads, one byte more does not.
    const std::string path = (std::filesystem::temp_directory_path() / "kpu_input_file_test.json").string();
    {
        std::ofstream out(path, std::ios::binary);
        out << std::string(kMaxInputBytes, ' ');
    }
    EXPECT_TRUE(read_input_file(path, "config", text, problem)) << problem;
    EXPECT_EQ(text.size(), kMaxInputBytes);
    {
        std::ofstream out(path, std::ios::app | std::ios::binary);
        out << ' ';
    }
    EXPECT_FALSE(read_input_file(path, "config", text, problem));
    std::remove(path.c_str());
}

TEST(InputFile, ConfigLoaderNamesTheFileForEachProblem) {
    try {
        load_config("/dev/zero");
        ADD_FAILURE() << "accepted /dev/zero";
    } catch (const ConfigError& e) {
        EXPECT_STREQ(e.what(), "/dev/zero: is larger than 64 MiB: not a config file");
    }
    try {
        parse_config(std::string(1000, '{'), "deep.json");
        ADD_FAILURE() << "accepted deep JSON";
    } catch (const ConfigError& e) {
        EXPECT_STREQ(e.what(), "deep.json: malformed JSON: nested deeper than 64 levels at byte 64");
    }
}

}  // namespace
}  // namespace kpu::hw
