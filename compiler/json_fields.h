// Strict reading of JSON objects for the graph importer and the .kpu reader: every value is
// type-checked, every key not read is an error, and every error is one line
// "<source>: <json.path>: <problem>".
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

namespace kpu::compiler {

class JsonFields {
public:
    using json = nlohmann::json;

    JsonFields(const json& object, std::string path, const std::string& source);

    [[noreturn]] void fail(const std::string& path, const std::string& problem) const;
    std::string path_of(const std::string& key) const;
    std::string path_of(size_t index) const { return path_ + "[" + std::to_string(index) + "]"; }
    const std::string& path() const { return path_; }
    const std::string& source() const { return source_; }

    bool has(const std::string& key) const { return read_.insert(key), object_.contains(key); }
    const json& field(const std::string& key);       ///< required
    const json* optional(const std::string& key);    ///< nullptr when absent

    std::string string(const std::string& key);
    uint64_t uint(const std::string& key);
    const json& array(const std::string& key);
    const json& object(const std::string& key);

    /// Type checks of a value found at `path`.
    std::string as_string(const json& value, const std::string& path) const;
    uint64_t as_uint(const json& value, const std::string& path) const;
    double as_number(const json& value, const std::string& path) const;
    const json& as_array(const json& value, const std::string& path) const;

    /// Rejects every key that was not read (or asked about), suggesting the nearest that was.
    void finish() const;

private:
    const json& object_;
    std::string path_;
    const std::string& source_;
    mutable std::set<std::string> read_;  ///< keys read or asked about (has): the ones this object may have
};

/// Parses JSON text meant to be of `kind` ("graph", "kpu": hw::input_kind); throws
/// CompileError "<source>: malformed JSON: ..." or "<source>: is a config, not a graph ...".
nlohmann::json parse_json(const std::string& text, const std::string& source, const std::string& kind);

/// Short rendering of a JSON value for messages.
std::string show(const nlohmann::json& value);

}  // namespace kpu::compiler
