// Writing the tools' output files (programs, weights, stats, traces, VCDs, result arrays) so
// that a result lost on the way to the disk is an error naming the file, never a success: a
// full device or a failed final flush shows only when the buffer is written out and the file
// closed, so close() checks both and says why (the first failing write's errno). The caller
// prefixes the file name and throws its own error type.
#pragma once

#include <ostream>
#include <streambuf>
#include <string>
#include <vector>

namespace kpu::hw {

class OutputFile {
public:
    /// Creates or truncates `path`; is_open() says whether it could.
    explicit OutputFile(std::string path);
    ~OutputFile();  ///< closes without a check if close() was not called
    OutputFile(const OutputFile&) = delete;
    OutputFile& operator=(const OutputFile&) = delete;

    bool is_open() const { return fd_ >= 0; }
    std::ostream& stream() { return stream_; }
    const std::string& path() const { return path_; }
    /// Writes out what is buffered and closes; "" when every byte reached the file, else
    /// the problem: "write failed (No space left on device)".
    std::string close();

private:
    /// The stream's buffer: writes to fd_, keeping the errno of the first failure.
    class Buffer : public std::streambuf {
    public:
        explicit Buffer(OutputFile& file);
        bool drain();  ///< writes out the buffer; false after any failure

    protected:
        int_type overflow(int_type c) override;
        int sync() override { return drain() ? 0 : -1; }

    private:
        OutputFile& file_;
        std::vector<char> bytes_;  ///< 64 KiB
    };

    std::string path_;  ///< as given, for the caller's messages
    int fd_ = -1;       ///< the open file; -1 when it could not be created or is closed
    int error_ = 0;     ///< errno of the first failed write or close (0: none)
    Buffer buffer_;
    std::ostream stream_;
};

/// Writes all of `data` to `path`: "" or the problem ("cannot create file", "write failed
/// (No space left on device)").
std::string write_output_file(const std::string& path, const std::string& data);

}  // namespace kpu::hw
