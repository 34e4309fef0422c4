"""Interpolating per-vertex attributes of faces at pixels with the rasterizer's barycentrics."""
import torch


def interpolate_face_attributes(pix_to_face, bary_coords, face_attributes):
    """``out[n, y, x, k] = sum_j bary_coords[n, y, x, k, j] * face_attributes[pix_to_face[n, y, x, k], j]``.

    Args:
        pix_to_face: ``(N, H, W, K)`` int64 packed face index, -1 where no face.
        bary_coords: ``(N, H, W, K, 3)``.
        face_attributes: ``(F, 3, D)`` one D-vector per vertex of each packed face.
    Returns:
        ``(N, H, W, K, D)``, zero where ``pix_to_face`` is -1; differentiable w.r.t.
        ``bary_coords`` and ``face_attributes``.

    Only the pixels that a face covers are computed: on the chapter workloads most of the
    (N, H, W, K) slots are empty.
    """
    if face_attributes.dim() != 3 or face_attributes.shape[1] != 3:
        raise ValueError(f"face_attributes must have shape (F, 3, D), got {tuple(face_attributes.shape)}")
    if bary_coords.shape[:-1] != pix_to_face.shape or bary_coords.shape[-1] != 3:
        raise ValueError(f"bary_coords {tuple(bary_coords.shape)} does not match pix_to_face "
                         f"{tuple(pix_to_face.shape)} + (3,)")
    valid = pix_to_face >= 0
    out = face_attributes.new_zeros(*pix_to_face.shape, face_attributes.shape[-1])
    faces = pix_to_face[valid]
    if len(faces) and int(faces.max()) >= face_attributes.shape[0]:
        raise ValueError(f"pix_to_face refers to face {int(faces.max())} but face_attributes has "
                         f"{face_attributes.shape[0]} faces")
    out[valid] = (bary_coords[valid][..., None] * face_attributes[faces]).sum(dim=-2)
    return out
