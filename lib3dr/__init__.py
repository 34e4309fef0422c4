"""lib3dr: a differentiable mesh renderer, built to be read."""
from lib3dr._backend import backends

__version__ = "0.1.0"
