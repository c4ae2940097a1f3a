// use_blocked_layout: chains of depthwise and 1x1 convolutions move to the
// blocked layout (NCHWc, ops/blocked.cpp). In NCHW those layers read and
// write rows a plane apart and copy or transpose planes; blocked, each reads
// and writes its tensors as a few long streams (ONNX Runtime's NCHWc
// transformer does the same for every Conv).
#include <algorithm>
#include <map>
#include <numeric>

#include "graph/passes/passes.h"

namespace pycnn::passes {
namespace {

enum class Blockable { No, Pointwise, Depthwise, Direct };

bool all_are(const std::vector<int64_t>& v, int64_t x) {
  return std::all_of(v.begin(), v.end(), [x](int64_t e) { return e == x; });
}

// What the blocked Conv takes: constant weights and bias; 1x1 stride 1
// unpadded with one group (and at most a per-channel input scale, the
// squeeze-and-excitation fold), depthwise, or one group with any other
// window up to 64x64 (direct).
Blockable blockable(const Graph& g, const Node& n) {
  if (n.op_type != "Conv" || n.inputs.size() < 2 || n.outputs.size() != 1 || n.inputs[0] < 0 || n.inputs[1] < 0 ||
      n.attrs.has("_weights_once"))
    return Blockable::No;
  const auto& w = g.values[size_t(n.inputs[1])].constant;
  if (!w || w->dtype != DType::f32 || w->rank() != 4 || g.values[size_t(n.inputs[0])].dtype != DType::f32)
    return Blockable::No;
  if (n.inputs.size() > 2 && n.inputs[2] >= 0 && !g.values[size_t(n.inputs[2])].constant) return Blockable::No;
  const bool input_map = n.inputs.size() > 4;
  if (input_map && (n.inputs.size() > 5 || n.inputs[4] < 0 || n.attrs.has("_input_act"))) return Blockable::No;
  const int64_t group = n.attrs.get_int("group", 1);
  if (w->shape[2] > 64 || w->shape[3] > 64) return Blockable::No;
  if (group == 1) {
    const bool one = w->shape[2] == 1 && w->shape[3] == 1 && all_are(n.attrs.get_ints("strides"), 1) &&
                     all_are(n.attrs.get_ints("pads"), 0);
    if (one) return Blockable::Pointwise;
    return input_map ? Blockable::No : Blockable::Direct;
  }
  return !input_map && group == w->shape[0] && w->shape[1] == 1 ? Blockable::Depthwise : Blockable::No;
}

int fresh_value(Graph& g, const std::string& base, DType dtype) {
  std::string name = base;
  while (g.find_value(name) >= 0) name += "'";
  const int v = g.value_id(name);
  g.values[size_t(v)].dtype = dtype;
  return v;
}

}  // namespace

void use_blocked_layout(Graph& g, int lanes) {
  const size_t nn = g.nodes.size();
  std::vector<Blockable> kind(nn);
  std::vector<int> producer(g.values.size(), -1);
  for (size_t i = 0; i < nn; ++i) {
    kind[i] = blockable(g, g.nodes[i]);
    for (int v : g.nodes[i].outputs)
      if (v >= 0) producer[size_t(v)] = int(i);
  }
  auto blocked_producer = [&](int v) {
    const int p = v >= 0 ? producer[size_t(v)] : -1;
    return p >= 0 && kind[size_t(p)] != Blockable::No ? p : -1;
  };
  // A residual must come from another convolution of the chain, whose
  // output has the same shape; one from elsewhere may broadcast.
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t i = 0; i < nn; ++i) {
      const Node& n = g.nodes[i];
      if (kind[i] != Blockable::No && n.inputs.size() > 3 && n.inputs[3] >= 0 && blocked_producer(n.inputs[3]) < 0) {
        kind[i] = Blockable::No;
        changed = true;
      }
    }
  }
  // Chains: convolutions joined by their data input or residual.
  std::vector<int> root(nn);
  std::iota(root.begin(), root.end(), 0);
  auto find = [&](int i) {
    while (root[size_t(i)] != i) i = root[size_t(i)] = root[size_t(root[size_t(i)])];
    return i;
  };
  for (size_t i = 0; i < nn; ++i) {
    if (kind[i] == Blockable::No) continue;
    const Node& n = g.nodes[i];
    for (size_t slot : {size_t(0), size_t(3)})
      if (slot < n.inputs.size()) {
        const int p = blocked_producer(n.inputs[slot]);
        if (p >= 0) root[size_t(find(int(i)))] = find(p);
      }
  }
  // A chain pays for its reorders when it holds a depthwise convolution and
  // something more: a lone layer would spend as long reordering as it saves.
  std::vector<int> size(nn, 0), depthwise(nn, 0);
  for (size_t i = 0; i < nn; ++i)
    if (kind[i] != Blockable::No) {
      ++size[size_t(find(int(i)))];
      depthwise[size_t(find(int(i)))] += kind[i] == Blockable::Depthwise;
    }
  std::vector<char> chosen(nn, 0);
  for (size_t i = 0; i < nn; ++i) {
    const int r = find(int(i));
    chosen[i] = kind[i] != Blockable::No && size[size_t(r)] >= 2 && depthwise[size_t(r)] > 0;
  }
  if (std::none_of(chosen.begin(), chosen.end(), [](char c) { return c; })) return;

  const auto readers = g.consumers();
  std::map<int, int> blocked_of;  // a chosen conv's output value -> its blocked twin
  std::map<int, int64_t> channels_of;
  for (size_t i = 0; i < nn; ++i) {
    if (!chosen[i]) continue;
    Node& n = g.nodes[i];
    const int v = n.outputs[0];
    const int bv = fresh_value(g, g.values[size_t(v)].name + "#blocked", DType::f32);
    blocked_of[v] = bv;
    channels_of[v] = g.values[size_t(n.inputs[1])].constant->shape[0];
    n.outputs[0] = bv;
    n.attrs.set_int("_blocked", lanes);
  }
  std::vector<Node> added;
  std::map<int, int> to_blocked;  // a plain value -> its reorder's output
  for (size_t i = 0; i < nn; ++i) {
    if (!chosen[i]) continue;
    for (size_t slot : {size_t(0), size_t(3)}) {
      if (slot >= g.nodes[i].inputs.size() || g.nodes[i].inputs[slot] < 0) continue;
      const int v = g.nodes[i].inputs[slot];
      if (auto it = blocked_of.find(v); it != blocked_of.end()) {
        g.nodes[i].inputs[slot] = it->second;
        continue;
      }
      // A direct convolution reads a plain input itself (the stem, 3 channels).
      if (slot == 0 && kind[i] == Blockable::Direct) {
        g.nodes[i].attrs.set_int("_plain_input", 1);
        continue;
      }
      auto it = to_blocked.find(v);
      if (it == to_blocked.end()) {
        const std::string name = g.values[size_t(v)].name;
        Node r;
        r.name = name + "/to_blocked";
        r.op_type = "pycnn.ToBlocked";
        r.inputs = {v};
        r.outputs = {fresh_value(g, name + "#to_blocked", DType::f32)};
        r.attrs.set_int("lanes", lanes);
        it = to_blocked.emplace(v, r.outputs[0]).first;
        added.push_back(std::move(r));
      }
      g.nodes[i].inputs[slot] = it->second;
    }
  }
  // Readers outside the chain: a global average pool reads the blocked
  // tensor itself; any other gets a reorder back.
  for (const auto& [v, bv] : blocked_of) {
    bool plain = g.is_graph_output(v);
    for (int r : readers[size_t(v)]) {
      Node& n = g.nodes[size_t(r)];
      if (n.op_type == "GlobalAveragePool" && n.inputs.size() == 1 && n.inputs[0] == v) {
        n.inputs[0] = bv;
        n.attrs.set_int("_blocked", lanes);
        n.attrs.set_int("_channels", channels_of[v]);
      }
      plain = plain || std::find(n.inputs.begin(), n.inputs.end(), v) != n.inputs.end();
    }
    if (!plain) continue;
    Node r;
    r.name = g.values[size_t(v)].name + "/from_blocked";
    r.op_type = "pycnn.FromBlocked";
    r.inputs = {bv};
    r.outputs = {v};
    r.attrs.set_int("lanes", lanes);
    r.attrs.set_int("channels", channels_of[v]);
    added.push_back(std::move(r));
  }
  for (Node& n : added) g.nodes.push_back(std::move(n));
  g.sort_and_validate();
}

}  // namespace pycnn::passes
