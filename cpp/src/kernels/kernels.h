// Kernel table: every ISA-specific compute routine, filled once per ISA.
// Kernels are pure compute on raw pointers and sizes; they know nothing of
// graphs, and they run on one thread (ops split work across threads).
#pragma once
#include <cmath>
#include <cstdint>

namespace pycnn::kernels {

enum class UnaryKind {
  Identity, Relu, LeakyRelu, Clip, Elu, Selu, Sigmoid, HardSigmoid, HardSwish, SiLU, Tanh,
  Softplus, Softsign, Erf, GeluErf, GeluTanh, Sqrt, Exp, Log, Neg, Abs, Reciprocal, Floor, Ceil, Round, Sign,
};

// An element-wise function with up to two parameters (alpha, beta / min, max).
struct Activation {
  UnaryKind kind = UnaryKind::Identity;
  float alpha = 0.f, beta = 0.f;
  bool is_identity() const { return kind == UnaryKind::Identity; }
  // ReLU and ReLU6 (Clip) are a clamp to [clamp_lo(), clamp_hi()], which
  // kernels fuse into their stores.
  bool is_clamp() const { return kind == UnaryKind::Relu || kind == UnaryKind::Clip; }
  float clamp_lo() const { return kind == UnaryKind::Relu ? 0.f : alpha; }
  float clamp_hi() const { return kind == UnaryKind::Relu ? HUGE_VALF : beta; }
};

enum class BinaryKind { Add, Sub, Mul, Div, Pow, Max, Min, PRelu };

// 2-D pooling / depthwise geometry for one channel plane.
struct Window2D {
  int64_t ih, iw, oh, ow;      // input and output plane sizes
  int64_t kh, kw;              // kernel
  int64_t sh, sw;              // strides
  int64_t ph, pw;              // leading pads (top, left)
  int64_t dh, dw;              // dilations
};

// How the GEMM micro-kernel stores its tile: optionally adding what C holds,
// a bias per row (row_bias[r] for tile row r), a residual tile, then clamping
// to [lo, hi].
struct GemmStore {
  bool accumulate = false;
  // 0: A is a packed panel (k-major). Otherwise A is `rows` rows of
  // row-major weights this many floats apart, read in place: nothing to
  // pack when weights serve one call.
  int64_t a_ld = 0;
  // 0: B is a packed panel (NR floats a step). Otherwise B's rows are this
  // many floats apart, read in place (a small-M GEMM: packing B would cost
  // as much as the few rows that use it).
  int64_t b_ld = 0;
  const float* row_bias = nullptr;
  const float* residual = nullptr;  // added after the bias: rows of residual_ld floats, like C's tile
  int64_t residual_ld = 0;
  bool clamp = false;
  float lo = 0.f, hi = 0.f;
  // The A panel slice the next call will read, fetched into L2 while this
  // call computes: weights mostly stream from DRAM.
  const float* next_a = nullptr;
};

// The blocked layout (NCHWc, c = KernelTable::channel_lanes): C channels of
// an image are ceil(C / c) blocks, each a [H][W][c] plane of pixels of c
// channels, so one vector holds one pixel's channels. Lanes past C are
// padding: they hold finite values, and no kernel reads them as data.
//
// One blocked 1x1 convolution: y = act(W x + bias + residual), a GEMM with
// pixels as rows and input channels as K.
struct BlockedPointwise {
  const float* x = nullptr;      // input blocks, x_stride floats apart
  int64_t x_stride = 0;
  int64_t K = 0;                 // input channels
  const float* w = nullptr;      // [output block][K][c]
  const float* bias = nullptr;   // [output blocks * c], or null
  const float* residual = nullptr;  // laid out like y, or null
  Activation act;
  float* y = nullptr;            // output blocks, y_stride floats apart
  int64_t y_stride = 0;
  // Images taken together, x_image and y_image (the residual's too) floats
  // apart: small maps at batch > 1, so each weight slice is read once for
  // every image rather than once an image.
  int64_t images = 1, x_image = 0, y_image = 0;
};

// One blocked convolution with any window and one group (a direct
// convolution): y = act(conv(x) + bias + residual), x and y blocked.
struct BlockedConv {
  const float* x = nullptr;  // the image's input
  int64_t x_block = 0, x_row = 0;  // floats between blocks, between rows
  int64_t C = 0;             // input channels
  Window2D g{};
  const float* w = nullptr;  // [output block][input block][kh][kw][c in][c out]
  const float* bias = nullptr;      // [output blocks * c], or null
  const float* residual = nullptr;  // laid out like y, or null
  Activation act;
  float* y = nullptr;        // the image's output blocks, oh * ow * c floats apart
};

// A convolution reading a plain (NCHW) input, the stem: the op copies a band
// of input rows, zero-padded, to `band` ([C][band rows][width]), so every
// tap of every output pixel is in it. Output pixel ow of a row whose window
// starts at `top` reads top[ow * sw + offsets[k]] for its K = C x kh x kw
// taps (k = (c * kh + i) * kw + j, the weights' order).
struct BlockedPlainConv {
  int64_t K = 0, sw = 1, ow = 0;
  const int64_t* offsets = nullptr;
  const float* w = nullptr;         // [output block][K][c out]
  const float* bias = nullptr;      // [output blocks * c], or null
  const float* residual = nullptr;  // laid out like y, or null
  Activation act;
  float* y = nullptr;               // the image's output blocks, y_plane floats apart
  int64_t y_plane = 0;
};

// A run of B columns the GEMM packs (gemm.cpp): `len` floats from column
// `from` of a B row to offset `to` of that row's slice of the packed block.
struct PackRun {
  int64_t from, to;
  int len;
};


struct KernelTable {
  const char* isa;
  // GEMM micro-kernel: C[rows x nr] (+)= A_panel[k x mr]^T * B_panel[k x nr]
  // for rows <= mr (only those rows of C are written); both panels packed.
  int gemm_mr, gemm_nr;
  void (*gemm_ukernel)(int rows, int64_t k, const float* a_panel, const float* b_panel, float* c, int64_t ldc,
                       const GemmStore& store);
  // The same for the panel's first nr / 2 columns only (a last panel that
  // narrow: N = 196 leaves 4 columns, which cost a whole panel's FMAs);
  // b_panel may start half a panel in (its rows still nr floats apart), so
  // a last panel of 30 columns costs two halves, not a panel.
  void (*gemm_ukernel_half)(int rows, int64_t k, const float* a_panel, const float* b_panel, float* c, int64_t ldc,
                            const GemmStore& store);
  // The same for the panel's first cols <= 4 columns, rows
  // across a vector (a 7x7 map's N = 49 leaves one column); A packed
  // (store.a_ld 0), B a packed panel (store.b_ld 0).
  void (*gemm_ukernel_narrow)(int rows, int cols, int64_t k, const float* a_panel, const float* b_panel, float* c,
                              int64_t ldc, const GemmStore& store);
  // The half panel and then extra <= 4 columns as the narrow kernel lays
  // them out, in one pass over A (N = 49: 32 + 17); A and B packed.
  void (*gemm_ukernel_half_narrow)(int rows, int extra, int64_t k, const float* a_panel, const float* b_panel,
                                   float* c, int64_t ldc, const GemmStore& store);
  // Up to this many columns the narrow kernel beats the half panel. AVX2
  // (half panel 8 columns), M = 2048, K = 512: N = 49 1.33 -> 1.21 ms, N = 50
  // 1.32 -> 1.26, at 3 and 4 columns the half panel faster: 2. AVX-512 (16
  // columns): 4, N = 196 237 -> 253 GFLOP/s (M = 1024, K = 256).
  int gemm_narrow_cols;
  // Packs kc B rows into a block: row k (rows[k] if rows, else base + k * ld)
  // into dst + k * nr, run by run; with `map`, each value becomes
  // clamp(x * scale[k] + shift[k], lo, hi) (scale 1 / shift 0 where null).
  void (*gemm_pack_rows)(const float* const* rows, const float* base, int64_t ld, int64_t kc, const PackRun* runs,
                         int nruns, int64_t nr, bool map, const float* scale, const float* shift, float lo, float hi,
                         float* dst);
  // y[m] = A(m, :) . x for A packed in panels of gemm_mr rows (a GEMM with
  // one column: squeeze-and-excitation convolutions on 1x1 maps).
  void (*gemv)(int64_t M, int64_t K, const float* a_packed, const float* x, float* y);
  void (*unary)(const Activation& act, const float* x, float* y, int64_t n);
  // Sum of n floats (in 16 partial sums, so it vectorizes).
  double (*sum)(const float* x, int64_t n);
  // y[i] = a[i*sa] op b[i*sb]; sa/sb are 0 (broadcast scalar) or 1.
  void (*binary)(BinaryKind op, const float* a, int64_t sa, const float* b, int64_t sb, float* y,
                 int64_t n);
  // y[i] = act(y[i] + bias): the epilogue of convolutions and GEMMs.
  void (*bias_act)(float* y, int64_t n, float bias, const Activation& act);
  // One channel of a depthwise convolution: y = act(conv + bias + residual)
  // (residual null or laid out like y); `work` holds depthwise_work_floats(g) floats.
  void (*depthwise2d)(const Window2D& g, const float* x, const float* w, float bias, const float* residual,
                      const Activation& act, float* y, float* work);
  // Depthwise convolution of `channels` <= channel_lanes channels at once,
  // vectorized across channels (fast on small planes): channel c reads plane
  // x + c * ih * iw, taps w + c * kh * kw and bias[c] (bias may be null), and
  // writes y + c * oh * ow = act(conv + bias + residual) (residual may be
  // null; laid out like y). `work` holds channel_windows_work_floats(g) floats.
  int channel_lanes;  // channels the *_channels kernels take at once (the vector width)
  void (*depthwise2d_channels)(const Window2D& g, int channels, const float* x, const float* w, const float* bias,
                               const float* residual, const Activation& act, float* y, float* work);
  void (*maxpool2d)(const Window2D& g, const float* x, float* y);
  // Max pooling of `channels` <= channel_lanes planes at once (x and y
  // planes contiguous), vectorized across channels; `work` holds
  // channel_windows_work_floats(g) floats.
  void (*maxpool2d_channels)(const Window2D& g, int channels, const float* x, float* y, float* work);
  // Winograd F(tile x tile, 3x3), tile 4 or 2, on one plane of th x tw
  // tiles (tile t = ty * tw + tx). Input: a padded plane (row length wp, tile
  // (ty, tx) at row tile*ty, col tile*tx) -> V[xi * v_stride + t] for the
  // (tile+2)^2 transformed values xi. Output: M[xi * m_stride + t] -> the
  // tile x tile outputs + bias, into y (oh x ow; tiles past the edge are
  // cut). `tmp` holds winograd_tmp_floats(th * tw); xpad is readable
  // kWinogradPlaneSlack floats past its end.
  void (*winograd_input)(int tile, const float* xpad, int64_t wp, int64_t th, int64_t tw, float* v,
                         int64_t v_stride, float* tmp);
  void (*winograd_output)(int tile, const float* m, int64_t m_stride, int64_t th, int64_t tw, float bias, float* y,
                          int64_t oh, int64_t ow, float* tmp);
  // even[i] = x[2i], odd[i] = x[2i + 1] for i < n.
  void (*split_even_odd)(const float* x, int64_t n, float* even, float* odd);
  void (*avgpool2d)(const Window2D& g, const float* x, float* y, bool count_include_pad,
                    int64_t pad_end_h, int64_t pad_end_w);
  // Blocked layout (see BlockedPointwise). Pixels [p0, p1) of output blocks
  // [b0, b1) of a 1x1 convolution.
  void (*blocked_pointwise)(const BlockedPointwise& a, int64_t p0, int64_t p1, int64_t b0, int64_t b1);
  int blocked_tile_pixels;  // pixels in one tile of blocked_pointwise
  // Output rows [oh0, oh1) of one block of a depthwise convolution (kh <= 64): x a
  // [ih][iw][c] plane, w its [kh * kw][c] taps, bias c floats (or null), y
  // and residual (or null) [oh][ow][c] planes; y = act(conv + bias + residual).
  // Output row oh of output blocks [b0, b1) of a direct convolution (kh <= 64).
  void (*blocked_conv)(const BlockedConv& a, int64_t oh, int64_t b0, int64_t b1);
  // Output row oh of output blocks [b0, b1), its window's first row at top.
  void (*blocked_conv_plain)(const BlockedPlainConv& a, const float* top, int64_t oh, int64_t b0, int64_t b1);
  void (*blocked_depthwise)(const Window2D& g, const float* x, const float* w, const float* bias,
                            const float* residual, const Activation& act, float* y, int64_t oh0, int64_t oh1);
  // One block between layouts: `channels` <= c planes of `pixels` floats
  // (contiguous) <-> a [pixels][c] block (lanes past `channels` zero).
  void (*to_blocked)(const float* x, int channels, int64_t pixels, float* y);
  void (*from_blocked)(const float* x, int channels, int64_t pixels, float* y);
  // sum[l] = the sum over a block's `pixels` pixels of lane l (c floats).
  void (*blocked_sum)(const float* x, int64_t pixels, float* sum);
};

// Scratch of winograd_input / winograd_output for `tiles` tiles: tile-major
// arrays, a row of winograd_tmp_ld floats per transformed value (36 rows
// cover both tile sizes), padded past the last tile by a vector (the gather
// stores whole vectors).
inline int64_t winograd_tmp_ld(int64_t tiles) { return (tiles + 15) / 16 * 16 + 16; }
inline int64_t winograd_tmp_floats(int64_t tiles) { return 36 * winograd_tmp_ld(tiles) + 64; }
// winograd_input reads whole vectors: its padded plane must be readable this
// many floats past its end.
constexpr int64_t kWinogradPlaneSlack = 128;

// The padded plane depthwise2d_channels and maxpool2d_channels interleave
// (its pixels); they take planes up to kMaxChannelWindowPixels: beyond, their
// work area (VW planes) grows large and plane-by-plane kernels are as fast.
inline int64_t channel_window_pixels(const Window2D& g) {
  return ((g.oh - 1) * g.sh + (g.kh - 1) * g.dh + 1) * ((g.ow - 1) * g.sw + (g.kw - 1) * g.dw + 1);
}
constexpr int64_t kMaxChannelWindowPixels = 130 * 130;
// The windows maxpool2d's stride-2 path takes: 2x2 or 3x3, stride 2, no dilation.
inline bool stride2_pool_window(const Window2D& g) {
  return g.sh == 2 && g.sw == 2 && g.dh == 1 && g.dw == 1 && g.kh == g.kw && (g.kw == 2 || g.kw == 3);
}

// Scratch floats one depthwise2d_channels or maxpool2d_channels call needs,
// at the widest vector (16 lanes): the interleaved padded planes, outputs,
// taps and biases.
inline int64_t channel_windows_work_floats(const Window2D& g) {
  return 16 * (channel_window_pixels(g) + g.oh * g.ow + g.kh * g.kw + 1) + 64;
}

// Scratch floats one depthwise2d call needs (the padded plane(s) and the output grid).
int64_t depthwise_work_floats(const Window2D& g);

const KernelTable& active();      // the table for the active ISA
const KernelTable& scalar_table();
const KernelTable* avx2_table();   // null when not compiled in
const KernelTable* avx512_table(); // null when not compiled in

}  // namespace pycnn::kernels
