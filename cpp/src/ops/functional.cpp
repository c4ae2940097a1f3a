#include "pycnn/functional.h"

#include <map>

#include "core/parallel.h"
#include "kernels/kernels.h"
#include "ops/common.h"
#include "pycnn/errors.h"

namespace pycnn::functional {

void activation(const std::string& kind, const float* x, float* y, int64_t n, float alpha, float beta, int threads) {
  using kernels::UnaryKind;
  static const std::map<std::string, UnaryKind> kinds = {
      {"relu", UnaryKind::Relu},         {"leaky_relu", UnaryKind::LeakyRelu}, {"elu", UnaryKind::Elu},
      {"selu", UnaryKind::Selu},         {"sigmoid", UnaryKind::Sigmoid},      {"hard_sigmoid", UnaryKind::HardSigmoid},
      {"hardswish", UnaryKind::HardSwish}, {"silu", UnaryKind::SiLU},          {"tanh", UnaryKind::Tanh},
      {"softplus", UnaryKind::Softplus}, {"softsign", UnaryKind::Softsign},    {"gelu", UnaryKind::GeluErf},
      {"gelu_tanh", UnaryKind::GeluTanh}, {"clip", UnaryKind::Clip}};
  auto it = kinds.find(kind);
  if (it == kinds.end()) fail(ErrorCode::InvalidArgument, "unknown activation '", kind, "'");
  const kernels::Activation act{it->second, alpha, beta};
  const auto& kt = kernels::active();
  ThreadScope scope(threads);
  parallel_elements(n, [&](int64_t b, int64_t e) { kt.unary(act, x + b, y + b, e - b); });
}

}  // namespace pycnn::functional
