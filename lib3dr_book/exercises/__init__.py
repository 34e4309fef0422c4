"""Checks for the chapters' exercises: each function takes a student's answer, raises
``AssertionError`` with a message that says what is wrong, and returns True when it is right.
One module per chapter (``chapter01``, ...)."""
