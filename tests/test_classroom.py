"""Teaching with the book (lib3dr_book.classroom, `make assignments`, `make grade`): the student
versions hold no answers and run, and grading gives each submission the points it earned and no
more, whatever the submission did to its notebook.

The course is written under pytest's tmp_path, outside the repository, so the release folders
must carry what their chapter reads. Grading runs a real chapter (2, among the quickest) for three
made-up students, and a small made-up chapter for the broken and tampered submissions.
"""
import copy
import csv
import json
import re
from pathlib import Path

import pytest

from lib3dr_book import classroom

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = "02_making_rendering_differentiable"
REGION = re.compile(r"### (BEGIN|END) (SOLUTION|HIDDEN TESTS)")


def quiet(*args):
    pass


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = tmp_path_factory.mktemp("course")
    made = classroom.make_assignments(course, log=quiet)
    assert made, "no chapter marks exercises for nbgrader"
    return course


def read(path):
    return json.loads(Path(path).read_text())


def nbgrader_cells(notebook):
    return {c["metadata"]["nbgrader"]["grade_id"]: c for c in notebook["cells"] if "nbgrader" in c["metadata"]}


def text_of(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def region_lines(source):
    """The lines of a chapter's solution and hidden-test regions that appear nowhere else in it."""
    inside, regions, elsewhere = False, [], set()
    for line in source.splitlines():
        if REGION.search(line):
            inside = "BEGIN" in line
        elif inside:
            regions.append(line.strip())
        else:
            elsewhere.add(line.strip())
    return [line for line in regions if line and line not in elsewhere]


# ---------------------------------------------------------------------------------------------
# make assignments

def test_the_chapters_mark_their_exercises():
    marked, _ = classroom.chapters_with_exercises()
    names = [path.stem for path in marked]
    for number in ("01", "02", "03", "04", "05"):
        assert any(name.startswith(number) for name in names), names
    for path in marked:
        cells = nbgrader_cells({"cells": classroom_cells(path)})
        answers = [g for g, c in cells.items() if c["metadata"]["nbgrader"]["solution"]]
        tests = [g for g, c in cells.items() if c["metadata"]["nbgrader"]["grade"]]
        assert answers and len(tests) >= len(answers), (path.name, cells.keys())
        for grade_id in tests:
            assert cells[grade_id]["metadata"]["nbgrader"]["points"] > 0
            assert "BEGIN HIDDEN TESTS" in text_of(cells[grade_id]), f"{path.name} {grade_id}: no hidden tests"
        for grade_id in answers:
            assert "BEGIN SOLUTION" in text_of(cells[grade_id]), f"{path.name} {grade_id}: no solution region"


def classroom_cells(path):
    import jupytext
    return [dict(cell) for cell in jupytext.read(path).cells]


def test_make_assignments_writes_the_course_layout(course):
    for source in classroom.chapters_with_exercises()[0]:
        name = source.stem
        instructor = read(course / "source" / name / f"{name}.ipynb")
        student = read(course / "release" / name / f"{name}.ipynb")
        assert "jupytext" not in student["metadata"], "no pairing: a student's edits stay in the notebook"
        assert student["metadata"]["kernelspec"]["name"] == "python3"
        # the same cells, the answers replaced by the stub, the hidden tests gone
        assert len(student["cells"]) == len(instructor["cells"])
        for grade_id, cell in nbgrader_cells(student).items():
            text = text_of(cell)
            assert not REGION.search(text), (name, grade_id)
            if cell["metadata"]["nbgrader"]["solution"]:
                assert classroom.NOT_ANSWERED in text, (name, grade_id)
            if cell["metadata"]["nbgrader"]["grade"]:
                assert cell["metadata"]["editable"] is False and cell["metadata"]["deletable"] is False
        # what the chapter reads travels with it, and marks the folder as the book's
        folder = course / "release" / name
        assert (folder / classroom.MARKER).is_file()
        for path in classroom.files_read(__import__("jupytext").read(source)):
            assert (folder / path).is_file(), f"{name} reads {path}, which the release lacks"
    config = (course / "nbgrader_config.py").read_text()
    assert "code_stub" in config and "Execute.timeout" in config


def test_student_versions_hold_no_solution_lines(course):
    for source in classroom.chapters_with_exercises()[0]:
        name = source.stem
        lines = region_lines(source.read_text())
        assert len(lines) > 10, name
        folder = course / "release" / name
        texts = [text_of(cell) for cell in read(folder / f"{name}.ipynb")["cells"]]
        texts += [p.read_text() for p in folder.rglob("*") if p.suffix in (".txt", ".md", ".py")]
        released = {line.strip() for text in texts for line in text.splitlines()}
        found = [line for line in lines if line in released]
        assert not found, f"{name}: solution or hidden-test lines in the student's version: {found}"


def test_the_packages_hold_no_answers():
    import importlib
    import pkgutil

    import lib3dr_book.exercises
    # no reference solution, no expected value, in any module of the book's helpers
    for info in pkgutil.iter_modules(lib3dr_book.exercises.__path__):
        module = importlib.import_module(f"lib3dr_book.exercises.{info.name}")
        for attribute in dir(module):
            assert not attribute.lower().startswith(("reference", "_reference", "best_distance", "_mystery")), (
                f"{module.__name__}.{attribute}")
    book_lines = {line.strip() for path in (ROOT / "lib3dr_book").rglob("*.py") for line in path.read_text().splitlines()}
    for source in classroom.chapters_with_exercises()[0]:
        # statements, not imports or the short lines any code has (`return R, T`, `dtype=...)`)
        lines = [line for line in region_lines(source.read_text())
                 if len(line) > 30 and not line.startswith(("import ", "from "))]
        found = [line for line in lines if line in book_lines]
        assert not found, f"{source.name}: lines of its solutions or hidden tests in lib3dr_book: {found}"
    # the answers the hidden tests hold (chapter 3's best distance, chapter 1's sphere) are nowhere
    packages = "\n".join(p.read_text() for package in ("lib3dr", "lib3dr_book") for p in (ROOT / package).rglob("*.py"))
    for answer in ("3.045", "0.25, -0.3, 0.0"):
        assert answer not in packages, answer


# ---------------------------------------------------------------------------------------------
# make grade: a real chapter, three students

def with_cell(notebook, grade_id, source):
    notebook = copy.deepcopy(notebook)
    nbgrader_cells(notebook)[grade_id]["source"] = source
    return notebook


def hand_in(folder, student, name, notebook):
    path = folder / student / name / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(notebook if isinstance(notebook, str) else json.dumps(notebook))


def rows_of(path):
    with open(path, newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def test_grading_three_students(course, tmp_path):
    instructor = read(course / "source" / CHAPTER / f"{CHAPTER}.ipynb")
    student = read(course / "release" / CHAPTER / f"{CHAPTER}.ipynb")
    submitted = tmp_path / "submitted"
    hand_in(submitted, "instructor", CHAPTER, instructor)
    hand_in(submitted, "untouched", CHAPTER, student)
    # one right answer (the instructor's, as a student would type it), one wrong: the library's
    # blend in place of the student's, with its test cell edited to pass
    right = "".join(line for line in text_of(nbgrader_cells(instructor)["ex2_1_answer"]).splitlines(True)
                    if "### " not in line)
    mixed = with_cell(student, "ex2_1_answer", right)
    mixed = with_cell(mixed, "ex2_2_answer", (
        "from lib3dr.renderer.blending import BlendParams, softmax_rgb_blend\n\n"
        "def soft_rgb(colors, fragments, sigma, gamma, background, znear=1.0, zfar=100.0):\n"
        "    params = BlendParams(sigma=sigma, gamma=gamma, background_color=background)\n"
        "    return softmax_rgb_blend(colors, fragments, params, znear=znear, zfar=zfar)[..., :3]\n"))
    mixed = with_cell(mixed, "ex2_2_tests", "pass  # the test, edited away\n")
    hand_in(submitted, "mixed", CHAPTER, mixed)

    grades = tmp_path / "grades.csv"
    classroom.grade(submitted, course, grades, log=quiet)
    rows = rows_of(grades)
    assert list(next(iter(rows.values())))[:2] == ["student", "chapter"]
    assert [rows["instructor"][k] for k in ("ex2.1", "ex2.2", "total", "note")] == ["3", "3", "6", ""]
    assert [rows["untouched"][k] for k in ("ex2.1", "ex2.2", "total")] == ["0", "0", "0"]
    assert "not answered yet" in rows["untouched"]["note"]
    assert [rows["mixed"][k] for k in ("ex2.1", "ex2.2", "total")] == ["3", "0", "3"]
    assert "ex2.2" in rows["mixed"]["note"] and "ex2.1" not in rows["mixed"]["note"]
    # the gradebook agrees, and nbgrader graded the test cell it had, not the edited one
    assert classroom._scores(course, CHAPTER, "mixed") == {"ex2_1_tests": 3.0, "ex2_2_tests": 0.0}
    autograded = read(course / "autograded" / "mixed" / CHAPTER / f"{CHAPTER}.ipynb")
    assert "BEGIN HIDDEN TESTS" in text_of(nbgrader_cells(autograded)["ex2_2_tests"])
    # the untouched student's notebook ran to the end: only the exercise cells failed
    untouched = read(course / "autograded" / "untouched" / CHAPTER / f"{CHAPTER}.ipynb")
    for cell in untouched["cells"]:
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors or "nbgrader" in cell["metadata"], text_of(cell)[:200]
    # one feedback page per submission, without the hidden tests
    for name in ("instructor", "untouched", "mixed"):
        page = (course / "feedback" / name / CHAPTER / f"{CHAPTER}.html").read_text()
        assert "hidden tests ran here" in page and "_soft_rgb_reference" not in page and "_blocked" not in page


# ---------------------------------------------------------------------------------------------
# make grade: broken and tampered submissions, on a small made-up chapter

FIXTURE = '''\
# %% [markdown]
# # A made-up chapter

# %%
import json

from lib3dr_book.paths import data_path

with open(data_path("fixture", "numbers.json")) as f:
    numbers = json.load(f)

# %% nbgrader={"grade": false, "grade_id": "ex1_1_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def double(x):
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex1_1_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
assert double(numbers[0]) == 2 * numbers[0], f"expected {2 * numbers[0]}, got {double(numbers[0])}"
### BEGIN HIDDEN TESTS
assert double(7) == 14
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "ex1_2_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def square(x):
    ### BEGIN SOLUTION
    return x * x
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex1_2_tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
assert square(3) == 9
### BEGIN HIDDEN TESTS
assert square(5) == 25
### END HIDDEN TESTS
'''


def test_broken_and_tampered_submissions(tmp_path):
    book = tmp_path / "book"
    (book / "chapters").mkdir(parents=True)
    (book / "chapters" / "90_fixture.py").write_text(FIXTURE)
    (book / "data" / "fixture").mkdir(parents=True)
    (book / "data" / "fixture" / "numbers.json").write_text("[3, 4]")
    course = tmp_path / "course"
    name, = classroom.make_assignments(course, root=book, log=quiet)
    instructor = read(course / "source" / name / f"{name}.ipynb")
    student = read(course / "release" / name / f"{name}.ipynb")

    def answered(double, square):
        return with_cell(with_cell(student, "ex1_1_answer", double), "ex1_2_answer", square)

    right_double, right_square = "def double(x):\n    return x + x\n", "def square(x):\n    return x ** 2\n"
    submitted = tmp_path / "submitted"
    hand_in(submitted, "instructor", name, instructor)
    hand_in(submitted, "broken_code", name, answered("def double(x) return 2 * x\n",
                                                     "def square(x):\n    while True:\n        pass\n"))
    deleted = answered(right_double, right_square)
    deleted["cells"] = [c for c in deleted["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") != "ex1_1_tests"]
    hand_in(submitted, "deleted_cell", name, deleted)
    hand_in(submitted, "not_json", name, '{"cells": [oops')
    hand_in(submitted, "kills_kernel", name, answered("import os\nos._exit(1)\n", right_square))
    # a test cell edited to pass, and an answer that passes the visible test only (the student's
    # version has no hidden tests: nbgrader puts them back)
    tampered = answered("def double(x):\n    return x + 1\n", "def square(x):\n    return 3 * x\n")
    hand_in(submitted, "tampered", name, with_cell(tampered, "ex1_1_tests", "pass\n"))
    hand_in(submitted, "right_wrong", name, answered(right_double, "def square(x):\n    return 3 * x\n"))
    (submitted / "stray" / "not_a_chapter").mkdir(parents=True)

    grades = tmp_path / "grades.csv"
    classroom.grade(submitted, course, grades, cell_timeout=10, log=quiet)
    rows = rows_of(grades)
    points = {student: (row["ex1.1"], row["ex1.2"], row["total"]) for student, row in rows.items()}
    assert points == {"instructor": ("2", "3", "5"), "broken_code": ("0", "0", "0"),
                      "deleted_cell": ("0", "3", "3"), "not_json": ("0", "0", "0"),
                      "kills_kernel": ("0", "0", "0"), "tampered": ("0", "0", "0"),
                      "right_wrong": ("2", "0", "2"), "stray": ("", "", "0")}, points
    notes = {student: row["note"] for student, row in rows.items()}
    assert "SyntaxError" in notes["broken_code"] and "time limit of 10 s" in notes["broken_code"]
    assert "ex1_1_tests deleted" in notes["deleted_cell"]
    assert "not a readable notebook" in notes["not_json"]
    assert "kernel died" in notes["kills_kernel"]
    assert "not an assignment" in notes["stray"]
    assert notes["instructor"] == ""
    for student in ("instructor", "broken_code", "deleted_cell", "not_json", "kills_kernel", "tampered"):
        assert (course / "feedback" / student / name / f"{name}.html").is_file(), student
    assert classroom._scores(course, name, "not_json") == {"ex1_1_tests": 0.0, "ex1_2_tests": 0.0}
