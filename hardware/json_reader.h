// Strict reading of the tools' JSON documents (configs, graphs, .kpu programs): every value
// is type-checked, every key not read is an error with the nearest known key suggested, and
// every error is one line "<source>: <json.path>: <problem>". Each tool throws its own error
// type (ConfigError, CompileError, ...): a document names it once, as a Raise, and every
// reader of that document throws it. The text's bounds (size, depth, duplicate keys) are
// hardware/input_file.h's.
#pragma once

#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kpu::hw {

/// Throws an error carrying `message`; a reader's failures all go through it.
using Raise = void (*)(const std::string& message);

/// The Raise that throws `Error(message)`: JsonReader(..., throw_as<ConfigError>).
template <typename Error>
[[noreturn]] void throw_as(const std::string& message) {
    throw Error(message);
}

/// Parses the text of a document meant to be of `kind` ("config", "graph", "kpu":
/// hw::input_kind); raises "<source>: malformed JSON: ..." or "<source>: is a config, not a
/// graph ..." (hw::parse_json_text, hw::wrong_kind) otherwise.
nlohmann::json parse_document(const std::string& text, const std::string& source, const std::string& kind,
                              Raise raise);

/// Short rendering of a JSON value for messages (at most 60 characters).
std::string show(const nlohmann::json& value);

/// Levenshtein distance: how "did you mean 'rows'?" finds the field a typo was meant for.
size_t edit_distance(const std::string& a, const std::string& b);

/// Reads one JSON object, remembering which keys were read (or asked about with has()) so
/// that finish() can reject the rest, suggesting the nearest of them. It refers to the
/// object, which must outlive it.
class JsonReader {
public:
    using json = nlohmann::json;

    /// A reader of `object`, found at `path` ("" for the top level) in `source`. With
    /// `schema_names` (every field name the schema has, at any depth), a missing required
    /// field whose near-namesake is present and not one of them is reported as that typo:
    /// "rowz: unknown field (did you mean 'rows'?)" rather than "rows: missing required field".
    JsonReader(const json& object, std::string path, std::string source, Raise raise,
               const std::set<std::string>* schema_names = nullptr);

    /// A reader of `value`, found at `path`, in the same document (e.g. an array's element).
    JsonReader child(const json& value, std::string path) const;
    /// A reader of the object at `key` (required).
    JsonReader object(const std::string& key);

    /// Raises "<source>: <path or (top level)>: <problem>".
    [[noreturn]] void fail(const std::string& path, const std::string& problem) const;
    std::string path_of(const std::string& key) const;
    std::string path_of(const std::string& key, size_t index) const;  ///< path_of(key) + "[index]"
    const std::string& path() const { return path_; }
    const std::string& source() const { return source_; }

    /// Whether the object has `key`; either way `key` becomes one this object may have.
    bool has(const std::string& key) const { return read_.insert(key), object_.contains(key); }
    /// Whether the object has `key`, without making it one this object may have: finish()
    /// accepts it only if read, and never suggests it. How the config loader asks about its
    /// optional fields: its suggestions name only fields that were read.
    bool contains(const std::string& key) const { return object_.contains(key); }
    const json& field(const std::string& key);     ///< required
    const json* optional(const std::string& key);  ///< nullptr when absent

    std::string string(const std::string& key);
    uint64_t uint(const std::string& key);  ///< a non-negative integer
    const json& array(const std::string& key);
    /// A positive integer (>= 1) that is at most `max`.
    uint64_t count(const std::string& key, uint64_t max = std::numeric_limits<uint32_t>::max());
    /// A count that is a power of two.
    uint64_t power_of_two(const std::string& key, uint64_t max = std::numeric_limits<uint32_t>::max());
    /// A number in [min, max].
    double number(const std::string& key, double min, double max);
    /// A non-empty array of strings.
    std::vector<std::string> strings(const std::string& key);

    /// Type checks of a value found at `path`.
    std::string as_string(const json& value, const std::string& path) const;
    uint64_t as_uint(const json& value, const std::string& path) const;
    double as_number(const json& value, const std::string& path) const;
    const json& as_array(const json& value, const std::string& path) const;

    /// Rejects every key that was not read (or asked about with has()), suggesting the
    /// nearest that was.
    void finish() const;

private:
    const json& object_;
    std::string path_;
    std::string source_;
    Raise raise_;
    const std::set<std::string>* schema_names_;  ///< nullptr: no typo check on missing fields
    mutable std::set<std::string> read_;         ///< keys read or asked about: the ones this object may have
};

}  // namespace kpu::hw
