"""Soft Rasterizer's silhouette of meshes, computed without fragments where a kernel can fuse it.

``alpha = 1 - prod_k (1 - sigmoid(-dists_k / sigma))`` over the K nearest faces of each pixel: what
``silhouette_from_dists`` blends from the rasterizer's fragments, in ``O(N*H*W)`` memory. It sits
above both the rasterizer and the blending, which know nothing of it.
"""
from lib3dr import _backend
from lib3dr.renderer.blending import silhouette_from_dists
from lib3dr.renderer.cameras import ndc_meshes
from lib3dr.renderer.compiled import SoftSilhouette, check_cuda_launch
from lib3dr.renderer.memory import check_memory
from lib3dr.renderer.rasterize_torch import rasterize_faces_torch
from lib3dr.renderer.rasterizer import default_blur_radius, image_hw, packed_faces


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
    H, W = image_hw(image_size)
    face_verts, first_face, num_faces = packed_faces(meshes_ndc, faces_per_pixel, blur_radius,
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
    return SoftSilhouette.apply(face_verts, first_face, num_faces, *args, float(sigma))


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
