#include "hardware/json_reader.h"

#include <algorithm>
#include <exception>
#include <iomanip>
#include <sstream>

#include "hardware/input_file.h"

namespace kpu::hw {
namespace {

/// 0.001, 1, 100000: a limit as a person writes it.
std::string plain(double value) {
    std::ostringstream out;
    out << std::setprecision(15) << value;
    return out.str();
}

/// Calls `raise`, which throws; the terminate is for a Raise that breaks that contract.
[[noreturn]] void raise_or_terminate(Raise raise, const std::string& message) {
    raise(message);
    std::terminate();
}

}  // namespace

nlohmann::json parse_document(const std::string& text, const std::string& source, const std::string& kind,
                              Raise raise) {
    nlohmann::json value;
    std::string problem;
    if (!parse_json_text(text, value, problem)) raise_or_terminate(raise, source + ": " + problem);
    if (const std::string other = wrong_kind(value, kind); !other.empty())
        raise_or_terminate(raise, source + ": " + other);
    return value;
}

std::string show(const nlohmann::json& value) {
    std::string text = value.dump();
    return text.size() > 60 ? text.substr(0, 57) + "..." : text;
}

size_t edit_distance(const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
            diagonal = above;
        }
    }
    return row[b.size()];
}

JsonReader::JsonReader(const json& object, std::string path, std::string source, Raise raise,
                       const std::set<std::string>* schema_names)
    : object_(object), path_(std::move(path)), source_(std::move(source)), raise_(raise), schema_names_(schema_names) {
    if (!object_.is_object()) fail(path_, "expected an object, got " + show(object_));
}

JsonReader JsonReader::child(const json& value, std::string path) const {
    return JsonReader(value, std::move(path), source_, raise_, schema_names_);
}

JsonReader JsonReader::object(const std::string& key) { return child(field(key), path_of(key)); }

void JsonReader::fail(const std::string& path, const std::string& problem) const {
    raise_or_terminate(raise_, source_ + ": " + (path.empty() ? "(top level)" : path) + ": " + problem);
}

std::string JsonReader::path_of(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }

std::string JsonReader::path_of(const std::string& key, size_t index) const {
    return path_of(key) + "[" + std::to_string(index) + "]";
}

const nlohmann::json& JsonReader::field(const std::string& key) {
    const json* value = optional(key);
    if (value) return *value;
    // A typo of this key reads better as "unknown field" with the suggestion.
    if (schema_names_)
        for (const auto& [present, ignored] : object_.items())
            if (!schema_names_->count(present) && edit_distance(present, key) <= 2)
                fail(path_of(present), "unknown field (did you mean '" + key + "'?)");
    fail(path_of(key), "missing required field");
}

const nlohmann::json* JsonReader::optional(const std::string& key) {
    read_.insert(key);
    auto it = object_.find(key);
    return it == object_.end() ? nullptr : &*it;
}

std::string JsonReader::string(const std::string& key) { return as_string(field(key), path_of(key)); }
uint64_t JsonReader::uint(const std::string& key) { return as_uint(field(key), path_of(key)); }
const nlohmann::json& JsonReader::array(const std::string& key) { return as_array(field(key), path_of(key)); }

uint64_t JsonReader::count(const std::string& key, uint64_t max) {
    const json& v = field(key);
    if (!v.is_number_integer()) fail(path_of(key), "expected a positive integer, got " + show(v));
    if (v.is_number_unsigned() ? v.get<uint64_t>() == 0 : v.get<int64_t>() <= 0)
        fail(path_of(key), "must be > 0, got " + show(v));
    const uint64_t value = v.get<uint64_t>();
    if (value > max) fail(path_of(key), "must be <= " + std::to_string(max) + ", got " + show(v));
    return value;
}

uint64_t JsonReader::power_of_two(const std::string& key, uint64_t max) {
    const uint64_t value = count(key, max);
    if ((value & (value - 1)) != 0) fail(path_of(key), "must be a power of two, got " + std::to_string(value));
    return value;
}

double JsonReader::number(const std::string& key, double min, double max) {
    const json& v = field(key);
    const double value = as_number(v, path_of(key));
    if (!(value >= min && value <= max))
        fail(path_of(key), "must be between " + plain(min) + " and " + plain(max) + ", got " + show(v));
    return value;
}

std::vector<std::string> JsonReader::strings(const std::string& key) {
    const json& v = field(key);
    if (!v.is_array() || v.empty()) fail(path_of(key), "expected a non-empty array of strings, got " + show(v));
    std::vector<std::string> out;
    for (size_t i = 0; i < v.size(); ++i) out.push_back(as_string(v[i], path_of(key, i)));
    return out;
}

std::string JsonReader::as_string(const json& value, const std::string& path) const {
    if (!value.is_string()) fail(path, "expected a string, got " + show(value));
    return value.get<std::string>();
}

uint64_t JsonReader::as_uint(const json& value, const std::string& path) const {
    if (!value.is_number_unsigned()) fail(path, "expected a non-negative integer, got " + show(value));
    return value.get<uint64_t>();
}

double JsonReader::as_number(const json& value, const std::string& path) const {
    if (!value.is_number()) fail(path, "expected a number, got " + show(value));
    return value.get<double>();
}

const nlohmann::json& JsonReader::as_array(const json& value, const std::string& path) const {
    if (!value.is_array()) fail(path, "expected an array, got " + show(value));
    return value;
}

void JsonReader::finish() const {
    for (const auto& [key, value] : object_.items()) {
        if (read_.count(key)) continue;
        std::string best;
        size_t best_distance = 3;
        for (const auto& known : read_)
            if (const size_t d = edit_distance(key, known); d < best_distance) best_distance = d, best = known;
        fail(path_of(key), "unknown field" + (best.empty() ? std::string() : " (did you mean '" + best + "'?)"));
    }
}

}  // namespace kpu::hw
