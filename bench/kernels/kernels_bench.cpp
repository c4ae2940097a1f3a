// Kernel and layer micro-benchmarks (Google Benchmark). Build with
//   cmake -DPYCNN_BUILD_KERNEL_BENCH=ON ... && ./pycnn_kernels_bench
// Every benchmark reports GFLOP/s and its share of the machine's FP32 FMA
// peak, measured on the spot before the benchmarks run (24 independent
// AVX-512 FMA chains on one core; printed as the fma_peak_gflops context).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstring>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "core/parallel.h"
#include "kernels/conv/indirect.h"
#include "kernels/conv/winograd.h"
#include "kernels/gemm.h"
#include "pycnn/graph.h"
#include "pycnn/session.h"

using namespace pycnn;

namespace {

double g_peak_gflops = 0;  // set by BM_fma_peak, which runs first

void report(benchmark::State& state, double flops_per_iter) {
  const double rate = flops_per_iter * double(state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(rate / 1e9, benchmark::Counter::kIsRate);
  if (g_peak_gflops > 0)
    state.counters["peak%"] = benchmark::Counter(rate / 1e9 / g_peak_gflops * 100, benchmark::Counter::kIsRate);
}

// 24 independent FMA chains: the FP32 peak of one core, on the widest
// vectors the CPU has (AVX-512, else AVX2+FMA).
__attribute__((target("avx512f"))) float fma_loop_avx512(long reps) {
  __m512 acc[24];
  for (int i = 0; i < 24; ++i) acc[i] = _mm512_set1_ps(0.001f * float(i));
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-4f);
  for (long r = 0; r < reps; ++r)
#pragma GCC unroll 24
    for (int i = 0; i < 24; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  float s = 0;
  for (int i = 0; i < 24; ++i) s += _mm512_reduce_add_ps(acc[i]);
  return s;
}

__attribute__((target("avx2,fma"))) float fma_loop_avx2(long reps) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(0.001f * float(i));
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-4f);
  for (long r = 0; r < reps; ++r)
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  alignas(32) float lanes[8];
  float s = 0;
  for (int i = 0; i < 12; ++i) {
    _mm256_store_ps(lanes, acc[i]);
    for (float v : lanes) s += v;
  }
  return s;
}

// SGEMM through the packed path (A pre-packed, as weights are; B packed per call).
void BM_sgemm(benchmark::State& state) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  const auto& kt = kernels::active();
  std::vector<float> a(size_t(M * K), 0.5f), b(size_t(K * N), 0.25f), c(size_t(M * N));
  auto pa = aligned_buffer(kernels::packed_a_floats(M, K, kt.gemm_mr) * 4);
  auto pb = aligned_buffer(kernels::packed_b_floats(K, N, kt.gemm_nr) * 4);
  ThreadScope one(1);
  auto work = aligned_buffer(kernels::gemm_work_bytes(kt, M));
  kernels::pack_a(a.data(), K, 1, M, K, kt.gemm_mr, static_cast<float*>(pa.get()));
  for (auto _ : state) {
    kernels::pack_b(b.data(), N, 1, K, N, kt.gemm_nr, static_cast<float*>(pb.get()));
    kernels::gemm_packed(kt, M, N, K, static_cast<float*>(pa.get()), static_cast<float*>(pb.get()), c.data(), N,
                         kernels::Epilogue{}, static_cast<float*>(work.get()));
    benchmark::ClobberMemory();
  }
  report(state, 2.0 * double(M * N * K));
}

// SGEMM on a row-major B (a 1x1 convolution's input) and, with range(3) = 1,
// a row-major A (weights used once: pycnn.functional): the GEMM packs B per
// block, or reads it in place where that pays (reads_b_in_place), and
// reads a row-major A in place.
void BM_sgemm_row_major(benchmark::State& state) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  const bool a_in_place = state.range(3) != 0;
  const auto& kt = kernels::active();
  std::vector<float> a(size_t(M * K), 0.5f), b(size_t(K * N), 0.25f), c(size_t(M * N));
  auto pa = aligned_buffer(kernels::packed_a_floats(M, K, kt.gemm_mr) * 4);
  ThreadScope one(1);
  auto work = aligned_buffer(kernels::gemm_work_bytes(kt, M));
  kernels::pack_a(a.data(), K, 1, M, K, kt.gemm_mr, static_cast<float*>(pa.get()));
  const kernels::GemmA ga = a_in_place ? kernels::GemmA::row_major(a.data(), K)
                                       : kernels::GemmA(static_cast<float*>(pa.get()));
  for (auto _ : state) {
    kernels::gemm(kt, M, N, K, ga, kernels::GemmB(b.data(), N, static_cast<float*>(work.get())), c.data(), N,
                  kernels::Epilogue{});
    benchmark::ClobberMemory();
  }
  report(state, 2.0 * double(M * N * K));
}

// The same with the packed A cold, as weights are in a whole model (each
// layer's weights were last read a run ago): copies of A cycled, 64 MB in
// all, so each call reads its A from memory.
void BM_sgemm_cold_a(benchmark::State& state) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  const auto& kt = kernels::active();
  std::vector<float> a(size_t(M * K), 0.5f), b(size_t(K * N), 0.25f), c(size_t(M * N));
  const size_t a_floats = kernels::packed_a_floats(M, K, kt.gemm_mr);
  const size_t copies = std::max<size_t>(2, (size_t(64) << 20) / (a_floats * 4));
  auto pa = aligned_buffer(a_floats * 4 * copies);
  ThreadScope one(1);
  auto work = aligned_buffer(kernels::gemm_work_bytes(kt, M));
  for (size_t i = 0; i < copies; ++i)
    kernels::pack_a(a.data(), K, 1, M, K, kt.gemm_mr, static_cast<float*>(pa.get()) + i * a_floats);
  size_t i = 0;
  for (auto _ : state) {
    const kernels::GemmA ga(static_cast<float*>(pa.get()) + (i++ % copies) * a_floats);
    kernels::gemm(kt, M, N, K, ga, kernels::GemmB(b.data(), N, static_cast<float*>(work.get())), c.data(), N,
                  kernels::Epilogue{});
    benchmark::ClobberMemory();
  }
  report(state, 2.0 * double(M * N * K));
}

// The same with each B row mapped while packed (x * scale + shift, then
// ReLU): DenseNet's norm-ReLU folded into the 1x1 conv after it.
void BM_sgemm_mapped(benchmark::State& state) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  const auto& kt = kernels::active();
  std::vector<float> a(size_t(M * K), 0.5f), b(size_t(K * N), 0.25f), c(size_t(M * N)), scale(size_t(K), 1.1f),
      shift(size_t(K), -0.2f);
  auto pa = aligned_buffer(kernels::packed_a_floats(M, K, kt.gemm_mr) * 4);
  ThreadScope one(1);
  auto work = aligned_buffer(kernels::gemm_work_bytes(kt, M));
  kernels::pack_a(a.data(), K, 1, M, K, kt.gemm_mr, static_cast<float*>(pa.get()));
  kernels::GemmB gb(b.data(), N, static_cast<float*>(work.get()));
  gb.row_scale = scale.data();
  gb.row_shift = shift.data();
  gb.row_act.kind = kernels::UnaryKind::Relu;
  for (auto _ : state) {
    kernels::gemm(kt, M, N, K, kernels::GemmA(static_cast<float*>(pa.get())), gb, c.data(), N, kernels::Epilogue{});
    benchmark::ClobberMemory();
  }
  report(state, 2.0 * double(M * N * K));
}

// The blocked layout's 1x1 kernel ({K in, M out channels, pixels, SiLU}),
// ReLU6 (MobileNetV2) or SiLU (EfficientNet-B0) in the store, caches hot.
void BM_blocked_pointwise(benchmark::State& state) {
  const int64_t K = state.range(0), M = state.range(1), P = state.range(2);
  const auto& kt = kernels::active();
  const int64_t L = kt.channel_lanes, kb = (K + L - 1) / L, mb = (M + L - 1) / L;
  std::vector<float> x(size_t(kb * P * L), 0.5f), w(size_t(mb * K * L), 0.01f), y(size_t(mb * P * L)),
      bias(size_t(mb * L), 0.f);
  kernels::BlockedPointwise a;
  a.x = x.data();
  a.x_stride = P * L;
  a.K = K;
  a.w = w.data();
  a.bias = bias.data();
  a.act.kind = state.range(3) ? kernels::UnaryKind::SiLU : kernels::UnaryKind::Clip;
  a.act.beta = 6.f;
  a.y = y.data();
  a.y_stride = P * L;
  for (auto _ : state) {
    kt.blocked_pointwise(a, 0, P, 0, mb);
    benchmark::ClobberMemory();
  }
  report(state, 2.0 * double(K * M * P));
}

// One convolution layer through a session (algorithm chosen as in a model).
void conv_layer(benchmark::State& state, bool winograd) {
  const int64_t C = state.range(0), M = state.range(1), H = state.range(2), k = state.range(3), s = state.range(4);
  Graph g;
  g.add_input("x", DType::f32, {Dim{1, ""}, Dim{C, ""}, Dim{H, ""}, Dim{H, ""}}, true);
  Tensor w = Tensor::allocate(DType::f32, Shape{M, C, k, k});
  for (int64_t i = 0; i < w.numel(); ++i) w.ptr<float>()[i] = 0.01f * float(i % 17);
  g.add_constant("w", w);
  Attributes attrs;
  auto ints = [](std::vector<int64_t> v) {
    Attribute a;
    a.kind = Attribute::Ints;
    a.ints = std::move(v);
    return a;
  };
  attrs.items["kernel_shape"] = ints({k, k});
  attrs.items["strides"] = ints({s, s});
  attrs.items["pads"] = ints({k / 2, k / 2, k / 2, k / 2});
  g.add_node("Conv", "conv", "", 17, {"x", "w"}, {"y"}, attrs);
  g.add_output("y");
  SessionOptions o;
  o.num_threads = 1;
  o.enable_winograd = winograd;
  Session sess(g, o);
  Tensor x = Tensor::allocate(DType::f32, Shape{1, C, H, H});
  const int64_t O = (H + 2 * (k / 2) - k) / s + 1;
  for (auto _ : state) benchmark::DoNotOptimize(sess.run({"x"}, {x}, {}));
  report(state, 2.0 * double(M * O * O) * double(C * k * k));
}

// Winograd off: im2col-free (indirect) GEMM, or the depthwise / 1x1 paths.
void BM_conv_gemm(benchmark::State& state) { conv_layer(state, false); }
// The algorithm a session picks (Winograd F(4x4,3x3) or F(2x2,3x3) where it pays).
void BM_conv_auto(benchmark::State& state) { conv_layer(state, true); }

// Measures the peak before anything else so peak% is meaningful.
struct PeakProbe {
  PeakProbe() {
    const long reps = 1 << 22;
    const bool avx512 = __builtin_cpu_supports("avx512f");
    if (!avx512 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) return;  // no peak%
    const auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(avx512 ? fma_loop_avx512(reps) : fma_loop_avx2(reps));
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double flops_per_rep = avx512 ? 2.0 * 16 * 24 : 2.0 * 8 * 12;
    g_peak_gflops = flops_per_rep * double(reps) / secs / 1e9;
  }
};

}  // namespace

// Square SGEMMs and the 1x1-convolution shapes of ResNet-50 (M = out channels, K = in channels, N = pixels).
BENCHMARK(BM_sgemm)->Args({512, 512, 512})->Args({1024, 1024, 1024})
    ->Args({256, 64, 3136})->Args({64, 256, 3136})->Args({512, 256, 784})->Args({128, 512, 784})
    ->Args({1024, 256, 196})->Args({256, 1024, 196})->Args({2048, 512, 49})->Args({512, 2048, 49});
// The same 1x1 shapes and small-M ones of MobileNetV2 and SqueezeNet, B row-major ({M, K, N, A row-major}).
BENCHMARK(BM_sgemm_row_major)->Args({256, 64, 3136, 0})->Args({64, 256, 3136, 0})->Args({1024, 256, 196, 0})
    ->Args({256, 1024, 196, 0})->Args({512, 128, 784, 0})->Args({128, 512, 784, 0})
    ->Args({2048, 512, 49, 0})->Args({2048, 512, 49, 1})->Args({512, 2048, 49, 1})->Args({16, 32, 12544, 0})
    ->Args({16, 128, 3025, 0})->Args({32, 192, 784, 0})->Args({64, 384, 196, 0})->Args({96, 576, 196, 0});
// ResNet-50's 1x1 shapes with the weights cold ({M, K, N}).
BENCHMARK(BM_sgemm_cold_a)->Args({256, 64, 3136})->Args({64, 256, 3136})->Args({1024, 256, 196})
    ->Args({256, 1024, 196})->Args({512, 128, 784})->Args({128, 512, 784})->Args({2048, 512, 49})->Args({512, 2048, 49});
// DenseNet-121's norm-ReLU-mapped 1x1 shapes ({M, K, N}).
BENCHMARK(BM_sgemm_mapped)->Args({128, 256, 3136})->Args({128, 512, 784})->Args({128, 1024, 196});
// {K, M, pixels}: expand at 112x112, projections at 56x56 and 14x14, 7x7 heads;
// ResNet-50's 1x1 shapes, against BM_sgemm_row_major's.
BENCHMARK(BM_blocked_pointwise)->Args({16, 96, 12544, 0})->Args({144, 24, 3136, 0})->Args({576, 96, 196, 0})
    ->Args({320, 1280, 49, 0})->Args({1152, 320, 49, 0})->Args({16, 96, 12544, 1})->Args({40, 240, 784, 1})
    ->Args({112, 672, 196, 1})->Args({64, 256, 3136, 0})->Args({256, 64, 3136, 0})->Args({256, 1024, 196, 0})->Args({128, 512, 784, 0});
// Real layer shapes: {C, M, H, kernel, stride}.
#define LAYERS(B)                                                                                             \
  B->Args({3, 64, 224, 7, 2})->Args({64, 64, 56, 3, 1})->Args({128, 128, 28, 3, 1})->Args({256, 256, 14, 3, 1}) \
      ->Args({512, 512, 7, 3, 1})->Args({128, 128, 56, 3, 2})->Args({64, 256, 56, 1, 1})->Args({128, 32, 56, 3, 1})
LAYERS(BENCHMARK(BM_conv_gemm));
LAYERS(BENCHMARK(BM_conv_auto));

int main(int argc, char** argv) {
  PeakProbe probe;
  benchmark::Initialize(&argc, argv);
  benchmark::AddCustomContext("isa", active_isa());
  benchmark::AddCustomContext("fma_peak_gflops", std::to_string(g_peak_gflops));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
