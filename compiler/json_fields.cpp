#include "compiler/json_fields.h"

#include "compiler/compile_error.h"
#include "hardware/input_file.h"
#include "hardware/json_reader.h"

namespace kpu::compiler {

std::string show(const nlohmann::json& value) {
    std::string text = value.dump();
    return text.size() > 60 ? text.substr(0, 57) + "..." : text;
}

nlohmann::json parse_json(const std::string& text, const std::string& source, const std::string& kind) {
    nlohmann::json value;
    std::string problem;
    if (!hw::parse_json_text(text, value, problem)) throw CompileError(source + ": " + problem);
    if (const std::string other = hw::wrong_kind(value, kind); !other.empty()) throw CompileError(source + ": " + other);
    return value;
}

JsonFields::JsonFields(const json& object, std::string path, const std::string& source)
    : object_(object), path_(std::move(path)), source_(source) {
    if (!object_.is_object()) fail(path_, "expected an object, got " + show(object_));
}

void JsonFields::fail(const std::string& path, const std::string& problem) const {
    throw CompileError(source_ + ": " + (path.empty() ? "(top level)" : path) + ": " + problem);
}

std::string JsonFields::path_of(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

const nlohmann::json& JsonFields::field(const std::string& key) {
    const json* value = optional(key);
    if (!value) fail(path_of(key), "missing required field");
    return *value;
}

const nlohmann::json* JsonFields::optional(const std::string& key) {
    read_.insert(key);
    auto it = object_.find(key);
    return it == object_.end() ? nullptr : &*it;
}

std::string JsonFields::string(const std::string& key) { return as_string(field(key), path_of(key)); }
uint64_t JsonFields::uint(const std::string& key) { return as_uint(field(key), path_of(key)); }
const nlohmann::json& JsonFields::array(const std::string& key) { return as_array(field(key), path_of(key)); }

const nlohmann::json& JsonFields::object(const std::string& key) {
    const json& value = field(key);
    if (!value.is_object()) fail(path_of(key), "expected an object, got " + show(value));
    return value;
}

std::string JsonFields::as_string(const json& value, const std::string& path) const {
    if (!value.is_string()) fail(path, "expected a string, got " + show(value));
    return value.get<std::string>();
}

uint64_t JsonFields::as_uint(const json& value, const std::string& path) const {
    if (!value.is_number_unsigned()) fail(path, "expected a non-negative integer, got " + show(value));
    return value.get<uint64_t>();
}

double JsonFields::as_number(const json& value, const std::string& path) const {
    if (!value.is_number()) fail(path, "expected a number, got " + show(value));
    return value.get<double>();
}

const nlohmann::json& JsonFields::as_array(const json& value, const std::string& path) const {
    if (!value.is_array()) fail(path, "expected an array, got " + show(value));
    return value;
}

void JsonFields::finish() const {
    for (const auto& [key, value] : object_.items()) {
        if (read_.count(key)) continue;
        std::string best;
        size_t best_distance = 3;
        for (const auto& known : read_)
            if (const size_t d = hw::edit_distance(key, known); d < best_distance) best_distance = d, best = known;
        fail(path_of(key), "unknown field" + (best.empty() ? std::string() : " (did you mean '" + best + "'?)"));
    }
}

}  // namespace kpu::compiler
