// Factories of every op; registry.cpp maps ONNX op_type names to them.
#pragma once
#include <memory>

#include "ops/op.h"

namespace pycnn {

std::unique_ptr<Op> make_average_pool(const OpContext& c);
std::unique_ptr<Op> make_batch_norm(const OpContext& c);
std::unique_ptr<Op> make_binary(const OpContext& c);
// The blocked layout's ops (ops/blocked.cpp): Conv and GlobalAveragePool
// nodes marked _blocked come here from their plain factories.
std::unique_ptr<Op> make_blocked_conv(const OpContext& c);
std::unique_ptr<Op> make_blocked_global_average_pool(const OpContext& c);
std::unique_ptr<Op> make_to_blocked(const OpContext& c);
std::unique_ptr<Op> make_from_blocked(const OpContext& c);
std::unique_ptr<Op> make_cast(const OpContext& c);
std::unique_ptr<Op> make_clip(const OpContext& c);
std::unique_ptr<Op> make_concat(const OpContext& c);
std::unique_ptr<Op> make_constant_of_shape(const OpContext& c);
std::unique_ptr<Op> make_conv(const OpContext& c);
std::unique_ptr<Op> make_conv_transpose(const OpContext& c);
std::unique_ptr<Op> make_depth_to_space(const OpContext& c);
std::unique_ptr<Op> make_dropout(const OpContext& c);
std::unique_ptr<Op> make_expand(const OpContext& c);
std::unique_ptr<Op> make_flatten(const OpContext& c);
std::unique_ptr<Op> make_gather(const OpContext& c);
std::unique_ptr<Op> make_gemm(const OpContext& c);
std::unique_ptr<Op> make_global_average_pool(const OpContext& c);
std::unique_ptr<Op> make_global_max_pool(const OpContext& c);
std::unique_ptr<Op> make_group_norm(const OpContext& c);
std::unique_ptr<Op> make_identity(const OpContext& c);
std::unique_ptr<Op> make_instance_norm(const OpContext& c);
std::unique_ptr<Op> make_layer_norm(const OpContext& c);
std::unique_ptr<Op> make_log_softmax(const OpContext& c);
std::unique_ptr<Op> make_lrn(const OpContext& c);
std::unique_ptr<Op> make_matmul(const OpContext& c);
std::unique_ptr<Op> make_max_pool(const OpContext& c);
std::unique_ptr<Op> make_pad(const OpContext& c);
std::unique_ptr<Op> make_range(const OpContext& c);
std::unique_ptr<Op> make_reduce(const OpContext& c);
std::unique_ptr<Op> make_arg_max(const OpContext& c);
std::unique_ptr<Op> make_arg_min(const OpContext& c);
std::unique_ptr<Op> make_compare(const OpContext& c);
std::unique_ptr<Op> make_not(const OpContext& c);
std::unique_ptr<Op> make_where(const OpContext& c);
std::unique_ptr<Op> make_size(const OpContext& c);
std::unique_ptr<Op> make_reshape(const OpContext& c);
std::unique_ptr<Op> make_resize(const OpContext& c);
std::unique_ptr<Op> make_shape(const OpContext& c);
std::unique_ptr<Op> make_slice(const OpContext& c);
std::unique_ptr<Op> make_softmax(const OpContext& c);
std::unique_ptr<Op> make_space_to_depth(const OpContext& c);
std::unique_ptr<Op> make_split(const OpContext& c);
std::unique_ptr<Op> make_squeeze(const OpContext& c);
std::unique_ptr<Op> make_tile(const OpContext& c);
std::unique_ptr<Op> make_transpose(const OpContext& c);
std::unique_ptr<Op> make_unary(const OpContext& c);
std::unique_ptr<Op> make_unsqueeze(const OpContext& c);
std::unique_ptr<Op> make_upsample(const OpContext& c);

// ONNX TensorProto.DataType code -> DType (throws Unsupported for others).
DType dtype_from_onnx(int64_t code, const Node& node);

}  // namespace pycnn
