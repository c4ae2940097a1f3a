// Chooses the kernel table once from CPUID; PYCNN_ISA=scalar|avx2|avx512 forces one.
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "pycnn/errors.h"
#include "pycnn/session.h"

namespace pycnn::kernels {
namespace scalar { extern const KernelTable table; }
#ifdef PYCNN_HAVE_AVX2
namespace avx2 { extern const KernelTable table; }
#endif
#ifdef PYCNN_HAVE_AVX512
namespace avx512 { extern const KernelTable table; }
#endif

const KernelTable& scalar_table() { return scalar::table; }

const KernelTable* avx2_table() {
#ifdef PYCNN_HAVE_AVX2
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &avx2::table;
#endif
  return nullptr;
}

const KernelTable* avx512_table() {
#ifdef PYCNN_HAVE_AVX512
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
    return &avx512::table;
#endif
  return nullptr;
}

namespace {
const KernelTable* find_table(const std::string& name) {
  if (name == "scalar") return &scalar_table();
  if (name == "avx2") return avx2_table();
  if (name == "avx512") return avx512_table();
  return nullptr;
}

const KernelTable* initial_table() {
  if (const char* forced = std::getenv("PYCNN_ISA")) {
    if (*forced) {
      const KernelTable* t = find_table(forced);
      // A bad override must not abort at import: fall back and let set_isa report it.
      if (t) return t;
    }
  }
  if (auto t = avx512_table()) return t;
  if (auto t = avx2_table()) return t;
  return &scalar_table();
}

const KernelTable*& current() {
  static const KernelTable* t = initial_table();
  return t;
}
}  // namespace

const KernelTable& active() { return *current(); }

}  // namespace pycnn::kernels

namespace pycnn {

const char* active_isa() { return kernels::active().isa; }

std::vector<std::string> available_isas() {
  std::vector<std::string> out{"scalar"};
  if (kernels::avx2_table()) out.push_back("avx2");
  if (kernels::avx512_table()) out.push_back("avx512");
  return out;
}

void set_isa(const std::string& name) {
  const kernels::KernelTable* t = kernels::find_table(name);
  if (!t) {
    std::string avail;
    for (auto& s : available_isas()) avail += (avail.empty() ? "" : ", ") + s;
    fail(ErrorCode::InvalidArgument, "ISA '", name, "' is not available on this CPU/build; available: ", avail);
  }
  kernels::current() = t;
}

}  // namespace pycnn
