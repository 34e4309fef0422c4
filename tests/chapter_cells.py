"""The chapters' exercise cells, read from their sources (``chapters/NN_*.py``), for the tests:
the instructor's answers (the solution cells) and the test cells with their hidden tests, run on
an answer outside the notebook."""
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
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
    import importlib
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
