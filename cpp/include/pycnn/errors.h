// Errors: the core throws pycnn::Error with a code; the bindings map each code
// to a Python exception class (as ONNX Runtime maps its status codes).
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace pycnn {

enum class ErrorCode {
  InvalidArgument,  // bad input to run(): name, dtype, rank, shape
  InvalidModel,     // malformed graph or attribute values
  Unsupported,      // an op, attribute or dtype pycnn does not implement
  Runtime,          // anything else that went wrong while running
};

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& msg) : std::runtime_error(msg), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

namespace detail {
inline void append(std::ostringstream&) {}
template <class T, class... R>
void append(std::ostringstream& os, const T& v, const R&... rest) {
  os << v;
  append(os, rest...);
}
}  // namespace detail

template <class... A>
[[noreturn]] void fail(ErrorCode code, const A&... parts) {
  std::ostringstream os;
  detail::append(os, parts...);
  throw Error(code, os.str());
}

#define PYCNN_CHECK(cond, code, ...) \
  do {                               \
    if (!(cond)) ::pycnn::fail(code, __VA_ARGS__); \
  } while (0)

}  // namespace pycnn
