#include "hardware/output_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace kpu::hw {

OutputFile::Buffer::Buffer(OutputFile& file) : file_(file), bytes_(64 << 10) {
    setp(bytes_.data(), bytes_.data() + bytes_.size());
}

bool OutputFile::Buffer::drain() {
    const char* at = pbase();
    while (at < pptr() && file_.error_ == 0 && file_.fd_ >= 0) {
        const ssize_t n = ::write(file_.fd_, at, size_t(pptr() - at));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) file_.error_ = n < 0 ? errno : EIO;
        else at += n;
    }
    setp(bytes_.data(), bytes_.data() + bytes_.size());
    return file_.error_ == 0 && file_.fd_ >= 0;
}

OutputFile::Buffer::int_type OutputFile::Buffer::overflow(int_type c) {
    if (!drain()) return traits_type::eof();
    if (!traits_type::eq_int_type(c, traits_type::eof())) sputc(traits_type::to_char_type(c));
    return traits_type::not_eof(c);
}

OutputFile::OutputFile(std::string path)
    : path_(std::move(path)),
      fd_(::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666)),
      buffer_(*this),
      stream_(&buffer_) {}

OutputFile::~OutputFile() {
    if (fd_ >= 0) ::close(fd_);
}

std::string OutputFile::close() {
    if (fd_ < 0) return "cannot create file";
    buffer_.drain();
    if (::close(fd_) != 0 && error_ == 0) error_ = errno;
    fd_ = -1;
    if (error_ == 0) return "";
    return "write failed (" + std::string(std::strerror(error_)) + ")";
}

std::string write_output_file(const std::string& path, const std::string& data) {
    OutputFile file(path);
    if (!file.is_open()) return "cannot create file";
    file.stream().write(data.data(), std::streamsize(data.size()));
    return file.close();
}

}  // namespace kpu::hw
