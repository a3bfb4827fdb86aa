// The one exception type of the compiler library. what() is one line naming the file (or
// program), the field or op, and the numbers involved, so a CLI can print it as is.
#pragma once

#include <stdexcept>
#include <string>

namespace kpu::compiler {

class CompileError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

}  // namespace kpu::compiler
