// Graph IR: values (named edges with dtype and possibly symbolic dims),
// nodes (op_type + attributes) and constants. Front ends build it; passes
// rewrite it; a Session compiles it. It holds no kernels and no plans.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pycnn/errors.h"
#include "pycnn/tensor.h"

namespace pycnn {

struct Attribute {
  enum Kind { Int, Float, String, Ints, Floats, Strings, TensorValue } kind = Int;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;
  Tensor t;
};

class Attributes {
 public:
  std::map<std::string, Attribute> items;
  bool has(const std::string& k) const { return items.count(k) != 0; }
  int64_t get_int(const std::string& k, int64_t def) const;
  double get_float(const std::string& k, double def) const;
  std::string get_string(const std::string& k, const std::string& def) const;
  std::vector<int64_t> get_ints(const std::string& k, std::vector<int64_t> def = {}) const;
  std::vector<double> get_floats(const std::string& k, std::vector<double> def = {}) const;
  const Attribute* find(const std::string& k) const;
  // Sets (or replaces) an Int attribute: the passes' markers (_blocked, _winograd, ...).
  void set_int(const std::string& k, int64_t v);
};

// A dimension of a declared graph input: a fixed size or a symbol ("N").
struct Dim {
  int64_t value = -1;  // -1 when symbolic or unknown
  std::string symbol;
};

struct Value {
  std::string name;
  DType dtype = DType::f32;
  std::optional<Tensor> constant;  // initializer / folded constant
};

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;
  int opset = 0;
  std::vector<int> inputs;   // value ids; -1 for an omitted optional input
  std::vector<int> outputs;  // value ids; -1 for an omitted optional output
  Attributes attrs;
};

struct GraphInput {
  int value;
  std::vector<Dim> dims;
  bool has_shape = false;
};

class Graph {
 public:
  std::vector<Value> values;
  std::vector<Node> nodes;
  std::vector<GraphInput> inputs;
  std::vector<int> outputs;

  int value_id(const std::string& name);  // get or create
  int find_value(const std::string& name) const;  // -1 when absent
  void add_input(const std::string& name, DType t, std::vector<Dim> dims, bool has_shape);
  void add_constant(const std::string& name, Tensor t);
  void add_output(const std::string& name);
  Node& add_node(const std::string& op_type, const std::string& name, const std::string& domain,
                 int opset, const std::vector<std::string>& inputs,
                 const std::vector<std::string>& outputs, Attributes attrs);

  // Topologically sorts nodes; throws InvalidModel on cycles or undefined inputs.
  void sort_and_validate();
  // For each value, the indices of nodes that read it.
  std::vector<std::vector<int>> consumers() const;
  bool is_graph_output(int v) const;
};

}  // namespace pycnn
