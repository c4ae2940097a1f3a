// pycnn._core: the runtime for Python. Graph building (used by the ONNX front
// end), Session, ISA control, and a few kernel entry points for tests.
// Errors cross as typed exceptions; the GIL is released while a model runs.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "core/parallel.h"
#include "kernels/gemm.h"
#include "ops/op.h"
#include "pycnn/session.h"

namespace py = pybind11;
using namespace pycnn;

namespace {

PyObject* g_base = nullptr;
PyObject* g_invalid_argument = nullptr;
PyObject* g_invalid_model = nullptr;
PyObject* g_unsupported = nullptr;
PyObject* g_engine = nullptr;

PyObject* new_error(py::module_& m, const char* name, std::initializer_list<PyObject*> bases, const char* doc) {
  py::tuple b(bases.size());
  size_t i = 0;
  for (PyObject* p : bases) b[i++] = py::reinterpret_borrow<py::object>(p);
  std::string full = std::string("pycnn._core.") + name;
  PyObject* cls = PyErr_NewExceptionWithDoc(full.c_str(), doc, b.ptr(), nullptr);
  if (!cls) throw py::error_already_set();
  m.add_object(name, py::reinterpret_borrow<py::object>(cls));
  return cls;
}

DType dtype_of(const py::dtype& dt) {
  const char k = dt.kind();
  const auto size = dt.itemsize();
  if (k == 'f' && size == 4) return DType::f32;
  if (k == 'f' && size == 8) return DType::f64;
  if (k == 'i' && size == 8) return DType::i64;
  if (k == 'i' && size == 4) return DType::i32;
  if (k == 'i' && size == 1) return DType::i8;
  if (k == 'u' && size == 1) return DType::u8;
  if (k == 'b') return DType::boolean;
  fail(ErrorCode::InvalidArgument, "numpy dtype ", std::string(py::str(dt)),
       " is not supported; use float32 (e.g. x.astype(np.float32)), float64, int64, int32, int8, uint8 or bool");
}

py::dtype numpy_dtype(DType t) {
  switch (t) {
    case DType::f32: return py::dtype::of<float>();
    case DType::f64: return py::dtype::of<double>();
    case DType::i64: return py::dtype::of<int64_t>();
    case DType::i32: return py::dtype::of<int32_t>();
    case DType::i8: return py::dtype::of<int8_t>();
    case DType::u8: return py::dtype::of<uint8_t>();
    case DType::boolean: return py::dtype::of<bool>();
  }
  return py::dtype::of<float>();
}

// A view of a C-contiguous array (the caller keeps it alive).
Tensor view_of(const py::array& a) {
  Shape s(a.shape(), a.shape() + a.ndim());
  return Tensor(dtype_of(a.dtype()), s, const_cast<void*>(a.data()));
}

py::array to_numpy(const Tensor& t) {
  auto* keep = new std::shared_ptr<void>(t.owner);
  py::capsule owner(keep, [](void* p) { delete static_cast<std::shared_ptr<void>*>(p); });
  std::vector<py::ssize_t> shape(t.shape.begin(), t.shape.end());
  return py::array(numpy_dtype(t.dtype), shape, {}, t.data, owner);
}

py::array contiguous(const py::handle& obj) {
  // np.require keeps 0-d arrays 0-d (ascontiguousarray would make them 1-d).
  return py::module_::import("numpy").attr("require")(obj, py::none(), "C").cast<py::array>();
}

DType dtype_from_name(const std::string& n) {
  static const std::map<std::string, DType> names = {{"float32", DType::f32}, {"float64", DType::f64},
                                                     {"int64", DType::i64},   {"int32", DType::i32},
                                                     {"int8", DType::i8},     {"uint8", DType::u8},
                                                     {"bool", DType::boolean}};
  auto it = names.find(n);
  if (it == names.end()) fail(ErrorCode::Unsupported, "data type '", n, "' is not supported");
  return it->second;
}

Attributes attributes_of(const py::dict& d) {
  Attributes out;
  for (auto kv : d) {
    const std::string key = py::str(kv.first);
    auto pair = kv.second.cast<py::tuple>();
    const std::string kind = pair[0].cast<std::string>();
    py::handle v = pair[1];
    Attribute a;
    if (kind == "i") { a.kind = Attribute::Int; a.i = v.cast<int64_t>(); }
    else if (kind == "f") { a.kind = Attribute::Float; a.f = v.cast<double>(); }
    else if (kind == "s") { a.kind = Attribute::String; a.s = v.cast<std::string>(); }
    else if (kind == "ints") { a.kind = Attribute::Ints; a.ints = v.cast<std::vector<int64_t>>(); }
    else if (kind == "floats") { a.kind = Attribute::Floats; a.floats = v.cast<std::vector<double>>(); }
    else if (kind == "strings") { a.kind = Attribute::Strings; a.strings = v.cast<std::vector<std::string>>(); }
    else if (kind == "t") { a.kind = Attribute::TensorValue; a.t = view_of(contiguous(v)).clone(); }
    else fail(ErrorCode::Unsupported, "attribute '", key, "' has an unsupported kind '", kind, "'");
    out.items[key] = std::move(a);
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "pycnn's compiled runtime (C++17). Use the pycnn package, not this module directly.";

  g_base = new_error(m, "PycnnError", {PyExc_Exception}, "Base class of every error pycnn raises.");
  g_invalid_argument = new_error(m, "InvalidArgumentError", {g_base, PyExc_ValueError},
                                 "Bad input to run(): unknown or missing name, wrong dtype, rank or shape.");
  g_invalid_model = new_error(m, "InvalidModelError", {g_base, PyExc_ValueError},
                              "The model is malformed: bad attributes, undefined values, cycles.");
  g_unsupported = new_error(m, "UnsupportedModelError", {g_base, PyExc_NotImplementedError},
                            "The model uses operators, attributes or dtypes pycnn does not implement.");
  g_engine = new_error(m, "EngineError", {g_base, PyExc_RuntimeError}, "Something failed while running the model.");

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      PyObject* cls = g_engine;
      switch (e.code()) {
        case ErrorCode::InvalidArgument: cls = g_invalid_argument; break;
        case ErrorCode::InvalidModel: cls = g_invalid_model; break;
        case ErrorCode::Unsupported: cls = g_unsupported; break;
        case ErrorCode::Runtime: cls = g_engine; break;
      }
      PyErr_SetString(cls, e.what());
    } catch (const std::bad_alloc&) {
      PyErr_SetString(g_engine, "out of memory");
    }
  });

  py::class_<Graph>(m, "Graph", "A model graph under construction (built by pycnn.onnx_import).")
      .def(py::init<>())
      .def("add_input",
           [](Graph& g, const std::string& name, const std::string& dtype, py::object dims) {
             std::vector<Dim> ds;
             const bool has_shape = !dims.is_none();
             if (has_shape)
               for (auto d : dims.cast<py::list>()) {
                 Dim dim;
                 if (py::isinstance<py::int_>(d)) dim.value = d.cast<int64_t>();
                 else if (!d.is_none()) dim.symbol = py::str(d);
                 ds.push_back(dim);
               }
             g.add_input(name, dtype_from_name(dtype), ds, has_shape);
           },
           py::arg("name"), py::arg("dtype"), py::arg("dims"))
      .def("add_constant",
           [](Graph& g, const std::string& name, const py::array& a) { g.add_constant(name, view_of(contiguous(a)).clone()); },
           py::arg("name"), py::arg("array"))
      .def("add_node",
           [](Graph& g, const std::string& op_type, const std::string& name, const std::string& domain, int opset,
              const std::vector<std::string>& inputs, const std::vector<std::string>& outputs, const py::dict& attrs) {
             g.add_node(op_type, name, domain, opset, inputs, outputs, attributes_of(attrs));
           })
      .def("add_output", &Graph::add_output)
      .def_property_readonly("num_nodes", [](const Graph& g) { return g.nodes.size(); });

  py::class_<Session>(m, "Session", "A compiled model: created once, run many times.")
      .def(py::init([](Graph& g, int threads, int level, bool winograd, bool blocked, bool image_by_image) {
             SessionOptions o;
             o.num_threads = threads;
             o.optimization_level = level;
             o.enable_winograd = winograd;
             o.enable_blocked_layout = blocked;
             o.enable_image_by_image = image_by_image;
             py::gil_scoped_release nogil;
             return std::make_unique<Session>(g, o);
           }),
           py::arg("graph"), py::arg("num_threads") = 0, py::arg("optimization_level") = 99,
           py::arg("enable_winograd") = true, py::arg("enable_blocked_layout") = true,
           py::arg("enable_image_by_image") = true)
      .def("run",
           [](Session& s, const std::vector<std::string>& names, const py::list& arrays, const std::vector<std::string>& outs) {
             std::vector<py::array> keep;
             std::vector<Tensor> feeds;
             for (size_t i = 0; i < names.size() && i < arrays.size(); ++i) {
               keep.push_back(contiguous(arrays[i]));
               try {
                 feeds.push_back(view_of(keep.back()));
               } catch (const Error& e) {
                 throw Error(e.code(), "input '" + names[i] + "': " + e.what());
               }
             }
             std::vector<Tensor> result;
             {
               py::gil_scoped_release nogil;
               result = s.run(names, feeds, outs);
             }
             py::list out;
             for (auto& t : result) out.append(to_numpy(t));
             return out;
           })
      .def_property_readonly("num_threads", &Session::num_threads)
      .def_property_readonly("cached_plans", &Session::cached_plans)
      .def("set_profiling", &Session::set_profiling, py::arg("on"))
      .def("profile",
           [](const Session& s) {
             py::list out;
             for (const auto& p : s.profile()) {
               py::dict d;
               d["name"] = p.name;
               d["op_type"] = p.op_type;
               d["algorithm"] = p.algorithm;
               d["input_shapes"] = p.input_shapes;
               d["output_shapes"] = p.output_shapes;
               d["total_ms"] = p.total_ms;
               d["runs"] = p.runs;
               d["images"] = p.images;
               d["flops"] = p.flops;
               d["last_start_ms"] = p.last_start_ms;
               d["last_ms"] = p.last_ms;
               out.append(d);
             }
             return out;
           },
           "Per-node timings of the most recently used plan since set_profiling(True).")
      .def("node_summary",
           [](const Session& s) {
             py::list out;
             for (const Node& n : s.graph().nodes) {
               py::dict fused;
               if (n.attrs.has("_fused_act")) fused["activation"] = n.attrs.get_int("_fused_act", 0);
               out.append(py::make_tuple(n.name, n.op_type, fused));
             }
             return out;
           },
           "(name, op_type, fused) of each node after optimization.");

  m.def("active_isa", &active_isa, "The kernel path in use: avx512, avx2 or scalar.");
  m.def("available_isas", &available_isas, "Kernel paths this CPU can run.");
  m.def("set_isa", &set_isa, py::arg("name"), "Forces a kernel path for sessions created afterwards.");
  m.def("default_num_threads", &default_num_threads, "CPUs this process may use (affinity and cgroup quota).");
  m.def("registered_ops", &registered_ops, "ONNX op types pycnn implements.");
  // Loading frees the proto's weight bytes and the graph's copies piece by
  // piece; glibc keeps most of those pages for later allocations, so the
  // first run's Winograd weights and buffers came on top (ResNet-50: 255 MB
  // resident after creation, peak 352 MB at the first run; 159 and 303
  // after a trim, the peak then creation's own).
  m.def("trim_heap", [] {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
  }, "Returns the heap's free pages to the OS (glibc's malloc_trim; nothing elsewhere).");

  m.def("gemm",
        [](py::array_t<float, py::array::c_style | py::array::forcecast> a,
           py::array_t<float, py::array::c_style | py::array::forcecast> b, const std::string& isa, int threads,
           bool a_in_place, bool b_in_place) {
          PYCNN_CHECK(a.ndim() == 2 && b.ndim() == 2 && a.shape(1) == b.shape(0), ErrorCode::InvalidArgument,
                      "gemm needs A (M, K) and B (K, N)");
          const kernels::KernelTable* kt = isa == "scalar" ? &kernels::scalar_table()
                                           : isa == "avx2" ? kernels::avx2_table()
                                                           : kernels::avx512_table();
          PYCNN_CHECK(kt, ErrorCode::InvalidArgument, "ISA '", isa, "' is not available");
          const int64_t M = a.shape(0), K = a.shape(1), N = b.shape(1);
          py::array_t<float> c({M, N});
          auto pa = aligned_buffer(kernels::packed_a_floats(M, K, kt->gemm_mr) * 4);
          auto pb = aligned_buffer(kernels::packed_b_floats(K, N, kt->gemm_nr) * 4);
          kernels::pack_a(a.data(), K, 1, M, K, kt->gemm_mr, static_cast<float*>(pa.get()));
          kernels::pack_b(b.data(), N, 1, K, N, kt->gemm_nr, static_cast<float*>(pb.get()));
          {
            py::gil_scoped_release nogil;
            ThreadScope scope(threads);
            auto work = aligned_buffer(kernels::gemm_work_bytes(*kt, M));
            const kernels::GemmA ga = a_in_place ? kernels::GemmA::row_major(a.data(), K)
                                                 : kernels::GemmA(static_cast<float*>(pa.get()));
            const kernels::GemmB gb = b_in_place ? kernels::GemmB{b.data(), N, static_cast<float*>(work.get())}
                                                 : kernels::GemmB{static_cast<float*>(pb.get()), 0, static_cast<float*>(work.get())};
            kernels::gemm(*kt, M, N, K, ga, gb, c.mutable_data(), N, kernels::Epilogue{});
          }
          return c;
        },
        py::arg("a"), py::arg("b"), py::arg("isa"), py::arg("threads") = 1, py::arg("a_in_place") = false,
        py::arg("b_in_place") = false,
        "C = A @ B through the packed SGEMM of one ISA (for tests and benchmarks); a_in_place: A is read "
        "row-major where it is (GemmA::row_major, weights used once) instead of packed; b_in_place: B is a "
        "row-major matrix the GEMM packs block by block or, for shapes where that pays, reads in place.");
}
