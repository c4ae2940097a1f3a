// Image-by-image execution of a batch's leading steps. Run node by node, a
// batch of 8 224x224 images moves every early feature map through DRAM
// (MobileNetV2's 96 x 112 x 112 expansion is 38 MB at batch 8, 4.8 MB per
// image); run one image at a time through the same steps, each image's maps
// stay in L2/L3 between one node and the next. Batched execution pays where
// weights outweigh an image's activations (ResNet's 7x7 stage, the final
// Gemm: one pass over the weights for every image), so only a prefix of the
// steps goes image by image, and the rest runs on the whole batch.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "pycnn/graph.h"
#include "pycnn/tensor.h"

namespace pycnn {

struct ImagePass {
  int steps = 0;        // the leading steps, run once per image
  int64_t images = 1;   // the batch
  // Per value: made by a step of the pass; and of those, read after it or a
  // graph output, so it holds the whole batch, written an image at a time.
  std::vector<char> made, crosses;
};

// Which leading steps (of step_nodes, the nodes run at run time, in order)
// may and should run one image at a time, from the batch-shaped plan:
// values (every value's planned shape) and runtime (per value: fed or
// computed at run time; every other input is a weight all images share).
// takes_one_image(s) asks step s's op whether one image's shapes give one
// image of its outputs; the pass ends at the first that does not. No steps
// when the batch is 1, when no step handles images independently, or when
// none moves enough data for it to pay.
ImagePass plan_image_pass(const Graph& g, const std::vector<int>& step_nodes, const std::vector<Tensor>& values,
                          const std::vector<char>& runtime, const std::function<bool(int)>& takes_one_image);

// shape with dim 0 set to 1: one image of a batched value.
Shape one_image(Shape shape);

}  // namespace pycnn
