"""TensorFlow's own proto classes, loaded without starting the TF runtime.

Importing ``tensorflow.core.framework.graph_pb2`` the ordinary way runs
``tensorflow/__init__.py`` (seconds and hundreds of MiB). The generated
``*_pb2`` modules need none of it, so we import them under a temporary
namespace stand-in for the top package. A later real ``import tensorflow``
finds these modules in ``sys.modules`` and reuses them, so message classes
stay identical across both worlds.
"""

import importlib
import importlib.util
import sys
import types

_MODULES = {
    "attr_value_pb2": "tensorflow.core.framework.attr_value_pb2",
    "function_pb2": "tensorflow.core.framework.function_pb2",
    "graph_pb2": "tensorflow.core.framework.graph_pb2",
    "node_def_pb2": "tensorflow.core.framework.node_def_pb2",
    "op_def_pb2": "tensorflow.core.framework.op_def_pb2",
    "tensor_pb2": "tensorflow.core.framework.tensor_pb2",
    "tensor_shape_pb2": "tensorflow.core.framework.tensor_shape_pb2",
    "types_pb2": "tensorflow.core.framework.types_pb2",
    "meta_graph_pb2": "tensorflow.core.protobuf.meta_graph_pb2",
    "saved_model_pb2": "tensorflow.core.protobuf.saved_model_pb2",
    "saver_pb2": "tensorflow.core.protobuf.saver_pb2",
    "tensor_bundle_pb2": "tensorflow.core.protobuf.tensor_bundle_pb2",
    "example_pb2": "tensorflow.core.example.example_pb2",
}


def _import_protos() -> dict:
    if "tensorflow" in sys.modules:
        return {k: importlib.import_module(v) for k, v in _MODULES.items()}
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("TensorFlow is not installed: pip install tensorflow-cpu")
    stand_in = types.ModuleType("tensorflow")
    stand_in.__path__ = list(spec.submodule_search_locations)
    sys.modules["tensorflow"] = stand_in
    try:
        return {k: importlib.import_module(v) for k, v in _MODULES.items()}
    finally:
        if sys.modules.get("tensorflow") is stand_in:
            del sys.modules["tensorflow"]


globals().update(_import_protos())

from google.protobuf import json_format, text_format  # noqa: E402  (re-exported)
