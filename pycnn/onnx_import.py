"""ONNX front end: turns an ONNX model (path, bytes or ModelProto) into a
pycnn graph. Parsing is the `onnx` package's job; this module maps its
protos onto pycnn._core.Graph and does no arithmetic on tensors.

Constant nodes become constants here; everything else, including shape glue,
goes to the C++ graph, whose passes fold what is constant.
"""
from __future__ import annotations

import mmap
import os
import sys
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import onnx
from onnx import external_data_helper, numpy_helper

from . import _core
from .errors import InvalidModelError, UnsupportedModelError

# ONNX TensorProto data types pycnn can hold, by name.
_DTYPES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.INT8: "int8",
    onnx.TensorProto.UINT8: "uint8",
    onnx.TensorProto.BOOL: "bool",
}
DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass
class TensorSpec:
    """Name, shape (ints, symbol strings or None) and ONNX type string of a graph input or output."""

    name: str
    shape: list | None
    type: str

    def __repr__(self) -> str:
        return f"NodeArg(name={self.name!r}, type={self.type!r}, shape={self.shape!r})"


def load_model(model) -> onnx.ModelProto:
    """Returns the ModelProto for a path, bytes or ModelProto, or raises InvalidModelError."""
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray, memoryview)):
        try:
            proto = onnx.load_model_from_string(bytes(model))
        except Exception as e:  # protobuf raises DecodeError and friends
            raise InvalidModelError(f"the bytes given are not a valid ONNX model ({type(e).__name__}: {e})") from None
        return _checked(proto, "<bytes>")
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.exists(path):
            raise FileNotFoundError(f"ONNX model file not found: {path!r}")
        if os.path.isdir(path):
            raise InvalidModelError(f"{path!r} is a directory, not an ONNX model file")
        try:
            proto = _read_model_file(path)
        except Exception as e:
            raise InvalidModelError(f"could not read {path!r} as an ONNX model ({type(e).__name__}: {e}); "
                                    "is the file complete and really .onnx?") from None
        return _checked(proto, path)
    raise TypeError(f"expected a path, bytes or onnx.ModelProto, got {type(model).__name__}")


def _read_model_file(path: str) -> onnx.ModelProto:
    """onnx.load, with a binary file parsed straight from the page cache
    (mmap) rather than from a copy read into bytes first: ResNet-50's 100 MB
    120 -> 70 ms. Text formats (by extension, as onnx.load tells them) and
    files that cannot be mapped (empty ones among them) go through
    onnx.load; external-data weights next to the file are loaded either way."""
    registry = getattr(getattr(onnx, "serialization", None), "registry", None)
    fmt = registry.get_format_from_file_extension(os.path.splitext(path)[1]) if registry else None
    if fmt not in (None, "protobuf"):
        return onnx.load(path)
    with open(path, "rb") as f:
        try:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # mmap refuses empty files (ValueError) and some file systems
            return onnx.load(path)
        proto = onnx.ModelProto()
        with mapped, memoryview(mapped) as view:
            proto.ParseFromString(view)  # copies what it keeps: the map can close
    external_data_helper.load_external_data_for_model(proto, os.path.dirname(path))
    return proto


def _checked(proto: onnx.ModelProto, where: str) -> onnx.ModelProto:
    if not proto.graph.node and not proto.graph.output:
        raise InvalidModelError(f"{where} holds no graph (empty or truncated ONNX file?)")
    return proto


def _opsets(model: onnx.ModelProto) -> dict:
    opsets = {imp.domain or "": imp.version for imp in model.opset_import}
    if "" not in opsets and "ai.onnx" in opsets:
        opsets[""] = opsets["ai.onnx"]
    if "" not in opsets and any(n.domain in DEFAULT_DOMAINS for n in model.graph.node):
        raise InvalidModelError("the model has no opset_import for the default ONNX domain, so its operators' "
                                "versions are unknown (truncated or hand-built file?)")
    known = onnx.defs.onnx_opset_version()
    if opsets.get("", 0) > known:
        raise UnsupportedModelError(f"the model uses ONNX opset {opsets['']}, newer than the installed onnx package "
                                    f"knows ({known}); upgrade onnx (pip install -U onnx)")
    return opsets


def _type_string(tp: onnx.TypeProto) -> str:
    if tp.HasField("tensor_type"):
        name = onnx.helper.tensor_dtype_to_np_dtype(tp.tensor_type.elem_type).name \
            if tp.tensor_type.elem_type else "undefined"
        return {"float32": "tensor(float)", "float64": "tensor(double)"}.get(name, f"tensor({name})")
    return tp.WhichOneof("value") or "unknown"


def _shape(tp: onnx.TypeProto):
    if not tp.HasField("tensor_type") or not tp.tensor_type.HasField("shape"):
        return None
    dims = []
    for d in tp.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dims


def _to_array(t: onnx.TensorProto, what: str) -> np.ndarray:
    if t.data_type not in _DTYPES:
        name = onnx.TensorProto.DataType.Name(t.data_type)
        raise UnsupportedModelError(f"{what}: data type {name} is not supported "
                                    "(pycnn supports float32, float64, int64, int32, int8, uint8, bool)")
    try:
        if t.HasField("raw_data") and t.data_location != onnx.TensorProto.EXTERNAL and sys.byteorder == "little":
            # The bytes as they are (read-only: the graph copies them): one
            # copy where numpy_helper made two (ResNet-50's initializers 37 -> 19 ms).
            dtype = onnx.helper.tensor_dtype_to_np_dtype(t.data_type)
            return np.frombuffer(t.raw_data, dtype=dtype).reshape(tuple(t.dims))
        return np.require(numpy_helper.to_array(t), requirements="C")
    except Exception as e:
        raise InvalidModelError(f"{what}: cannot read tensor data ({e}); for external-data weights, "
                                "load the model from its path so the data files are found") from None


def _attribute(a: onnx.AttributeProto, what: str):
    A = onnx.AttributeProto
    if a.type == A.INT:
        return ("i", int(a.i))
    if a.type == A.FLOAT:
        return ("f", float(a.f))
    if a.type == A.STRING:
        return ("s", a.s.decode("utf-8", "replace"))
    if a.type == A.INTS:
        return ("ints", [int(v) for v in a.ints])
    if a.type == A.FLOATS:
        return ("floats", [float(v) for v in a.floats])
    if a.type == A.STRINGS:
        return ("strings", [v.decode("utf-8", "replace") for v in a.strings])
    if a.type == A.TENSOR:
        return ("t", _to_array(a.t, f"{what} attribute '{a.name}'"))
    return None  # graphs, sparse tensors, type protos: no op pycnn implements takes them


def _constant_value(node: onnx.NodeProto) -> np.ndarray:
    what = f"node '{node.name}' (Constant)"
    for a in node.attribute:
        if a.name == "value":
            return _to_array(a.t, what)
        if a.name == "value_float":
            return np.array(a.f, dtype=np.float32)
        if a.name == "value_floats":
            return np.array(list(a.floats), dtype=np.float32)
        if a.name == "value_int":
            return np.array(a.i, dtype=np.int64)
        if a.name == "value_ints":
            return np.array(list(a.ints), dtype=np.int64)
        if a.name in ("value_string", "value_strings", "sparse_value"):
            raise UnsupportedModelError(f"{what}: attribute '{a.name}' is not supported")
    raise InvalidModelError(f"{what} has no value attribute")


def build_graph(model: onnx.ModelProto, release_initializers: bool = False):
    """Returns (graph, inputs, outputs): the pycnn graph and TensorSpecs of the model's inputs and outputs.

    release_initializers: clear each initializer's data in `model` once it is
    copied into the graph (for protos nobody else holds), so loading never
    holds two copies of all the weights."""
    opsets = _opsets(model)
    g = model.graph
    graph = _core.Graph()
    initializer_names = set()
    for t in g.initializer:
        graph.add_constant(t.name, _to_array(t, f"initializer '{t.name}'"))
        initializer_names.add(t.name)
        if release_initializers:
            t.ClearField("raw_data")
            t.ClearField("float_data")

    inputs = []
    for vi in g.input:
        if vi.name in initializer_names:
            continue  # an initializer listed as input: a constant here
        tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
        if tt is None or tt.elem_type not in _DTYPES:
            raise UnsupportedModelError(f"graph input '{vi.name}' has type {_type_string(vi.type)}; pycnn inputs must "
                                        "be tensors of float32, float64, int64, int32, int8, uint8 or bool")
        shape = _shape(vi.type)
        graph.add_input(vi.name, _DTYPES[tt.elem_type], shape)
        inputs.append(TensorSpec(vi.name, shape, _type_string(vi.type)))

    for i, node in enumerate(g.node):
        name = node.name or f"{node.op_type}_{i}"
        domain = node.domain or ""
        if node.op_type == "Constant" and domain in DEFAULT_DOMAINS:
            graph.add_constant(node.output[0], _constant_value(node))
            continue
        attrs = {}
        for a in node.attribute:
            value = _attribute(a, f"node '{name}' ({node.op_type})")
            if value is not None:
                attrs[a.name] = value
        opset = opsets.get(domain if domain not in DEFAULT_DOMAINS else "", 0)
        graph.add_node(node.op_type, name, domain, int(opset), list(node.input), list(node.output), attrs)

    outputs = []
    for vi in g.output:
        graph.add_output(vi.name)
        outputs.append(TensorSpec(vi.name, _shape(vi.type), _type_string(vi.type)))
    return graph, inputs, outputs


class LayerOutline(NamedTuple):
    """One node of a model as the receptive-field analysis sees it: its
    edges, and for windowed ops (Conv, ConvTranspose, pools) the window."""
    name: str
    op_type: str
    inputs: tuple
    outputs: tuple
    kernel: tuple = ()
    strides: tuple = ()
    dilations: tuple = ()


_WINDOWED = ("Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool")


def layer_outline(model: onnx.ModelProto) -> tuple[tuple, list]:
    """(data input names, [LayerOutline per node in graph order]) of a model:
    shapes and attributes only, no weights (cheap enough to keep per session)."""
    g = model.graph
    weight_dims = {t.name: tuple(t.dims) for t in g.initializer}
    data_inputs = tuple(i.name for i in g.input if i.name not in weight_dims)
    nodes = []
    for i, n in enumerate(g.node):
        name = n.name or f"{n.op_type}_{i}"
        if n.op_type not in _WINDOWED:
            nodes.append(LayerOutline(name, n.op_type, tuple(n.input), tuple(n.output)))
            continue
        a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
        kernel = tuple(a.get("kernel_shape", ()))
        if not kernel and len(n.input) > 1 and n.input[1] in weight_dims:
            kernel = weight_dims[n.input[1]][2:]
        r = len(kernel)
        nodes.append(LayerOutline(name, n.op_type, tuple(n.input), tuple(n.output), kernel,
                                  tuple(a.get("strides", (1,) * r)), tuple(a.get("dilations", (1,) * r))))
    return data_inputs, nodes
