"""lib3dr: a differentiable mesh renderer, built to be read.

PyTorch3D's module layout: ``lib3dr.structures`` (Meshes), ``lib3dr.io`` (OBJ files),
``lib3dr.transforms`` (rotations, transforms), ``lib3dr.renderer`` (cameras, rasterizer, shaders,
renderers), ``lib3dr.loss`` and ``lib3dr.ops`` (mesh losses and operators), ``lib3dr.utils``
(ico_sphere); and ``lib3dr.pose`` (pose fitting and tracking). ``lib3dr.backends()`` lists the
kernel implementations available. The book's figures and exercise checks are not here: they are
``lib3dr_book``.
"""
from lib3dr import io, loss, ops, pose, renderer, structures, transforms, utils
from lib3dr._backend import backends
from lib3dr.renderer.memory import memory_estimate
from lib3dr.renderer.rasterizer import rasterize_meshes
from lib3dr.renderer.silhouette import soft_silhouette
from lib3dr.structures import Meshes

__version__ = "0.1.0"
__all__ = ["Meshes", "backends", "io", "loss", "memory_estimate", "ops", "pose", "rasterize_meshes",
           "renderer", "soft_silhouette", "structures", "transforms", "utils"]
