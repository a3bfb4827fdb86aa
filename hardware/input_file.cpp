#include "hardware/input_file.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <vector>
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

/// Thrown by the parser callback below when an object names a key twice; nlohmann keeps the
/// last silently, so a config with a leftover field would simulate another machine.
struct DuplicateKey {
    std::string path;
};

/// Where the parser is: one frame per open object (its current key) or array (its index).
struct Frame {
    bool object;
    std::string key;
    size_t index = 0;
    std::vector<std::string> keys;  ///< seen in this object (objects are small: linear search)
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

}  // namespace

bool parse_json_text(const std::string& text, nlohmann::json& value, std::string& problem) {
    if (const size_t at = too_deep_at(text); at != std::string::npos)
        return problem = "malformed JSON: nested deeper than " + std::to_string(kMaxJsonDepth) + " levels at byte " +
                         std::to_string(at),
               false;
    std::vector<Frame> frames;
    using Event = nlohmann::json::parse_event_t;
    auto track = [&frames](int, Event event, nlohmann::json& parsed) {
        auto element_done = [&frames] {
            if (!frames.empty() && !frames.back().object) ++frames.back().index;
        };
        switch (event) {
            case Event::object_start: frames.push_back({true, {}, 0, {}}); break;
            case Event::array_start: frames.push_back({false, {}, 0, {}}); break;
            case Event::key: {
                Frame& f = frames.back();
                f.key = parsed.get<std::string>();
                if (std::find(f.keys.begin(), f.keys.end(), f.key) != f.keys.end()) throw DuplicateKey{path_of(frames)};
                f.keys.push_back(f.key);
                break;
            }
            case Event::object_end:
            case Event::array_end:
                frames.pop_back();
                element_done();
                break;
            case Event::value: element_done(); break;
        }
        return true;
    };
    try {
        value = nlohmann::json::parse(text, track);
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
