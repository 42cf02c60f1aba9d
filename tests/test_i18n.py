"""The page's languages and the server's codes: every language has the same strings, every code
the server can send has one in every language, and the server sends no code it does not list.

The language files (``static/i18n/*.js``) are read by a strict reader of their plain object
literal (anything else in them fails the test), and, where Node.js is installed, by Node too.
The server's codes are found by reading its source (``ast``): the first argument of every
``ServiceError``, ``BundleError`` and ``ExportError``, and every ``"code"`` of a dict literal.
"""

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from server import errors, store
from server.errors import ServiceError

ROOT = Path(__file__).resolve().parent.parent
LANGUAGE_DIR = ROOT / "static" / "i18n"
LANGUAGE_FILES = sorted(LANGUAGE_DIR.glob("*.js"))
RAISERS = {"_error", "ServiceError", "BundleError", "ExportError"}  # (code, message, ...) each
ENTRY = re.compile(r'\s*([a-z][a-z0-9_]*):\s*"((?:[^"\\\n]|\\.)*)",')
COMMENT = re.compile(r"^\s*//.*$", re.MULTILINE)
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def read_table(path: Path) -> dict:
    """The strings of one language file: ``export default { key: "text", ... };`` only."""
    text = COMMENT.sub("", path.read_text(encoding="utf-8"))
    start, end = text.index("export default {"), text.rindex("};")
    assert not text[:start].strip() and not text[end + 2 :].strip(), f"{path.name}: extra code"
    body = text[start + len("export default {") : end]
    table, pos = {}, 0
    while body[pos:].strip():
        match = ENTRY.match(body, pos)
        assert match, f"{path.name}: cannot read the entry at {body[pos : pos + 60]!r}"
        key = match.group(1)
        assert key not in table, f"{path.name}: {key} twice"
        table[key] = json.loads(f'"{match.group(2)}"')
        pos = match.end()
    return table


@pytest.fixture(scope="module")
def tables() -> dict:
    return {path.stem: read_table(path) for path in LANGUAGE_FILES}


def test_there_are_the_two_languages(tables):
    assert sorted(tables) == ["en", "ja"]
    assert all(len(table) > 250 for table in tables.values())  # the reader read them whole


def test_every_language_has_the_same_keys(tables):
    english = set(tables["en"])
    for language, table in tables.items():
        assert set(table) - english == set(), f"{language} has strings English lacks"
        assert english - set(table) == set(), f"{language} lacks strings"
        assert all(text.strip() for text in table.values()), f"{language} has an empty string"


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_node_reads_the_language_files_as_the_reader_does(tables):
    for path in LANGUAGE_FILES:
        source = path.read_text(encoding="utf-8").replace("export default", "const table =", 1)
        script = source + "\nprocess.stdout.write(JSON.stringify(table));\n"
        run = subprocess.run(
            ["node", "--input-type=module"],
            input=script,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert json.loads(run.stdout) == tables[path.stem], path.name


def test_a_translation_needs_no_value_the_english_string_is_not_given(tables):
    for language, table in tables.items():
        for key, text in table.items():
            wanted = set(PLACEHOLDER.findall(text))
            assert wanted <= set(PLACEHOLDER.findall(tables["en"][key])) | {"message"}, (
                f"{language}.{key} needs {wanted}"
            )


def coded_keys():
    """(page key, code, the fields its error carries) of every code the server lists."""
    for code in errors.ERRORS:
        yield f"error_{code}", code, set(errors.FIELDS.get(code, ()))
    for reason in errors.SKIP_REASONS:
        yield f"skip_{reason}", reason, set()
    for code in errors.NOTICES:
        yield f"notice_{code}", code, set()


def test_every_code_the_server_sends_has_a_string_in_every_language(tables):
    for language, table in tables.items():
        missing = [key for key, _, _ in coded_keys() if key not in table]
        assert missing == [], f"{language} lacks {missing}"


def test_a_codes_strings_use_only_the_fields_its_error_carries(tables):
    for language, table in tables.items():
        for key, _code, fields in coded_keys():
            used = set(PLACEHOLDER.findall(table[key]))
            assert used <= fields | {"message"}, f"{language}.{key} uses {used - fields}"


def test_no_english_sentence_from_the_server_reaches_a_japanese_page(tables):
    for key, _, _ in coded_keys():
        assert "{message}" not in tables["ja"][key], key
    assert "{message}" not in tables["ja"]["training_failed"]


# ----- the server side -----------------------------------------------------------------------
def _strings(node):
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and type(n.value) is str]


def sent_codes():
    """{code: [where]} of every code literal in server/: raised errors and ``"code"`` keys."""
    found = {}
    for path in sorted((ROOT / "server").rglob("*.py")):
        where = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            codes = []
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in RAISERS and node.args and isinstance(node.args[0], ast.Constant):
                    codes.append(node.args[0].value)
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values):
                    if isinstance(key, ast.Constant) and key.value == "code":
                        codes += _strings(value)
            for code in codes:
                found.setdefault(code, []).append(f"{where}:{node.lineno}")
    return found


def test_the_server_sends_only_codes_it_lists():
    found = sent_codes()
    assert len(found) > 50  # the scan sees the server's errors at all
    unknown = {c: w for c, w in found.items() if c not in errors.ERRORS and c not in errors.NOTICES}
    assert unknown == {}, "add these to server/errors.py"


def test_every_listed_code_is_sent_somewhere():
    # name_taken comes from store.NameTaken (below); the HTTP ones from werkzeug (below)
    sent = set(sent_codes()) | {"name_taken"} | set(HTTP_CODES.values())
    assert set(errors.ERRORS) - sent == set(), "codes nothing sends: remove them"
    assert set(errors.NOTICES) - sent == set()


def test_a_store_error_becomes_a_listed_code_with_its_fields():
    from server.pipeline import _store_error

    taken = _store_error(store.NameTaken('there is already a class called "rock"', "rock"))
    assert taken.as_dict() == {
        "code": "name_taken",
        "message": 'there is already a class called "rock"',
        "name": "rock",
    }
    assert taken.status == 409
    for error in (
        store.NotFound("x"),
        store.InvalidName("x"),
        store.InvalidColor("x"),
        store.WriteFailed("x"),
        store.DiskFull("x"),
        store.StoreError("x"),
    ):
        assert _store_error(error).code in errors.ERRORS  # ServiceError refuses any other


HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_entity_too_large",
    416: "requested_range_not_satisfiable",
    500: "internal_server_error",
}


def test_werkzeugs_errors_keep_the_codes_listed():
    """server/web names an HTTP error after werkzeug's exception (``Not Found`` → not_found)."""
    from werkzeug.exceptions import default_exceptions

    for status, code in HTTP_CODES.items():
        assert errors.http_code(default_exceptions[status]().name) == code
        assert code in errors.ERRORS


def test_record_skipped_reasons_are_the_listed_ones():
    from server.pipeline import SKIP_MESSAGES

    assert set(SKIP_MESSAGES) == set(errors.SKIP_REASONS)


def test_a_service_error_refuses_an_unknown_code_or_field():
    with pytest.raises(ValueError, match="unknown error code 'no_such_code'"):
        ServiceError("no_such_code", "Nothing.")
    with pytest.raises(ValueError, match="has no field"):
        ServiceError("not_found", "There is no class 3.", 404, name="x")
    error = ServiceError("pin_locked", "Too many wrong PINs: try again in 7 s.", 429, seconds=7)
    assert error.as_dict() == {
        "code": "pin_locked",
        "message": "Too many wrong PINs: try again in 7 s.",
        "seconds": 7,
    }
    assert error.status == 429 and str(error) == error.message


def test_an_operator_error_names_the_setting():
    from server.exhibit import OperatorError, validate

    with pytest.raises(OperatorError) as caught:
        validate({"smoothing": 3})
    assert caught.value.fields == {"setting": "smoothing"}
    with pytest.raises(OperatorError) as caught:
        validate(["not", "an", "object"])
    assert caught.value.fields == {}
