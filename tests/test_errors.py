"""kmpress.errors: one exception family, one-line messages, picklable across processes."""

from __future__ import annotations

import ast
import inspect
import pickle
from pathlib import Path

import pytest

import kmpress
from kmpress import errors

ENGINE = Path(kmpress.__file__).resolve().parent
CLASSES = [
    c
    for _, c in inspect.getmembers(errors, inspect.isclass)
    if issubclass(c, Exception) and c.__module__ == errors.__name__
]


def test_every_exception_is_a_kmpress_error():
    assert len(CLASSES) >= 11
    for c in CLASSES:
        assert issubclass(c, errors.KmpressError), c
    # a missing optional dependency is a usage error, not an ImportError the CLI cannot name
    assert issubclass(errors.PlotUnavailableError, errors.MissingExtraError)
    assert not issubclass(errors.PlotUnavailableError, ImportError)
    assert issubclass(errors.InvalidParameterError, ValueError)


def test_no_exception_is_defined_outside_errors_py():
    for path in ENGINE.rglob("*.py"):
        if path.name == "errors.py":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                assert not any(b.endswith(("Error", "Exception")) for b in bases), f"{path.name}: {node.name}"


@pytest.mark.parametrize("cls", CLASSES, ids=[c.__name__ for c in CLASSES])
def test_pickles_with_type_message_and_path(cls):
    e = cls("something is wrong", "a/b.png")
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is cls and back.message == "something is wrong" and back.path == "a/b.png"
    assert str(back) == str(e) == "a/b.png: something is wrong"


def test_fields_and_result_across_processes():
    e = errors.InvalidParameterError("k must be from 1 to 256, got 0", fields=("k",))
    assert pickle.loads(pickle.dumps(e)).fields == ("k",)
    t = errors.TargetNotReachedError("missed", "x.png", result=object())
    back = pickle.loads(pickle.dumps(t))
    assert back.result is None and back.path == "x.png"  # the result (it holds the image) stays behind
