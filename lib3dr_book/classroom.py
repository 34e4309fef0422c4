"""Teaching with the book: the chapters as nbgrader assignments, and one command to grade a class.

    python -m lib3dr_book.classroom assignments [CHAPTER ...]     # make assignments
    python -m lib3dr_book.classroom grade SUBMITTED               # make grade SUBMITTED=...

``assignments`` writes nbgrader's course layout under ``build/assignments/``: the instructor
versions ``source/<chapter>/<chapter>.ipynb`` (from ``chapters/<chapter>.py`` with jupytext, with
the files the chapter reads from the book: ``data/...``, ``benchmarks/results/...``, and the marker
``lib3dr-book.txt`` that tells ``lib3dr_book.paths`` that the folder is the book's), and the
student versions ``release/<chapter>/`` made from them by ``nbgrader generate_assignment``: the
solution regions replaced by a stub that raises "not answered yet", the hidden tests removed. A
chapter without nbgrader cells is skipped, with a message.

``grade`` takes a folder of ``<student>/<chapter>/<chapter>.ipynb``, autogrades each submission
into nbgrader's gradebook (``build/assignments/gradebook.db``) with ``nbgrader autograde`` (one
process per submission, a time limit per cell and one per submission), writes a feedback page per
submission (``build/assignments/feedback/<student>/<chapter>/<chapter>.html``, hidden tests and
tracebacks left out) and ``build/grades.csv``: one row per submission, the points of each
exercise, the total, and a note saying why points are missing (a broken notebook, a deleted test
cell, a time limit, the first line of each failed test). A broken submission never stops the
others.
"""
import argparse
import ast
import csv
import html
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

from lib3dr_book.paths import MARKER

try:
    from nbgrader import utils as nbgrader_utils
    from nbgrader.preprocessors import NbGraderPreprocessor
except ImportError as error:
    raise ImportError("lib3dr_book.classroom needs nbgrader: pip install nbgrader (lib3dr's dev "
                      "extras have it)") from error

ROOT = Path(__file__).resolve().parent.parent
COURSE_ID = "lib3dr"
CELL_TIMEOUT = 300           # seconds per cell; a chapter's slowest cell takes well under a minute
NOT_ANSWERED = ('raise NotImplementedError("not answered yet: write your answer here, in place of '
                'this line")')
EXERCISE = re.compile(r"^ex(\d+)_(\d+)_")  # grade_id "ex2_1_tests" -> exercise 2.1

CONFIG = f'''\
# nbgrader's configuration for the book's assignments, written by lib3dr_book.classroom (make
# assignments, make grade). nbgrader reads it when run from this folder, so that its own commands
# (nbgrader autograde <chapter>, nbgrader generate_feedback <chapter>, ...) work here too.
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import GetGrades

from lib3dr_book.classroom import FeedbackWithoutHiddenTests

c = get_config()  # noqa: F821 (nbgrader's config loader defines it)
c.CourseDirectory.course_id = "{COURSE_ID}"
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "build"]
# The stub that replaces each solution region in the student's version.
c.ClearSolutions.code_stub = {{"python": {NOT_ANSWERED!r}}}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
# A runaway cell is interrupted after this many seconds and counts as failed; grading goes on.
c.Execute.timeout = {CELL_TIMEOUT}
# A deleted test cell is not put back: its exercise gets no points (and grades.csv says why).
c.OverwriteCells.add_missing_cells = False
# Feedback goes to the student: without the hidden tests' code, and errors without tracebacks.
c.GenerateFeedback.preprocessors = [GetGrades, FeedbackWithoutHiddenTests, CSSHTMLHeaderPreprocessor]
'''

MARKER_TEXT = """\
This folder holds one chapter of the lib3dr book as an assignment: open the .ipynb next to this
file in JupyterLab (in an environment where lib3dr is installed) and answer the exercises at the
end. data/ holds the files the chapter reads; this file tells lib3dr_book that they are here.
"""


# ---------------------------------------------------------------------------------------------
# The assignments

def chapters_with_exercises(root=ROOT, names=None):
    """The chapters' sources (``chapters/NN_*.py`` of the book's folder ``root``) that mark
    exercises for nbgrader, and the names of those that do not (skipped)."""
    sources = sorted((Path(root) / "chapters").glob("[0-9][0-9]_*.py"))
    if names:
        sources = [s for s in sources if s.stem in names or s.stem[:2] in names]
    marked = [s for s in sources if '"nbgrader"' in s.read_text() or "nbgrader=" in s.read_text()]
    return marked, [s.stem for s in sources if s not in marked]


def _call_name(node):
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_call_name(node.value)}.{node.attr}"
    return ""


def _strings(nodes):
    if all(isinstance(n, ast.Constant) and isinstance(n.value, str) for n in nodes):
        return [n.value for n in nodes]
    return None


def files_read(notebook):
    """The book's files (relative paths) that a chapter's code reads: the constant arguments of
    its ``data_path(...)`` and ``os.path.join(repo_root(), ...)`` calls."""
    found = set()
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        code = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node.func)
            if name.endswith("data_path") and (parts := _strings(node.args)):
                found.add(Path("data", *parts))
            elif (name.endswith("join") or name.endswith("Path")) and node.args \
                    and isinstance(node.args[0], ast.Call) and _call_name(node.args[0].func).endswith("repo_root") \
                    and (parts := _strings(node.args[1:])):
                found.add(Path(*parts))
    return sorted(found)


def _copy_book_files(relative_paths, destination, root=ROOT):
    """Copies what the chapter reads into ``destination``: a file of ``data/<folder>/`` brings its
    whole folder (a mesh with its materials and texture), data/README.md (provenance, licences)
    comes with any data; then the marker."""
    wanted = set()
    for path in relative_paths:
        if path.parts[0] == "data":
            wanted.add(Path("data", "README.md"))
            wanted.add(Path(*path.parts[:2]) if len(path.parts) > 2 else path)
        else:
            wanted.add(path)
    for path in sorted(wanted):
        source, target = Path(root) / path, destination / path
        if path == Path("data", "README.md") and not source.exists():
            continue
        if not source.exists():
            raise FileNotFoundError(f"{source} does not exist (read by the chapter)")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", ".*"))
        else:
            shutil.copy2(source, target)
    (destination / MARKER).write_text(MARKER_TEXT)


def _nbgrader(course, *args, timeout=None, cell_timeout=None):
    """Runs ``nbgrader <args>`` in the course folder (where its config is): CompletedProcess, or
    None when it ran past ``timeout`` seconds (then it and its kernel are killed)."""
    command = [sys.executable, "-m", "nbgrader", *args]
    if cell_timeout is not None:
        command.append(f"--Execute.timeout={int(cell_timeout)}")
    env = {k: v for k, v in os.environ.items() if k != "LIB3DR_BOOK_ROOT"}  # each folder is the book
    # nbgrader runs `alembic` (its gradebook's migrations) from the PATH: the environment's own.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    process = subprocess.Popen(command, cwd=course, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(process.pid)
        process.communicate()
        return None
    return subprocess.CompletedProcess(command, process.returncode, output, "")


def _kill_tree(pid):
    """Kills nbgrader and its kernel (which runs in a session of its own)."""
    try:
        import psutil
    except ImportError:  # then only nbgrader's own process group
        os.killpg(pid, signal.SIGKILL)
        return
    try:
        processes = psutil.Process(pid).children(recursive=True) + [psutil.Process(pid)]
    except psutil.NoSuchProcess:
        return
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def write_config(course):
    course.mkdir(parents=True, exist_ok=True)
    (course / "nbgrader_config.py").write_text(CONFIG)


def make_assignments(course=None, names=None, root=ROOT, log=print):
    """Writes the instructor and student versions of the chapters with exercises (all, or those
    named) of the book in ``root`` under ``course`` (default ``build/assignments``); returns the
    chapters' names."""
    import jupytext
    course = Path(course or ROOT / "build" / "assignments").resolve()
    write_config(course)
    marked, skipped = chapters_with_exercises(root, names)
    for name in skipped:
        log(f"{name}: no exercises marked for nbgrader (### BEGIN SOLUTION, nbgrader cell metadata): skipped")
    done = []
    for source in marked:
        name = source.stem
        notebook = jupytext.read(source)
        notebook.metadata.pop("jupytext", None)  # no pairing: a student's edits stay in the notebook
        notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        folder = course / "source" / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        jupytext.write(notebook, folder / f"{name}.ipynb", fmt="ipynb")
        _copy_book_files(files_read(notebook), folder, root)
        result = _api_call(course, "generate_assignment", name, force=True)
        if not result["success"]:
            raise RuntimeError(f"nbgrader generate_assignment {name} failed:\n{result['log'][-3000:]}{result.get('error', '')}")
        log(f"{name}: source/{name}/ (instructor), release/{name}/ (student)")
        done.append(name)
    return done


# ---------------------------------------------------------------------------------------------
# Feedback without the hidden tests

def _without_hidden_tests(source):
    lines, hidden = [], False
    for line in source.split("\n"):
        if "BEGIN HIDDEN TESTS" in line:
            hidden = True
            lines.append(line.replace("BEGIN HIDDEN TESTS", "hidden tests ran here"))
        elif "END HIDDEN TESTS" in line:
            hidden = False
        elif not hidden:
            lines.append(line)
    return "\n".join(lines)


class FeedbackWithoutHiddenTests(NbGraderPreprocessor):
    """Leaves the hidden tests' code out of the feedback page, and the tracebacks of the test
    cells' errors (they quote the failing line): the error's name and message stay."""

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type == "code" and nbgrader_utils.is_grade(cell):
            cell.source = _without_hidden_tests(cell.source)
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = [f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"]
        return cell, resources


# ---------------------------------------------------------------------------------------------
# Grading

def _exercise(grade_id):
    match = EXERCISE.match(grade_id)
    return f"ex{match[1]}.{match[2]}" if match else grade_id


def _first_line(text, limit=160):
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(text)).strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _gradebook(course):
    from nbgrader.api import Gradebook
    return Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id=COURSE_ID)


def _grade_cells(course, chapter):
    """{grade_id: max points} of the chapter's test cells, from the gradebook."""
    with _gradebook(course) as gb:
        notebook = gb.find_notebook(chapter, chapter)
        return {cell.name: cell.max_score for cell in notebook.grade_cells}


def _zero(course, chapter, student):
    """Records a submission that could not be graded: every test cell 0 points."""
    with _gradebook(course) as gb, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLAlchemy's notes on nbgrader's own session handling
        gb.update_or_create_student(student)
        submission = gb.update_or_create_submission(chapter, student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                grade.auto_score = 0
                grade.needs_manual_grade = False
        gb.db.commit()


def _scores(course, chapter, student):
    """{grade_id: points} of a graded submission (0 where a cell has no score)."""
    with _gradebook(course) as gb:
        notebook = gb.find_submission_notebook(chapter, chapter, student)
        return {grade.cell.name: float(grade.score or 0.0) for grade in notebook.grades}


def _failures(notebook_path):
    """{grade_id: 'Error: first line'} of the test cells that failed, and of the answer cells
    that raised, in an autograded notebook."""
    import nbformat
    failures = {}
    for cell in nbformat.read(notebook_path, as_version=4).cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if cell.cell_type != "code" or not grade_id:
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                name, message = output.get("ename", "Error"), _first_line(output.get("evalue", ""))
                failures[grade_id] = "not answered yet" if name == "NotImplementedError" else f"{name}: {message}".rstrip(": ")
                break
    return failures


def _api_call(course, method, *args, **kwargs):
    """An nbgrader command through its Python API, in this process (no second start-up), with the
    course's configuration; returns nbgrader's {"success", "log", "error"}."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader
    config = PyFileConfigLoader("nbgrader_config.py", path=str(course)).load_config()
    api = NbGraderAPI(CourseDirectory(config=config, root=str(course)), config=config)
    path = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), path])  # its `alembic`
    try:
        return getattr(api, method)(*args, **kwargs)
    finally:
        os.environ["PATH"] = path


def _generate_feedback(course, chapter, student):
    return _api_call(course, "generate_feedback", chapter, student, force=True)["success"]


def _feedback_page(path, student, chapter, why):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(chapter)}: feedback</title>"
        f"</head><body><h1>{html.escape(chapter)}: feedback for {html.escape(student)}</h1>"
        f"<p>Your submission could not be graded: {html.escape(why)}</p>"
        f"<p>Every exercise of this chapter gets 0 points. Hand in the notebook again as "
        f"<code>{html.escape(chapter)}.ipynb</code>, saved from JupyterLab.</p></body></html>\n")


def grade_submission(course, student, chapter, submitted_folder, cell_timeout=CELL_TIMEOUT,
                     submission_timeout=None):
    """Autogrades one submission into the gradebook and writes its feedback page; returns
    ({grade_id: points}, [notes])."""
    import nbformat
    notes = []
    cells = _grade_cells(course, chapter)
    target = course / "submitted" / student / chapter
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(submitted_folder, target, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "build"))
    notebook_path = target / f"{chapter}.ipynb"
    feedback = course / "feedback" / student / chapter / f"{chapter}.html"
    for old in (course / "autograded" / student / chapter, feedback.parent):
        if old.exists():
            shutil.rmtree(old)
    try:
        if not notebook_path.exists():
            raise ValueError(f"no {chapter}.ipynb in the submission")
        notebook = nbformat.read(notebook_path, as_version=4)
        nbformat.validate(notebook)
    except Exception as error:  # not JSON, not a notebook, missing
        why = f"not a readable notebook ({type(error).__name__}: {_first_line(error)})"
        _zero(course, chapter, student)
        _feedback_page(feedback, student, chapter, why)
        return {grade_id: 0.0 for grade_id in cells}, [why]
    present = {cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") for cell in notebook.cells}
    for grade_id in cells:
        if grade_id not in present:
            notes.append(f"{_exercise(grade_id)}: test cell {grade_id} deleted (or its nbgrader metadata), 0 points")
    limit = submission_timeout or 10 * cell_timeout
    process = _nbgrader(course, "autograde", chapter, "--student", student, "--force",
                        timeout=limit, cell_timeout=cell_timeout)
    autograded = course / "autograded" / student / chapter / f"{chapter}.ipynb"
    if process is None:
        notes.append(f"grading stopped after {limit} s (the whole submission's time limit)")
    elif process.returncode != 0 or not autograded.exists():
        errors = [line for line in process.stdout.splitlines() if "[ERROR]" in line or "Error" in line]
        error = _first_line(errors[-1] if errors else process.stdout[-300:])
        if "CellTimeoutError" in error:
            error = f"a cell ran past the time limit of {cell_timeout} s and did not stop when interrupted"
        elif "DeadKernelError" in error:
            error = "the notebook's kernel died (did a cell end Python, or run out of memory?)"
        notes.append(f"nbgrader autograde failed: {error}")
    if process is None or not autograded.exists():
        _zero(course, chapter, student)
        _feedback_page(feedback, student, chapter, "; ".join(notes))
        return {grade_id: 0.0 for grade_id in cells}, notes
    scores = _scores(course, chapter, student)
    for grade_id, failure in _failures(autograded).items():
        if grade_id in cells and scores.get(grade_id, 0.0) >= cells[grade_id]:
            continue
        if "CellTimeoutError" in failure or "KeyboardInterrupt" in failure:
            failure = f"stopped after the time limit of {cell_timeout} s per cell"
        notes.append(f"{_exercise(grade_id)}: {failure}")
    if not _generate_feedback(course, chapter, student) or not feedback.exists():
        notes.append("no feedback page (nbgrader generate_feedback failed)")
    return {grade_id: scores.get(grade_id, 0.0) for grade_id in cells}, notes


def grade(submitted, course=None, csv_path=None, cell_timeout=CELL_TIMEOUT, submission_timeout=None,
          log=print):
    """Grades every ``<student>/<chapter>/`` under ``submitted``; writes the CSV; returns its rows."""
    submitted = Path(submitted).resolve()
    course = Path(course or ROOT / "build" / "assignments").resolve()
    csv_path = Path(csv_path or course.parent / "grades.csv")
    if not (course / "gradebook.db").exists():
        raise FileNotFoundError(f"no gradebook in {course}: run `make assignments` first")
    if not submitted.is_dir():
        raise FileNotFoundError(f"{submitted} is not a folder of <student>/<chapter>/<chapter>.ipynb")
    write_config(course)
    with _gradebook(course) as gb:
        chapters = sorted(a.name for a in gb.assignments)
    rows, columns = [], set()
    for student_folder in sorted(p for p in submitted.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for folder in sorted(p for p in student_folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            student, chapter = student_folder.name, folder.name
            if chapter not in chapters:
                rows.append({"student": student, "chapter": chapter, "total": 0,
                             "note": f"{chapter} is not an assignment (make assignments made {', '.join(chapters)})"})
                log(f"{student} {chapter}: not an assignment")
                continue
            start = time.perf_counter()
            scores, notes = grade_submission(course, student, chapter, folder, cell_timeout, submission_timeout)
            by_exercise = {}
            for grade_id, points in scores.items():
                by_exercise[_exercise(grade_id)] = by_exercise.get(_exercise(grade_id), 0.0) + points
            columns |= set(by_exercise)
            row = {"student": student, "chapter": chapter, **by_exercise,
                   "total": sum(by_exercise.values()), "note": "; ".join(notes)}
            rows.append(row)
            log(f"{student} {chapter}: {row['total']:g} points in {time.perf_counter() - start:.0f} s"
                + (f" ({row['note']})" if row["note"] else ""))

    def order(column):
        match = re.match(r"ex(\d+)\.(\d+)$", column)
        return (int(match[1]), int(match[2])) if match else (1e9, 0)

    fields = ["student", "chapter", *sorted(columns, key=order), "total", "note"]
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:g}" if isinstance(v, float) else v) for k, v in row.items()})
    log(f"wrote {csv_path} ({len(rows)} submissions); feedback pages under {course / 'feedback'}")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lib3dr_book.classroom", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("assignments", help="write build/assignments/source and release")
    make.add_argument("chapters", nargs="*", help="chapter names or numbers (default: all with exercises)")
    make.add_argument("--course", default=None, help="the course folder (default build/assignments)")
    marks = commands.add_parser("grade", help="autograde <dir>/<student>/<chapter>/<chapter>.ipynb")
    marks.add_argument("submitted")
    marks.add_argument("--course", default=None, help="the course folder (default build/assignments)")
    marks.add_argument("--csv", default=None, help="where to write the grades (default build/grades.csv)")
    marks.add_argument("--cell-timeout", type=int, default=CELL_TIMEOUT, help="seconds per cell")
    args = parser.parse_args(argv)
    try:
        if args.command == "assignments":
            make_assignments(args.course, args.chapters)
        else:
            grade(args.submitted, args.course, args.csv, args.cell_timeout)
    except (FileNotFoundError, RuntimeError) as error:
        sys.exit(f"{args.command}: {error}")


if __name__ == "__main__":
    main()
