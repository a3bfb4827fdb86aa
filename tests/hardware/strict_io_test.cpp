// The edges of what the tools read and write: JSON that must end at the end of the file, a
// FIFO given as an input file, and output files whose last bytes do not reach the disk.
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "hardware/input_file.h"
#include "hardware/json_reader.h"
#include "hardware/output_file.h"

namespace kpu::hw {
namespace {

TEST(StrictJson, ANulByteAndWhatFollowsItAreAnErrorNamingTheOffset) {
    nlohmann::json value;
    std::string problem;
    const std::string text = std::string("{\"a\": 1}\n") + '\0' + "garbage";
    EXPECT_FALSE(parse_json_text(text, value, problem));
    EXPECT_EQ(problem, "malformed JSON: a NUL byte at byte 9 (the JSON text must end at the end of the file)");
    // Inside a value too: a JSON string spells it \u0000.
    EXPECT_FALSE(parse_json_text(std::string("{\"a\": \"x") + '\0' + "\"}", value, problem));
    EXPECT_EQ(problem, "malformed JSON: a NUL byte at byte 8 (the JSON text must end at the end of the file)");
    EXPECT_TRUE(parse_json_text("{\"a\": \"x\\u0000\"}", value, problem)) << problem;
    EXPECT_EQ(value["a"].get<std::string>(), std::string("x") + '\0');
    try {
        parse_document(text, "g.json", "graph", throw_as<std::runtime_error>);
        FAIL() << "accepted";
    } catch (const std::runtime_error& e) {
        EXPECT_EQ(std::string(e.what()),
                  "g.json: malformed JSON: a NUL byte at byte 9 (the JSON text must end at the end of the file)");
    }
    // Anything else after the value was refused already, and still is.
    EXPECT_FALSE(parse_json_text("{\"a\": 1} x", value, problem));
}

TEST(InputFile, AFifoWithNoWriterIsNamedNotWaitedFor) {
    const std::string fifo = ::testing::TempDir() + "strict_io.fifo";
    std::remove(fifo.c_str());
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
    std::string text, problem;
    EXPECT_FALSE(read_input_file(fifo, "config", text, problem));
    EXPECT_EQ(problem, "is a FIFO with no writer: not a config file");
}

TEST(OutputFile, AFullDeviceIsAWriteFailureNotASuccess) {
    // Small enough to sit in the stream's buffer until the final flush.
    EXPECT_EQ(write_output_file("/dev/full", "{}\n"), "write failed (No space left on device)");
    EXPECT_EQ(write_output_file("/no/such/dir/x", "{}\n"), "cannot create file");
    const std::string path = ::testing::TempDir() + "strict_io_out.txt";
    EXPECT_EQ(write_output_file(path, "hello\n"), "");
    std::ifstream in(path);
    std::string line;
    std::getline(in, line);
    EXPECT_EQ(line, "hello");
    OutputFile big("/dev/full");
    ASSERT_TRUE(big.is_open());
    big.stream() << std::string(1 << 20, 'x');  // fails before the close: still reported there
    EXPECT_EQ(big.close(), "write failed (No space left on device)");
}

}  // namespace
}  // namespace kpu::hw
