"""The SQLite store: classes, examples, bursts, settings, atomicity and crash safety.

Every test uses a real database file under ``tmp_path``; failures of the disk are produced by
SQLite itself (``max_page_count``, ``query_only``), not by mocks.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from server.store import (
    MAX_NAME_LENGTH,
    PALETTE,
    SCHEMA_VERSION,
    ClassRow,
    DiskFull,
    InvalidColor,
    InvalidName,
    NameTaken,
    NotFound,
    Store,
    StoreError,
    WriteFailed,
)

ROOT = Path(__file__).resolve().parents[1]
MARKUP = "<img src=x onerror=alert(1)>"


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "data" / "kiosk.sqlite3"


@pytest.fixture
def store(db_path):
    with Store(db_path) as s:
        yield s


def embeddings(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def raw_query(path: Path, sql: str, params=()) -> list:
    """Reads the file with a separate, plain sqlite3 connection."""
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def snapshot(store: Store) -> tuple:
    """Everything a user could see, in a form that compares with ==."""
    ids, class_ids, x = store.examples()
    thumbs = tuple(store.thumbnail(int(i)) for i in ids)
    return (
        tuple(store.classes()),
        ids.tolist(),
        class_ids.tolist(),
        x.shape,
        x.tobytes(),
        thumbs,
        store.last_burst(),
    )


# ----- opening ----------------------------------------------------------------------------------
def test_open_creates_parent_dirs_and_configures_sqlite(db_path):
    with Store(db_path) as store:
        assert store.classes() == []
        assert store.integrity_check() == "ok"
    assert db_path.is_file()
    assert raw_query(db_path, "PRAGMA journal_mode") == [("wal",)]
    assert raw_query(db_path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]


def test_database_from_a_newer_version_is_refused(db_path):
    Store(db_path).close()
    conn = sqlite3.connect(str(db_path))
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer version"):
        Store(db_path)


def test_a_file_that_is_not_a_database_is_refused(db_path):
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is not a database, just text " * 100)
    with pytest.raises(StoreError, match="not a usable kiosk database"):
        Store(db_path)


def test_closed_store_raises_and_closing_twice_is_harmless(db_path):
    store = Store(db_path)
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.classes()
    with pytest.raises(StoreError, match="closed"):
        store.add_class("cat")


# ----- classes ----------------------------------------------------------------------------------
def test_classes_crud(store):
    cat = store.add_class("Cat")
    dog = store.add_class("Dog", "#00AAFF")
    bird = store.add_class("Bird")
    assert cat == ClassRow(cat.id, "Cat", PALETTE[0], 0)
    assert dog.color == "#00aaff"
    assert bird.color == PALETTE[1]
    assert [c.name for c in store.classes()] == ["Cat", "Dog", "Bird"]
    assert store.get_class(dog.id) == dog

    assert store.rename_class(dog.id, "  Puppy ") == dog._replace(name="Puppy")
    assert store.set_color(cat.id, "#ABCDEF").color == "#abcdef"
    store.delete_class(bird.id)
    assert [(c.name, c.color) for c in store.classes()] == [
        ("Cat", "#abcdef"),
        ("Puppy", "#00aaff"),
    ]
    # Positions keep growing: a class added now comes last.
    assert store.add_class("Fish").id not in (cat.id, dog.id, bird.id)
    assert [c.name for c in store.classes()] == ["Cat", "Puppy", "Fish"]


def test_default_colours_are_distinct_until_the_palette_is_used_up(store):
    colours = [store.add_class(f"class {i}").color for i in range(len(PALETTE))]
    assert colours == list(PALETTE)
    assert len(set(PALETTE)) == 10
    assert store.add_class("one more").color in PALETTE


def test_unknown_ids_raise_not_found(store):
    with pytest.raises(NotFound):
        store.get_class(42)
    with pytest.raises(NotFound):
        store.rename_class(42, "x")
    with pytest.raises(NotFound):
        store.set_color(42, "#000000")
    with pytest.raises(NotFound):
        store.delete_class(42)
    with pytest.raises(NotFound):
        store.clear_class(42)
    with pytest.raises(NotFound):
        store.add_examples(42, embeddings(1))
    with pytest.raises(NotFound):
        store.examples(42)
    with pytest.raises(NotFound):
        store.recent_examples(42, 3)
    with pytest.raises(NotFound):
        store.thumbnail(42)
    with pytest.raises(NotFound):
        store.get_class("1; DROP TABLE classes")


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "\t\n",
        "a" * (MAX_NAME_LENGTH + 1),
        "line\nbreak",
        "tab\there",
        "nul\x00",
        "bell\x07",
        5,
        None,
    ],
)
def test_invalid_names_are_refused(store, name):
    with pytest.raises(InvalidName):
        store.add_class(name)
    assert store.classes() == []


def test_names_are_trimmed_and_may_be_40_characters(store):
    assert store.add_class("  Cat \t").name == "Cat"
    longest = "x" * MAX_NAME_LENGTH
    assert store.add_class(f"  {longest}  ").name == longest
    assert store.add_class("🙂👍🏽 café").name == "🙂👍🏽 café"
    cat = store.classes()[0]
    with pytest.raises(InvalidName):
        store.rename_class(cat.id, " ")
    assert store.get_class(cat.id).name == "Cat"


def test_duplicate_names_are_refused_regardless_of_case(store):
    cat = store.add_class("Cat")
    dog = store.add_class("Dog")
    for name in ("cat", " CAT ", "cAt"):
        with pytest.raises(NameTaken, match="Cat"):
            store.add_class(name)
    store.add_class("Ärger")
    with pytest.raises(NameTaken):
        store.add_class("ärger")
    with pytest.raises(NameTaken):
        store.rename_class(dog.id, "CAT")
    assert store.rename_class(cat.id, "CAT").name == "CAT"
    assert [c.name for c in store.classes()] == ["CAT", "Dog", "Ärger"]


def test_markup_in_a_name_is_stored_verbatim(store, db_path):
    row = store.add_class(MARKUP)
    assert row.name == MARKUP
    assert store.get_class(row.id).name == MARKUP
    assert raw_query(db_path, "SELECT name, typeof(name) FROM classes") == [(MARKUP, "text")]


@pytest.mark.parametrize(
    "color", ["red", "#abc", "#12345g", "123456", "#1234567", "", None, 0xFFFFFF]
)
def test_invalid_colours_are_refused(store, color):
    cat = store.add_class("Cat")
    with pytest.raises(InvalidColor):
        store.set_color(cat.id, color)
    if color is not None:
        with pytest.raises(InvalidColor):
            store.add_class("Dog", color)
    assert [c.name for c in store.classes()] == ["Cat"]


def test_deleting_a_class_deletes_its_examples(store, db_path):
    cat = store.add_class("Cat")
    dog = store.add_class("Dog")
    cat_ids = store.add_examples(cat.id, embeddings(3), thumbnails=[b"a", b"b", b"c"])
    dog_ids = store.add_examples(dog.id, embeddings(2, seed=1))
    assert store.get_class(cat.id).examples == 3
    store.delete_class(cat.id)
    ids, class_ids, _ = store.examples()
    assert ids.tolist() == dog_ids
    assert class_ids.tolist() == [dog.id, dog.id]
    assert raw_query(db_path, "SELECT COUNT(*) FROM examples WHERE class_id = ?", (cat.id,)) == [
        (0,)
    ]
    with pytest.raises(NotFound):
        store.thumbnail(cat_ids[0])
    assert store.integrity_check() == "ok"


def test_clear_class_keeps_the_class(store):
    cat = store.add_class("Cat")
    dog = store.add_class("Dog")
    cat_ids = store.add_examples(cat.id, embeddings(4))
    store.add_examples(dog.id, embeddings(2))
    assert store.clear_class(cat.id) == cat_ids
    assert store.get_class(cat.id).examples == 0
    assert store.get_class(dog.id).examples == 2
    assert store.clear_class(cat.id) == []


# ----- examples ---------------------------------------------------------------------------------
def test_examples_round_trip_bit_exact(store):
    cat = store.add_class("Cat")
    dog = store.add_class("Dog")
    x = embeddings(5, dim=8, seed=3)
    # Values whose bits a careless conversion would change.
    x[0, :4] = [np.float32(-0.0), np.finfo(np.float32).tiny / 2, np.finfo(np.float32).max, 1e-45]
    thumbs = [b"\xff\xd8jpeg", None, bytes(range(256)), b"", b"\x00"]
    cat_ids = store.add_examples(cat.id, x, thumbnails=thumbs)
    dog_ids = store.add_examples(dog.id, x[3:] * 2)
    assert cat_ids == sorted(cat_ids) and len(cat_ids) == 5

    ids, class_ids, got = store.examples()
    assert ids.dtype == np.int64 and class_ids.dtype == np.int64 and got.dtype == np.float32
    assert ids.tolist() == cat_ids + dog_ids
    assert class_ids.tolist() == [cat.id] * 5 + [dog.id] * 2
    assert got[:5].tobytes() == x.tobytes()
    assert got[5:].tobytes() == (x[3:] * 2).tobytes()
    got[:] = 0  # the caller may write to the arrays it gets

    only_cat = store.examples(cat.id)
    assert only_cat[0].tolist() == cat_ids
    assert only_cat[2].tobytes() == x.tobytes()
    assert [store.thumbnail(i) for i in cat_ids] == thumbs
    assert store.thumbnail(dog_ids[0]) is None
    assert [c.examples for c in store.classes()] == [5, 2]
    assert store.count_examples() == 7


def test_float64_embeddings_are_stored_as_float32(store):
    cat = store.add_class("Cat")
    x = np.random.default_rng(0).standard_normal((3, 4))
    store.add_examples(cat.id, x)
    assert store.examples()[2].tobytes() == x.astype(np.float32).tobytes()


def test_no_examples_gives_empty_arrays(store):
    ids, class_ids, x = store.examples()
    assert ids.shape == (0,) and class_ids.shape == (0,) and x.shape == (0, 0)
    assert x.dtype == np.float32
    cat = store.add_class("Cat")
    assert store.examples(cat.id)[2].shape == (0, 0)
    assert store.add_examples(cat.id, np.zeros((0, 16), np.float32)) == []
    assert store.count_examples() == 0


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros(16, np.float32),
        np.zeros((2, 3, 4), np.float32),
        np.zeros((2, 0), np.float32),
        np.array([[1.0, np.nan]], np.float32),
        np.array([[np.inf, 1.0]], np.float32),
        np.array([[1e300, 1.0]]),
        [["a", "b"]],
        np.zeros((2, 8), np.float32),  # D differs from the stored examples'
    ],
)
def test_bad_embeddings_raise_value_error_and_store_nothing(store, bad):
    cat = store.add_class("Cat")
    store.add_examples(cat.id, embeddings(1, dim=16))
    with pytest.raises(ValueError):
        store.add_examples(cat.id, bad)
    assert store.count_examples() == 1


def test_thumbnails_must_match_the_embeddings(store):
    cat = store.add_class("Cat")
    with pytest.raises(ValueError, match="thumbnails"):
        store.add_examples(cat.id, embeddings(2), thumbnails=[b"a"])
    with pytest.raises(TypeError):
        store.add_examples(cat.id, embeddings(1), thumbnails=["not bytes"])
    assert store.count_examples() == 0


def test_keep_thumbnails_false_stores_no_image_bytes(db_path):
    with Store(db_path, keep_thumbnails=False) as store:
        cat = store.add_class("Cat")
        ids = store.add_examples(cat.id, embeddings(3), thumbnails=[b"jpeg"] * 3)
        store.replace_all(
            [{"name": "Dog", "color": None, "examples": embeddings(2), "thumbnails": [b"x"] * 2}]
        )
        assert [store.thumbnail(i) for i in store.examples()[0]] == [None, None]
    assert raw_query(db_path, "SELECT COUNT(*), COUNT(thumbnail) FROM examples") == [(2, 0)]
    assert len(ids) == 3


def test_delete_examples_removes_only_existing_ids_in_one_go(store):
    cat = store.add_class("Cat")
    ids = store.add_examples(cat.id, embeddings(1200, dim=4))  # more than one chunk of ids
    gone = ids[::2] + [10**9, ids[0]]
    assert store.delete_examples(np.array(gone)) == ids[::2]
    assert store.examples()[0].tolist() == ids[1::2]
    assert store.delete_examples([]) == []
    assert store.delete_examples([ids[0]]) == []
    with pytest.raises(ValueError):
        store.delete_examples(["1"])


def test_recent_examples_newest_first(store):
    cat = store.add_class("Cat")
    dog = store.add_class("Dog")
    first = store.add_examples(cat.id, embeddings(3))
    store.add_examples(dog.id, embeddings(2))
    second = store.add_examples(cat.id, embeddings(2))
    assert store.recent_examples(cat.id, 3) == [second[1], second[0], first[2]]
    assert store.recent_examples(cat.id, 100) == (first + second)[::-1]
    assert store.recent_examples(cat.id, 0) == []
    with pytest.raises(ValueError):
        store.recent_examples(cat.id, -1)


def test_ids_are_never_reused(store):
    cat = store.add_class("Cat")
    ids = store.add_examples(cat.id, embeddings(2))
    store.delete_examples(ids)
    store.delete_class(cat.id)
    dog = store.add_class("Dog")
    assert dog.id > cat.id
    assert min(store.add_examples(dog.id, embeddings(1))) > max(ids)
    store.reset()
    assert store.add_class("Bird").id > dog.id


# ----- bursts -----------------------------------------------------------------------------------
def test_bursts_undo_the_last_recording(store, db_path):
    cat = store.add_class("Cat")
    assert store.last_burst() is None
    first = store.new_burst()
    first_ids = store.add_examples(cat.id, embeddings(3), burst=first)
    second = store.new_burst()
    assert second > first
    second_ids = store.add_examples(cat.id, embeddings(2), burst=second)
    store.add_examples(cat.id, embeddings(1))  # not recorded in a burst
    assert store.last_burst() == second
    assert store.burst_examples(second) == second_ids

    assert store.delete_examples(store.burst_examples(store.last_burst())) == second_ids
    assert store.last_burst() == first
    assert store.burst_examples(second) == []
    assert store.delete_examples(store.burst_examples(store.last_burst())) == first_ids
    assert store.last_burst() is None
    assert store.count_examples() == 1

    third = store.new_burst()
    assert third > second
    store.close()
    with Store(db_path) as again:
        assert again.new_burst() > third


# ----- settings ---------------------------------------------------------------------------------
def test_settings_round_trip(store, db_path):
    values = {
        "method": "knn",
        "smoothing": 0.5,
        "count": 3,
        "flags": [True, False, None],
        "nested": {"a": [1, 2.5, "x"], "b": {}},
        "markup": MARKUP,
    }
    assert store.get_setting("method") is None
    assert store.get_setting("method", "auto") == "auto"
    for key, value in values.items():
        store.set_setting(key, value)
    store.set_setting("method", "imprinting")
    values["method"] = "imprinting"
    for key, value in values.items():
        assert store.get_setting(key) == value
    with pytest.raises(TypeError):
        store.set_setting("bad", object())
    with pytest.raises(ValueError):
        store.set_setting("bad", float("nan"))
    with pytest.raises(ValueError):
        store.set_setting("", 1)
    store.close()
    with Store(db_path) as again:
        assert {key: again.get_setting(key) for key in values} == values
        assert again.get_setting("bad") is None


# ----- whole store ------------------------------------------------------------------------------
def test_reset_removes_classes_and_examples_but_keeps_settings(store):
    cat = store.add_class("Cat")
    store.add_examples(cat.id, embeddings(3), burst=store.new_burst())
    store.set_setting("method", "knn")
    store.reset()
    assert store.classes() == []
    assert store.count_examples() == 0
    assert store.last_burst() is None
    assert store.get_setting("method") == "knn"
    assert store.add_class("Cat").name == "Cat"


def test_replace_all(store):
    old = store.add_class("Old")
    store.add_examples(old.id, embeddings(2, dim=8))
    x_cat, x_dog = embeddings(3, dim=4, seed=1), embeddings(2, dim=4, seed=2)
    store.replace_all(
        [
            {
                "name": " Cat ",
                "color": "#102030",
                "examples": x_cat,
                "thumbnails": [b"1", None, b"3"],
            },
            {"name": "Dog", "color": None, "examples": x_dog, "thumbnails": None},
            {"name": "Empty", "color": None, "examples": np.zeros((0, 4), np.float32)},
        ]
    )
    classes = store.classes()
    assert [(c.name, c.examples) for c in classes] == [("Cat", 3), ("Dog", 2), ("Empty", 0)]
    assert classes[0].color == "#102030"
    assert classes[1].color != classes[2].color
    ids, class_ids, x = store.examples()
    assert x.tobytes() == np.concatenate([x_cat, x_dog]).tobytes()
    assert class_ids.tolist() == [classes[0].id] * 3 + [classes[1].id] * 2
    assert [store.thumbnail(i) for i in ids] == [b"1", None, b"3", None, None]
    assert store.last_burst() is None
    store.replace_all([])
    assert store.classes() == [] and store.count_examples() == 0


def test_replace_all_saves_its_settings_in_the_same_transaction(store):
    store.set_setting("method", "knn")
    one = [{"name": "Cat", "color": None, "examples": embeddings(2, dim=4)}]
    store.replace_all(one, settings={"method": "backprop"})
    assert store.get_setting("method") == "backprop"
    bad = [{"name": "Dog", "color": "purple", "examples": embeddings(2, dim=4)}]
    with pytest.raises(StoreError):
        store.replace_all(bad, settings={"method": "auto"})
    assert store.get_setting("method") == "backprop"  # neither the classes nor the setting
    limit_pages(store, 0)
    with pytest.raises(DiskFull):
        store.replace_all([dict(one[0], examples=embeddings(500, dim=256))], {"m": 1})
    unlimit_pages(store)
    assert store.get_setting("method") == "backprop" and store.get_setting("m") is None


@pytest.mark.parametrize(
    "second",
    [
        {"name": "CAT", "color": None, "examples": embeddings(2, dim=4)},
        {"name": "Dog", "color": None, "examples": np.zeros(4, np.float32)},
        {"name": "Dog", "color": None, "examples": embeddings(2, dim=5)},
        {"name": "Dog", "color": None, "examples": np.full((2, 4), np.nan, np.float32)},
        {"name": "Dog", "color": "purple", "examples": embeddings(2, dim=4)},
        {"name": "\n", "color": None, "examples": embeddings(2, dim=4)},
        {"name": "Dog", "color": None, "examples": embeddings(2, dim=4), "thumbnails": [b"x"]},
        "not a mapping",
    ],
)
def test_replace_all_changes_nothing_when_one_class_is_invalid(store, second):
    cat = store.add_class("Kept")
    store.add_examples(cat.id, embeddings(3, dim=16), thumbnails=[b"a", None, b"c"], burst=7)
    before = snapshot(store)
    first = {"name": "Cat", "color": None, "examples": embeddings(2, dim=4)}
    with pytest.raises((StoreError, ValueError)):
        store.replace_all([first, second])
    assert snapshot(store) == before


def limit_pages(store: Store, extra: int) -> None:
    """Lets the database grow by ``extra`` pages only: SQLite then fails with SQLITE_FULL.

    ``max_page_count`` holds per connection, so this reaches for the store's own connection.
    """
    conn = store._conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + extra}")


def unlimit_pages(store: Store) -> None:
    store._conn.execute("PRAGMA max_page_count = 1073741823")


def test_replace_all_changes_nothing_when_the_disk_is_full(store):
    cat = store.add_class("Kept")
    store.add_examples(cat.id, embeddings(3, dim=16), burst=1)
    before = snapshot(store)
    limit_pages(store, 4)
    big = [{"name": f"c{i}", "color": None, "examples": embeddings(100, dim=256)} for i in range(5)]
    with pytest.raises(DiskFull, match="disk is full"):
        store.replace_all(big)
    assert snapshot(store) == before
    unlimit_pages(store)
    store.replace_all(big)
    assert store.count_examples() == 500


def test_disk_full_saves_nothing_and_the_store_keeps_working(store, db_path):
    cat = store.add_class("Cat")
    store.add_examples(cat.id, embeddings(2, dim=256))
    before = snapshot(store)
    limit_pages(store, 4)
    big = embeddings(500, dim=256)
    with pytest.raises(StoreError, match="the disk is full: nothing was saved"):
        store.add_examples(cat.id, big, thumbnails=[b"t" * 1000] * 500, burst=store.new_burst())
    assert snapshot(store) == before
    assert store.integrity_check() == "ok"
    assert store.get_class(cat.id).examples == 2  # reads still work

    unlimit_pages(store)
    ids = store.add_examples(cat.id, big)
    assert len(ids) == 500
    assert store.rename_class(cat.id, "Still here").examples == 502
    store.close()
    with Store(db_path) as again:
        assert again.count_examples() == 502
        assert again.integrity_check() == "ok"


def test_a_read_only_database_saves_nothing_and_recovers(store):
    cat = store.add_class("Cat")
    store._conn.execute("PRAGMA query_only = ON")  # SQLite then answers SQLITE_READONLY
    with pytest.raises(WriteFailed, match="read-only: nothing was saved"):
        store.add_examples(cat.id, embeddings(3))
    with pytest.raises(WriteFailed, match="read-only"):
        store.set_setting("x", 1)
    assert store.count_examples() == 0
    store._conn.execute("PRAGMA query_only = OFF")
    assert len(store.add_examples(cat.id, embeddings(3))) == 3


def test_a_reopened_store_sees_every_committed_change(db_path):
    with Store(db_path) as store:
        cat = store.add_class("Cat")
        dog = store.add_class("Dog")
        bird = store.add_class("Bird")
        ids = store.add_examples(cat.id, embeddings(4), thumbnails=[b"1", b"2", b"3", b"4"])
        store.add_examples(dog.id, embeddings(2, seed=1), burst=store.new_burst())
        store.delete_examples(ids[:1])
        store.rename_class(dog.id, "Puppy")
        store.set_color(cat.id, "#010203")
        store.delete_class(bird.id)
        store.set_setting("method", "knn")
        before = snapshot(store)
    with Store(db_path) as again:
        assert snapshot(again) == before
        assert again.get_setting("method") == "knn"


def test_threads_read_while_one_writes(store):
    cat = store.add_class("Cat")
    errors = []
    stop = threading.Event()

    def read():
        try:
            while not stop.is_set():
                ids, class_ids, x = store.examples()
                assert len(ids) == len(class_ids) == len(x)
                store.classes()
                store.count_examples()
        except Exception as e:  # reported by the main thread
            errors.append(e)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for t in readers:
        t.start()
    try:
        for i in range(30):
            store.add_examples(cat.id, embeddings(5, seed=i), burst=store.new_burst())
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert errors == []
    assert store.count_examples() == 150


# ----- crash safety -----------------------------------------------------------------------------
CHILD = """
import sys
sys.path.insert(0, {root!r})
import numpy as np
from server.store import Store

def emb(i):
    return np.random.default_rng(i).standard_normal((8, 64)).astype(np.float32)

store = Store({path!r})
class_id = None
for i in range(3000):
    if i % 3 == 0:
        class_id = store.add_class("class %d" % (i // 3)).id
    elif i % 3 == 1:
        store.add_examples(class_id, emb(i), thumbnails=[bytes([i % 256]) * 500] * 8, burst=i)
    else:
        store.set_setting("step", i)
    print("committed", i, flush=True)
"""


def child_emb(i: int) -> np.ndarray:
    return np.random.default_rng(i).standard_normal((8, 64)).astype(np.float32)


def state_after(steps: int) -> tuple:
    """What the child's store holds after its first ``steps`` changes."""
    names = [f"class {j}" for j in range(0, (steps + 2) // 3)]
    examples = {f"class {(i - 1) // 3}": child_emb(i).tobytes() for i in range(1, steps, 3)}
    last_setting = max(range(2, steps, 3), default=None)
    return names, examples, last_setting


def observed_state(store: Store) -> tuple:
    names = [c.name for c in store.classes()]
    examples = {c.name: store.examples(c.id)[2].tobytes() for c in store.classes() if c.examples}
    return names, examples, store.get_setting("step")


@pytest.mark.parametrize("kill_after", [1, 2, 5, 11, 23])
def test_acknowledged_changes_survive_kill_9(tmp_path, kill_after):
    path = tmp_path / "kiosk.sqlite3"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(root=str(ROOT), path=str(path))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(120, child.kill)  # bounds the test if the child hangs
    watchdog.start()
    try:
        acknowledged = 0
        while acknowledged < kill_after:
            line = child.stdout.readline()
            assert line.startswith("committed"), child.stderr.read()
            acknowledged += 1
        os.kill(child.pid, signal.SIGKILL)
        # Lines the child printed before it died were acknowledged too.
        acknowledged += sum(1 for line in child.stdout if line.startswith("committed"))
        assert child.wait() == -signal.SIGKILL
    finally:
        watchdog.cancel()
        child.kill()
        child.stdout.close()
        child.stderr.close()

    with Store(path) as store:
        assert store.integrity_check() == "ok"
        got = observed_state(store)
        # The store holds exactly the first k changes, every acknowledged one among them
        # (the change in flight when the kill came may or may not have been committed).
        assert got in [state_after(k) for k in (acknowledged, acknowledged + 1)]
        store.add_class("after the crash")  # and it keeps working
