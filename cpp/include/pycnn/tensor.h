// Tensor: a typed, shaped view of memory that may or may not own it.
// Owned tensors (constants, weights, user copies) keep a shared buffer alive;
// planned intermediates point into the session arena and own nothing.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pycnn {

enum class DType : int { f32 = 0, f64, i64, i32, i8, u8, boolean };

size_t dtype_size(DType t);
const char* dtype_name(DType t);

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);

// 64-byte aligned heap buffer, the unit of ownership for tensor data;
// zero-filled unless the caller overwrites all of it anyway.
// huge_pages: on 2 MiB pages where the OS allows it (transparent huge pages
// in "madvise" mode), for buffers read with large strides (a plan's arena).
std::shared_ptr<void> aligned_buffer(size_t bytes, bool zero = true, bool huge_pages = false);

struct Tensor {
  DType dtype = DType::f32;
  Shape shape;
  void* data = nullptr;
  std::shared_ptr<void> owner;  // null for views into an arena

  Tensor() = default;
  Tensor(DType t, Shape s, void* p, std::shared_ptr<void> own = nullptr)
      : dtype(t), shape(std::move(s)), data(p), owner(std::move(own)) {}

  static Tensor allocate(DType t, const Shape& s);  // zero-filled, owned
  Tensor clone() const;                            // deep copy, owned

  int64_t numel() const { return shape_numel(shape); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
  int rank() const { return int(shape.size()); }
  template <class T> T* ptr() const { return static_cast<T*>(data); }
  // Integer contents of a (small) int64/int32 tensor, used for shape arguments.
  std::vector<int64_t> as_ints() const;
  std::vector<double> as_doubles() const;
};

}  // namespace pycnn
