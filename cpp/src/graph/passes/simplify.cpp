// remove_identities, eliminate_dead_nodes and the helpers the passes share.
#include <algorithm>

#include "graph/passes/passes.h"

namespace pycnn::passes {

int single_reader(const Graph& g, const std::vector<std::vector<int>>& readers, int value) {
  if (value < 0 || g.is_graph_output(value) || readers[value].size() != 1) return -1;
  return readers[value][0];
}

void rename_value_uses(Graph& g, int from, int to) {
  for (Node& n : g.nodes)
    for (int& v : n.inputs)
      if (v == from) v = to;
}

void erase_nodes(Graph& g, const std::vector<char>& drop) {
  std::vector<Node> kept;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!drop[i]) kept.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(kept);
}

void remove_identities(Graph& g) {
  std::vector<Node> kept;
  for (Node& n : g.nodes) {
    const bool identity = n.op_type == "Identity" ||
                          (n.op_type == "Dropout" && (n.outputs.size() < 2 || n.outputs[1] < 0));
    if (identity && n.inputs.size() >= 1 && n.inputs[0] >= 0 && !g.is_graph_output(n.outputs[0])) {
      rename_value_uses(g, n.outputs[0], n.inputs[0]);
      continue;
    }
    kept.push_back(std::move(n));
  }
  g.nodes = std::move(kept);
}

void eliminate_dead_nodes(Graph& g) {
  std::vector<char> live(g.values.size(), 0);
  for (int v : g.outputs) live[v] = 1;
  std::vector<char> keep(g.nodes.size(), 0);
  for (size_t i = g.nodes.size(); i-- > 0;) {
    const Node& n = g.nodes[i];
    bool used = std::any_of(n.outputs.begin(), n.outputs.end(), [&](int v) { return v >= 0 && live[v]; });
    if (!used) continue;
    keep[i] = 1;
    for (int v : n.inputs)
      if (v >= 0) live[v] = 1;
  }
  std::vector<Node> kept;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (keep[i]) kept.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(kept);
  for (size_t v = 0; v < g.values.size(); ++v)
    if (!live[v] && g.values[v].constant && !g.is_graph_output(int(v))) g.values[v].constant.reset();
}

}  // namespace pycnn::passes
