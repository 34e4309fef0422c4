"""lib3dr: a differentiable mesh renderer, built to be read.

PyTorch3D's module layout: ``lib3dr.structures`` (Meshes), ``lib3dr.io`` (OBJ files),
``lib3dr.transforms`` (rotations), ``lib3dr.renderer`` (cameras, rasterizer, shaders, renderers),
``lib3dr.utils`` (ico_sphere). ``lib3dr.backends()`` lists the kernel implementations available.
"""
from lib3dr import cameras, io, loss, ops, plotting, renderer, structures, transforms, utils
from lib3dr._backend import backends
from lib3dr.rasterizer import memory_estimate, rasterize_meshes, soft_silhouette
from lib3dr.structures import Meshes

__version__ = "0.1.0"
__all__ = ["Meshes", "backends", "cameras", "io", "memory_estimate", "rasterize_meshes",
           "plotting", "renderer", "soft_silhouette", "structures", "transforms", "utils"]
