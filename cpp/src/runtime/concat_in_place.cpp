#include "runtime/concat_in_place.h"

#include <algorithm>
#include <set>

namespace pycnn {
namespace {

struct Candidate {
  int node;
  int64_t axis;
};

// Whether node n is a Concat this scheme can take: inputs laid out back to
// back in the output, all computed at run time, none twice, none a graph
// output (a graph output keeps a buffer of its own).
bool contiguous_concat(const Graph& g, const Node& n, const std::vector<Tensor>& values,
                       const std::vector<char>& produced, const std::vector<char>& own_buffer, int64_t& axis) {
  if (n.op_type != "Concat" || n.outputs.size() != 1 || n.outputs[0] < 0 || n.inputs.empty()) return false;
  const Tensor& out = values[size_t(n.outputs[0])];
  int64_t a = n.attrs.get_int("axis", 1);
  if (a < 0) a += out.rank();
  if (a < 0 || a >= out.rank()) return false;
  for (int64_t d = 0; d < a; ++d)
    if (out.shape[size_t(d)] != 1) return false;
  std::set<int> seen;
  for (int v : n.inputs)
    if (v < 0 || !produced[size_t(v)] || g.is_graph_output(v) || own_buffer[size_t(v)] || !seen.insert(v).second)
      return false;
  axis = a;
  return true;
}

}  // namespace

std::vector<ValueHome> place_concat_inputs(const Graph& g, const std::vector<int>& step_nodes,
                                           const std::vector<Tensor>& values, const std::vector<char>& produced,
                                           const std::vector<char>& own_buffer) {
  std::vector<ValueHome> home(values.size());
  std::vector<Candidate> concats;
  for (int ni : step_nodes) {
    int64_t axis = 0;
    if (contiguous_concat(g, g.nodes[size_t(ni)], values, produced, own_buffer, axis)) concats.push_back(Candidate{ni, axis});
  }
  // Biggest first: it becomes the root its leading runs live in.
  std::stable_sort(concats.begin(), concats.end(), [&](const Candidate& a, const Candidate& b) {
    return g.nodes[size_t(a.node)].inputs.size() > g.nodes[size_t(b.node)].inputs.size();
  });
  std::vector<char> is_root(values.size(), 0), done(concats.size(), 0);
  for (size_t i = 0; i < concats.size(); ++i) {
    if (done[i]) continue;
    const Node& root = g.nodes[size_t(concats[i].node)];
    const int r = root.outputs[0];
    if (home[size_t(r)].root >= 0) continue;
    is_root[size_t(r)] = 1;
    // Concats whose inputs are a leading run of this one's: views of its
    // start. A view's Concat still copies what is not in place (inputs
    // housed elsewhere), writing the same bytes the root's Concat will.
    for (size_t j = i + 1; j < concats.size(); ++j) {
      const Node& c = g.nodes[size_t(concats[j].node)];
      const int v = c.outputs[0];
      if (done[j] || concats[j].axis != concats[i].axis || is_root[size_t(v)] || home[size_t(v)].root >= 0 || own_buffer[size_t(v)] ||
          !std::equal(c.inputs.begin(), c.inputs.end(), root.inputs.begin()))
        continue;
      home[size_t(v)] = ValueHome{r, 0};
      done[j] = 1;
    }
    // Each input not yet housed elsewhere goes into its slice.
    size_t offset = 0;
    for (int v : root.inputs) {
      if (home[size_t(v)].root < 0 && !is_root[size_t(v)]) home[size_t(v)] = ValueHome{r, offset};
      offset += values[size_t(v)].nbytes();
    }
  }
  return home;
}

}  // namespace pycnn
