// Names of enum values in files, messages and traces. Each enum has one table of
// {value, name} pairs, declared next to the enum; its to_string() and its parser both read
// that table, so a name is spelled once. No SystemC; header-only (the models use it too).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace kpu::hw {

template <typename E>
struct EnumName {
    E value;           ///< the enum value
    const char* name;  ///< how files, messages and traces spell it
};

/// The name of `value` in `table`; "?" for a value the table lacks (a cast from a number).
template <typename E, size_t N>
constexpr const char* name_in(const EnumName<E> (&table)[N], E value) {
    for (const EnumName<E>& entry : table)
        if (entry.value == value) return entry.name;
    return "?";
}

/// Sets `out` to the value `name` spells in `table` and returns true; false, with `out`
/// untouched, for a name the table lacks (names are case-sensitive).
template <typename E, size_t N>
bool value_in(const EnumName<E> (&table)[N], std::string_view name, E& out) {
    for (const EnumName<E>& entry : table)
        if (name == entry.name) {
            out = entry.value;
            return true;
        }
    return false;
}

/// Every name of `table` in its order, joined by ", " (for a message that lists the choices).
template <typename E, size_t N>
std::string names_in(const EnumName<E> (&table)[N]) {
    std::string names;
    for (const EnumName<E>& entry : table) names += (names.empty() ? "" : ", ") + std::string(entry.name);
    return names;
}

}  // namespace kpu::hw
