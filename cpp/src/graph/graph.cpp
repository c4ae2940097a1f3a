#include "pycnn/graph.h"

#include <algorithm>

namespace pycnn {

const Attribute* Attributes::find(const std::string& k) const {
  auto it = items.find(k);
  return it == items.end() ? nullptr : &it->second;
}

void Attributes::set_int(const std::string& k, int64_t v) {
  Attribute a;
  a.kind = Attribute::Int;
  a.i = v;
  items[k] = std::move(a);
}
int64_t Attributes::get_int(const std::string& k, int64_t def) const {
  const Attribute* a = find(k);
  return a ? a->i : def;
}
double Attributes::get_float(const std::string& k, double def) const {
  const Attribute* a = find(k);
  return a ? a->f : def;
}
std::string Attributes::get_string(const std::string& k, const std::string& def) const {
  const Attribute* a = find(k);
  return a ? a->s : def;
}
std::vector<int64_t> Attributes::get_ints(const std::string& k, std::vector<int64_t> def) const {
  const Attribute* a = find(k);
  return a ? a->ints : def;
}
std::vector<double> Attributes::get_floats(const std::string& k, std::vector<double> def) const {
  const Attribute* a = find(k);
  return a ? a->floats : def;
}

int Graph::find_value(const std::string& name) const {
  for (size_t i = 0; i < values.size(); ++i)
    if (values[i].name == name) return int(i);
  return -1;
}

int Graph::value_id(const std::string& name) {
  int id = find_value(name);
  if (id >= 0) return id;
  values.push_back(Value{name, DType::f32, std::nullopt});
  return int(values.size()) - 1;
}

void Graph::add_input(const std::string& name, DType t, std::vector<Dim> dims, bool has_shape) {
  int v = value_id(name);
  values[v].dtype = t;
  inputs.push_back(GraphInput{v, std::move(dims), has_shape});
}

void Graph::add_constant(const std::string& name, Tensor t) {
  int v = value_id(name);
  values[v].dtype = t.dtype;
  values[v].constant = std::move(t);
}

void Graph::add_output(const std::string& name) {
  int v = find_value(name);
  PYCNN_CHECK(v >= 0, ErrorCode::InvalidModel, "graph output '", name,
              "' is not produced by any node, input or initializer");
  outputs.push_back(v);
}

Node& Graph::add_node(const std::string& op_type, const std::string& name, const std::string& domain,
                      int opset, const std::vector<std::string>& ins,
                      const std::vector<std::string>& outs, Attributes attrs) {
  Node n;
  n.op_type = op_type;
  n.name = name;
  n.domain = domain;
  n.opset = opset;
  for (auto& s : ins) n.inputs.push_back(s.empty() ? -1 : value_id(s));
  for (auto& s : outs) n.outputs.push_back(s.empty() ? -1 : value_id(s));
  n.attrs = std::move(attrs);
  nodes.push_back(std::move(n));
  return nodes.back();
}

bool Graph::is_graph_output(int v) const {
  return std::find(outputs.begin(), outputs.end(), v) != outputs.end();
}

std::vector<std::vector<int>> Graph::consumers() const {
  std::vector<std::vector<int>> c(values.size());
  for (size_t i = 0; i < nodes.size(); ++i)
    for (int v : nodes[i].inputs)
      if (v >= 0) c[v].push_back(int(i));
  return c;
}

void Graph::sort_and_validate() {
  std::vector<int> producer(values.size(), -1);
  for (size_t i = 0; i < nodes.size(); ++i)
    for (int v : nodes[i].outputs) {
      if (v < 0) continue;
      PYCNN_CHECK(producer[v] < 0, ErrorCode::InvalidModel, "value '", values[v].name,
                  "' is produced by two nodes ('", nodes[producer[v]].name, "' and '", nodes[i].name, "')");
      PYCNN_CHECK(!values[v].constant, ErrorCode::InvalidModel, "node '", nodes[i].name,
                  "' writes to initializer '", values[v].name, "'");
      producer[v] = int(i);
    }
  std::vector<char> available(values.size(), 0);
  for (size_t v = 0; v < values.size(); ++v)
    if (values[v].constant) available[v] = 1;
  for (auto& in : inputs) available[in.value] = 1;

  std::vector<Node> sorted;
  std::vector<char> done(nodes.size(), 0);
  sorted.reserve(nodes.size());
  bool progress = true;
  while (sorted.size() < nodes.size() && progress) {
    progress = false;
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (done[i]) continue;
      bool ready = std::all_of(nodes[i].inputs.begin(), nodes[i].inputs.end(),
                               [&](int v) { return v < 0 || available[v]; });
      if (!ready) continue;
      for (int v : nodes[i].outputs)
        if (v >= 0) available[v] = 1;
      done[i] = 1;
      sorted.push_back(nodes[i]);
      progress = true;
    }
  }
  if (sorted.size() < nodes.size()) {
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (done[i]) continue;
      for (int v : nodes[i].inputs)
        if (v >= 0 && !available[v] && producer[v] < 0)
          fail(ErrorCode::InvalidModel, "node '", nodes[i].name, "' (", nodes[i].op_type,
               ") reads '", values[v].name, "', which no node, input or initializer defines");
    }
    fail(ErrorCode::InvalidModel, "the graph has a cycle");
  }
  nodes = std::move(sorted);
  for (int v : outputs)
    PYCNN_CHECK(available[v], ErrorCode::InvalidModel, "graph output '", values[v].name, "' is never computed");
}

}  // namespace pycnn
