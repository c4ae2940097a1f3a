// The one list of operators. Adding an op: write ops/<area>.cpp with a
// make_<op> factory, declare it in op_list.h, add one line here, add a test
// (see docs/architecture.md for the checklist).
#include <map>

#include "ops/op_list.h"

namespace pycnn {
namespace {
const std::map<std::string, OpFactory>& registry() {
  static const std::map<std::string, OpFactory> ops = {
      {"Conv", make_conv},
      {"pycnn.ToBlocked", make_to_blocked},
      {"pycnn.FromBlocked", make_from_blocked},
      {"ConvTranspose", make_conv_transpose},
      {"MaxPool", make_max_pool},
      {"AveragePool", make_average_pool},
      {"GlobalAveragePool", make_global_average_pool},
      {"GlobalMaxPool", make_global_max_pool},
      {"BatchNormalization", make_batch_norm},
      {"InstanceNormalization", make_instance_norm},
      {"LayerNormalization", make_layer_norm},
      {"GroupNormalization", make_group_norm},
      {"LRN", make_lrn},
      {"Gemm", make_gemm},
      {"MatMul", make_matmul},
      {"Relu", make_unary},
      {"LeakyRelu", make_unary},
      {"Elu", make_unary},
      {"Selu", make_unary},
      {"Sigmoid", make_unary},
      {"HardSigmoid", make_unary},
      {"HardSwish", make_unary},
      {"Tanh", make_unary},
      {"Softplus", make_unary},
      {"Softsign", make_unary},
      {"Erf", make_unary},
      {"Gelu", make_unary},
      {"Sqrt", make_unary},
      {"Exp", make_unary},
      {"Log", make_unary},
      {"Neg", make_unary},
      {"Abs", make_unary},
      {"Add", make_binary},
      {"Sub", make_binary},
      {"Mul", make_binary},
      {"Div", make_binary},
      {"Pow", make_binary},
      {"PRelu", make_binary},
      {"Max", make_binary},
      {"Min", make_binary},
      {"Sum", make_binary},
      {"Mean", make_binary},
      {"Clip", make_clip},
      {"Cast", make_cast},
      {"Identity", make_identity},
      {"Dropout", make_dropout},
      {"Softmax", make_softmax},
      {"LogSoftmax", make_log_softmax},
      {"ReduceMean", make_reduce},
      {"ReduceSum", make_reduce},
      {"ReduceMax", make_reduce},
      {"ReduceMin", make_reduce},
      {"ReduceProd", make_reduce},
      {"ReduceL1", make_reduce},
      {"ReduceL2", make_reduce},
      {"ReduceSumSquare", make_reduce},
      {"ReduceLogSum", make_reduce},
      {"ReduceLogSumExp", make_reduce},
      {"Reshape", make_reshape},
      {"Flatten", make_flatten},
      {"Squeeze", make_squeeze},
      {"Unsqueeze", make_unsqueeze},
      {"Shape", make_shape},
      {"ConstantOfShape", make_constant_of_shape},
      {"Range", make_range},
      {"Expand", make_expand},
      {"Tile", make_tile},
      {"Concat", make_concat},
      {"Split", make_split},
      {"Slice", make_slice},
      {"Transpose", make_transpose},
      {"Gather", make_gather},
      {"Pad", make_pad},
      {"DepthToSpace", make_depth_to_space},
      {"SpaceToDepth", make_space_to_depth},
      {"Resize", make_resize},
      {"Upsample", make_upsample},
      {"Reciprocal", make_unary},
      {"Floor", make_unary},
      {"Ceil", make_unary},
      {"Round", make_unary},
      {"Sign", make_unary},
      {"CastLike", make_cast},
      {"ArgMax", make_arg_max},
      {"ArgMin", make_arg_min},
      {"Equal", make_compare},
      {"Less", make_compare},
      {"Greater", make_compare},
      {"LessOrEqual", make_compare},
      {"GreaterOrEqual", make_compare},
      {"And", make_compare},
      {"Or", make_compare},
      {"Xor", make_compare},
      {"Not", make_not},
      {"Where", make_where},
      {"Size", make_size},
  };
  return ops;
}
}  // namespace

const OpFactory* find_op(const std::string& op_type) {
  auto it = registry().find(op_type);
  return it == registry().end() ? nullptr : &it->second;
}

std::vector<std::string> registered_ops() {
  std::vector<std::string> names;
  for (auto& kv : registry())
    if (kv.first.rfind("pycnn.", 0) != 0) names.push_back(kv.first);  // not the passes' internal ops
  return names;
}

}  // namespace pycnn
