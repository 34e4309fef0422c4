"""Where the book's files are: the meshes in ``data/`` and the outputs under ``build/``.

The chapters run from a copy of the book (a clone of the repository), whatever installed
``lib3dr_book``: the book's folder is the first of the current folder and its parents that holds
``data/`` and ``chapters/``, or ``$LIB3DR_BOOK_ROOT``. A chapter handed out as an assignment
(``make assignments``) runs from its own folder, which holds ``data/`` and the file
``lib3dr-book.txt`` (``MARKER``).
"""
import os
from pathlib import Path

MARKER = "lib3dr-book.txt"  # marks a folder of the book's files other than a clone (an assignment)


def repo_root():
    """The book's folder (``$LIB3DR_BOOK_ROOT``, else found from the current folder upwards)."""
    if os.environ.get("LIB3DR_BOOK_ROOT"):
        return Path(os.environ["LIB3DR_BOOK_ROOT"]).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "data").is_dir() and ((folder / "chapters").is_dir() or (folder / MARKER).is_file()):
            return folder
    raise FileNotFoundError(
        f"no copy of the book (a folder with data/ and chapters/, or data/ and {MARKER}) at or "
        f"above {here}: run the chapters from a clone of the repository or an assignment's "
        "folder, or set LIB3DR_BOOK_ROOT to one")


def data_path(*parts):
    """Path of a file shipped in ``data/``, e.g. ``data_path("cow_mesh", "cow.obj")``."""
    path = repo_root() / "data" / Path(*parts)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: the book's data/ folder ships with the repository")
    return str(path)


def build_path(*parts):
    """Path under ``build/`` (its folder created as needed) for figures and other outputs."""
    path = repo_root() / "build" / Path(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)
