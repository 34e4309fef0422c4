"""Builds the book's site under build/book/: executes every chapter, then renders the pages.

    python -m lib3dr_book.site chapters/01_*.ipynb ...            # execute, render, check links
    python -m lib3dr_book.site --no-execute chapters/01_*.ipynb   # render the notebooks as they are

Each chapter runs in its own kernel from ``chapters/``, as in JupyterLab. A chapter that fails does
not stop the others: its page shows the outputs up to the failing cell, and the command ends
with a list of the failures (chapter, cell, error) and exit status 1. Every ``href`` and ``src``
of every page must resolve to a file of the site (external scripts and images count as broken:
the book must work offline); a broken one fails the build too.
"""
import argparse
import html.parser
import json
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import nbformat

from lib3dr_book.paths import repo_root

ROOT = repo_root()
CONF = Path(__file__).resolve().parent  # conf.py, Sphinx's configuration
SOURCE = ROOT / "build" / "book-src"
SITE = ROOT / "build" / "book"

# One line per chapter for the contents page; a new chapter must add its line here.
SUMMARIES = {
    "01": "Rendering as a function; why a hard rasterizer gives no gradient for where an outline falls, "
          "and a soft one does.",
    "02": "Fragments, blur, K, the coverage probability, gamma and alpha; the reference rasterizer "
          "line by line; three backends, one image.",
    "03": "Finding the camera from a teapot's silhouette by gradient descent, and why the fit stops "
          "where it does.",
    "04": "Silhouette plus colour on the textured cow: what colour disambiguates and what it does not.",
    "05": "Following a moving camera frame to frame, against fitting each frame from scratch.",
    "06": "What it solves: a sphere deformed into the cow from 20 silhouettes, why each mesh regulariser "
          "exists, vertex colours from Soft Phong images, judged on held-out views.",
}

HOW_TO_RUN = """\
## Run it yourself

```bash
git clone <this repository> lib3dr && cd lib3dr
make book   # set up .venv, execute every chapter, write this site to build/book/
make lab    # open the chapters in JupyterLab
make test   # run every test and every chapter
```

Every chapter runs top to bottom on a 2-core laptop CPU; the times above were measured when this
site was built. The chapters' sources are the `chapters/*.py` files (jupytext's `py:percent`).
"""


def execute(notebook_path):
    """Runs one chapter; returns (executed notebook, seconds, failure or None)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = nbformat.read(notebook_path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "chapters")}})
    start = time.perf_counter()
    failure = None
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError) as error:
        failure = describe_failure(nb, error)
    return nb, time.perf_counter() - start, failure


def describe_failure(nb, error):
    """'cell N: Error: message' for the first code cell that failed (N counts code cells from 1)."""
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    for number, cell in enumerate(code_cells, start=1):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"code cell {number}: {output['ename']}: {output['evalue']}"
    return f"{type(error).__name__}: {str(error).strip().splitlines()[-1]}"


def chapter_title(nb):
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return None


def write_contents(chapters, times):
    """index.md: the book's title, one row per chapter, and how to run it."""
    rows = []
    for name, title in chapters:
        summary = SUMMARIES.get(name[:2])
        if summary is None:
            raise SystemExit(f"lib3dr_book.site: chapter {name} has no summary in SUMMARIES")
        seconds = times.get(name)
        run_time = f"{seconds:.0f} s" if seconds is not None else "not run"
        rows.append(f"| [{title}](chapters/{name}.ipynb) | {summary} | {run_time} |")
    toctree = "\n".join(f"chapters/{name}" for name, _ in chapters)
    text = (
        "# lib3dr — differentiable rendering, built to be read\n\n"
        "A book and a library: why ordinary rendering has no useful gradient, how a soft rasterizer "
        "(Liu et al., *Soft Rasterizer*, ICCV 2019) makes it differentiable, and what that solves. "
        "Each chapter is a notebook that runs on a laptop CPU.\n\n"
        "| chapter | what it shows | run time |\n| --- | --- | --: |\n"
        + "\n".join(rows) + "\n\n" + HOW_TO_RUN
        + f"\n```{{toctree}}\n:hidden:\n:maxdepth: 1\n\n{toctree}\n```\n"
    )
    (SOURCE / "index.md").write_text(text)


class _References(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.references = []

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("href", "src") and value:
                self.references.append((tag, key, value))


def broken_references(site):
    """Every (page, reference) of the site's pages that does not resolve to a file of the site.

    Links out (``<a href="https://...">``) are allowed; anything else from the network (a
    script, a style sheet, an image) is broken, because the book must work offline.
    """
    broken = []
    for page in sorted(Path(site).rglob("*.html")):
        if "_static" in page.relative_to(site).parts:  # the theme's template fragments, not pages
            continue
        parser = _References()
        parser.feed(page.read_text(encoding="utf-8"))
        for tag, key, value in parser.references:
            url = urllib.parse.urlsplit(value)
            if url.scheme in ("mailto", "data", "javascript") or (not url.scheme and not url.path):
                continue
            if url.scheme or value.startswith("//"):
                if tag == "a":
                    continue
                broken.append((page, value))
                continue
            target = (page.parent / urllib.parse.unquote(url.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append((page, value))
    return broken


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--no-execute", action="store_true",
                        help="render the notebooks without running them (their figures must exist)")
    args = parser.parse_args(argv)

    shutil.rmtree(SOURCE, ignore_errors=True)
    (SOURCE / "chapters").mkdir(parents=True)
    chapters, times, failures = [], {}, []
    for path in sorted(args.notebooks):
        name = path.stem
        if args.no_execute:
            nb = nbformat.read(path, as_version=4)
        else:
            print(f"executing {path} ...", flush=True)
            nb, seconds, failure = execute(path)
            times[name] = seconds
            print(f"  {seconds:.0f} s" + (f", FAILED at {failure}" if failure else ""), flush=True)
            if failure:
                failures.append(f"{path}: {failure}")
        nbformat.write(nb, SOURCE / "chapters" / f"{name}.ipynb")
        chapters.append((name, chapter_title(nb) or name))
    # The chapters link their GIFs as ../build/figures/..., relative to chapters/: keep that true.
    figures = ROOT / "build" / "figures"
    if figures.is_dir():
        shutil.copytree(figures, SOURCE / "build" / "figures")
    write_contents(chapters, times)
    (SOURCE / "times.json").write_text(json.dumps(times, indent=1))

    shutil.rmtree(SITE, ignore_errors=True)
    build = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", "-c", str(CONF),
                            str(SOURCE), str(SITE)])
    if build.returncode != 0:
        failures.append(f"sphinx-build exited with status {build.returncode}")
    else:
        broken = broken_references(SITE)
        for page, value in broken:
            failures.append(f"{page.relative_to(ROOT)}: broken reference {value}")
        print(f"book written to {(SITE / 'index.html').relative_to(ROOT)} "
              f"(every link and image resolves)" if not broken else
              f"book written to {SITE.relative_to(ROOT)} with {len(broken)} broken references")
    if failures:
        print(f"\n{len(failures)} failure(s):", *failures, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
