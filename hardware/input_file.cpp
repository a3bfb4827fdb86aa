#include "hardware/input_file.h"

#include <cstdio>
#include <memory>
#include <sys/stat.h>

namespace kpu::hw {

bool read_input_file(const std::string& path, const std::string& kind, std::string& text, std::string& problem) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) return problem = "cannot open " + kind + " file", false;
    if (S_ISDIR(info.st_mode)) return problem = "is a directory, not a " + kind + " file", false;
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!file) return problem = "cannot open " + kind + " file", false;
    // Read in chunks up to the bound rather than trust st_size: devices and pipes have none.
    text.clear();
    char chunk[1 << 16];
    while (size_t n = std::fread(chunk, 1, sizeof chunk, file.get())) {
        if (text.size() + n > kMaxInputBytes)
            return problem = "is larger than " + std::to_string(kMaxInputBytes >> 20) + " MiB: not a " + kind + " file",
                   false;
        text.append(chunk, n);
    }
    if (std::ferror(file.get())) return problem = "cannot read " + kind + " file", false;
    return true;
}

namespace {

/// Byte offset where `text` first nests deeper than kMaxJsonDepth, or npos. Brackets inside
/// strings do not count; the parser reports anything malformed.
size_t too_deep_at(const std::string& text) {
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (c == '\\')
                ++i;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > kMaxJsonDepth) return i;
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return std::string::npos;
}

}  // namespace

bool parse_json_text(const std::string& text, nlohmann::json& value, std::string& problem) {
    if (const size_t at = too_deep_at(text); at != std::string::npos)
        return problem = "malformed JSON: nested deeper than " + std::to_string(kMaxJsonDepth) + " levels at byte " +
                         std::to_string(at),
               false;
    try {
        value = nlohmann::json::parse(text);
        return true;
    } catch (const nlohmann::json::exception& e) {
        // nlohmann's message starts with "[json.exception.parse_error.101] ": keep what follows.
        const std::string what = e.what();
        const size_t end = what.find("] ");
        problem = "malformed JSON: " + (what[0] == '[' && end != std::string::npos ? what.substr(end + 2) : what);
        return false;
    }
}

}  // namespace kpu::hw
