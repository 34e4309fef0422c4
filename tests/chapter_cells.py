"""The chapters' exercise cells, read from their sources (``chapters/NN_*.py``), for the tests:
the instructor's answers (the solution cells) and the test cells with their hidden tests, run on
an answer outside the notebook; and what the exercise tests assert of the checks."""
import importlib
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[^\n]*\n?", re.S | re.M)


@lru_cache(maxsize=None)
def cells(chapter):
    """{grade_id: source} of chapter ``chapter`` ("01", ...): its nbgrader cells."""
    import jupytext
    source, = ROOT.glob(f"chapters/{chapter}_*.py")
    notebook = jupytext.read(source)
    return {cell.metadata["nbgrader"]["grade_id"]: cell.source for cell in notebook.cells
            if "nbgrader" in cell.metadata}


def namespace(chapter, **names):
    """What a chapter's exercise cells use from the cells above them."""
    from lib3dr_book.paths import data_path
    checks = importlib.import_module(f"lib3dr_book.exercises.chapter{chapter}")
    return {"__name__": "chapter", "torch": torch, "np": np, "data_path": data_path,
            f"chapter{chapter}": checks, **names}


def answer(chapter, grade_id, **names):
    """Runs the instructor's solution cell ``grade_id``; returns the namespace it defined."""
    scope = namespace(chapter, **names)
    exec(compile(cells(chapter)[grade_id], f"<{grade_id}>", "exec"), scope)
    return scope


def run_tests(chapter, grade_id, hidden=True, **names):
    """Runs test cell ``grade_id`` (with its hidden tests, or as the student sees it) on the
    answer in ``names``; raises what the cell raises."""
    source = cells(chapter)[grade_id]
    if not hidden:
        source = HIDDEN.sub("", source)
    exec(compile(source, f"<{grade_id}>", "exec"), namespace(chapter, **names))


def rejects(check, answer, *words):
    """The check raises AssertionError, and its message contains every word in words."""
    with pytest.raises(AssertionError) as info:
        check(*answer) if isinstance(answer, tuple) else check(answer)
    message = str(info.value).lower()
    assert all(word.lower() in message for word in words), message
    return message


def hidden_tests_reject(chapter, grade_id, **names):
    """The test cell with its hidden tests fails on this answer even when the notebook has
    neutralised the visible check and the shortcut guard (the hidden tests reload the guard)."""
    checks = importlib.import_module(f"lib3dr_book.exercises.chapter{chapter}")
    saved = {name: getattr(checks, name) for name in dir(checks) if name.startswith("check_")}
    from lib3dr_book.exercises import shortcuts
    try:
        for name in saved:
            setattr(checks, name, lambda *args, **kwargs: True)
        shortcuts.call_honestly = lambda fn, args=(), kwargs=None, **_: fn(*args, **(kwargs or {}))
        run_tests(chapter, grade_id, hidden=False, **names)  # the student's view passes...
        with pytest.raises(AssertionError):
            run_tests(chapter, grade_id, **names)  # ...the hidden tests do not
    finally:
        for name, check in saved.items():
            setattr(checks, name, check)
        importlib.reload(shortcuts)
