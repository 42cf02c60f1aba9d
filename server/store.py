"""Crash-safe storage of the kiosk's classes, examples and settings: one SQLite file.

The database lives in the data directory and is the kiosk's memory: on start the learner is
rebuilt from ``Store.examples()``. Every change is exactly one SQLite transaction, written with
``journal_mode=WAL`` and ``synchronous=FULL``, so whatever a method acknowledged (returned from)
survives ``kill -9`` and a power cut, and whatever it did not is absent as a whole.

One connection serves every thread (the web threads read while the pipeline writes); a lock lets
one method use it at a time. Standard library ``sqlite3`` and numpy only: no Flask.

Tables::

    classes(id, name UNIQUE COLLATE NOCASE, color '#rrggbb', position, created)
    examples(id, class_id → classes ON DELETE CASCADE, embedding float32 LE, dim, created,
             burst, thumbnail)
    settings(key, value JSON)

Errors are ``StoreError`` subclasses whose message is a sentence for the user; bad arrays raise
``ValueError``. A write that cannot reach the disk (full, read-only, I/O error) raises
``WriteFailed`` after rolling back, and the store stays usable.
"""

from __future__ import annotations

import json
import logging
import operator
import re
import sqlite3
import threading
import time
import unicodedata
from contextlib import contextmanager
from pathlib import Path
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
)

import numpy as np

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""The ``user_version`` this code writes; older databases are migrated on open."""

MAX_NAME_LENGTH = 40

PALETTE = (
    "#cc6677",
    "#332288",
    "#ddcc77",
    "#117733",
    "#88ccee",
    "#882255",
    "#44aa99",
    "#999933",
    "#aa4499",
    "#dddddd",
)
"""Default class colours: Paul Tol's "muted" scheme, distinct for colour-blind eyes."""

BUSY_TIMEOUT_MS = 5000

_CHUNK = 500  # ids per statement: SQLite builds before 3.32 allow only 999 parameters
_BURST_KEY = "store.burst"
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
# Control characters, lone surrogates (not encodable) and line/paragraph separators. Format
# characters (category Cf) stay allowed: emoji sequences need the zero-width joiner.
_FORBIDDEN_CATEGORIES = ("Cc", "Cs", "Zl", "Zp")


class StoreError(Exception):
    """The store refused or failed a change; the message is a sentence for the user."""

    @property
    def fields(self) -> dict:
        """Values the user's sentence names, for ``server.errors.ServiceError``'s fields."""
        return {}


class NotFound(StoreError):
    """No class or example has the given id."""


class NameTaken(StoreError):
    """Another class already has this name (compared case-insensitively); ``name`` is its."""

    def __init__(self, message: str, name: str):
        super().__init__(message)
        self.name = name

    @property
    def fields(self) -> dict:
        return {"name": self.name}


class InvalidName(StoreError):
    """A class name is empty, too long or contains control characters."""


class InvalidColor(StoreError):
    """A colour is not of the form ``#rrggbb``."""


class WriteFailed(StoreError):
    """A change did not reach the disk; it was rolled back and the store stays usable."""


class DiskFull(WriteFailed):
    """The disk (or the database's size limit) is full; nothing was saved."""


class ClassRow(NamedTuple):
    """One class as stored: id, trimmed name, ``#rrggbb`` colour and its number of examples."""

    id: int
    name: str
    color: str
    examples: int


# ----- validation -------------------------------------------------------------------------
def check_name(name: Any) -> str:
    """Returns ``name`` as it would be stored (trimmed).

    Raises:
      InvalidName: the name is not text, is empty after trimming, is longer than
        ``MAX_NAME_LENGTH`` characters or contains control characters.
    """
    if not isinstance(name, str):
        raise InvalidName("a class name must be text")
    name = name.strip()
    if not name:
        raise InvalidName("a class name cannot be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(
            f"a class name can have at most {MAX_NAME_LENGTH} characters (this one has {len(name)})"
        )
    if any(unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in name):
        raise InvalidName("a class name cannot contain control characters such as line breaks")
    return name


def check_color(color: Any) -> str:
    """Returns ``color`` in lower case.

    Raises:
      InvalidColor: it is not of the form ``#rrggbb``.
    """
    if not isinstance(color, str) or _COLOR.fullmatch(color) is None:
        raise InvalidColor(f"a colour must look like #1a2b3c, not {color!r}")
    return color.lower()


def _as_embeddings(embeddings: Any) -> np.ndarray:
    """``embeddings`` as a C-contiguous little-endian float32 NxD array (N may be 0).

    Raises:
      ValueError: not a 2-D array of finite numbers with D ≥ 1.
    """
    try:
        with np.errstate(over="ignore"):  # too large for float32 becomes inf, refused below
            x = np.asarray(embeddings, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ValueError(f"embeddings must be an NxD array of numbers ({e})") from None
    if x.ndim in (1, 2) and len(x) == 0:
        return np.zeros((0, x.shape[1] if x.ndim == 2 else 0), "<f4")
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"embeddings must be an NxD array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("embeddings must be finite (no NaN or infinity)")
    return np.ascontiguousarray(x, dtype="<f4")


def _as_thumbnails(thumbnails: Optional[Iterable[Optional[bytes]]], n: int) -> list:
    """One ``bytes`` or None per embedding."""
    if thumbnails is None:
        return [None] * n
    thumbs = list(thumbnails)
    if len(thumbs) != n:
        raise ValueError(f"expected {n} thumbnails (one per embedding), got {len(thumbs)}")
    for t in thumbs:
        if t is not None and not isinstance(t, (bytes, bytearray, memoryview)):
            raise TypeError(f"a thumbnail must be bytes or None, not {type(t).__name__}")
    return [None if t is None else bytes(t) for t in thumbs]


def _as_id(value: Any, what: str) -> int:
    """An integer id; anything else cannot name a row, so it is NotFound."""
    try:
        return int(operator.index(value))
    except TypeError:
        raise NotFound(f"there is no {what} {value!r}") from None


def _as_ids(ids: Iterable[Any]) -> List[int]:
    """Distinct integer ids, in the given order."""
    out: Dict[int, None] = {}
    for value in ids:
        try:
            out[int(operator.index(value))] = None
        except TypeError:
            raise ValueError(f"an example id must be an integer, not {value!r}") from None
    return list(out)


def _chunks(values: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _write_error(exc: sqlite3.DatabaseError, path: Path) -> WriteFailed:
    """The user's sentence for a write that SQLite refused."""
    code = getattr(exc, "sqlite_errorname", "")  # Python ≥ 3.11; older ones have the message
    text = str(exc).lower()
    if code == "SQLITE_FULL" or "disk is full" in text:
        return DiskFull("the disk is full: nothing was saved")
    if code.startswith("SQLITE_READONLY") or "readonly" in text:
        return WriteFailed(f"the database {path} is read-only: nothing was saved")
    if code.startswith("SQLITE_BUSY") or "locked" in text:
        return WriteFailed("another program is using the database: nothing was saved")
    if code.startswith("SQLITE_IOERR") or "i/o error" in text:
        return WriteFailed("the disk reported an error: nothing was saved")
    return WriteFailed(f"saving failed ({exc}): nothing was saved")


# ----- schema -----------------------------------------------------------------------------
def _create_v1(conn: sqlite3.Connection) -> None:
    # AUTOINCREMENT: an id is never handed out twice, so a browser holding the id of a deleted
    # class or example can never act on a newer one by mistake.
    conn.execute(
        """CREATE TABLE classes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE COLLATE NOCASE,
            color TEXT NOT NULL,
            position INTEGER NOT NULL,
            created REAL NOT NULL)"""
    )
    conn.execute(
        """CREATE TABLE examples (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            class_id INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
            embedding BLOB NOT NULL,
            dim INTEGER NOT NULL,
            created REAL NOT NULL,
            burst INTEGER,
            thumbnail BLOB)"""
    )
    conn.execute("CREATE INDEX examples_class_id ON examples(class_id)")
    conn.execute("CREATE INDEX examples_burst ON examples(burst)")
    conn.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


_MIGRATIONS: Dict[int, Callable[[sqlite3.Connection], None]] = {0: _create_v1}
"""Version v → the function that brings a version-v database to v + 1.

Each runs inside the transaction that also sets ``user_version``, so a migration interrupted
by a crash leaves the database at its old version, ready to be migrated again.
"""


# ----- the store --------------------------------------------------------------------------
class Store:
    """The kiosk's classes, examples and settings in one SQLite file.

    Every public method is thread-safe and every change is one transaction: it is on disk when
    the method returns, and absent as a whole when the method raises.

    Args:
      path: the database file; it and its parent directories are created when missing.
      keep_thumbnails: store the thumbnails given to ``add_examples``/``replace_all``; when
        False they are dropped (privacy mode) and ``thumbnail()`` returns None for new examples.

    Raises:
      StoreError: the file cannot be opened, is not a kiosk database, or was written by a
        newer version of the kiosk.
    """

    def __init__(self, path: Path | str, *, keep_thumbnails: bool = True):
        self.path = Path(path)
        self.keep_thumbnails = bool(keep_thumbnails)
        self._lock = threading.Lock()
        self._conn: Optional[sqlite3.Connection] = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the data directory {self.path.parent}: {e}") from e
        try:
            conn = sqlite3.connect(
                str(self.path),
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,  # autocommit: transactions are explicit (BEGIN IMMEDIATE)
                check_same_thread=False,
            )
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the database {self.path}: {e}") from e
        self._conn = conn
        try:
            self._configure(conn)
            self._migrate(conn)
        except sqlite3.DatabaseError as e:
            self.close()
            raise StoreError(
                f"{self.path} is not a usable kiosk database ({e}): move it away or choose "
                "another data directory"
            ) from e
        except BaseException:
            self.close()
            raise
        log.info(
            "Opened %s (schema %d, %d classes, %d examples)",
            self.path,
            SCHEMA_VERSION,
            len(self.classes()),
            self.count_examples(),
        )

    def _configure(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            log.warning(
                "%s: SQLite refused WAL mode (kept %s); saving still works", self.path, mode
            )
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        self._refuse_newer(version)
        while version < SCHEMA_VERSION:
            with self._write() as conn:
                # Read again under the write lock: another process may have migrated meanwhile.
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                self._refuse_newer(version)
                if version >= SCHEMA_VERSION:
                    break
                _MIGRATIONS[version](conn)
                conn.execute(f"PRAGMA user_version = {version + 1}")
            version += 1
            log.info("%s: database schema is now version %d", self.path, version)

    def _refuse_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer version of the kiosk (database schema "
                f"{version}; this version reads up to {SCHEMA_VERSION}): update the kiosk or "
                "choose another data directory"
            )

    # ----- connection and transactions --------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("the store is closed")
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction under the lock: committed at the end, rolled back on any error."""
        with self._lock:
            conn = self._connection()
            try:
                # IMMEDIATE takes the write lock now, so the transaction cannot fail half-way
                # for want of it.
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                self._rollback(conn)
                if isinstance(exc, sqlite3.IntegrityError):
                    raise StoreError(f"the change was refused ({exc}): nothing was saved") from exc
                if isinstance(exc, sqlite3.DatabaseError):
                    error = _write_error(exc, self.path)
                    log.error("%s: %s (%s)", self.path, error, exc)
                    raise error from exc
                raise

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        # SQLite rolls back by itself after some errors (SQLITE_FULL among them).
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("Rolling back failed")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connection()
            try:
                yield conn
            except sqlite3.DatabaseError as e:
                raise StoreError(f"reading the database {self.path} failed ({e})") from e

    def close(self) -> None:
        """Closes the database; later calls raise StoreError. Closing twice is harmless."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # ----- row helpers (called with the lock held) ----------------------------------------
    @staticmethod
    def _class_row(conn: sqlite3.Connection, class_id: int) -> ClassRow:
        row = conn.execute(
            "SELECT id, name, color, (SELECT COUNT(*) FROM examples WHERE class_id = classes.id)"
            " FROM classes WHERE id = ?",
            (class_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"there is no class {class_id}")
        return ClassRow(*row)

    @staticmethod
    def _check_free(conn: sqlite3.Connection, name: str, except_id: Optional[int] = None) -> None:
        # casefold() also matches non-ASCII letters, which COLLATE NOCASE does not fold.
        key = name.casefold()
        for class_id, other in conn.execute("SELECT id, name FROM classes"):
            if class_id != except_id and other.casefold() == key:
                raise NameTaken(f'there is already a class called "{other}"', other)

    @staticmethod
    def _next_color(conn: sqlite3.Connection) -> str:
        used = [color.lower() for (color,) in conn.execute("SELECT color FROM classes")]
        for color in PALETTE:
            if color not in used:
                return color
        return PALETTE[len(used) % len(PALETTE)]

    def _insert_examples(
        self,
        conn: sqlite3.Connection,
        class_id: int,
        x: np.ndarray,
        thumbnails: list,
        burst: Optional[int],
        created: float,
    ) -> List[int]:
        if not self.keep_thumbnails:
            thumbnails = [None] * len(x)
        dim = x.shape[1]
        ids = []
        for row, thumbnail in zip(x, thumbnails):
            cursor = conn.execute(
                "INSERT INTO examples (class_id, embedding, dim, created, burst, thumbnail)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (class_id, row.tobytes(), dim, created, burst, thumbnail),
            )
            ids.append(int(cursor.lastrowid))
        return ids

    # ----- classes --------------------------------------------------------------------------
    def add_class(self, name: str, color: Optional[str] = None) -> ClassRow:
        """Adds a class after the others.

        Args:
          name: 1 to 40 characters after trimming, unique regardless of case.
          color: ``#rrggbb``; None takes the first colour of ``PALETTE`` no class uses.

        Raises:
          InvalidName, NameTaken, InvalidColor, WriteFailed.
        """
        name = check_name(name)
        color = None if color is None else check_color(color)
        with self._write() as conn:
            self._check_free(conn, name)
            if color is None:
                color = self._next_color(conn)
            (position,) = conn.execute(
                "SELECT COALESCE(MAX(position), -1) + 1 FROM classes"
            ).fetchone()
            cursor = conn.execute(
                "INSERT INTO classes (name, color, position, created) VALUES (?, ?, ?, ?)",
                (name, color, position, time.time()),
            )
            row = self._class_row(conn, cursor.lastrowid)
        log.debug("Added class %d %r", row.id, row.name)
        return row

    def rename_class(self, class_id: int, name: str) -> ClassRow:
        """Renames a class (changing only the case of its own name is allowed).

        Raises:
          NotFound, InvalidName, NameTaken, WriteFailed.
        """
        class_id = _as_id(class_id, "class")
        name = check_name(name)
        with self._write() as conn:
            self._class_row(conn, class_id)
            self._check_free(conn, name, except_id=class_id)
            conn.execute("UPDATE classes SET name = ? WHERE id = ?", (name, class_id))
            return self._class_row(conn, class_id)

    def set_color(self, class_id: int, color: str) -> ClassRow:
        """Sets a class's colour (``#rrggbb``, stored in lower case).

        Raises:
          NotFound, InvalidColor, WriteFailed.
        """
        class_id = _as_id(class_id, "class")
        color = check_color(color)
        with self._write() as conn:
            self._class_row(conn, class_id)
            conn.execute("UPDATE classes SET color = ? WHERE id = ?", (color, class_id))
            return self._class_row(conn, class_id)

    def delete_class(self, class_id: int) -> None:
        """Deletes a class and, with it, all its examples.

        Raises:
          NotFound, WriteFailed.
        """
        class_id = _as_id(class_id, "class")
        with self._write() as conn:
            self._class_row(conn, class_id)
            conn.execute("DELETE FROM classes WHERE id = ?", (class_id,))
        log.debug("Deleted class %d", class_id)

    def clear_class(self, class_id: int) -> List[int]:
        """Deletes every example of a class; the class stays.

        Returns:
          The ids of the removed examples, ascending.

        Raises:
          NotFound, WriteFailed.
        """
        class_id = _as_id(class_id, "class")
        with self._write() as conn:
            self._class_row(conn, class_id)
            ids = [
                i
                for (i,) in conn.execute(
                    "SELECT id FROM examples WHERE class_id = ? ORDER BY id", (class_id,)
                )
            ]
            conn.execute("DELETE FROM examples WHERE class_id = ?", (class_id,))
        return ids

    def classes(self) -> List[ClassRow]:
        """Every class, in display order, with its number of examples."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT c.id, c.name, c.color, COUNT(e.id) FROM classes AS c"
                " LEFT JOIN examples AS e ON e.class_id = c.id"
                " GROUP BY c.id ORDER BY c.position, c.id"
            ).fetchall()
        return [ClassRow(*row) for row in rows]

    def get_class(self, class_id: int) -> ClassRow:
        """One class.

        Raises:
          NotFound.
        """
        class_id = _as_id(class_id, "class")
        with self._read() as conn:
            return self._class_row(conn, class_id)

    # ----- examples -------------------------------------------------------------------------
    def add_examples(
        self,
        class_id: int,
        embeddings: np.ndarray,
        thumbnails: Optional[List[Optional[bytes]]] = None,
        burst: Optional[int] = None,
    ) -> List[int]:
        """Stores N examples of a class in one transaction.

        Args:
          class_id: an existing class.
          embeddings: NxD float32 (other numbers are converted); D must match the stored
            examples'. Stored bit-exact as little-endian float32.
          thumbnails: N encoded images (or None each); dropped when ``keep_thumbnails`` is off.
          burst: the recording burst they belong to (see ``new_burst``), for undo.

        Returns:
          The N new example ids, ascending.

        Raises:
          ValueError: wrong shapes, non-finite values, or D unlike the stored examples'.
          TypeError: a thumbnail is neither bytes nor None.
          NotFound, WriteFailed.
        """
        class_id = _as_id(class_id, "class")
        x = _as_embeddings(embeddings)
        thumbs = _as_thumbnails(thumbnails, len(x))
        if burst is not None:
            if isinstance(burst, bool):
                raise ValueError("burst must be an integer or None")
            burst = int(operator.index(burst))
        with self._write() as conn:
            self._class_row(conn, class_id)
            if len(x) == 0:
                return []
            stored = conn.execute("SELECT dim FROM examples LIMIT 1").fetchone()
            if stored is not None and stored[0] != x.shape[1]:
                raise ValueError(
                    f"expected embeddings of size {stored[0]} like the stored examples, got "
                    f"shape {x.shape}"
                )
            ids = self._insert_examples(conn, class_id, x, thumbs, burst, time.time())
        log.debug("Added %d examples to class %d", len(ids), class_id)
        return ids

    def delete_examples(self, ids: Iterable[int]) -> List[int]:
        """Deletes examples by id in one transaction; unknown ids are ignored.

        Returns:
          The ids that were removed, ascending.

        Raises:
          ValueError: an id is not an integer.
          WriteFailed.
        """
        wanted = _as_ids(ids)
        removed: List[int] = []
        if not wanted:
            return removed
        with self._write() as conn:
            for chunk in _chunks(wanted):
                marks = ",".join("?" * len(chunk))
                removed += [
                    i
                    for (i,) in conn.execute(
                        f"SELECT id FROM examples WHERE id IN ({marks})", chunk
                    )
                ]
                conn.execute(f"DELETE FROM examples WHERE id IN ({marks})", chunk)
        return sorted(removed)

    def examples(self, class_id: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every example (or a class's), ordered by id: what rebuilds the learner at start.

        Returns:
          ``(ids, class_ids, embeddings)``: (N,) int64, (N,) int64 and NxD float32; with no
          examples the embeddings have shape (0, 0).

        Raises:
          NotFound: ``class_id`` is given and unknown.
          StoreError: the stored embeddings are damaged.
        """
        with self._read() as conn:
            if class_id is None:
                rows = conn.execute(
                    "SELECT id, class_id, dim, embedding FROM examples ORDER BY id"
                ).fetchall()
            else:
                class_id = _as_id(class_id, "class")
                self._class_row(conn, class_id)
                rows = conn.execute(
                    "SELECT id, class_id, dim, embedding FROM examples WHERE class_id = ?"
                    " ORDER BY id",
                    (class_id,),
                ).fetchall()
        if not rows:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        dims = {row[2] for row in rows}
        if len(dims) != 1 or any(len(row[3]) != 4 * row[2] for row in rows):
            raise StoreError(f"{self.path} holds damaged embeddings: reset or re-import it")
        ids = np.fromiter((row[0] for row in rows), np.int64, len(rows))
        class_ids = np.fromiter((row[1] for row in rows), np.int64, len(rows))
        flat = np.frombuffer(b"".join(row[3] for row in rows), "<f4")
        return ids, class_ids, flat.reshape(len(rows), dims.pop()).astype(np.float32)

    def recent_examples(self, class_id: int, limit: int) -> List[int]:
        """The ids of a class's ``limit`` newest examples, newest first.

        Raises:
          ValueError: ``limit`` is negative.
          NotFound.
        """
        class_id = _as_id(class_id, "class")
        limit = int(operator.index(limit))
        if limit < 0:
            raise ValueError("limit must be 0 or more")
        with self._read() as conn:
            self._class_row(conn, class_id)
            rows = conn.execute(
                "SELECT id FROM examples WHERE class_id = ? ORDER BY id DESC LIMIT ?",
                (class_id, limit),
            ).fetchall()
        return [i for (i,) in rows]

    def thumbnail(self, example_id: int) -> Optional[bytes]:
        """An example's stored thumbnail, or None when it has none.

        Raises:
          NotFound: no example has this id.
        """
        example_id = _as_id(example_id, "example")
        with self._read() as conn:
            row = conn.execute(
                "SELECT thumbnail FROM examples WHERE id = ?", (example_id,)
            ).fetchone()
        if row is None:
            raise NotFound(f"there is no example {example_id}")
        return None if row[0] is None else bytes(row[0])

    def count_examples(self) -> int:
        """How many examples are stored, over all classes."""
        with self._read() as conn:
            return conn.execute("SELECT COUNT(*) FROM examples").fetchone()[0]

    # ----- recording bursts -------------------------------------------------------------------
    def new_burst(self) -> int:
        """A new burst id, larger than every earlier one (persisted, so also across restarts).

        Raises:
          WriteFailed.
        """
        with self._write() as conn:
            row = conn.execute("SELECT value FROM settings WHERE key = ?", (_BURST_KEY,)).fetchone()
            (highest,) = conn.execute("SELECT COALESCE(MAX(burst), 0) FROM examples").fetchone()
            burst = max(int(json.loads(row[0])) if row else 0, highest) + 1
            conn.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                (_BURST_KEY, json.dumps(burst)),
            )
        return burst

    def last_burst(self) -> Optional[int]:
        """The highest burst id that still has examples, or None."""
        with self._read() as conn:
            return conn.execute("SELECT MAX(burst) FROM examples").fetchone()[0]

    def burst_examples(self, burst: int) -> List[int]:
        """The ids of a burst's examples, ascending (empty for an unknown burst)."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT id FROM examples WHERE burst = ? ORDER BY id", (int(burst),)
            ).fetchall()
        return [i for (i,) in rows]

    # ----- settings ---------------------------------------------------------------------------
    def get_setting(self, key: str, default: Any = None) -> Any:
        """A setting's value as saved by ``set_setting``, or ``default`` when there is none."""
        with self._read() as conn:
            row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        if row is None:
            return default
        try:
            return json.loads(row[0])
        except ValueError:
            log.warning("%s: setting %r is not JSON; using the default", self.path, key)
            return default

    def set_setting(self, key: str, value: Any) -> None:
        """Saves a setting.

        Args:
          key: non-empty text.
          value: anything ``json.dumps`` accepts (finite numbers only).

        Raises:
          ValueError: empty key or non-finite number; TypeError: not JSON-serialisable.
          WriteFailed.
        """
        if not isinstance(key, str) or not key:
            raise ValueError("a setting's key must be non-empty text")
        text = json.dumps(value, allow_nan=False)
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, text))

    # ----- whole-store operations -------------------------------------------------------------
    def reset(self) -> None:
        """Deletes every class and example in one transaction; settings stay.

        Raises:
          WriteFailed.
        """
        with self._write() as conn:
            conn.execute("DELETE FROM examples")
            conn.execute("DELETE FROM classes")
        log.info("%s: every class and example deleted", self.path)

    def replace_all(
        self, classes: Sequence[Mapping[str, Any]], settings: Optional[Mapping[str, Any]] = None
    ) -> None:
        """Replaces every class and example in one transaction: all of it, or nothing changes.

        Args:
          classes: in display order, mappings with ``name``, ``color`` (``#rrggbb`` or None),
            ``examples`` (NxD, N may be 0; D the same for all) and ``thumbnails`` (N bytes or
            None each, or None). Examples get no burst.
          settings: settings to save in the same transaction (``set_setting``'s rules).

        Raises:
          InvalidName, NameTaken (two names equal regardless of case), InvalidColor,
          ValueError, TypeError, WriteFailed: and then the store is unchanged.
        """
        prepared = []
        names: Dict[str, str] = {}
        dim: Optional[int] = None
        for number, spec in enumerate(classes, 1):
            if not isinstance(spec, Mapping):
                raise ValueError(f"class {number}: expected a mapping with name, color, examples")
            name = check_name(spec.get("name"))
            if name.casefold() in names:
                other = names[name.casefold()]
                raise NameTaken(f'two classes are called "{other}"', other)
            names[name.casefold()] = name
            color = spec.get("color")
            color = None if color is None else check_color(color)
            raw = spec.get("examples")
            x = _as_embeddings(np.zeros((0, 0)) if raw is None else raw)
            if len(x):
                if dim is not None and x.shape[1] != dim:
                    raise ValueError(
                        f'class "{name}": expected embeddings of size {dim}, got shape {x.shape}'
                    )
                dim = x.shape[1]
            thumbs = _as_thumbnails(spec.get("thumbnails"), len(x))
            prepared.append((name, color, x, thumbs))
        texts = {}
        for key, value in (settings or {}).items():
            if not isinstance(key, str) or not key:
                raise ValueError("a setting's key must be non-empty text")
            texts[key] = json.dumps(value, allow_nan=False)
        created = time.time()
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", texts.items()
            )
            conn.execute("DELETE FROM examples")
            conn.execute("DELETE FROM classes")
            for position, (name, color, x, thumbs) in enumerate(prepared):
                cursor = conn.execute(
                    "INSERT INTO classes (name, color, position, created) VALUES (?, ?, ?, ?)",
                    (name, color or self._next_color(conn), position, created),
                )
                self._insert_examples(conn, cursor.lastrowid, x, thumbs, None, created)
        log.info("%s: replaced everything with %d classes", self.path, len(prepared))

    def integrity_check(self) -> str:
        """SQLite's integrity and foreign-key checks: ``"ok"``, or the problems, one a line."""
        with self._read() as conn:
            problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            orphans = conn.execute("PRAGMA foreign_key_check").fetchall()
        if problems == ["ok"]:
            problems = []
        problems += [
            f"{table} row {rowid} refers to a missing {parent}"
            for table, rowid, parent, _ in orphans
        ]
        return "\n".join(problems) if problems else "ok"
