// Session: create once (validate, optimize, pre-pack weights), reshape per
// input shape (plans cached by shape), run many times with no planning and no
// heap allocation for intermediates.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "pycnn/graph.h"
#include "pycnn/tensor.h"

namespace pycnn {

struct SessionOptions {
  int num_threads = 0;         // 0: all CPUs this process may use (affinity and cgroup quota)
  int optimization_level = 99; // 0: none; >=1: constant folding, batch-norm folding, fusion
  bool enable_winograd = true; // Winograd F(4x4,3x3) / F(2x2,3x3) for 3x3 stride-1 convolutions where it pays
  bool enable_blocked_layout = true;  // chains of depthwise and 1x1 convolutions on NCHWc tensors
  bool enable_image_by_image = true;  // batch > 1: the leading layers one image at a time (runtime/image_by_image.h)
};

struct NodeIssue {
  std::string node_name, op_type, reason;
  int opset = 0;
};

class Session {
 public:
  Session(Graph graph, const SessionOptions& options);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Runs the model. feeds are matched to graph inputs by name; outputs are
  // returned in the order of output_names (all graph outputs when empty).
  std::vector<Tensor> run(const std::vector<std::string>& feed_names, const std::vector<Tensor>& feeds,
                          const std::vector<std::string>& output_names);

  // Per-node profile of the most recently used plan, accumulated over the
  // runs since profiling was switched on.
  struct NodeProfile {
    std::string name, op_type, algorithm;
    std::vector<Shape> input_shapes, output_shapes;
    double total_ms = 0, flops = 0;  // flops: per run
    int64_t runs = 0;
    int64_t images = 1;  // calls per run: the batch's images one at a time (image_by_image.h), or 1
    double last_start_ms = 0, last_ms = 0;  // timeline of the last run
  };
  void set_profiling(bool on);
  std::vector<NodeProfile> profile() const;

  const Graph& graph() const;   // the optimized graph
  int num_threads() const;
  size_t cached_plans() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The number of threads a session uses by default: CPUs in this process's
// affinity mask, capped by the cgroup CPU quota.
int default_num_threads();

// Which kernel path runs: "avx512", "avx2" or "scalar" (PYCNN_ISA forces one).
const char* active_isa();
std::vector<std::string> available_isas();
void set_isa(const std::string& name);  // throws if this CPU cannot run it

}  // namespace pycnn
