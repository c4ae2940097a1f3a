#include <cstdlib>
#include <cstring>
#include <sstream>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "pycnn/errors.h"
#include "pycnn/tensor.h"

namespace pycnn {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: case DType::i32: return 4;
    case DType::f64: case DType::i64: return 8;
    case DType::i8: case DType::u8: case DType::boolean: return 1;
  }
  return 1;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "float32";
    case DType::f64: return "float64";
    case DType::i64: return "int64";
    case DType::i32: return "int32";
    case DType::i8: return "int8";
    case DType::u8: return "uint8";
    case DType::boolean: return "bool";
  }
  return "?";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  if (s.size() == 1) os << ",";
  os << ")";
  return os.str();
}

std::shared_ptr<void> aligned_buffer(size_t bytes, bool zero, bool huge_pages) {
  // A plan's arena sits on 2 MiB pages: its GEMMs read B rows a plane
  // apart, a new 4 KiB page per row (AVX2 Zen 3, 1 thread, MobileNetV2
  // alone in a process, noisy machine: 18-20 -> 14-15 ms; Zen 4 AVX-512:
  // 7.6-8.0 -> 7.4-7.5 ms). Weights do not: they are read in order, and the
  // kernel's compaction for huge pages on first touch cost ResNet-50's
  // session creation 90 -> 280-300 ms whenever free huge pages ran short.
  constexpr size_t kHugePage = size_t(2) << 20;
  const bool huge = huge_pages && bytes >= 2 * kHugePage;
  const size_t align = huge ? kHugePage : 64;
  size_t rounded = (bytes + align - 1) / align * align;
  if (rounded == 0) rounded = 64;
  void* p = std::aligned_alloc(align, rounded);
  if (!p) fail(ErrorCode::Runtime, "out of memory allocating ", bytes, " bytes");
#if defined(MADV_HUGEPAGE)
  if (huge) madvise(p, rounded, MADV_HUGEPAGE);
#endif
  if (zero) std::memset(p, 0, rounded);
  return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
}

Tensor Tensor::allocate(DType t, const Shape& s) {
  for (int64_t d : s)
    PYCNN_CHECK(d >= 0, ErrorCode::InvalidModel, "negative dimension in shape ", shape_str(s));
  auto buf = aligned_buffer(size_t(shape_numel(s)) * dtype_size(t));
  return Tensor(t, s, buf.get(), buf);
}

Tensor Tensor::clone() const {
  auto buf = aligned_buffer(nbytes(), false);
  Tensor out(dtype, shape, buf.get(), buf);
  if (nbytes()) std::memcpy(out.data, data, nbytes());
  return out;
}

std::vector<int64_t> Tensor::as_ints() const {
  std::vector<int64_t> v(static_cast<size_t>(numel()));
  for (size_t i = 0; i < v.size(); ++i) {
    switch (dtype) {
      case DType::i64: v[i] = ptr<int64_t>()[i]; break;
      case DType::i32: v[i] = ptr<int32_t>()[i]; break;
      case DType::f32: v[i] = int64_t(ptr<float>()[i]); break;
      case DType::f64: v[i] = int64_t(ptr<double>()[i]); break;
      case DType::i8: v[i] = ptr<int8_t>()[i]; break;
      case DType::u8: case DType::boolean: v[i] = ptr<uint8_t>()[i]; break;
    }
  }
  return v;
}

std::vector<double> Tensor::as_doubles() const {
  std::vector<double> v(static_cast<size_t>(numel()));
  for (size_t i = 0; i < v.size(); ++i) {
    switch (dtype) {
      case DType::f32: v[i] = ptr<float>()[i]; break;
      case DType::f64: v[i] = ptr<double>()[i]; break;
      case DType::i64: v[i] = double(ptr<int64_t>()[i]); break;
      case DType::i32: v[i] = ptr<int32_t>()[i]; break;
      case DType::i8: v[i] = ptr<int8_t>()[i]; break;
      case DType::u8: case DType::boolean: v[i] = ptr<uint8_t>()[i]; break;
    }
  }
  return v;
}

}  // namespace pycnn
