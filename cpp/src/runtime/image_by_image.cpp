#include "runtime/image_by_image.h"

#include <algorithm>
#include <set>
#include <string>

namespace pycnn {
namespace {

// A step goes image by image only if its batched tensors (runtime inputs and
// outputs) exceed this: below it they stay in L2 anyway, and each extra call
// only adds its overhead (and at 2 threads, halves each thread's work).
constexpr size_t kBatchedBytesWorthSplitting = size_t(1) << 20;
// The pass ends at the first step whose weights outgrow L2 (512 KB on
// Zen 3; read again from L3 for every image) and exceed this many times one
// image's activations: from there, reading the weights once per batch saves
// more than keeping an image's maps in cache. Measured per node on the zoo
// at batch 8 against 8 times batch 1: MobileNetV2's and EfficientNet-B0's
// 7x7 blocks (weights 2.8-3.4x an image's maps) still gain image by image,
// ResNet's 14x14 3x3s (6x, 2.4 MB) break even, their 7x7 stage (8-47x) and
// the classifiers lose; small weights (squeeze-and-excitation) never end it.
constexpr size_t kWeightsWorthBatching = size_t(512) << 10;
constexpr size_t kWeightsPerImageActivations = 4;

// Ops whose outputs for image i depend only on image i of their runtime
// inputs: weights and other constant inputs are shared by all images.
const std::set<std::string>& per_image_ops() {
  static const std::set<std::string> ops = {
      "Conv", "ConvTranspose", "pycnn.ToBlocked", "pycnn.FromBlocked", "MaxPool", "AveragePool",
      "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization", "InstanceNormalization", "LRN"};
  return ops;
}

// Element-wise ops and Concat: per image as long as no constant input
// broadcasts along the batch (rank below the output's, or dim 0 of 1).
const std::set<std::string>& per_image_elementwise_ops() {
  static const std::set<std::string> ops = {
      "Relu", "LeakyRelu", "Elu", "Selu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Softplus", "Softsign",
      "Erf", "Gelu", "Sqrt", "Exp", "Log", "Neg", "Abs", "Reciprocal", "Floor", "Ceil", "Clip", "Identity",
      "Dropout", "Add", "Sub", "Mul", "Div", "Pow", "PRelu", "Max", "Min", "Sum", "Mean", "Concat"};
  return ops;
}

// Whether node n handles the images of a batch of `batch` independently, and
// if so its weight bytes and one image's activation bytes.
bool runs_per_image(const Node& n, int64_t batch, const std::vector<Tensor>& values, const std::vector<char>& runtime,
                    size_t& weight_bytes, size_t& image_bytes) {
  const bool plain = per_image_ops().count(n.op_type) > 0;
  if (!plain && !per_image_elementwise_ops().count(n.op_type)) return false;
  // MaxPool's Indices are flat offsets into the whole batch.
  if (n.op_type == "MaxPool" && n.outputs.size() > 1 && n.outputs[1] >= 0) return false;
  weight_bytes = image_bytes = 0;
  int64_t out_rank = 0;
  for (int v : n.outputs) {
    if (v < 0) continue;
    const Tensor& t = values[size_t(v)];
    if (t.rank() < 1 || t.shape[0] != batch) return false;
    out_rank = std::max<int64_t>(out_rank, t.rank());
    image_bytes += t.nbytes() / size_t(batch);
  }
  if (n.op_type == "Concat") {
    int64_t axis = n.attrs.get_int("axis", 1);
    if (axis < 0) axis += out_rank;
    if (axis <= 0) return false;
  }
  for (size_t k = 0; k < n.inputs.size(); ++k) {
    const int v = n.inputs[k];
    if (v < 0) continue;
    const Tensor& t = values[size_t(v)];
    if (!runtime[size_t(v)]) {
      if (!plain && t.rank() == out_rank && t.shape[0] != 1) return false;
      weight_bytes += t.nbytes();
      continue;
    }
    // The other ops take their data at input 0 (Conv also a fused residual,
    // 3, and input scale and shift, 4 and 5); weights fed at run time are
    // shared by all images, so such a step stays on the batch.
    if (plain && k != 0 && !(n.op_type == "Conv" && k >= 3)) return false;
    // An input that broadcasts (element-wise ops', a fused residual) aligns
    // its trailing dims: below the output's rank its dim 0 is not the batch,
    // even where it has the batch's size. Others (a convolution's data, its
    // per-image input scale) lead with the batch.
    const bool broadcasts = !plain || (n.op_type == "Conv" && k == 3);
    if (t.shape.empty() || t.shape[0] != batch || (broadcasts ? t.rank() != out_rank : t.rank() < 2)) return false;
    image_bytes += t.nbytes() / size_t(batch);
  }
  return true;
}

}  // namespace

Shape one_image(Shape shape) {
  if (!shape.empty()) shape[0] = 1;
  return shape;
}

ImagePass plan_image_pass(const Graph& g, const std::vector<int>& step_nodes, const std::vector<Tensor>& values,
                          const std::vector<char>& runtime, const std::function<bool(int)>& takes_one_image) {
  ImagePass pass;
  pass.made.assign(values.size(), 0);
  pass.crosses.assign(values.size(), 0);
  // The batch: dim 0 of every graph input fed at run time, all equal.
  int64_t batch = -1;
  for (const GraphInput& in : g.inputs) {
    if (!runtime[size_t(in.value)]) continue;
    const Tensor& t = values[size_t(in.value)];
    if (t.rank() < 1 || (batch >= 0 && t.shape[0] != batch)) return pass;
    batch = t.shape[0];
  }
  if (batch <= 1) return pass;
  int steps = 0;
  for (size_t s = 0; s < step_nodes.size(); ++s) {
    size_t weights = 0, image = 0;
    if (!runs_per_image(g.nodes[size_t(step_nodes[s])], batch, values, runtime, weights, image) ||
        (weights > kWeightsWorthBatching && weights > kWeightsPerImageActivations * image) ||
        !takes_one_image(int(s)))
      break;
    // End the pass after the last step that moves enough data to gain.
    if (image * size_t(batch) > kBatchedBytesWorthSplitting) steps = int(s) + 1;
  }
  if (steps == 0) return pass;
  pass.steps = steps;
  pass.images = batch;
  for (size_t s = 0; s < step_nodes.size(); ++s) {
    const Node& n = g.nodes[size_t(step_nodes[s])];
    if (int(s) < steps) {
      for (int v : n.outputs)
        if (v >= 0) pass.made[size_t(v)] = 1;
    } else {
      for (int v : n.inputs)
        if (v >= 0 && pass.made[size_t(v)]) pass.crosses[size_t(v)] = 1;
    }
  }
  for (int v : g.outputs)
    if (pass.made[size_t(v)]) pass.crosses[size_t(v)] = 1;
  return pass;
}

}  // namespace pycnn
