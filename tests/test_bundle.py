"""Project bundles: round trips, and hostile zip files refused without touching the data."""

import hashlib
import io
import json
import sqlite3
import stat
import time
import zipfile

import numpy as np
import pytest

from server import bundle, create_app
from server.settings import Settings
from server.store import Store

from fakes import FakeCamera

DIM = 1024
JPEG = b"\xff\xd8\xff\xe0fake-jpeg-body"
THUMBS = 2 * (len(JPEG) + 2)  # bytes of class 0's thumbnails in _project


def _project(extractor_id, classes=3, n=4, seed=0, method="auto"):
    rng = np.random.default_rng(seed)
    return bundle.Project(
        [
            bundle.ClassData(
                f"class {c}",
                f"#00000{c}",
                rng.random((n, DIM), np.float32) + c,
                [JPEG + bytes([c, i]) if i % 2 == 0 else None for i in range(n)],
            )
            for c in range(classes)
        ],
        method,
        extractor_id,
    )


@pytest.fixture(scope="module")
def running(extractor):
    return bundle.identify(extractor.model_path, extractor.dim)


@pytest.fixture
def good(running):
    return bundle.write_bundle(_project(running))


def _rezip(data: bytes, *, drop=(), add=(), replace=None, manifest=None) -> bytes:
    """A copy of a bundle with entries dropped, added (ZipInfo or name, bytes) or changed."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename in drop:
                continue
            body = src.read(info)
            if info.filename == bundle.MANIFEST and manifest is not None:
                m = json.loads(body)
                manifest(m)
                body = json.dumps(m).encode()
            if replace and info.filename in replace:
                body = replace[info.filename]
            dst.writestr(info.filename, body, zipfile.ZIP_DEFLATED)
        for name, body in add:
            dst.writestr(name, body)
    return out.getvalue()


def _npy(array) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


# ----- the format, without a kiosk ----------------------------------------------------------
def test_round_trip_keeps_everything(running):
    project = _project(running)
    read = bundle.read_bundle(bundle.write_bundle(project), running=running)
    assert read.method == "auto" and read.extractor == running and read.created
    for a, b in zip(project.classes, read.classes):
        assert (a.name, a.color, a.thumbnails) == (b.name, b.color, b.thumbnails)
        assert b.examples.dtype == np.float32 and np.array_equal(a.examples, b.examples)


def test_manifest_is_readable_and_classes_without_thumbnails_have_no_files(running):
    project = _project(running)
    project.classes[1] = project.classes[1]._replace(thumbnails=None)
    project.classes[2] = project.classes[2]._replace(examples=np.zeros((0, DIM), np.float32))
    project.classes[2] = project.classes[2]._replace(thumbnails=[])
    data = bundle.write_bundle(project)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
    assert names == {
        "manifest.json",
        "classes/000/embeddings.npy",
        "classes/000/thumbnails.bin",
        "classes/000/thumbnail_sizes.npy",
        "classes/001/embeddings.npy",
        "classes/002/embeddings.npy",
    }
    assert manifest["format"] == "teachable-project" and manifest["version"] == 1
    assert manifest["extractor"]["sha256"] == running.sha256
    assert manifest["extractor"]["name"] == "mobilenet_v1_embedding"
    assert [(c["name"], c["examples"], c["thumbnails"]) for c in manifest["classes"]] == [
        ("class 0", 4, True),
        ("class 1", 4, False),
        ("class 2", 0, False),
    ]
    read = bundle.read_bundle(data, running=running)
    assert read.classes[1].thumbnails is None and read.classes[2].examples.shape == (0, DIM)


def test_a_bundle_moves_between_the_cpu_and_edge_tpu_builds(running):
    from server import models

    tpu = bundle.ExtractorId(
        "mobilenet_v1_embedding_edgetpu", "x", models.EXTRACTOR_EDGETPU.sha256, DIM
    )
    assert bundle.compatible(tpu, running) and bundle.compatible(running, tpu)
    other = bundle.ExtractorId("other", "y", "1" * 64, DIM)
    assert not bundle.compatible(other, running)
    assert not bundle.compatible(running._replace(dim=512), running)


def test_limits_give_413_for_size_and_400_for_the_rest(good, running):
    with pytest.raises(bundle.BundleError) as e:
        bundle.read_bundle(good, running=running, limits=bundle.Limits(max_bytes=1000))
    assert e.value.status == 413 and e.value.code == "too_large"
    with pytest.raises(bundle.BundleError) as e:
        bundle.read_bundle(good, running=running, limits=bundle.Limits(max_examples=3))
    assert e.value.status == 400 and "--max-examples" in str(e.value)
    with pytest.raises(bundle.BundleError) as e:
        bundle.read_bundle(good, running=running, limits=bundle.Limits(max_classes=2))
    assert e.value.code == "too_many_classes"


# ----- hostile bundles through the kiosk ----------------------------------------------------
def _symlink_entry():
    info = zipfile.ZipInfo("classes/000/link")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, b"/etc/passwd"


def _bomb(good):
    """A real zip bomb: 64 MB of zeros under a legitimate name, deflated to ~64 kB."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(good)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            if info.filename != "classes/000/embeddings.npy":
                dst.writestr(info.filename, src.read(info))
        with dst.open("classes/000/embeddings.npy", "w", force_zip64=True) as f:
            chunk = bytes(1 << 20)
            for _ in range(64):
                f.write(chunk)
    return out.getvalue()


def _many(good):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        with zipfile.ZipFile(io.BytesIO(good)) as src:
            for info in src.infolist():
                dst.writestr(info.filename, src.read(info))
        for i in range(10_000):
            dst.writestr(f"extra/{i:05d}.txt", b"")
    return out.getvalue()


def _forged_count(good):
    """10,000 entries while the end record claims 3: the directory's size gives it away."""
    data = bytearray(_many(good))
    at = data.rfind(b"PK\x05\x06")
    data[at + 8 : at + 12] = (3).to_bytes(2, "little") * 2
    return bytes(data)


def _duplicate(good):
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
        with pytest.warns(UserWarning):
            dst.writestr("manifest.json", b"{}")
    return out.getvalue()


def _other_model(m):
    m["extractor"].update(name="efficientnet_lite0_embedding", sha256="ab" * 32)


HOSTILE = {
    "traversal name": (
        lambda g: _rezip(g, add=[("../../outside.txt", b"x")]),
        "bad_entry",
        "'..'",
    ),
    "traversal inside": (
        lambda g: _rezip(g, add=[("classes/../../x", b"x")]),
        "bad_entry",
        "'..'",
    ),
    "absolute path": (lambda g: _rezip(g, add=[("/etc/cron.d/x", b"x")]), "bad_entry", "absolute"),
    "drive letter": (lambda g: _rezip(g, add=[("C:/x", b"x")]), "bad_entry", "absolute"),
    "backslash": (lambda g: _rezip(g, add=[("..\\x", b"x")]), "bad_entry", "backslash"),
    "symlink": (lambda g: _rezip(g, add=[_symlink_entry()]), "bad_entry", "symbolic link"),
    "zip bomb": (_bomb, "zip_bomb", "zip bomb"),
    "10,000 entries": (_many, "too_many_entries", "10010 entries"),
    "10,000 entries, count forged": (_forged_count, "too_many_entries", "at most 1000"),
    "duplicate name": (_duplicate, "bad_entry", "twice"),
    "case duplicate": (
        lambda g: _rezip(g, add=[("MANIFEST.json", b"{}")]),
        "bad_entry",
        "twice",
    ),
    "wrong model": (
        lambda g: _rezip(g, manifest=_other_model),
        "wrong_model",
        "efficientnet_lite0_embedding",
    ),
    "truncated": (lambda g: g[: len(g) // 2], "bad_bundle", "damaged"),
    "truncated tail": (lambda g: g[:-10], "bad_bundle", "damaged"),
    "not a zip": (lambda g: b"PK\x03\x04 but nothing more", "bad_bundle", "not a project"),
    "newer version": (
        lambda g: _rezip(g, manifest=lambda m: m.update(version=2)),
        "newer_version",
        "newer kiosk",
    ),
    "bad json": (
        lambda g: _rezip(g, replace={"manifest.json": b"{nope"}),
        "bad_manifest",
        "JSON",
    ),
    "no manifest": (lambda g: _rezip(g, drop={"manifest.json"}), "missing_entry", "manifest"),
    "unknown entry": (
        lambda g: _rezip(g, add=[("notes.txt", b"x")]),
        "unexpected_entry",
        "notes.txt",
    ),
    "missing array": (
        lambda g: _rezip(g, drop={"classes/001/embeddings.npy"}),
        "missing_entry",
        "classes/001",
    ),
    "wrong dtype": (
        lambda g: _rezip(
            g, replace={"classes/000/embeddings.npy": _npy(np.zeros((4, DIM), np.int32))}
        ),
        "bad_array",
        "int32",
    ),
    "oversized array": (
        lambda g: _rezip(
            g, replace={"classes/000/embeddings.npy": _npy(np.zeros((4, DIM), np.float64))}
        ),
        "too_large_entry",
        "classes/000/embeddings.npy",
    ),
    "wrong count": (
        lambda g: _rezip(
            g, replace={"classes/000/embeddings.npy": _npy(np.zeros((3, DIM), np.float32))}
        ),
        "bad_array",
        "(3, 1024)",
    ),
    "nan": (
        lambda g: _rezip(
            g,
            replace={"classes/000/embeddings.npy": _npy(np.full((4, DIM), np.nan, np.float32))},
        ),
        "bad_array",
        "NaN",
    ),
    "pickled array": (
        lambda g: _rezip(
            g, replace={"classes/000/embeddings.npy": _npy(np.array([{"a": 1}], dtype=object))}
        ),
        "bad_array",
        "not a valid array",
    ),
    "bad class name": (
        lambda g: _rezip(g, manifest=lambda m: m["classes"][0].update(name="a\nb")),
        "bad_manifest",
        "class 1",
    ),
    "same class twice": (
        lambda g: _rezip(g, manifest=lambda m: m["classes"][1].update(name="CLASS 0")),
        "bad_manifest",
        "two classes",
    ),
    "thumbnail not jpeg": (
        lambda g: _rezip(g, replace={"classes/000/thumbnails.bin": b"<svg>".ljust(THUMBS, b"x")}),
        "bad_array",
        "JPEG",
    ),
    "thumbnail sizes lie": (
        lambda g: _rezip(
            g, replace={"classes/000/thumbnail_sizes.npy": _npy(np.array([10**9, 0, 0, 0]))}
        ),
        "bad_array",
        "thumbnail size",
    ),
}


def _hash_tree(root):
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def app_factory(tmp_path, extractor):
    apps = []

    def factory(data_dir=None, store=None, **overrides):
        settings = Settings(data_dir=data_dir or tmp_path / "kiosk", **overrides)
        app = create_app(settings, camera=FakeCamera(), extractor=extractor, store=store)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.extensions["teachable"].close()


def _post(http, data, **headers):
    return http.post(
        "/api/project",
        data={"file": (io.BytesIO(data), "project.zip")},
        content_type="multipart/form-data",
        headers=headers,
    )


def _settled(app, timeout=20.0):
    pipeline = app.extensions["teachable"].pipeline
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = pipeline.state()
        if not s["needs_training"] and (s["training"] or {}).get("state") != "running":
            return s
        time.sleep(0.02)
    raise AssertionError("training never settled")


@pytest.fixture
def kiosk(app_factory, good):
    """A kiosk holding a project, settled: nothing moves in its data directory."""
    app = app_factory()
    http = app.test_client()
    assert _post(http, good).status_code == 200
    _settled(app)
    return app, http


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_bundles_are_refused_and_change_nothing(kiosk, good, case):
    app, http = kiosk
    make, code, words = HOSTILE[case]
    data_dir = app.extensions["teachable"].settings.data_dir
    state = app.extensions["teachable"].pipeline.state()
    before = _hash_tree(data_dir)
    r = _post(http, make(good))
    assert r.status_code == 400, r.get_json()
    error = r.get_json()["error"]
    assert error["code"] == code and words in error["message"], error
    assert _hash_tree(data_dir) == before
    after = app.extensions["teachable"].pipeline.state()
    assert after["classes"] == state["classes"] and after["version"] == state["version"]


def test_import_replaces_the_project_and_keeps_its_method(app_factory, running):
    app = app_factory()
    http = app.test_client()
    http.post("/api/classes", json={"name": "old"})
    data = bundle.write_bundle(_project(running, classes=2, n=3, method="knn"))
    r = _post(http, data)
    assert r.status_code == 200
    assert r.get_json() == {"classes": 2, "examples": 6, "method": "knn"}
    state = http.get("/api/state").get_json()
    assert state["method"] == "knn"
    assert [(c["name"], c["color"], c["examples"]) for c in state["classes"]] == [
        ("class 0", "#000000", 3),
        ("class 1", "#000001", 3),
    ]
    example = app.extensions["teachable"].store.recent_examples(state["classes"][0]["id"], 3)[-1]
    assert http.get(f"/api/examples/{example}/thumbnail").data == JPEG + bytes([0, 0])
    # an unknown method keeps the kiosk's
    odd = bundle.write_bundle(_project(running, classes=2, n=3, method="magic"))
    assert _post(http, odd).get_json()["method"] == "knn"


def test_export_then_import_gives_identical_predictions(app_factory, digits_dir, tmp_path):
    source = app_factory(data_dir=tmp_path / "a")
    http = source.test_client()
    for digit in (1, 6, 8):
        cls = http.post("/api/classes", json={"name": f"d{digit}"}).get_json()
        files = [
            (io.BytesIO(p.read_bytes()), p.name)
            for p in sorted((digits_dir / str(digit)).iterdir())[:8]
        ]
        http.post(
            f"/api/classes/{cls['id']}/examples",
            data={"image": files},
            content_type="multipart/form-data",
        )
    _settled(source)
    exported = http.get("/api/project")
    assert exported.status_code == 200 and exported.headers["Content-Type"] == "application/zip"
    assert "attachment" in exported.headers["Content-Disposition"]

    target = app_factory(data_dir=tmp_path / "b")
    other = target.test_client()
    assert _post(other, exported.data).status_code == 200
    _settled(target)
    a, b = (app.extensions["teachable"].pipeline for app in (source, target))
    assert [(c["name"], c["examples"]) for c in a.state()["classes"]] == [
        (c["name"], c["examples"]) for c in b.state()["classes"]
    ]
    queries = []
    for digit in (1, 6, 8):
        for p in sorted((digits_dir / str(digit)).iterdir())[100:104]:
            queries.append(p.read_bytes())
    for jpeg in queries:
        answers = [
            client.post(
                "/api/predict",
                data={"image": (io.BytesIO(jpeg), "q.jpg")},
                content_type="multipart/form-data",
            ).get_json()
            for client in (http, other)
        ]
        assert answers[0]["label"] == answers[1]["label"]
        assert answers[0]["scores"] == answers[1]["scores"]
    assert np.array_equal(
        a.call(lambda: a.learner.weights()[1]), b.call(lambda: b.learner.weights()[1])
    )


def test_import_needs_the_pin_when_one_is_set(app_factory, good):
    app = app_factory(pin="1357")
    http = app.test_client()
    r = _post(http, good)
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "pin_required"
    assert _post(http, good, **{"X-Pin": "0000"}).status_code == 403
    assert app.extensions["teachable"].pipeline.state()["classes"] == []
    assert _post(http, good, **{"X-Pin": "1357"}).status_code == 200


def test_import_without_a_file_or_from_another_site_is_refused(app_factory, good):
    http = app_factory().test_client()
    r = http.post("/api/project", data={}, content_type="multipart/form-data")
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "no_file"
    r = _post(http, good, Origin="http://evil.example")
    assert r.status_code == 403


def test_import_obeys_the_upload_limit(app_factory, running, tmp_path):
    project = _project(running, classes=2, n=200)  # ~1.6 MB of embeddings
    data = bundle.write_bundle(project)
    assert len(data) > 512 * 1024
    small = app_factory(max_upload_mb=0.5)
    refused = _post(small.test_client(), data)
    assert (
        refused.status_code == 413 and "--max-upload-mb" in refused.get_json()["error"]["message"]
    )
    assert small.extensions["teachable"].pipeline.state()["classes"] == []


class FailingStore(Store):
    """Fails inside ``replace_all``'s transaction, after the old data was deleted."""

    fail = False

    def _insert_examples(self, conn, class_id, *args):
        if self.fail:
            raise sqlite3.OperationalError("disk I/O error")
        return super()._insert_examples(conn, class_id, *args)


def test_a_failed_write_leaves_the_old_project(app_factory, tmp_path, good, running):
    store = FailingStore(tmp_path / "f" / "teachable.sqlite3")
    app = app_factory(data_dir=tmp_path / "f", store=store)
    http = app.test_client()
    assert _post(http, good).status_code == 200
    _settled(app)
    before = http.get("/api/state").get_json()["classes"]
    store.fail = True
    r = _post(http, bundle.write_bundle(_project(running, classes=2, seed=5)))
    assert r.status_code == 507 and r.get_json()["error"]["code"] == "storage"
    store.fail = False
    assert http.get("/api/state").get_json()["classes"] == before
    assert [c.name for c in store.classes()] == ["class 0", "class 1", "class 2"]
    assert store.count_examples() == 12
