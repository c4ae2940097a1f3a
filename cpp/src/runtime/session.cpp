// Session: create (validate every node, optimize, build ops and pre-pack
// weights) -> plan per input shape (shape inference, known-value evaluation,
// memory plan; cached) -> run (bind inputs, call ops on planned memory).
#include "pycnn/session.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <set>

#include "core/parallel.h"
#include "graph/passes/passes.h"
#include "ops/op.h"
#include "runtime/concat_in_place.h"
#include "runtime/memory_planner.h"

namespace pycnn {
namespace {

constexpr size_t kMaxCachedPlans = 8;

struct Step {
  Op* op;
  int node;
  std::vector<Tensor> in, out;
  // Profiling accumulators (touched only while profiling is on).
  int64_t total_ns = 0, runs = 0, last_start_ns = 0, last_ns = 0;
};

// Where a graph input's data pointer must be written before each run.
struct InputUse {
  int step, slot;
};

struct Plan {
  std::vector<Step> steps;
  std::shared_ptr<void> arena;
  void* scratch = nullptr;
  std::vector<Tensor> values;                    // every value: planned view, input view or known value
  std::vector<char> known;                       // value computed at plan time
  std::map<int, std::vector<InputUse>> input_uses;  // graph input value -> reads
};

}  // namespace

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
  size_t scratch = 0;
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
    scratch = std::max(scratch, op.scratch_bytes(in));
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
  // One buffer per value, except those living inside a Concat's output
  // (concat_in_place.h): that buffer spans their lifetimes too.
  const std::vector<ValueHome> home = place_concat_inputs(graph, step_nodes, plan->values, produced);
  std::vector<int> buffer_of(nv, -1);
  std::vector<BufferLifetime> buffers;
  for (size_t v = 0; v < nv; ++v)
    if (produced[v] && home[v].root < 0) {
      buffer_of[v] = int(buffers.size());
      buffers.push_back(BufferLifetime{first[v], last[v], plan->values[v].nbytes()});
    }
  for (size_t v = 0; v < nv; ++v)
    if (produced[v] && home[v].root >= 0) {
      BufferLifetime& b = buffers[size_t(buffer_of[size_t(home[v].root)])];
      b.first = std::min(b.first, first[v]);
      b.last = std::max(b.last, last[v]);
    }
  const size_t arena_bytes = plan_memory(buffers);
  plan->arena = aligned_buffer(arena_bytes + scratch + 64);
  char* base = static_cast<char*>(plan->arena.get());
  plan->scratch = base + (arena_bytes + 63) / 64 * 64;
  for (size_t v = 0; v < nv; ++v) {
    if (!produced[v]) continue;
    const bool own = home[v].root < 0;
    plan->values[v].data = base + buffers[size_t(buffer_of[own ? v : size_t(home[v].root)])].offset + (own ? 0 : home[v].offset);
  }
  // Steps with their tensors bound; graph inputs are re-bound on each run.
  for (int s = 0; s < end; ++s) {
    const int ni = runtime_nodes[size_t(s)].node;
    const Node& n = graph.nodes[size_t(ni)];
    Step st{ops[size_t(ni)].get(), ni, {}, {}};
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      const int v = n.inputs[k];
      st.in.push_back(v < 0 ? Tensor() : plan->values[size_t(v)]);
      if (v >= 0 && is_input[size_t(v)] && !plan->known[size_t(v)]) plan->input_uses[v].push_back(InputUse{s, int(k)});
    }
    for (int v : n.outputs) st.out.push_back(v < 0 ? Tensor() : plan->values[size_t(v)]);
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
  for (const Step& st : impl_->plans.front().second->steps) {
    const Node& n = impl_->graph.nodes[size_t(st.node)];
    NodeProfile p;
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
  for (Step& st : plan.steps) {
    const auto t0 = s.profiling ? Clock::now() : Clock::time_point();
    try {
      st.op->run(st.in, st.out, plan.scratch);
    } catch (const Error& e) {
      throw Error(e.code(), s.where(st.node) + ": " + e.what());
    }
    if (s.profiling) {
      const auto t1 = Clock::now();
      st.last_start_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t0 - run_start).count();
      st.last_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
      st.total_ns += st.last_ns;
      ++st.runs;
    }
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
