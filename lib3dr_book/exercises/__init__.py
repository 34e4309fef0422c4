"""Visible checks for the chapters' exercises: each function takes a student's answer, raises
``AssertionError`` with a message that says what is wrong (what was expected, what came, a hint),
and returns True when the answer passes. One module per chapter (``chapter01``, ...), and
``shortcuts``, which refuses answers that call the library's own function in place of the
student's work.

No answers live here: the reference solutions and the decisive (hidden) tests are in the
chapters' sources, between nbgrader's markers, and never reach a student's notebook.
"""
