// The default thread count: CPUs in this process's affinity mask, capped by
// the cgroup CPU quota (containers), as users of other engines ask.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <string>
#include <thread>

#if defined(__linux__)
#include <sched.h>
#endif

#include "pycnn/session.h"

namespace pycnn {
namespace {

int affinity_cpus() {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
  return std::max(1u, std::thread::hardware_concurrency());
}

// CPUs allowed by the cgroup quota, or 0 when there is none.
int cgroup_cpus() {
  std::ifstream v2("/sys/fs/cgroup/cpu.max");
  std::string quota;
  double period = 0;
  if (v2 >> quota >> period) {
    if (quota == "max" || period <= 0) return 0;
    return std::max(1, int(std::ceil(std::stod(quota) / period)));
  }
  std::ifstream q("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), p("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
  double qv = -1, pv = 0;
  if (q >> qv && p >> pv && qv > 0 && pv > 0) return std::max(1, int(std::ceil(qv / pv)));
  return 0;
}

}  // namespace

int default_num_threads() {
  int n = affinity_cpus();
  try {
    const int quota = cgroup_cpus();
    if (quota > 0) n = std::min(n, quota);
  } catch (...) {  // unreadable quota: keep the affinity count
  }
  return n;
}

}  // namespace pycnn
