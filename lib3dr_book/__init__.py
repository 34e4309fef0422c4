"""lib3dr_book: the book's own helpers, apart from the library: paths to the book's data and
outputs (``paths``), figures (``plotting``) and the checks of the chapters' exercises
(``exercises``). ``lib3dr_book.site`` builds the book's HTML site (``make book``).
"""
