#include "hardware/input_file.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <unordered_set>
#include <vector>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace kpu::hw {

bool read_input_file(const std::string& path, const std::string& kind, std::string& text, std::string& problem) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) return problem = "cannot open " + kind + " file", false;
    if (S_ISDIR(info.st_mode)) return problem = "is a directory, not a " + kind + " file", false;
    // A FIFO is opened without waiting for a writer (one with none then reads as empty);
    // a pipe from a shell's process substitution still reads whole.
    const bool fifo = S_ISFIFO(info.st_mode);
    const int fd = ::open(path.c_str(), O_RDONLY | (fifo ? O_NONBLOCK : 0));
    if (fd < 0) return problem = "cannot open " + kind + " file", false;
    if (fifo) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(::fdopen(fd, "rb"), &std::fclose);
    if (!file) return ::close(fd), problem = "cannot open " + kind + " file", false;
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
    if (fifo && text.empty()) return problem = "is a FIFO with no writer: not a " + kind + " file", false;
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

/// Thrown by KeyChecker below when an object names a key twice; nlohmann keeps the last
/// silently, so a config with a leftover field would simulate another machine.
struct DuplicateKey {
    std::string path;
};

/// Where the parser is: one frame per open object (its current key) or array (its index).
struct Frame {
    bool object;
    std::string key;
    size_t index = 0;
    std::unordered_set<std::string> keys;  ///< seen in this object
};

std::string path_of(const std::vector<Frame>& frames) {
    std::string path;
    for (const Frame& f : frames) {
        if (f.object)
            path += (path.empty() ? "" : ".") + f.key;
        else
            path += "[" + std::to_string(f.index) + "]";
    }
    return path;
}

/// A SAX pass that builds nothing and throws DuplicateKey at the first key named twice in
/// one object; stops (false) at a syntax error, which the parse that follows reports. A
/// separate pass because nlohmann's parser with a callback looks through the whole parent
/// after every object (a million tasks took minutes).
struct KeyChecker : nlohmann::json_sax<nlohmann::json> {
    std::vector<Frame> frames;

    bool element_done() {
        if (!frames.empty() && !frames.back().object) ++frames.back().index;
        return true;
    }
    bool null() override { return element_done(); }
    bool boolean(bool) override { return element_done(); }
    bool number_integer(number_integer_t) override { return element_done(); }
    bool number_unsigned(number_unsigned_t) override { return element_done(); }
    bool number_float(number_float_t, const string_t&) override { return element_done(); }
    bool string(string_t&) override { return element_done(); }
    bool binary(binary_t&) override { return element_done(); }
    bool start_object(std::size_t) override { return frames.push_back({true, {}, 0, {}}), true; }
    bool start_array(std::size_t) override { return frames.push_back({false, {}, 0, {}}), true; }
    bool key(string_t& key) override {
        Frame& f = frames.back();
        f.key = key;
        if (!f.keys.insert(key).second) throw DuplicateKey{path_of(frames)};
        return true;
    }
    bool end_object() override { return frames.pop_back(), element_done(); }
    bool end_array() override { return frames.pop_back(), element_done(); }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }
};

}  // namespace

bool parse_json_text(const std::string& text, nlohmann::json& value, std::string& problem) {
    // A JSON text has no raw NUL byte anywhere (a string spells it \u0000); nlohmann's parser
    // takes one as the end of the input and would ignore whatever follows it.
    if (const size_t nul = text.find('\0'); nul != std::string::npos)
        return problem = "malformed JSON: a NUL byte at byte " + std::to_string(nul) +
                         " (the JSON text must end at the end of the file)",
               false;
    if (const size_t at = too_deep_at(text); at != std::string::npos)
        return problem = "malformed JSON: nested deeper than " + std::to_string(kMaxJsonDepth) + " levels at byte " +
                         std::to_string(at),
               false;
    try {
        KeyChecker keys;
        nlohmann::json::sax_parse(text, &keys);
        value = nlohmann::json::parse(text);
        return true;
    } catch (const DuplicateKey& d) {
        problem = d.path + ": named twice in one object (JSON would keep only the last)";
        return false;
    } catch (const nlohmann::json::exception& e) {
        // nlohmann's message starts with "[json.exception.parse_error.101] ": keep what follows.
        const std::string what = e.what();
        const size_t end = what.find("] ");
        problem = "malformed JSON: " + (what[0] == '[' && end != std::string::npos ? what.substr(end + 2) : what);
        return false;
    }
}

std::string input_kind(const nlohmann::json& value) {
    if (!value.is_object()) return "";
    if (const auto f = value.find("format"); f != value.end() && f->is_string() && *f == "kpu") return "kpu";
    if (value.contains("compute_tiles")) return "config";
    if (value.contains("elided_moves")) return "bound";
    if (value.contains("op") || value.contains("ops")) return "graph";
    return "";
}

std::string wrong_kind(const nlohmann::json& value, const std::string& expected) {
    const std::string kind = input_kind(value);
    if (kind.empty() || kind == expected) return "";
    auto name = [](const std::string& k) -> std::string {
        if (k == "config") return "a config";
        if (k == "graph") return "a graph";
        if (k == "kpu") return "a .kpu program";
        return "a bound program (kpu-compile --bind output)";
    };
    std::string hint;
    if (expected == "kpu" && kind == "graph") hint = " (compile it first: kpu-compile GRAPH.json -o X.kpu --config CFG)";
    if (expected == "graph" && kind == "kpu") hint = " (it is compiled already: run it with kpu-sim --program)";
    if (expected == "config") hint = " (a config is configs/<sku>.json)";
    return "is " + name(kind) + ", not " + name(expected) + hint;
}

}  // namespace kpu::hw
