"""Interpolating per-vertex attributes of faces at pixels with the rasterizer's barycentrics."""
import torch


def interpolate_covered(pix_to_face, bary_coords, face_attributes):
    """The interpolated attributes of the covered fragments only (``pix_to_face >= 0``), in
    row-major order: ``(M, D)`` for M covered fragments. Most of the (N, H, W, K) slots are
    empty on the chapter workloads, so shading works on these packed values."""
    if face_attributes.dim() != 3 or face_attributes.shape[1] != 3:
        raise ValueError(f"face_attributes must have shape (F, 3, D), got {tuple(face_attributes.shape)}")
    if bary_coords.shape[:-1] != pix_to_face.shape or bary_coords.shape[-1] != 3:
        raise ValueError(f"bary_coords {tuple(bary_coords.shape)} does not match pix_to_face "
                         f"{tuple(pix_to_face.shape)} + (3,)")
    covered = pix_to_face >= 0
    faces = pix_to_face[covered]
    if len(faces) and int(faces.max()) >= face_attributes.shape[0]:
        raise ValueError(f"pix_to_face refers to face {int(faces.max())} but face_attributes has "
                         f"{face_attributes.shape[0]} faces")
    return interpolate_packed(faces, bary_coords[covered], face_attributes)


def interpolate_packed(faces, bary_coords, face_attributes):
    """``out[i] = sum_j bary_coords[i, j] * face_attributes[faces[i], j]``: ``(M, D)`` from
    ``faces (M,)``, ``bary_coords (M, 3)`` and ``face_attributes (F, 3, D)``."""
    return (bary_coords[..., None] * face_attributes[faces]).sum(dim=-2)


def interpolate_face_attributes(pix_to_face, bary_coords, face_attributes):
    """``out[n, y, x, k] = sum_j bary_coords[n, y, x, k, j] * face_attributes[pix_to_face[n, y, x, k], j]``.

    Args:
        pix_to_face: ``(N, H, W, K)`` int64 packed face index, -1 where no face.
        bary_coords: ``(N, H, W, K, 3)``.
        face_attributes: ``(F, 3, D)`` one D-vector per vertex of each packed face.
    Returns:
        ``(N, H, W, K, D)``, zero where ``pix_to_face`` is -1; differentiable w.r.t.
        ``bary_coords`` and ``face_attributes``.
    """
    values = interpolate_covered(pix_to_face, bary_coords, face_attributes)
    return scatter_covered(pix_to_face, values)


def scatter_covered(pix_to_face, values):
    """Packed values of the covered fragments ``(M, D)`` -> ``(N, H, W, K, D)``, zero elsewhere."""
    out = values.new_zeros(*pix_to_face.shape, values.shape[-1])
    out[pix_to_face >= 0] = values
    return out


def covered_by_image(pix_to_face):
    """Groups the covered fragments by image, for functions batched per image (lights, texture
    maps): returns ``image (M,)``, the image of each covered fragment in row-major order,
    ``slot (M,)``, its position among that image's fragments, and ``width``, the most
    fragments any image has. ``batch[image, slot] = packed`` fills an ``(N, width, D)`` batch."""
    image = (pix_to_face >= 0).nonzero()[:, 0]
    counts = torch.bincount(image, minlength=pix_to_face.shape[0])
    slot = torch.arange(len(image), device=image.device) - (counts.cumsum(0) - counts)[image]
    return image, slot, int(counts.max()) if len(image) else 0
