"""Model export: the exported .tflite run by a plain TFLite interpreter agrees with the kiosk."""

import io
import json
import time

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

from server import create_app, export, models
from server.hw import runtime as rt
from server.hw.extractor import preprocess
from server.learn import make_learner
from server.settings import Settings

from fakes import FakeCamera

DIGITS = range(10)
TRAIN_PER_CLASS = 12
TEST_PER_CLASS = 10  # 100 photos
APPENDED = {
    "auto": ["RESHAPE", "DEQUANTIZE", "SUB", "L2_NORMALIZATION", "FULLY_CONNECTED", "SOFTMAX"],
    "imprinting": ["RESHAPE", "DEQUANTIZE", "L2_NORMALIZATION", "FULLY_CONNECTED", "SOFTMAX"],
    "backprop": ["RESHAPE", "DEQUANTIZE", "FULLY_CONNECTED", "SOFTMAX"],
}
OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def _photos(digits_dir, digit, n, start):
    paths = sorted((digits_dir / str(digit)).iterdir())[start : start + n]
    return [Image.open(p).convert("RGB") for p in paths]


@pytest.fixture(scope="module")
def digits(digits_dir, extractor):
    """Embeddings of 12 training photos per digit, and 100 other photos with theirs."""
    train = {
        d: np.stack([extractor.embed(im) for im in _photos(digits_dir, d, TRAIN_PER_CLASS, 0)])
        for d in DIGITS
    }
    test_images, test_labels = [], []
    for d in DIGITS:
        test_images += _photos(digits_dir, d, TEST_PER_CLASS, 120)
        test_labels += [d] * TEST_PER_CLASS
    test_x = np.stack([extractor.embed(im) for im in test_images])
    return train, test_images, test_x, np.array(test_labels)


@pytest.fixture(scope="module")
def bases(model_dir):
    paths = {
        "cpu": models.locate(models.EXTRACTOR_CPU, data_dir=model_dir, download=False),
        "edgetpu": models.locate(models.EXTRACTOR_EDGETPU, data_dir=model_dir, download=False),
    }
    return {k: p.read_bytes() for k, p in paths.items()}


def _trained(method, train):
    learner = make_learner(method)
    for digit, x in train.items():
        learner.add(digit, x)
    learner.fit()
    return learner


def _model(data: bytes):
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))


def _op_names(model):
    codes = model.operatorCodes
    return [
        OP_NAMES[
            max(codes[op.opcodeIndex].builtinCode, codes[op.opcodeIndex].deprecatedBuiltinCode)
        ]
        for op in model.subgraphs[0].operators
    ]


def _run(tflite: bytes, images) -> np.ndarray:
    interpreter = Interpreter(model_content=tflite, num_threads=2)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    assert out["dtype"] == np.float32
    size = (inp["shape"][2], inp["shape"][1])
    probs = []
    for image in images:
        interpreter.set_tensor(inp["index"], preprocess(image, size)[np.newaxis])
        interpreter.invoke()
        probs.append(interpreter.get_tensor(out["index"])[0].copy())
    return np.stack(probs)


@pytest.mark.parametrize("method", ["auto", "imprinting", "backprop"])
def test_exported_cpu_model_agrees_with_the_kiosk(method, digits, bases):
    train, images, test_x, test_labels = digits
    learner = _trained(method, train)
    exported = export.export(learner, {d: f"digit {d}" for d in DIGITS}, bases["cpu"], "cpu")
    assert exported.labels.splitlines() == [f"{d} digit {d}" for d in DIGITS]

    probs = _run(exported.tflite, images)
    app = learner.predict(test_x).probs
    assert probs.shape == app.shape == (100, 10)
    same_top = np.mean(np.argmax(probs, 1) == np.argmax(app, 1))
    assert same_top >= 0.99
    assert np.abs(probs - app).max() <= 0.02
    assert np.mean(np.argmax(probs, 1) == test_labels) >= 0.4  # chance is 0.1
    # the numpy reference of the appended graph is the learner's own scoring
    np.testing.assert_allclose(exported.head.probs(test_x), app, atol=1e-5)


def test_cpu_export_keeps_the_base_graph_and_describes_itself(digits, bases):
    learner = _trained("auto", digits[0])
    names = {d: f"digit {d}" for d in DIGITS}
    exported = export.export(learner, names, bases["cpu"], models.EXTRACTOR_CPU.name)
    base, new = _model(bases["cpu"]), _model(exported.tflite)
    old_graph, graph = base.subgraphs[0], new.subgraphs[0]
    n_ops, n_tensors = len(old_graph.operators), len(old_graph.tensors)
    assert _op_names(new)[n_ops:] == APPENDED["auto"]
    for a, b in zip(old_graph.operators, graph.operators[:n_ops]):
        assert (a.opcodeIndex, list(a.inputs), list(a.outputs)) == (
            b.opcodeIndex,
            list(b.inputs),
            list(b.outputs),
        )
    for a, b in zip(old_graph.tensors, graph.tensors[:n_tensors]):
        assert (a.name, list(a.shape), a.type, a.buffer) == (
            b.name,
            list(b.shape),
            b.type,
            b.buffer,
        )
    for a, b in zip(base.buffers, new.buffers):
        assert bytes(a.data if a.data is not None else b"") == bytes(
            b.data if b.data is not None else b""
        )
    out = graph.tensors[graph.outputs[0]]
    assert list(graph.outputs) == [len(graph.tensors) - 1]
    assert list(out.shape) == [1, 10] and out.type == schema.TensorType.FLOAT32
    info = json.loads(new.description)
    assert info["base_model"] == "mobilenet_v1_embedding" and info["method"] == "auto"
    assert info["classes"] == [f"digit {d}" for d in DIGITS]
    assert "L2_NORMALIZATION" in info["head"]


def test_edgetpu_export_keeps_the_custom_op_and_appends_cpu_ops(digits, bases):
    """The Edge TPU build cannot run here (no device, no libedgetpu): the graph is checked.

    Its custom op and the program in its custom options must be byte-identical to the base's,
    and the appended ops exactly those of the CPU build, which the test above runs.
    """
    learner = _trained("auto", digits[0])
    names = {d: str(d) for d in DIGITS}
    tpu = export.export(learner, names, bases["edgetpu"], models.EXTRACTOR_EDGETPU.name)
    cpu = export.export(learner, names, bases["cpu"], models.EXTRACTOR_CPU.name)
    base, new, cpu_model = _model(bases["edgetpu"]), _model(tpu.tflite), _model(cpu.tflite)

    custom = [i for i, c in enumerate(new.operatorCodes) if c.customCode == b"edgetpu-custom-op"]
    assert len(custom) == 1
    graph = new.subgraphs[0]
    first = graph.operators[0]
    assert first.opcodeIndex == custom[0]
    original = base.subgraphs[0].operators[0]
    assert first.customOptions.tobytes() == original.customOptions.tobytes()
    assert list(first.inputs) == list(original.inputs) == [0]
    assert list(first.outputs) == list(original.outputs) == [1]
    for a, b in zip(base.subgraphs[0].tensors, graph.tensors):
        assert (a.name, list(a.shape), a.type) == (b.name, list(b.shape), b.type)
        assert a.quantization.scale.tolist() == b.quantization.scale.tolist()
    # the program sits 16-byte aligned, where edgetpu_compiler put it
    raw = schema.Model.GetRootAsModel(tpu.tflite, 0).Subgraphs(0).Operators(0)
    assert raw._tab.Vector(raw._tab.Offset(14)) % 16 == 0
    assert raw.CustomOptionsAsNumpy().tobytes() == original.customOptions.tobytes()

    # the appended ops: the CPU build's, reading the custom op's output, with the same constants
    assert _op_names(new)[1:] == APPENDED["auto"]
    appended = graph.operators[1:]
    cpu_appended = cpu_model.subgraphs[0].operators[-len(appended) :]
    assert list(appended[0].inputs)[0] == 1
    for a, b in zip(appended, cpu_appended):
        assert a.builtinOptionsType == b.builtinOptionsType
        for ta, tb in zip(a.inputs[1:], b.inputs[1:]):  # the constants
            buf_a = new.buffers[graph.tensors[ta].buffer].data
            buf_b = cpu_model.buffers[cpu_model.subgraphs[0].tensors[tb].buffer].data
            assert buf_a.tobytes() == buf_b.tobytes() and len(buf_a) > 0
    out = graph.tensors[graph.outputs[0]]
    assert list(out.shape) == [1, 10] and out.type == schema.TensorType.FLOAT32
    assert json.loads(new.description)["base_model"] == "mobilenet_v1_embedding_edgetpu"


@pytest.mark.edgetpu
def test_edgetpu_export_runs_on_the_device(digits, bases, tmp_path):
    if not rt.edgetpu_devices():
        pytest.skip("no Edge TPU present")
    train, images, test_x, _ = digits
    learner = _trained("auto", train)
    path = tmp_path / "model_edgetpu.tflite"
    path.write_bytes(export.export(learner, {}, bases["edgetpu"]).tflite)
    interpreter = rt.make_edgetpu_interpreter(str(path), rt.load_runtime())
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.set_tensor(inp["index"], preprocess(images[0], (224, 224))[np.newaxis])
    interpreter.invoke()
    probs = interpreter.get_tensor(out["index"])[0]
    assert np.argmax(probs) == learner.predict(test_x[:1]).top[0]


def test_knn_is_exported_as_its_nearest_class_mean(digits, bases):
    train, _, test_x, _ = digits
    knn = _trained("knn", train)
    imprinting = make_learner("imprinting", scale=export.IMPRINTING_SCALE)
    for digit, x in train.items():
        imprinting.add(digit, x)
    exported = export.export(knn, {}, bases["cpu"])
    np.testing.assert_allclose(
        exported.head.probs(test_x), imprinting.predict(test_x).probs, atol=1e-5
    )
    info = json.loads(_model(exported.tflite).description)
    assert info["method"] == "knn" and "nearest class mean" in info["note"]


def test_only_taught_classes_are_exported_and_untrained_layers_refused(bases):
    rng = np.random.default_rng(0)
    learner = make_learner("imprinting")
    with pytest.raises(export.ExportError) as e:
        export.head_of(learner)
    assert e.value.code == "no_classes"
    learner.add_class(7)
    learner.add(3, rng.random((4, 1024), np.float32))
    learner.add(5, rng.random((4, 1024), np.float32))
    exported = export.export(learner, {3: "three", 5: "five", 7: "empty"}, bases["cpu"])
    assert exported.labels == "0 three\n1 five\n"
    assert exported.head.class_ids == (3, 5)

    backprop = make_learner("backprop")
    backprop.add(0, rng.random((4, 1024), np.float32))
    backprop.add(1, rng.random((4, 1024), np.float32))
    with pytest.raises(export.ExportError) as e:
        export.head_of(backprop)
    assert e.value.code == "needs_training" and "train" in str(e.value)
    backprop.fit()
    export.head_of(backprop)
    backprop.add(1, rng.random((1, 1024), np.float32))  # taught after training
    with pytest.raises(export.ExportError):
        export.head_of(backprop)


def test_a_base_that_does_not_fit_is_refused(bases):
    learner = make_learner("imprinting")
    learner.add(0, np.ones((2, 16), np.float32))
    with pytest.raises(export.ExportError) as e:
        export.export(learner, {}, bases["cpu"])
    assert e.value.code == "dim_mismatch"
    learner = make_learner("imprinting")
    learner.add(0, np.ones((2, 1024), np.float32))
    with pytest.raises(export.ExportError) as e:
        export.export(learner, {}, b"not a model at all")
    assert e.value.code == "bad_model"


# ----- REST ---------------------------------------------------------------------------------
@pytest.fixture
def app_factory(tmp_path, extractor, shared_dir):
    apps = []

    def factory(**overrides):
        overrides.setdefault("mirror", shared_dir / "models")
        app = create_app(
            Settings(data_dir=tmp_path, **overrides), camera=FakeCamera(), extractor=extractor
        )
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.extensions["teachable"].close()


def _teach(http, digits_dir, digit_list, n=6):
    for digit in digit_list:
        cls = http.post("/api/classes", json={"name": f"digit {digit}"}).get_json()
        files = [
            (io.BytesIO(p.read_bytes()), p.name)
            for p in sorted((digits_dir / str(digit)).iterdir())[:n]
        ]
        r = http.post(
            f"/api/classes/{cls['id']}/examples",
            data={"image": files},
            content_type="multipart/form-data",
        )
        assert r.status_code == 200


def _settled(app):
    pipeline = app.extensions["teachable"].pipeline
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        s = pipeline.state()
        if not s["needs_training"] and (s["training"] or {}).get("state") != "running":
            return
        time.sleep(0.02)
    raise AssertionError("training never settled")


def test_rest_export_of_model_and_labels(app_factory, digits_dir):
    app = app_factory()
    http = app.test_client()
    for url in ("/api/export/model.tflite", "/api/export/labels.txt"):
        r = http.get(url)
        assert r.status_code == 409 and r.get_json()["error"]["code"] == "no_classes"
    _teach(http, digits_dir, (2, 8))
    _settled(app)
    labels = http.get("/api/export/labels.txt")
    assert labels.status_code == 200 and labels.data == b"0 digit 2\n1 digit 8\n"
    assert labels.headers["Content-Type"].startswith("text/plain")
    cpu = http.get("/api/export/model.tflite")
    assert cpu.status_code == 200 and cpu.data[4:8] == b"TFL3"
    assert 'filename="model.tflite"' in cpu.headers["Content-Disposition"]
    interpreter = Interpreter(model_content=cpu.data)
    interpreter.allocate_tensors()
    assert list(interpreter.get_output_details()[0]["shape"]) == [1, 2]
    tpu = http.get("/api/export/model.tflite?target=edgetpu")
    assert tpu.status_code == 200
    assert 'filename="model_edgetpu.tflite"' in tpu.headers["Content-Disposition"]
    assert b"edgetpu-custom-op" in tpu.data
    bad = http.get("/api/export/model.tflite?target=gpu")
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "bad_target"
    assert "X-Export-Note" not in cpu.headers
    app.extensions["teachable"].pipeline.set_method("knn")
    knn = http.get("/api/export/model.tflite")
    assert knn.status_code == 200 and "nearest class mean" in knn.headers["X-Export-Note"]


def test_rest_export_of_an_untrained_backprop_layer_is_409(app_factory, digits_dir):
    app = app_factory(method="backprop")
    http = app.test_client()
    _teach(http, digits_dir, (1, 4), n=3)
    r = http.get("/api/export/model.tflite")
    assert r.status_code == 409
    error = r.get_json()["error"]
    assert error["code"] == "needs_training" and "train" in error["message"].lower()
    assert http.post("/api/train", json={}).status_code == 202
    _settled(app)
    assert http.get("/api/export/model.tflite").status_code == 200


def test_rest_export_says_what_to_do_when_the_edgetpu_model_is_missing(
    app_factory, tmp_path, digits_dir
):
    app = app_factory(mirror=tmp_path / "empty")
    http = app.test_client()
    _teach(http, digits_dir, (5,), n=1)
    r = http.get("/api/export/model.tflite?target=edgetpu")
    assert r.status_code == 503
    assert "python -m server.models fetch" in r.get_json()["error"]["message"]
