"""Model export: the trained classifier as one ``.tflite`` file plus a ``labels.txt``.

As Coral's on-device backprop API serialises a model: the embedding extractor's graph, left
untouched, with the learned last layer appended. With the ``_edgetpu`` extractor the base is
one ``edgetpu-custom-op`` that runs on the Edge TPU and the appended ops run on the CPU; with
the CPU extractor everything runs on the CPU. The appended layer is float32 and its output is
float32 probabilities ``[1, C]``::

    every method   RESHAPE [1,1,1,D] → [1,D] → DEQUANTIZE (uint8 → float32)
    auto           → SUB mean → L2_NORMALIZATION → FULLY_CONNECTED(scale·W, b) → SOFTMAX
    imprinting     → L2_NORMALIZATION → FULLY_CONNECTED(scale·W) → SOFTMAX
    backprop       → FULLY_CONNECTED(wᵀ, b) → SOFTMAX
    knn            exported as a nearest-class-mean head: imprinting of its examples

k-NN keeps every example and votes among the nearest, which no fixed layer can do; it is
exported as the closest fixed layer (the imprinted weights, one normalised mean per class, at
``ImprintingLearner``'s scale) and the model's description says so. Its predictions can differ
from the kiosk's k-NN.

Only classes with at least one example are exported (the kiosk never predicts the others);
``labels.txt`` numbers them in output order, one ``index name`` a line, as pycoral's
``read_label_file`` reads it. The model's ``description`` is a JSON object with the base model,
the method, the classes and the appended ops.

The flatbuffer is rebuilt with the TFLite schema's Python object API that ``ai_edge_litert``
ships; byte vectors (weights, the Edge TPU program) keep the 16-byte alignment TFLite's
converter gives them.
"""

from __future__ import annotations

import copy
import json
from typing import List, NamedTuple, Optional, Sequence

import numpy as np

from server.learn.base import l2_normalize, softmax

IMPRINTING_SCALE = 10.0
"""The scale of a k-NN learner's nearest-class-mean export (``ImprintingLearner``'s default)."""

TARGETS = ("cpu", "edgetpu")

_ALIGN = 16  # TFLite's schema declares buffer data ``force_align: 16``
_PREFIX = "teachable/"


class ExportError(Exception):
    """The model cannot be exported; ``code`` for programs, the message for people."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class Head(NamedTuple):
    """The learned last layer in float32: ``softmax(W · normalise(x - mean) + b)``.

    Attributes:
      method: the learner's method.
      class_ids: the C exported class ids, in output order.
      weights: CxD float32, any scale folded in.
      bias: (C,) float32.
      mean: (D,) float32 subtracted first, or None.
      normalize: whether the (centred) embedding is L2-normalised before the product.
      note: how the method was approximated ('' when the export is exact).
    """

    method: str
    class_ids: tuple
    weights: np.ndarray
    bias: np.ndarray
    mean: Optional[np.ndarray]
    normalize: bool
    note: str = ""

    def logits(self, x: np.ndarray) -> np.ndarray:
        """NxC scores of NxD float embeddings: the appended graph, in numpy."""
        x = np.asarray(x, np.float32)
        if self.mean is not None:
            x = x - self.mean
        if self.normalize:
            x = l2_normalize(x)
        return x @ self.weights.T + self.bias

    def probs(self, x: np.ndarray) -> np.ndarray:
        """NxC probabilities of NxD float embeddings."""
        return softmax(self.logits(x).astype(np.float64)).astype(np.float32)

    def describe(self) -> str:
        """The appended ops, in order."""
        ops = ["RESHAPE", "DEQUANTIZE"]
        ops += ["SUB mean"] if self.mean is not None else []
        ops += ["L2_NORMALIZATION"] if self.normalize else []
        return " → ".join(ops + ["FULLY_CONNECTED", "SOFTMAX"])


def head_of(learner) -> Head:
    """The last layer a learner predicts with now, over the classes that have examples.

    Args:
      learner: a ``server.learn`` learner (auto, imprinting, backprop or knn).

    Raises:
      ExportError: ``no_classes`` when no class has an example; ``needs_training`` for a
        backprop learner whose layer is missing or older than its examples.
    """
    counts = learner.counts()
    taught = [c for c in learner.classes if counts.get(c, 0) > 0]
    if not taught:
        raise ExportError("no_classes", "Teach at least one class before exporting a model.")
    columns = [learner.classes.index(c) for c in taught]
    f32 = np.float32
    if learner.name == "auto":
        mean, w, b = learner.weights()
        scale = learner.params["scale"]
        return Head(
            "auto",
            tuple(taught),
            (scale * np.asarray(w, f32)[columns]).astype(f32),
            np.asarray(b, f32)[columns],
            np.asarray(mean, f32),
            True,
        )
    if learner.name == "backprop":
        if learner.head is None or learner.needs_fit:
            raise ExportError(
                "needs_training",
                "The backprop layer is not trained on the current examples: train it first "
                "(the Train button, or POST /api/train), then export.",
            )
        column = {c: i for i, c in enumerate(learner.head.class_ids)}
        rows = [column[c] for c in taught]
        w = np.asarray(learner.head.w, f32).T[rows]
        b = np.asarray(learner.head.b, f32)[rows]
        return Head("backprop", tuple(taught), np.ascontiguousarray(w), b, None, False)
    if learner.name in ("imprinting", "knn"):
        scale = learner.scale if learner.name == "imprinting" else IMPRINTING_SCALE
        w = (scale * learner.prototypes()[columns]).astype(f32)
        note = ""
        if learner.name == "knn":
            note = (
                f"k-NN cannot be a fixed layer: exported as its nearest class mean (imprinted "
                f"weights of its examples, scale {scale:g}); predictions can differ from k-NN's"
            )
        return Head(learner.name, tuple(taught), w, np.zeros(len(taught), f32), None, True, note)
    raise ExportError("bad_method", f"Cannot export a {learner.name!r} learner.")


def labels_txt(names: Sequence[str]) -> str:
    """``labels.txt``: one ``index name`` line per output (pycoral's ``read_label_file``)."""
    return "".join(f"{i} {name}\n" for i, name in enumerate(names))


def description(head: Head, names: Sequence[str], base_name: str) -> str:
    """The model's ``description``: JSON with the base model, the method and the classes."""
    info = {
        "generator": "teachable kiosk",
        "base_model": base_name,
        "method": head.method,
        "classes": list(names),
        "head": head.describe(),
        "output": "float32 probabilities [1, C], in labels.txt order",
    }
    if head.note:
        info["note"] = head.note
    return json.dumps(info, ensure_ascii=False)


def build_model(base: bytes, head: Head, names: Sequence[str], base_name: str = "") -> bytes:
    """Appends ``head`` to an embedding extractor's flatbuffer.

    The base model's operators, tensors, buffers and operator codes are kept as they are
    (an Edge TPU model's ``edgetpu-custom-op`` and its program byte for byte); the new ops,
    tensors and constant buffers are appended, the base's output stops being the graph's
    output and the ``[1, C]`` float32 probabilities become it.

    Args:
      base: the bytes of an extractor ``.tflite`` whose first subgraph has one output
        ``[1, ..., D]`` (uint8/int8 quantised or float32).
      head: the layer to append (D must match).
      names: the C class names, for the description.
      base_name: the base model's name, for the description.

    Returns:
      The new model's bytes.

    Raises:
      ExportError: the base is not such a model, or the schema package is missing.
    """
    schema, flatbuffers = _schema()
    if len(base) < 8 or base[4:8] != b"TFL3":
        raise ExportError("bad_model", "The base model is not a TFLite flatbuffer.")
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(base, 0))
    except Exception as e:  # any parse failure of foreign bytes means the same thing
        raise ExportError("bad_model", f"The base model cannot be read ({e}).") from None
    if not model.subgraphs or model.subgraphs[0].outputs is None:
        raise ExportError("bad_model", "The base model has no graph.")
    graph = model.subgraphs[0]
    if len(graph.outputs) != 1:
        raise ExportError("bad_model", "The base model must have exactly one output.")
    out_index = int(graph.outputs[0])
    out = graph.tensors[out_index]
    shape = [int(s) for s in out.shape]
    dim = int(np.prod(shape[1:])) if len(shape) > 1 else 0
    if not shape or shape[0] != 1 or dim != head.weights.shape[1]:
        raise ExportError(
            "dim_mismatch",
            f"The base model's output {shape} does not give the {head.weights.shape[1]} values "
            "the learned layer expects: export with the extractor that made the embeddings.",
        )

    g = _Graph(schema, model, graph)
    float32 = schema.TensorType.FLOAT32
    reshape_options = schema.ReshapeOptionsT()
    reshape_options.newShape = np.array([1, dim], np.int32)
    x = g.op(
        "RESHAPE",
        [out_index, g.const("embedding_shape", np.array([1, dim], np.int32))],
        g.tensor("embedding", [1, dim], out.type, copy.deepcopy(out.quantization)),
        "ReshapeOptions",
        reshape_options,
    )
    if out.type != float32:
        version = 2 if out.type == schema.TensorType.INT8 else 1
        x = g.op("DEQUANTIZE", [x], g.tensor("embedding_float", [1, dim]), version=version)
    if head.mean is not None:
        mean = g.const("mean", np.asarray(head.mean, np.float32).reshape(1, dim))
        x = g.op(
            "SUB", [x, mean], g.tensor("centred", [1, dim]), "SubOptions", schema.SubOptionsT()
        )
    if head.normalize:
        x = g.op(
            "L2_NORMALIZATION",
            [x],
            g.tensor("normalized", [1, dim]),
            "L2NormOptions",
            schema.L2NormOptionsT(),
        )
    classes = head.weights.shape[0]
    x = g.op(
        "FULLY_CONNECTED",
        [x, g.const("weights", head.weights), g.const("bias", head.bias)],
        g.tensor("logits", [1, classes]),
        "FullyConnectedOptions",
        schema.FullyConnectedOptionsT(),
    )
    softmax_options = schema.SoftmaxOptionsT()
    softmax_options.beta = 1.0
    probs = g.op(
        "SOFTMAX", [x], g.tensor("probabilities", [1, classes]), "SoftmaxOptions", softmax_options
    )
    graph.outputs = np.array([probs], np.int32)
    for signature in model.signatureDefs or []:
        if signature.subgraphIndex == 0:
            entry = schema.TensorMapT()
            entry.name, entry.tensorIndex = "probabilities", probs
            signature.outputs = [entry]
    model.description = description(head, names, base_name)

    builder = _aligned_builder(flatbuffers, len(base) + head.weights.nbytes + (1 << 16))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


class Exported(NamedTuple):
    """An exported classifier: the ``.tflite`` bytes, ``labels.txt`` and the head inside."""

    tflite: bytes
    labels: str
    head: Head
    names: List[str]


def export(learner, names, base: bytes, base_name: str = "") -> Exported:
    """The learner's current classifier appended to ``base`` (an extractor's bytes).

    Args:
      learner: the learner to export.
      names: class id → name (a mapping); ids without a name are exported as their id.
      base: the extractor model file's bytes (CPU or ``_edgetpu`` build).
      base_name: the extractor's name, for the description.

    Raises:
      ExportError: see ``head_of`` and ``build_model``.
    """
    head = head_of(learner)
    labels = [str(names.get(c, c)) for c in head.class_ids]
    return Exported(build_model(base, head, labels, base_name), labels_txt(labels), head, labels)


# ----- flatbuffer plumbing --------------------------------------------------------------------
def _schema():
    try:
        import flatbuffers
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as e:
        raise ExportError(
            "no_schema",
            f"Model export needs the ai-edge-litert package ({e}): pip install ai-edge-litert",
        ) from None
    return schema, flatbuffers


def _aligned_builder(flatbuffers, size: int):
    class AlignedBuilder(flatbuffers.Builder):
        """Writes byte vectors 16-byte aligned, as TFLite's converter does."""

        def CreateNumpyVector(self, x):
            if x.dtype != np.uint8 or x.ndim != 1:
                return super().CreateNumpyVector(x)
            payload = x.tobytes()
            self.StartVector(1, len(payload), _ALIGN)
            self.head = self.head - len(payload)
            self.Bytes[self.head : self.head + len(payload)] = payload
            self.vectorNumElems = len(payload)
            return self.EndVector()

    return AlignedBuilder(size)


class _Graph:
    """Appends tensors, constant buffers, operator codes and operators to a subgraph.

    Index vectors are int32 numpy arrays: the object API's ``Pack`` writes a numpy array with
    its own dtype, and TFLite reads these vectors as int32.
    """

    def __init__(self, schema, model, graph):
        self.schema, self.model, self.graph = schema, model, graph
        model.buffers = list(model.buffers or [])
        model.operatorCodes = list(model.operatorCodes or [])
        graph.tensors = list(graph.tensors or [])
        graph.operators = list(graph.operators or [])
        first = model.buffers[0] if model.buffers else None
        if first is not None and (first.data is None or len(first.data) == 0) and not first.size:
            self.empty_buffer = 0
        else:  # buffer 0 is the schema's empty sentinel; a model that breaks that gets one
            self.empty_buffer = self._buffer(None)

    def _buffer(self, data: Optional[np.ndarray]) -> int:
        buffer = self.schema.BufferT()
        if data is not None:
            buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
        self.model.buffers.append(buffer)
        return len(self.model.buffers) - 1

    def tensor(self, name: str, shape, dtype=None, quantization=None, buffer=None) -> int:
        t = self.schema.TensorT()
        t.name = _PREFIX + name
        t.shape = np.array(shape, np.int32)
        t.type = self.schema.TensorType.FLOAT32 if dtype is None else dtype
        t.buffer = self.empty_buffer if buffer is None else buffer
        t.hasRank = True
        t.quantization = quantization
        self.graph.tensors.append(t)
        return len(self.graph.tensors) - 1

    def const(self, name: str, array: np.ndarray) -> int:
        array = np.asarray(array)
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        dtype = {
            np.dtype(np.float32): self.schema.TensorType.FLOAT32,
            np.dtype(np.int32): self.schema.TensorType.INT32,
        }[array.dtype]
        little = array.astype(array.dtype.newbyteorder("<"))
        return self.tensor(name, array.shape, dtype, buffer=self._buffer(little.reshape(-1)))

    def opcode(self, name: str, version: int = 1) -> int:
        code = getattr(self.schema.BuiltinOperator, name)
        for i, oc in enumerate(self.model.operatorCodes):
            # TFLite reads max(builtin_code, deprecated_builtin_code): old files set only one
            if oc.customCode is None and max(oc.builtinCode, oc.deprecatedBuiltinCode) == code:
                oc.version = max(oc.version, version)
                return i
        oc = self.schema.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), version
        self.model.operatorCodes.append(oc)
        return len(self.model.operatorCodes) - 1

    def op(self, name, inputs, output, options_type=None, options=None, version=1) -> int:
        op = self.schema.OperatorT()
        op.opcodeIndex = self.opcode(name, version)
        op.inputs = np.array(inputs, np.int32)
        op.outputs = np.array([output], np.int32)
        if options is not None:
            op.builtinOptionsType = getattr(self.schema.BuiltinOptions, options_type)
            op.builtinOptions = options
        self.graph.operators.append(op)
        return output
