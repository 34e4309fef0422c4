"""Mesh rasterization: settings, fragments, the memory guard, ``MeshRasterizer`` and the fused soft
silhouette. PyTorch3D's names, arguments and semantics.

Three implementations sit behind ``backend=``: ``"torch"`` (``lib3dr.rasterize_torch``, the
readable reference), ``"cpu"`` and ``"cuda"`` (``lib3dr._C``); ``"auto"`` picks the fastest one
available for the tensors' device.
"""
import contextlib
import math
import os
from dataclasses import dataclass, fields
from typing import Optional, Tuple, Union

import torch

from lib3dr import _backend
from lib3dr.blending import silhouette_from_dists
from lib3dr.rasterize_torch import rasterize_faces_torch

# Bytes per face per pixel of the unfused path, forward and backward: pix_to_face (8), zbuf (4),
# bary_coords (12) and dists (4), plus the gradients of the last three (20), in float32.
BYTES_PER_FRAGMENT = 48
# The CUDA kernels keep a pixel's nearest faces in a list of fixed size, for the fragments and the
# fused silhouette alike (kMaxFacesPerPixel in extensions/csrc/rasterize_cuda.cu).
CUDA_MAX_FACES_PER_PIXEL = 128


class RasterMemoryError(MemoryError):
    """A rasterization would need more memory than the limit allows (see ``set_memory_limit``)."""


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


# ---------------------------------------------------------------------------------------------
# Memory guard

_memory_limit = None


def memory_estimate(N, H, W, K):
    """Bytes the unfused rasterization of N images of H x W with K faces per pixel needs,
    forward and backward: ``N * H * W * K * 48``."""
    return int(N) * int(H) * int(W) * int(K) * BYTES_PER_FRAGMENT


def set_memory_limit(limit_bytes):
    """Caps the memory a rasterization may plan to use; ``None`` restores the default, half of
    the memory available on the device when the call is made."""
    global _memory_limit
    if limit_bytes is not None and limit_bytes <= 0:
        raise ValueError(f"the memory limit must be positive, got {limit_bytes}")
    _memory_limit = limit_bytes


def memory_limit(device):
    """The limit in force for ``device``, in bytes."""
    if _memory_limit is not None:
        return _memory_limit
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    try:
        with open("/proc/meminfo") as meminfo:
            available_kb = next(int(line.split()[1]) for line in meminfo
                                if line.startswith("MemAvailable:"))
        return available_kb * 1024 // 2
    except (OSError, StopIteration):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2


def check_memory(N, H, W, K, device):
    """Raises ``RasterMemoryError`` before allocating when the estimate exceeds the limit."""
    needed, limit = memory_estimate(N, H, W, K), memory_limit(device)
    if needed > limit:
        raise RasterMemoryError(
            f"rasterizing N={N} images of H x W = {H} x {W} with K={K} faces per pixel needs about "
            f"{needed / 2**30:.2f} GiB ({BYTES_PER_FRAGMENT} bytes per face per pixel, forward and "
            f"backward), more than the limit of {limit / 2**30:.2f} GiB on {device}. Reduce "
            f"faces_per_pixel (K) first, then the image size (H, W) or the batch (N); a silhouette "
            f"alone needs far less through lib3dr.soft_silhouette(); or raise the limit with "
            f"lib3dr.rasterizer.set_memory_limit(bytes).")


def check_cuda_launch(first_face, num_faces, num_packed_faces, faces_per_pixel):
    """Raises ``ValueError`` before a CUDA launch on what the kernels assume without checking: at
    most ``CUDA_MAX_FACES_PER_PIXEL`` faces per pixel, and meshes whose face ranges ``[first,
    first + count)`` are sorted, disjoint and inside the packed faces (a face's mesh is found by a
    binary search over the first faces). ``Meshes`` packs them so."""
    if faces_per_pixel > CUDA_MAX_FACES_PER_PIXEL:
        raise ValueError(
            f"faces_per_pixel={faces_per_pixel}, but the CUDA kernels keep at most "
            f"{CUDA_MAX_FACES_PER_PIXEL} faces per pixel (the fragments and the fused "
            f"lib3dr.soft_silhouette alike). Use faces_per_pixel <= {CUDA_MAX_FACES_PER_PIXEL}, "
            f"or backend='torch' (no cap, {BYTES_PER_FRAGMENT} bytes per face per pixel), or CPU "
            f"tensors, where the 'cpu' backend and its fused lib3dr.soft_silhouette have no cap.")
    first, num = first_face.cpu(), num_faces.cpu()  # N numbers: one small copy
    end = first + num
    if ((first < 0) | (num < 0) | (end > num_packed_faces)).any() or (first[1:] < end[:-1]).any():
        raise ValueError(
            f"the CUDA kernels need the meshes' face ranges [first, first + count) sorted, "
            f"disjoint and within the {num_packed_faces} packed faces; got first faces "
            f"{first.tolist()} and counts {num.tolist()}")


# ---------------------------------------------------------------------------------------------
# Autograd wrappers of the compiled kernels

def _stream(tensor):
    """The current CUDA stream of the tensor's device as an integer (the kernels take it so)."""
    return torch.cuda.current_stream(tensor.device).cuda_stream if tensor.is_cuda else 0


def _on_device(tensor):
    """Makes the tensor's GPU the current device for a kernel launch."""
    return torch.cuda.device(tensor.device) if tensor.is_cuda else contextlib.nullcontext()


class _RasterizeFaces(torch.autograd.Function):
    @staticmethod
    def forward(ctx, face_verts, first_face, num_faces, H, W, K, blur_radius, perspective_correct,
                clip_barycentric, cull_backfaces):
        options = (H, W, K, blur_radius, perspective_correct, clip_barycentric, cull_backfaces)
        with _on_device(face_verts):
            pix_to_face, zbuf, bary, dists = _backend._C.rasterize_forward(
                face_verts, first_face, num_faces, *options, _stream(face_verts))
        ctx.save_for_backward(face_verts, pix_to_face)
        ctx.options = options
        ctx.mark_non_differentiable(pix_to_face)
        # Outputs the loss does not use get None, not (N, H, W, K) tensors of zeros.
        ctx.set_materialize_grads(False)
        return pix_to_face, zbuf, bary, dists

    @staticmethod
    def backward(ctx, _grad_pix_to_face, grad_zbuf, grad_bary, grad_dists):
        face_verts, pix_to_face = ctx.saved_tensors
        grads = [grad_zbuf, grad_bary, grad_dists]
        if all(grad is None for grad in grads):
            return (None,) * 10
        if face_verts.is_cuda:  # the CUDA kernel reads all three
            shapes = (pix_to_face.shape, pix_to_face.shape + (3,), pix_to_face.shape)
            grads = [face_verts.new_zeros(shape) if grad is None else grad
                     for grad, shape in zip(grads, shapes)]
        grads = [None if grad is None else grad.contiguous() for grad in grads]
        with _on_device(face_verts):
            grad_face_verts = _backend._C.rasterize_backward(
                face_verts, pix_to_face, *grads, *ctx.options, _stream(face_verts))
        return (grad_face_verts,) + (None,) * 9


class _SoftSilhouette(torch.autograd.Function):
    @staticmethod
    def forward(ctx, face_verts, first_face, num_faces, H, W, K, blur_radius, perspective_correct,
                clip_barycentric, cull_backfaces, sigma):
        options = (H, W, K, blur_radius, perspective_correct, clip_barycentric, cull_backfaces,
                   sigma)
        with _on_device(face_verts):
            alpha, *state = _backend._C.soft_silhouette_forward(
                face_verts, first_face, num_faces, *options, _stream(face_verts))
        # No (N, H, W, K) fragments are kept: the state is per pixel (the CPU kernel's
        # transmittance and depth cut, nothing on CUDA) and the backward revisits the faces.
        ctx.save_for_backward(face_verts, first_face, num_faces, *state)
        ctx.options = options
        return alpha

    @staticmethod
    def backward(ctx, grad_alpha):
        face_verts, first_face, num_faces, *state = ctx.saved_tensors
        with _on_device(face_verts):
            grad_face_verts = _backend._C.soft_silhouette_backward(
                face_verts, first_face, num_faces, grad_alpha.contiguous(), state, *ctx.options,
                _stream(face_verts))
        return (grad_face_verts,) + (None,) * 10


# ---------------------------------------------------------------------------------------------
# Public functions

def _image_hw(image_size):
    if isinstance(image_size, (tuple, list)) and len(image_size) == 2:
        H, W = image_size
    else:
        H = W = image_size
    if not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in (H, W)):
        raise ValueError(f"image_size must be a positive int or (H, W) of positive ints, got {image_size!r}")
    return H, W


def _packed_faces(meshes_ndc, faces_per_pixel, blur_radius, z_clip_value):
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
    H, W = _image_hw(image_size)
    face_verts, first_face, num_faces = _packed_faces(meshes, faces_per_pixel, blur_radius,
                                                      z_clip_value)
    check_memory(len(first_face), H, W, faces_per_pixel, face_verts.device)
    args = (H, W, faces_per_pixel, float(blur_radius), bool(perspective_correct),
            bool(clip_barycentric_coords), bool(cull_backfaces))
    backend = _backend.resolve(backend, face_verts.device)
    if backend == "torch":
        return rasterize_faces_torch(face_verts, first_face, num_faces, (H, W), *args[2:])
    if backend == "cuda":
        check_cuda_launch(first_face, num_faces, len(face_verts), faces_per_pixel)
    return _RasterizeFaces.apply(face_verts, first_face, num_faces, *args)


def default_blur_radius(sigma):
    """The blur radius beyond which ``sigmoid(-d / sigma)`` is below 1e-4 (PyTorch3D's recipe)."""
    return math.log(1.0 / 1e-4 - 1.0) * sigma


def ndc_meshes(meshes_world, cameras, **kwargs):
    """The meshes with vertices in NDC (x, y) and view-space depth (z), as rasterization wants.

    ``kwargs`` override camera fields for this call (``R=``, ``T=``, ...).
    """
    verts_world = meshes_world.verts_padded()
    R = kwargs.get("R", cameras.R)
    if verts_world.dtype != R.dtype:
        raise TypeError(f"the mesh vertices are {verts_world.dtype} but the cameras are {R.dtype}: "
                        f"give both the same dtype")
    verts_view = cameras.get_world_to_view_transform(**kwargs).transform_points(verts_world)
    verts_ndc = cameras.transform_points(verts_world, eps=1e-8, **kwargs)
    # Keep the view-space depth: z-buffering and perspective correction use it.
    verts_ndc = torch.cat([verts_ndc[..., :2], verts_view[..., 2:]], dim=-1)
    return meshes_world.update_padded(verts_ndc)


def camera_overrides(kwargs):
    """The per-call keyword arguments that override camera fields (``R=``, ``T=``, ...), without
    the ones that name whole objects (``cameras=``, ``lights=``, ...)."""
    return {k: v for k, v in kwargs.items() if k not in (
        "cameras", "raster_settings", "lights", "materials", "blend_params", "znear", "zfar")}


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


def soft_silhouette_ndc(meshes_ndc, sigma, image_size=256, blur_radius=None, faces_per_pixel=100,
                        perspective_correct=False, clip_barycentric_coords=None,
                        cull_backfaces=False, z_clip_value=None, backend="auto"):
    """``soft_silhouette`` of meshes already in NDC with view depth: ``(N, H, W)``."""
    if not (isinstance(sigma, (int, float)) and sigma > 0):
        raise ValueError(f"sigma must be a number > 0, got {sigma!r}")
    if blur_radius is None:
        blur_radius = default_blur_radius(sigma)
    if clip_barycentric_coords is None:
        clip_barycentric_coords = blur_radius > 0
    H, W = _image_hw(image_size)
    face_verts, first_face, num_faces = _packed_faces(meshes_ndc, faces_per_pixel, blur_radius,
                                                      z_clip_value)
    args = (H, W, faces_per_pixel, float(blur_radius), bool(perspective_correct),
            bool(clip_barycentric_coords), bool(cull_backfaces))
    backend = _backend.resolve(backend, face_verts.device)
    if backend == "torch":
        check_memory(len(first_face), H, W, faces_per_pixel, face_verts.device)
        pix_to_face, _, _, dists = rasterize_faces_torch(face_verts, first_face, num_faces,
                                                         (H, W), *args[2:])
        return silhouette_from_dists(pix_to_face, dists, sigma, backend="torch")
    if backend == "cuda":
        check_cuda_launch(first_face, num_faces, len(face_verts), faces_per_pixel)
    return _SoftSilhouette.apply(face_verts, first_face, num_faces, *args, float(sigma))


def soft_silhouette(meshes, cameras, image_size=256, sigma=1e-4, blur_radius=None,
                    faces_per_pixel=100, cull_backfaces=False, backend="auto", **kwargs):
    """Soft Rasterizer's silhouette of world-space meshes seen by ``cameras``: ``(N, H, W)``.

    ``alpha = 1 - prod_k (1 - sigmoid(-dists_k / sigma))`` over the K nearest faces of each pixel,
    equal to ``silhouette_from_dists`` of the rasterized fragments. The compiled backends fuse
    rasterization and blending: they keep ``O(N*H*W)`` memory instead of ``48 * N*H*W*K`` bytes
    and recompute what the backward pass needs. ``blur_radius`` defaults to the distance where a
    face's coverage falls below 1e-4; ``kwargs`` override camera fields (``R=``, ``T=``).
    """
    if not (isinstance(sigma, (int, float)) and sigma > 0):
        raise ValueError(f"sigma must be a number > 0, got {sigma!r}")
    return soft_silhouette_ndc(ndc_meshes(meshes, cameras, **kwargs), sigma, image_size,
                               blur_radius, faces_per_pixel, cameras.is_perspective(),
                               None, cull_backfaces, None, backend)
