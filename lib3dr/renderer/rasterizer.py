"""Mesh rasterization: ``RasterizationSettings``, ``Fragments``, ``rasterize_meshes`` and ``MeshRasterizer``
(and ``rasterize_meshes_packed``, the same fragments packed, for the soft shaders).

PyTorch3D's names, arguments and semantics. Three implementations sit behind ``backend=``:
``"torch"`` (``lib3dr.renderer.rasterize_torch``, the readable reference), ``"cpu"`` and ``"cuda"``
(``lib3dr._C``); ``"auto"`` picks the fastest one available for the tensors' device.
"""
import math
from dataclasses import dataclass, fields
from typing import Optional, Tuple, Union

import torch

from lib3dr import _backend
from lib3dr.renderer.cameras import camera_overrides, ndc_meshes
from lib3dr.renderer.compiled import RasterizeFaces, RasterizePacked, check_cuda_launch
from lib3dr.renderer.memory import (BYTES_PER_PACKED_FRAGMENT, RasterMemoryError, check_memory,
                                     memory_limit)
from lib3dr.renderer.packed import PackedFragments, pack_fragments
from lib3dr.renderer.rasterize_torch import rasterize_faces_torch


@dataclass
class RasterizationSettings:
    """How ``MeshRasterizer`` rasterizes (PyTorch3D's fields and defaults).

    ``perspective_correct=None`` means "if the camera is perspective"; ``clip_barycentric_coords=
    None`` means "if blur_radius > 0". ``bin_size`` and ``max_faces_per_bin`` are accepted for
    compatibility; lib3dr's kernels choose their tiling themselves. ``backend`` is lib3dr's own.
    """

    image_size: Union[int, Tuple[int, int]] = 256
    blur_radius: float = 0.0
    faces_per_pixel: int = 1
    bin_size: Optional[int] = None
    max_faces_per_bin: Optional[int] = None
    perspective_correct: Optional[bool] = None
    clip_barycentric_coords: Optional[bool] = None
    cull_backfaces: bool = False
    z_clip_value: Optional[float] = None
    cull_to_frustum: bool = False
    backend: str = "auto"


@dataclass
class Fragments:
    """What rasterization tells about each pixel: the K nearest faces covering it.

    pix_to_face: ``(N, H, W, K)`` int64 packed face index, -1 where fewer than K faces.
    zbuf: ``(N, H, W, K)`` view-space depth of the face at the pixel, -1 padding.
    bary_coords: ``(N, H, W, K, 3)`` barycentric coordinates of the pixel in the face, -1 padding.
    dists: ``(N, H, W, K)`` signed squared NDC distance from the pixel centre to the face's edges,
        negative inside the face, -1 padding.
    """

    pix_to_face: torch.Tensor
    zbuf: torch.Tensor
    bary_coords: torch.Tensor
    dists: torch.Tensor

    def detach(self):
        return Fragments(*(getattr(self, f.name).detach() for f in fields(self)))


def image_hw(image_size):
    if isinstance(image_size, (tuple, list)) and len(image_size) == 2:
        H, W = image_size
    else:
        H = W = image_size
    if not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in (H, W)):
        raise ValueError(f"image_size must be a positive int or (H, W) of positive ints, got {image_size!r}")
    return H, W


def packed_faces(meshes_ndc, faces_per_pixel, blur_radius, z_clip_value):
    """Checks the arguments and gathers ``face_verts (F, 3, 3)``, first face and count per mesh."""
    if z_clip_value is not None:
        raise NotImplementedError(
            "z_clip_value is not supported yet: lib3dr skips faces entirely behind the camera and "
            "does not clip faces that cross the near plane (see README, 'Known limitations')")
    if not isinstance(faces_per_pixel, int) or isinstance(faces_per_pixel, bool) or faces_per_pixel < 1:
        raise ValueError(f"faces_per_pixel must be an int >= 1, got {faces_per_pixel!r}")
    if not (isinstance(blur_radius, (int, float)) and math.isfinite(blur_radius) and blur_radius >= 0):
        raise ValueError(f"blur_radius must be a finite number >= 0, got {blur_radius!r}")
    verts = meshes_ndc.verts_packed()
    if verts.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"mesh vertices must be float32 or float64, got {verts.dtype}")
    if not torch.isfinite(verts).all():
        raise ValueError("mesh vertices contain NaN or Inf (after the camera transform: is a "
                         "vertex at the camera centre, or a parameter NaN?)")
    faces = meshes_ndc.faces_packed()
    face_verts = verts[faces].contiguous()
    first_face = meshes_ndc.mesh_to_faces_packed_first_idx().to(torch.int64).contiguous()
    num_faces = meshes_ndc.num_faces_per_mesh().to(torch.int64).contiguous()
    return face_verts, first_face, num_faces


def rasterize_meshes(meshes, image_size=256, blur_radius=0.0, faces_per_pixel=8, bin_size=None,
                     max_faces_per_bin=None, perspective_correct=False,
                     clip_barycentric_coords=False, cull_backfaces=False, z_clip_value=None,
                     cull_to_frustum=False, backend="auto"):
    """Rasterizes meshes whose vertices are already in NDC (x, y) with view-space depth (z).

    A face covers a pixel when the pixel centre is inside it or its squared 2D distance to the
    face is below ``blur_radius``; of the covering faces the ``faces_per_pixel`` (K) nearest are
    kept, nearest first. Faces entirely behind the camera are skipped; ``cull_backfaces`` skips
    faces that are clockwise on screen.

    Args:
        meshes: ``Meshes`` of N meshes, vertices ``(V, 3)`` float32 or float64 in NDC.
        image_size: int or ``(H, W)``; the shorter side spans NDC [-1, 1].
    Returns:
        ``(pix_to_face, zbuf, bary_coords, dists)``, shaped ``(N, H, W, K)`` (bary_coords
        ``(N, H, W, K, 3)``), differentiable w.r.t. the vertices; see ``Fragments``.
    """
    del bin_size, max_faces_per_bin, cull_to_frustum  # tiling is the kernels' own business
    H, W = image_hw(image_size)
    face_verts, first_face, num_faces = packed_faces(meshes, faces_per_pixel, blur_radius,
                                                      z_clip_value)
    check_memory(len(first_face), H, W, faces_per_pixel, face_verts.device)
    args = (H, W, faces_per_pixel, float(blur_radius), bool(perspective_correct),
            bool(clip_barycentric_coords), bool(cull_backfaces))
    backend = _backend.resolve(backend, face_verts.device)
    if backend == "torch":
        return rasterize_faces_torch(face_verts, first_face, num_faces, (H, W), *args[2:])
    if backend == "cuda":
        check_cuda_launch(first_face, num_faces, len(face_verts), faces_per_pixel)
    return RasterizeFaces.apply(face_verts, first_face, num_faces, *args)


def rasterize_meshes_packed(meshes, image_size=256, blur_radius=0.0, faces_per_pixel=8,
                            bin_size=None, max_faces_per_bin=None, perspective_correct=False,
                            clip_barycentric_coords=False, cull_backfaces=False,
                            z_clip_value=None, cull_to_frustum=False, backend="auto"):
    """``rasterize_meshes``'s fragments as ``PackedFragments``: the covered slots only.

    Same arguments and values. On the ``"cpu"`` backend the images are rasterized one at a time
    and each is packed before the next, so memory holds one image's ``(1, H, W, K)`` fragments at
    most, and the backward pass takes the packed gradients (no ``(N, H, W, K)`` tensors of them).
    The other backends rasterize all images, then pack (``pack_fragments``).
    """
    H, W = image_hw(image_size)
    args = dict(blur_radius=blur_radius, faces_per_pixel=faces_per_pixel,
                perspective_correct=perspective_correct,
                clip_barycentric_coords=clip_barycentric_coords, cull_backfaces=cull_backfaces,
                z_clip_value=z_clip_value)
    if _backend.resolve(backend, meshes.verts_packed().device) != "cpu":
        return pack_fragments(Fragments(*rasterize_meshes(meshes, image_size, backend=backend,
                                                          **args)))
    face_verts, first_face, num_faces = packed_faces(meshes, faces_per_pixel, blur_radius,
                                                      z_clip_value)
    # Room beside one image's fragments for the covered fragments of all of them.
    allowed = check_memory(1, H, W, faces_per_pixel, face_verts.device) // BYTES_PER_PACKED_FRAGMENT
    try:
        faces, zbuf, bary, dists, pixel, pixel_start = RasterizePacked.apply(
            face_verts, first_face, num_faces, H, W, faces_per_pixel, float(blur_radius),
            bool(perspective_correct), bool(clip_barycentric_coords), bool(cull_backfaces), allowed)
    except torch.OutOfMemoryError as error:  # raised by the kernel between two images
        raise RasterMemoryError(
            f"rasterizing N={len(first_face)} images of H x W = {H} x {W} with K={faces_per_pixel} "
            f"faces per pixel: {error} ({BYTES_PER_PACKED_FRAGMENT} bytes each, limit "
            f"{memory_limit(face_verts.device) / 2**30:.2f} GiB). Reduce faces_per_pixel (K), the "
            f"image size or the batch, or raise the limit with "
            f"lib3dr.renderer.memory.set_memory_limit(bytes).") from None
    return PackedFragments(faces, zbuf, bary, dists, pixel, pixel_start,
                           (len(first_face), H, W, faces_per_pixel))


def default_blur_radius(sigma):
    """The blur radius beyond which ``sigmoid(-d / sigma)`` is below 1e-4 (PyTorch3D's recipe)."""
    return math.log(1.0 / 1e-4 - 1.0) * sigma


def resolved_settings(settings, cameras):
    """``rasterize_meshes`` keyword arguments from ``RasterizationSettings``, with PyTorch3D's
    defaults resolved: perspective correction for perspective cameras, clipped barycentrics
    when blurring."""
    perspective_correct = settings.perspective_correct
    if perspective_correct is None:
        perspective_correct = cameras.is_perspective()
    clip = settings.clip_barycentric_coords
    if clip is None:
        clip = settings.blur_radius > 0.0
    return dict(image_size=settings.image_size, blur_radius=settings.blur_radius,
                faces_per_pixel=settings.faces_per_pixel, perspective_correct=perspective_correct,
                clip_barycentric_coords=clip, cull_backfaces=settings.cull_backfaces,
                z_clip_value=settings.z_clip_value, backend=settings.backend)


class MeshRasterizer(torch.nn.Module):
    """Rasterizes world-space meshes through ``cameras``: ``forward(meshes_world, **kwargs)``
    returns ``Fragments``. ``kwargs`` may override ``cameras=``, ``raster_settings=`` and camera
    fields such as ``R=`` and ``T=`` for one call."""

    def __init__(self, cameras=None, raster_settings=None):
        super().__init__()
        self.cameras = cameras
        self.raster_settings = raster_settings if raster_settings is not None else RasterizationSettings()

    def to(self, device):
        """Moves the cameras to ``device``, in place; returns self."""
        if self.cameras is not None:
            self.cameras = self.cameras.to(device)
        return self

    def scene(self, kwargs):
        """The cameras and settings of a call, after its overrides."""
        cameras = kwargs.get("cameras", self.cameras)
        if cameras is None:
            raise ValueError("MeshRasterizer needs cameras: pass cameras= to the constructor or the call")
        return cameras, kwargs.get("raster_settings", self.raster_settings)

    def transform(self, meshes_world, **kwargs):
        """The meshes in NDC with view-space depth (see ``ndc_meshes``)."""
        return ndc_meshes(meshes_world, self.scene(kwargs)[0], **camera_overrides(kwargs))

    def forward(self, meshes_world, **kwargs):
        cameras, settings = self.scene(kwargs)
        meshes_ndc = self.transform(meshes_world, **kwargs)
        return Fragments(*rasterize_meshes(meshes_ndc, **resolved_settings(settings, cameras)))

    def rasterize_packed(self, meshes_world, **kwargs):
        """``forward``'s fragments as ``PackedFragments`` (``rasterize_meshes_packed``)."""
        cameras, settings = self.scene(kwargs)
        meshes_ndc = self.transform(meshes_world, **kwargs)
        return rasterize_meshes_packed(meshes_ndc, **resolved_settings(settings, cameras))
