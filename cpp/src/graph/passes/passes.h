// Graph passes, run once at session creation, each in its own file. They
// rewrite the Graph in place and keep it topologically sorted.
#pragma once
#include "pycnn/graph.h"

namespace pycnn::passes {

// Evaluates nodes whose inputs are all constants and stores their outputs as constants.
void fold_constants(Graph& g);
// Drops Identity and inference Dropout nodes, wiring readers to their input.
void remove_identities(Graph& g);
// Conv (constant W, B) followed by BatchNormalization: scales W and B, drops the BN.
void fold_batch_norm(Graph& g);
// Conv/Gemm/BatchNormalization followed by an activation (Relu, Clip,
// LeakyRelu, Sigmoid, HardSigmoid, HardSwish, Tanh, x*Sigmoid(x)): the
// activation moves into the producer's epilogue.
void fuse_activations(Graph& g);
// Conv whose only reader is an Add (the skip connection of a residual block),
// optionally followed by an activation: the Add, and the activation, move into
// the Conv's epilogue; the other Add operand becomes the Conv's 4th input.
// The graph is re-sorted afterwards (that operand may come later).
void fuse_residual_adds(Graph& g);
// A per-channel map whose only reader is a 1x1 stride-1 unpadded Conv moves
// into the Conv's B packing (inputs 4: scale, 5: shift, attribute
// _input_act), and its node goes:
// - BatchNormalization (constant statistics, any fused activation):
//   DenseNet's norm-ReLU before each 1x1 conv;
// - Mul(x, s), s (N, C, 1, 1) from a global pooling through 1x1 convs and
//   activations: the squeeze-and-excitation scale before EfficientNet's and
//   MobileNetV3's projection convs.
// Runs after fuse_residual_adds (which wants at most 3 Conv inputs).
void fuse_input_affine(Graph& g);
// Chains of depthwise and 1x1 convolutions (at least one depthwise, two
// convolutions in all) move to the blocked layout of `lanes` channels a
// block (blocked_layout.cpp): their Conv nodes get _blocked, reorders
// (pycnn.ToBlocked / pycnn.FromBlocked) go where the chain meets plain
// tensors, and a GlobalAveragePool of a chain's output reads it blocked.
// Runs after the fusions, on the convolutions they made.
void use_blocked_layout(Graph& g, int lanes);
// Removes nodes whose outputs nobody reads, and constants nobody uses.
void eliminate_dead_nodes(Graph& g);

// Helpers shared by the passes.
int single_reader(const Graph& g, const std::vector<std::vector<int>>& readers, int value);
void rename_value_uses(Graph& g, int from, int to);
// Removes the nodes whose drop[i] is set, keeping the others in order.
void erase_nodes(Graph& g, const std::vector<char>& drop);

}  // namespace pycnn::passes
