// Session: create (validate every node, optimize, build ops and pre-pack
// weights) -> plan per input shape (shape inference, known-value evaluation,
// memory plan; cached) -> run (bind inputs, call ops on planned memory).
#include "pycnn/session.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <set>

#include "core/parallel.h"
#include "graph/passes/passes.h"
#include "ops/op.h"
#include "runtime/concat_in_place.h"
#include "runtime/image_by_image.h"
#include "runtime/memory_planner.h"

namespace pycnn {
namespace {

constexpr size_t kMaxCachedPlans = 8;

struct Step {
  Op* op = nullptr;
  int node = -1;
  std::vector<Tensor> in, out;  // batch shapes; data: where image 0's data starts
  // Steps of the image pass (runtime/image_by_image.h) call the op on these:
  // one image's shapes, the data of image i on pass thread t at
  // i * per_image + t * per_thread bytes further on.
  struct ImageView {
    size_t per_image = 0;   // 0: a weight, or a value living within one image's pass
    size_t per_thread = 0;  // the pass arena's size for such a value, else 0
  };
  std::vector<ImageView> in_view, out_view;
  std::vector<std::vector<Tensor>> in_image, out_image;  // one image's tensors, a copy per pass thread
  // Profiling accumulators (touched only while profiling is on).
  int64_t total_ns = 0, runs = 0, last_start_ns = 0, last_ns = 0;
};

// Where a graph input's data pointer must be written before each run.
struct InputUse {
  int step, slot;
};

struct Plan {
  std::vector<Step> steps;
  int image_steps = 0;   // the leading steps run once per image
  int64_t images = 1;    // ... this many times
  int pass_threads = 1;  // threads taking the pass's images side by side, each image on one
  size_t pass_scratch_stride = 0;  // bytes between pass threads' scratch
  std::shared_ptr<void> arena;
  void* scratch = nullptr;
  std::vector<Tensor> values;                    // every value: planned view, input view or known value
  std::vector<char> known;                       // value computed at plan time
  std::map<int, std::vector<InputUse>> input_uses;  // graph input value -> reads
};

}  // namespace

// Runs a step of the image pass on image `image`, as pass thread `thread`
// (its own copy of the image's tensors and scratch).
void run_image_step(Step& st, int64_t image, int thread, void* scratch) {
  const auto at = [&](const Tensor& t, const Step::ImageView& v) {
    return t.data ? static_cast<char*>(t.data) + size_t(image) * v.per_image + size_t(thread) * v.per_thread : nullptr;
  };
  std::vector<Tensor>&in = st.in_image[size_t(thread)], &out = st.out_image[size_t(thread)];
  for (size_t k = 0; k < st.in.size(); ++k) in[k].data = at(st.in[k], st.in_view[k]);
  for (size_t k = 0; k < st.out.size(); ++k) out[k].data = at(st.out[k], st.out_view[k]);
  st.op->run(in, out, scratch);
}

struct Session::Impl {
  Graph graph;
  SessionOptions options;
  int threads = 1;
  std::vector<std::unique_ptr<Op>> ops;  // one per node
  std::vector<char> keyed_input;         // per graph input: its values are part of the plan key
  std::list<std::pair<std::string, std::unique_ptr<Plan>>> plans;  // most recent first
  mutable std::mutex mutex;
  bool profiling = false;

  void create_ops();
  void find_keyed_inputs();
  std::unique_ptr<Plan> make_plan(const std::vector<const Tensor*>& feeds);
  Plan& plan_for(const std::vector<const Tensor*>& feeds);
  std::string where(int node) const {
    const Node& n = graph.nodes[size_t(node)];
    return "node '" + n.name + "' (" + n.op_type + ")";
  }
};

void Session::Impl::create_ops() {
  std::vector<NodeIssue> issues;
  const auto readers = graph.consumers();
  for (const Node& n : graph.nodes) {
    const OpFactory* make = find_op(n.op_type);
    if (!make || (!n.domain.empty() && n.domain != "ai.onnx")) {
      issues.push_back({n.name, n.op_type, n.domain.empty() || n.domain == "ai.onnx"
                                               ? "operator not implemented"
                                               : "operator domain '" + n.domain + "' not supported", n.opset});
      ops.emplace_back();
      continue;
    }
    try {
      ops.push_back((*make)(OpContext{n, graph}));
      // Weights the op packed for itself: free the graph's data right away
      // (keeping shape and dtype), so loading holds one copy at a time.
      for (size_t k = 0; k < n.inputs.size(); ++k) {
        const int v = n.inputs[k];
        if (v < 0 || !ops.back()->keeps_copy_of(k) || readers[size_t(v)].size() != 1 || graph.is_graph_output(v)) continue;
        auto& c = graph.values[size_t(v)].constant;
        if (c) c = Tensor(c->dtype, c->shape, nullptr);
      }
    } catch (const Error& e) {
      // Op messages start with "node 'name' (op): "; the list already says that.
      std::string reason = e.what();
      const std::string prefix = "node '" + n.name + "' (" + n.op_type + "): ";
      if (reason.rfind(prefix, 0) == 0) reason = reason.substr(prefix.size());
      issues.push_back({n.name, n.op_type, reason, n.opset});
      ops.emplace_back();
    }
  }
  if (issues.empty()) return;
  std::string msg = std::to_string(issues.size()) + " node(s) cannot run in pycnn:";
  for (auto& i : issues)
    msg += "\n  - node '" + i.node_name + "' op_type=" + i.op_type + " opset=" + std::to_string(i.opset) + ": " + i.reason;
  throw Error(ErrorCode::Unsupported, msg);
}

// Graph inputs whose values (not only shapes) decide output shapes, through
// any chain of nodes, e.g. a Reshape's shape fed as an input.
void Session::Impl::find_keyed_inputs() {
  std::vector<int> producer(graph.values.size(), -1);
  for (size_t i = 0; i < graph.nodes.size(); ++i)
    for (int v : graph.nodes[i].outputs)
      if (v >= 0) producer[size_t(v)] = int(i);
  std::vector<char> needed(graph.values.size(), 0);
  std::vector<int> work;
  for (size_t i = 0; i < graph.nodes.size(); ++i)
    for (int k : ops[i]->value_inputs())
      if (size_t(k) < graph.nodes[i].inputs.size() && graph.nodes[i].inputs[size_t(k)] >= 0) work.push_back(graph.nodes[i].inputs[size_t(k)]);
  while (!work.empty()) {
    const int v = work.back();
    work.pop_back();
    if (needed[size_t(v)]) continue;
    needed[size_t(v)] = 1;
    const int p = producer[size_t(v)];
    if (p < 0 || ops[size_t(p)]->shape_only()) continue;
    for (int u : graph.nodes[size_t(p)].inputs)
      if (u >= 0) work.push_back(u);
  }
  keyed_input.assign(graph.inputs.size(), 0);
  for (size_t i = 0; i < graph.inputs.size(); ++i) keyed_input[i] = needed[size_t(graph.inputs[i].value)];
}

std::unique_ptr<Plan> Session::Impl::make_plan(const std::vector<const Tensor*>& feeds) {
  auto plan = std::make_unique<Plan>();
  const size_t nv = graph.values.size();
  plan->values.assign(nv, Tensor());
  plan->known.assign(nv, 0);
  std::vector<char> is_input(nv, 0);
  for (size_t v = 0; v < nv; ++v)
    if (graph.values[v].constant) {
      plan->values[v] = *graph.values[v].constant;
      // A constant whose data an op took over (packed) keeps its shape, but no
      // node may be evaluated from it at plan time.
      const bool released = !plan->values[v].data && plan->values[v].numel() > 0;
      plan->known[v] = !released;
    }
  for (size_t i = 0; i < graph.inputs.size(); ++i) {
    const int v = graph.inputs[i].value;
    const Tensor& f = *feeds[i];
    plan->values[size_t(v)] = Tensor(f.dtype, f.shape, nullptr);
    is_input[size_t(v)] = 1;
    if (keyed_input[i]) {
      plan->values[size_t(v)] = f.clone();
      plan->known[size_t(v)] = 1;
    }
  }
  // Shape inference, evaluating nodes whose inputs are all known.
  struct Pending { int node; std::vector<TensorInfo> in; };
  std::vector<Pending> runtime_nodes;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& n = graph.nodes[i];
    Op& op = *ops[i];
    std::vector<TensorInfo> in;
    bool all_known = true;
    for (int v : n.inputs) {
      if (v < 0) {
        in.push_back(TensorInfo{DType::f32, {}, nullptr, false});
        continue;
      }
      const Tensor& t = plan->values[size_t(v)];
      in.push_back(TensorInfo{t.dtype, t.shape, plan->known[size_t(v)] ? &t : nullptr, true});
      all_known = all_known && plan->known[size_t(v)];
    }
    const std::vector<TensorInfo> out = op.infer(in);
    PYCNN_CHECK(out.size() >= std::count_if(n.outputs.begin(), n.outputs.end(), [](int v) { return v >= 0; }) ||
                    out.size() >= n.outputs.size(),
                ErrorCode::InvalidModel, where(int(i)), ": has ", n.outputs.size(), " outputs, the op produces ", out.size());
    if (all_known || op.shape_only()) {
      std::vector<Tensor> ins, outs;
      for (size_t k = 0; k < n.inputs.size(); ++k)
        ins.push_back(n.inputs[k] < 0 ? Tensor() : plan->values[size_t(n.inputs[k])]);
      for (size_t k = 0; k < n.outputs.size(); ++k)
        outs.push_back(n.outputs[k] < 0 || k >= out.size() ? Tensor() : Tensor::allocate(out[k].dtype, out[k].shape));
      auto tmp = aligned_buffer(op.scratch_bytes(in));
      op.run(ins, outs, tmp.get());
      for (size_t k = 0; k < n.outputs.size(); ++k)
        if (n.outputs[k] >= 0 && k < out.size()) {
          plan->values[size_t(n.outputs[k])] = outs[k];
          plan->known[size_t(n.outputs[k])] = 1;
        }
      continue;
    }
    for (size_t k = 0; k < n.outputs.size() && k < out.size(); ++k)
      if (n.outputs[k] >= 0) {
        plan->values[size_t(n.outputs[k])] = Tensor(out[k].dtype, out[k].shape, nullptr);
      }
    runtime_nodes.push_back(Pending{int(i), std::move(in)});
  }
  // Lifetimes of the values computed at run time: [step that makes it,
  // last step that reads it] (graph outputs live to the end).
  const int end = int(runtime_nodes.size());
  std::vector<int> first(nv, -1), last(nv, -1), step_nodes;
  std::vector<char> produced(nv, 0);
  for (int s = 0; s < end; ++s) {
    const Node& n = graph.nodes[size_t(runtime_nodes[size_t(s)].node)];
    step_nodes.push_back(runtime_nodes[size_t(s)].node);
    for (int v : n.outputs)
      if (v >= 0 && !plan->known[size_t(v)]) {
        first[size_t(v)] = s;
        last[size_t(v)] = graph.is_graph_output(v) ? end : s;
        produced[size_t(v)] = 1;
      }
    for (int v : n.inputs)
      if (v >= 0 && produced[size_t(v)]) last[size_t(v)] = std::max(last[size_t(v)], s);
  }
  // Image by image (image_by_image.h): the leading steps whose ops take one
  // image's shapes too. A value made in that pass holds one image
  // (`image_shape`) unless it crosses out of the pass: then it holds the
  // batch, written an image at a time, so it lives from the pass's start.
  std::vector<char> runtime(nv, 0);
  for (size_t v = 0; v < nv; ++v) runtime[v] = produced[v] || (is_input[v] && !plan->known[v]);
  std::vector<std::vector<TensorInfo>> image_in;  // per step of the pass: its inputs for one image
  const auto takes_one_image = [&](int s) {
    const Pending& p = runtime_nodes[size_t(s)];
    const Node& n = graph.nodes[size_t(p.node)];
    std::vector<TensorInfo> in = p.in;
    for (size_t k = 0; k < n.inputs.size(); ++k)
      if (n.inputs[k] >= 0 && runtime[size_t(n.inputs[k])]) in[k].shape = one_image(in[k].shape);
    try {
      const std::vector<TensorInfo> out = ops[size_t(p.node)]->infer(in);
      for (size_t k = 0; k < n.outputs.size(); ++k) {
        const int v = n.outputs[k];
        if (v >= 0 && (k >= out.size() || out[k].dtype != plan->values[size_t(v)].dtype ||
                       out[k].shape != one_image(plan->values[size_t(v)].shape)))
          return false;
      }
    } catch (const Error&) {
      return false;
    }
    image_in.push_back(std::move(in));
    return true;
  };
  ImagePass pass;
  if (options.enable_image_by_image) pass = plan_image_pass(graph, step_nodes, plan->values, runtime, takes_one_image);
  pass.made.resize(nv, 0);
  pass.crosses.resize(nv, 0);
  std::vector<Tensor> image_shape = plan->values;  // what the pass holds (and the concat placement sees)
  for (size_t v = 0; v < nv; ++v) {
    if (!pass.made[v]) continue;
    if (pass.crosses[v]) first[v] = 0;
    else image_shape[v].shape = one_image(image_shape[v].shape);
  }
  // Where the batch splits evenly, the threads take its images side by side
  // (no fork per step; each image's maps stay in its thread's L2), each
  // with its own copy of the pass's one-image values and scratch.
  const int threads = current_num_threads();
  const int pass_threads = pass.steps > 0 && threads > 1 && pass.images >= threads &&
                                   (pass.images % threads == 0 || pass.images >= 4 * threads)
                               ? threads : 1;
  size_t scratch = 0, pass_scratch = 0;
  {
    ThreadScope one_thread_each(pass_threads > 1 ? 1 : threads);
    for (int s = 0; s < pass.steps; ++s)
      pass_scratch = std::max(pass_scratch, ops[size_t(step_nodes[size_t(s)])]->scratch_bytes(image_in[size_t(s)]));
  }
  pass_scratch = (pass_scratch + 63) / 64 * 64;
  // Asked once per step, for the shapes it runs on (a pass step's batch
  // shapes could prepare weights, e.g. another Winograd tile, it never uses).
  for (int s = pass.steps; s < end; ++s)
    scratch = std::max(scratch, ops[size_t(step_nodes[size_t(s)])]->scratch_bytes(runtime_nodes[size_t(s)].in));
  scratch = std::max(scratch, pass_scratch * size_t(pass_threads));
  // One buffer per value, except those living inside a Concat's output
  // (concat_in_place.h): that buffer spans their lifetimes too. A value
  // crossing out of the image pass keeps a buffer of its own: later steps
  // read it as one batch, not as slices strided through a Concat's output.
  const std::vector<ValueHome> home = place_concat_inputs(graph, step_nodes, image_shape, produced, pass.crosses);
  // The values living within one image's pass get an arena of their own
  // (a copy per pass thread) after the main one.
  const auto in_pass_arena = [&](size_t v) { return pass.made[v] && !pass.crosses[v]; };
  std::vector<int> buffer_of(nv, -1);
  std::vector<BufferLifetime> buffers[2];  // main arena, pass arena
  for (size_t v = 0; v < nv; ++v)
    if (produced[v] && home[v].root < 0) {
      auto& list = buffers[in_pass_arena(v)];
      buffer_of[v] = int(list.size());
      list.push_back(BufferLifetime{first[v], last[v], image_shape[v].nbytes()});
    }
  for (size_t v = 0; v < nv; ++v)
    if (produced[v] && home[v].root >= 0) {
      const size_t r = size_t(home[v].root);
      BufferLifetime& b = buffers[in_pass_arena(r)][size_t(buffer_of[r])];
      b.first = std::min(b.first, first[v]);
      b.last = std::max(b.last, last[v]);
    }
  const size_t main_bytes = (plan_memory(buffers[0]) + 63) / 64 * 64;
  const size_t pass_bytes = (plan_memory(buffers[1]) + 63) / 64 * 64;
  plan->arena = aligned_buffer(main_bytes + pass_bytes * size_t(pass_threads) + scratch + 64, true, /*huge_pages=*/true);
  char* const base[2] = {static_cast<char*>(plan->arena.get()), static_cast<char*>(plan->arena.get()) + main_bytes};
  plan->scratch = base[1] + pass_bytes * size_t(pass_threads);
  // Where image i (on pass thread t) of each value lies in the pass.
  std::vector<Step::ImageView> view(nv);
  for (size_t v = 0; v < nv; ++v) {
    if (!produced[v]) continue;
    const bool own = home[v].root < 0;
    const size_t root = own ? v : size_t(home[v].root);
    const bool in_pass = in_pass_arena(root);
    plan->values[v].data = base[in_pass] + buffers[in_pass][size_t(buffer_of[root])].offset + (own ? 0 : home[v].offset);
    if (pass.crosses[root]) view[v].per_image = image_shape[root].nbytes() / size_t(pass.images);
    if (in_pass) view[v].per_thread = pass_bytes;
  }
  for (size_t v = 0; v < nv; ++v)
    if (is_input[v] && runtime[v]) view[v].per_image = plan->values[v].nbytes() / size_t(pass.images);
  plan->image_steps = pass.steps;
  plan->images = pass.images;
  plan->pass_threads = pass_threads;
  plan->pass_scratch_stride = pass_scratch;
  // Steps with their tensors bound; graph inputs are re-bound on each run.
  for (int s = 0; s < end; ++s) {
    const int ni = runtime_nodes[size_t(s)].node;
    const Node& n = graph.nodes[size_t(ni)];
    Step st;
    st.op = ops[size_t(ni)].get();
    st.node = ni;
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      const int v = n.inputs[k];
      st.in.push_back(v < 0 ? Tensor() : plan->values[size_t(v)]);
      if (v >= 0 && is_input[size_t(v)] && !plan->known[size_t(v)]) plan->input_uses[v].push_back(InputUse{s, int(k)});
    }
    for (int v : n.outputs) st.out.push_back(v < 0 ? Tensor() : plan->values[size_t(v)]);
    if (s < pass.steps) {
      std::vector<Tensor> in = st.in, out = st.out;
      for (size_t k = 0; k < n.inputs.size(); ++k) {
        const int v = n.inputs[k];
        st.in_view.push_back(v < 0 ? Step::ImageView() : view[size_t(v)]);
        if (v >= 0 && runtime[size_t(v)]) in[k].shape = one_image(in[k].shape);
      }
      for (size_t k = 0; k < n.outputs.size(); ++k) {
        const int v = n.outputs[k];
        st.out_view.push_back(v < 0 ? Step::ImageView() : view[size_t(v)]);
        if (v >= 0) out[k].shape = one_image(out[k].shape);
      }
      st.in_image.assign(size_t(pass_threads), in);
      st.out_image.assign(size_t(pass_threads), out);
    }
    plan->steps.push_back(std::move(st));
  }
  return plan;
}

Plan& Session::Impl::plan_for(const std::vector<const Tensor*>& feeds) {
  std::string key;
  for (size_t i = 0; i < feeds.size(); ++i) {
    const Tensor& f = *feeds[i];
    key.append(reinterpret_cast<const char*>(f.shape.data()), f.shape.size() * sizeof(int64_t));
    key.push_back('|');
    if (keyed_input[i]) key.append(static_cast<const char*>(f.data), f.nbytes());
    key.push_back(';');
  }
  for (auto it = plans.begin(); it != plans.end(); ++it)
    if (it->first == key) {
      plans.splice(plans.begin(), plans, it);
      return *plans.front().second;
    }
  auto plan = make_plan(feeds);
  plans.emplace_front(key, std::move(plan));
  if (plans.size() > kMaxCachedPlans) plans.pop_back();
  return *plans.front().second;
}

Session::Session(Graph graph, const SessionOptions& options) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.options = options;
  PYCNN_CHECK(options.num_threads >= 0, ErrorCode::InvalidArgument, "num_threads must be >= 0 (0 = default), got ",
              options.num_threads);
  s.threads = options.num_threads > 0 ? options.num_threads : default_num_threads();
  graph.sort_and_validate();
  s.graph = std::move(graph);
  {
    ThreadScope scope(s.threads);
    passes::remove_identities(s.graph);
    passes::fold_constants(s.graph);
    if (options.optimization_level >= 1) {
      passes::fold_batch_norm(s.graph);
      passes::fuse_activations(s.graph);
      passes::fuse_residual_adds(s.graph);
      passes::fuse_input_affine(s.graph);
      if (options.enable_blocked_layout) passes::use_blocked_layout(s.graph, kernels::active().channel_lanes);
    }
    passes::eliminate_dead_nodes(s.graph);
    if (!options.enable_winograd)
      for (Node& n : s.graph.nodes)
        if (n.op_type == "Conv") n.attrs.set_int("_winograd", 0);
    s.create_ops();
  }
  s.find_keyed_inputs();
}

Session::~Session() = default;

const Graph& Session::graph() const { return impl_->graph; }
int Session::num_threads() const { return impl_->threads; }
size_t Session::cached_plans() const { return impl_->plans.size(); }

void Session::set_profiling(bool on) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->profiling = on;
  for (auto& p : impl_->plans)
    for (Step& st : p.second->steps) st.total_ns = st.runs = st.last_start_ns = st.last_ns = 0;
}

std::vector<Session::NodeProfile> Session::profile() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  std::vector<NodeProfile> out;
  if (impl_->plans.empty()) return out;
  const Plan& plan = *impl_->plans.front().second;
  for (const Step& st : plan.steps) {
    const Node& n = impl_->graph.nodes[size_t(st.node)];
    NodeProfile p;
    p.images = &st - plan.steps.data() < plan.image_steps ? plan.images : 1;
    p.name = n.name;
    p.op_type = n.op_type;
    p.algorithm = st.op->algorithm();
    for (const Tensor& t : st.in) p.input_shapes.push_back(t.shape);
    for (const Tensor& t : st.out) p.output_shapes.push_back(t.shape);
    p.total_ms = double(st.total_ns) * 1e-6;
    p.runs = st.runs;
    p.flops = st.op->flops(st.in, st.out);
    p.last_start_ms = double(st.last_start_ns) * 1e-6;
    p.last_ms = double(st.last_ns) * 1e-6;
    out.push_back(std::move(p));
  }
  return out;
}

std::vector<Tensor> Session::run(const std::vector<std::string>& feed_names, const std::vector<Tensor>& feeds,
                                 const std::vector<std::string>& output_names) {
  Impl& s = *impl_;
  const Graph& g = s.graph;
  PYCNN_CHECK(feed_names.size() == feeds.size(), ErrorCode::InvalidArgument, "got ", feed_names.size(), " names for ",
              feeds.size(), " inputs");
  std::string expected;
  for (auto& in : g.inputs) expected += (expected.empty() ? "'" : ", '") + g.values[size_t(in.value)].name + "'";
  // Match feeds to graph inputs and check dtype, rank and fixed dims.
  std::vector<const Tensor*> ordered(g.inputs.size(), nullptr);
  for (size_t k = 0; k < feeds.size(); ++k) {
    size_t i = 0;
    while (i < g.inputs.size() && g.values[size_t(g.inputs[i].value)].name != feed_names[k]) ++i;
    PYCNN_CHECK(i < g.inputs.size(), ErrorCode::InvalidArgument, "unknown input name '", feed_names[k],
                "'; the model's inputs are ", expected);
    ordered[i] = &feeds[k];
  }
  std::map<std::string, int64_t> symbols;
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const GraphInput& gi = g.inputs[i];
    const Value& v = g.values[size_t(gi.value)];
    PYCNN_CHECK(ordered[i], ErrorCode::InvalidArgument, "missing input '", v.name, "'; the model's inputs are ", expected);
    const Tensor& f = *ordered[i];
    PYCNN_CHECK(f.dtype == v.dtype, ErrorCode::InvalidArgument, "input '", v.name, "' has dtype ", dtype_name(f.dtype),
                " but the model expects ", dtype_name(v.dtype), "; convert it, e.g. x.astype(np.", dtype_name(v.dtype), ")");
    if (!gi.has_shape) continue;
    std::string want = "(";
    for (size_t d = 0; d < gi.dims.size(); ++d)
      want += (d ? ", " : "") + (gi.dims[d].value >= 0 ? std::to_string(gi.dims[d].value)
                                                      : (gi.dims[d].symbol.empty() ? "?" : gi.dims[d].symbol));
    want += gi.dims.size() == 1 ? ",)" : ")";
    PYCNN_CHECK(f.rank() == int(gi.dims.size()), ErrorCode::InvalidArgument, "input '", v.name, "' has rank ", f.rank(),
                " (shape ", shape_str(f.shape), ") but the model expects rank ", gi.dims.size(), " ", want);
    for (size_t d = 0; d < gi.dims.size(); ++d) {
      const Dim& dim = gi.dims[d];
      if (dim.value >= 0) {
        PYCNN_CHECK(f.shape[d] == dim.value, ErrorCode::InvalidArgument, "input '", v.name, "' has shape ",
                    shape_str(f.shape), " but the model expects ", want, ": dim ", d, " must be ", dim.value);
      } else if (!dim.symbol.empty()) {
        auto [it, fresh] = symbols.emplace(dim.symbol, f.shape[d]);
        PYCNN_CHECK(fresh || it->second == f.shape[d], ErrorCode::InvalidArgument, "input '", v.name, "' dim ", d, " ('",
                    dim.symbol, "') is ", f.shape[d], " but another input set '", dim.symbol, "' to ", it->second);
      }
    }
  }
  std::vector<int> outs;
  if (output_names.empty()) outs = g.outputs;
  for (const std::string& name : output_names) {
    auto it = std::find_if(g.outputs.begin(), g.outputs.end(), [&](int v) { return g.values[size_t(v)].name == name; });
    if (it == g.outputs.end()) {
      std::string names;
      for (int v : g.outputs) names += (names.empty() ? "'" : ", '") + g.values[size_t(v)].name + "'";
      fail(ErrorCode::InvalidArgument, "unknown output name '", name, "'; the model's outputs are ", names);
    }
    outs.push_back(*it);
  }

  std::lock_guard<std::mutex> lock(s.mutex);
  ThreadScope scope(s.threads);
  Plan& plan = s.plan_for(ordered);
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    auto it = plan.input_uses.find(g.inputs[i].value);
    if (it == plan.input_uses.end()) continue;
    for (const InputUse& u : it->second) plan.steps[size_t(u.step)].in[size_t(u.slot)].data = ordered[i]->data;
  }
  using Clock = std::chrono::steady_clock;
  const auto run_start = Clock::now();
  const auto since = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
  };
  const auto run_checked = [&](Step& st, auto&& call) {  // generic: no std::function per call
    try {
      call();
    } catch (const Error& e) {
      throw Error(e.code(), s.where(st.node) + ": " + e.what());
    }
  };
  // The image pass: its steps once per image, the images side by side on
  // the pass threads or one after another. A step of the pass is profiled
  // as one node: its time summed over the images (over the threads that
  // took them side by side, divided by their count: a share of the run's
  // wall time, as other nodes' are), its start image 0's.
  const size_t pass_steps = size_t(plan.image_steps);
  std::vector<int64_t> pass_ns(s.profiling ? pass_steps * size_t(plan.pass_threads) : 0, 0);
  const auto run_image = [&](int64_t image, int thread) {
    void* scratch = static_cast<char*>(plan.scratch) + size_t(thread) * plan.pass_scratch_stride;
    for (size_t i = 0; i < pass_steps; ++i) {
      Step& st = plan.steps[i];
      const auto t0 = s.profiling ? Clock::now() : Clock::time_point();
      run_checked(st, [&] { run_image_step(st, image, thread, scratch); });
      if (!s.profiling) continue;
      if (image == 0) st.last_start_ns = since(run_start, t0);
      pass_ns[size_t(thread) * pass_steps + i] += since(t0, Clock::now());
    }
  };
  if (plan.pass_threads > 1) {
    // Exceptions cannot leave the parallel region: the first is kept and rethrown.
    std::mutex failed_mutex;
    std::exception_ptr failed;
    parallel_for_indexed(plan.images, [&](int64_t n0, int64_t n1, int thread) {
      ThreadScope one_thread(1);
      try {
        for (int64_t n = n0; n < n1; ++n) run_image(n, thread);
      } catch (...) {
        std::lock_guard<std::mutex> hold(failed_mutex);
        if (!failed) failed = std::current_exception();
      }
    });
    if (failed) std::rethrow_exception(failed);
  } else {
    for (int64_t n = 0; n < plan.images && pass_steps > 0; ++n) run_image(n, 0);
  }
  if (s.profiling)
    for (size_t i = 0; i < pass_steps; ++i) {
      Step& st = plan.steps[i];
      st.last_ns = 0;
      for (int t = 0; t < plan.pass_threads; ++t) st.last_ns += pass_ns[size_t(t) * pass_steps + i];
      st.last_ns /= plan.pass_threads;
      st.total_ns += st.last_ns;
      ++st.runs;
    }
  // The rest on the whole batch.
  for (size_t i = pass_steps; i < plan.steps.size(); ++i) {
    Step& st = plan.steps[i];
    const auto t0 = s.profiling ? Clock::now() : Clock::time_point();
    run_checked(st, [&] { st.op->run(st.in, st.out, plan.scratch); });
    if (!s.profiling) continue;
    st.last_start_ns = since(run_start, t0);
    st.last_ns = since(t0, Clock::now());
    st.total_ns += st.last_ns;
    ++st.runs;
  }
  std::vector<Tensor> result;
  for (int v : outs) {
    const Tensor& t = plan.values[size_t(v)];
    auto in_it = std::find_if(g.inputs.begin(), g.inputs.end(), [&](const GraphInput& gi) { return gi.value == v; });
    if (in_it != g.inputs.end() && !plan.known[size_t(v)]) {
      result.push_back(ordered[size_t(in_it - g.inputs.begin())]->clone());
    } else {
      result.push_back(t.clone());
    }
  }
  return result;
}

}  // namespace pycnn
