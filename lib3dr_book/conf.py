"""Sphinx configuration of the book's site (``make book`` writes it to build/book/).

The chapters arrive already executed (lib3dr_book.site runs them), so Sphinx only renders them.
Everything a page needs is copied next to it: the formulas are typeset by a local MathJax
(sphinx-mathjax-offline), and no page loads a script from the network.
"""
project = "lib3dr — differentiable rendering, built to be read"
author = "the lib3dr authors"
extensions = ["myst_nb", "sphinx-mathjax-offline"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

nb_execution_mode = "off"  # lib3dr_book.site executed the chapters and reports their failures
nb_ipywidgets_js = {}  # the widget manager comes from a CDN; offline, the panels show their static output
myst_enable_extensions = ["dollarmath", "amsmath"]

html_theme = "sphinx_book_theme"
html_title = "lib3dr"
html_theme_options = {
    "show_navbar_depth": 1,
    "show_toc_level": 2,
    "use_download_button": False,
    "use_fullscreen_button": False,
    "home_page_in_toc": True,
}
html_show_sourcelink = False
html_last_updated_fmt = None
