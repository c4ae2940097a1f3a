// The functional layer's C++ entry points (used by pycnn._functional): one
// operator run once on caller-owned buffers, no session.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pycnn::functional {

// y = activation(x) for kind in relu, leaky_relu, elu, selu, sigmoid,
// hard_sigmoid, hardswish, silu, tanh, softplus, softsign, gelu, gelu_tanh,
// clip. Throws pycnn::Error for an unknown kind.
void activation(const std::string& kind, const float* x, float* y, int64_t n, float alpha, float beta, int threads);

// One registered ONNX operator (the same Op class a session compiles) run on
// the caller's buffers, once or many times:
//   OpCall call("Conv", "conv2d");  call.set_ints("strides", {2, 2});
//   call.add_input(nullptr, {}, false);  call.add_input(w, w_shape, true);  call.add_absent_input();
//   call.prepare(threads);                    // the op is made: W packed
//   call.bind(0, x, x_shape);  call.infer(threads);  allocate call.output_shape(0);
//   call.run({y}, threads);                   // bind/infer/run again for the next x
// Constant inputs (weights) are packed at prepare, exactly as a session packs
// its initializers; their buffers must outlive the call. Errors are
// pycnn::Error, their messages naming `name` (the Python function). One
// OpCall runs on one thread at a time.
class OpCall {
 public:
  OpCall(const std::string& op_type, const std::string& name);
  ~OpCall();
  OpCall(const OpCall&) = delete;
  OpCall& operator=(const OpCall&) = delete;

  void set_int(const std::string& key, int64_t v);
  void set_ints(const std::string& key, const std::vector<int64_t>& v);
  void set_float(const std::string& key, double v);
  void set_string(const std::string& key, const std::string& v);
  // Inputs in the operator's order: constants (the buffer kept), or
  // run-time inputs (bound before each infer; `data` may be null here).
  void add_input(const float* data, const std::vector<int64_t>& shape, bool constant);
  // An omitted optional input (ConvTranspose's bias, ...).
  void add_absent_input();

  // Creates the op; `outputs` is how many the caller wants (MaxPool's
  // second is its indices).
  void prepare(int outputs, int threads);
  // Sets a non-constant input's buffer and shape.
  void bind(int i, const float* data, const std::vector<int64_t>& shape);
  // Checks the bound inputs and infers the output shapes.
  void infer(int threads);
  std::vector<int64_t> output_shape(int i) const;
  // 0 float32, 2 int64 (pycnn::DType).
  int output_dtype(int i) const;
  // Runs on `threads` threads, writing the outputs, already sized.
  void run(const std::vector<void*>& outputs, int threads);
  // What the last run did (the profiler's algorithm column: "winograd-f2x3", ...).
  std::string algorithm() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Whether n bytes at a and b are equal (memcmp in chunks over `threads`
// threads: checking cached weights must not cost a single-threaded pass).
bool same_bytes(const void* a, const void* b, size_t n, int threads);

// OpCall::run keeps its scratch memory for the next call on the same thread;
// this frees the calling thread's.
void release_scratch();

}  // namespace pycnn::functional
