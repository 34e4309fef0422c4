"""Mesh rasterization in plain PyTorch: the readable reference (chapter 2 walks through it).

Rasterization answers two questions for every pixel:

1. *Which* faces cover it? The K faces nearest the camera among those whose 2D distance to the
   pixel centre is within the blur radius. This is a discrete choice: it has no gradient, so it
   runs under ``torch.no_grad()``, one tile of pixels at a time so that memory stays bounded.
2. *What* does each chosen face contribute? Its barycentric coordinates at the pixel, its depth
   there and its signed distance to the pixel. These are smooth functions of the vertex
   positions, computed only for the chosen (pixel, face) pairs, and autograd differentiates them.

The C++ and CUDA kernels (``extensions/csrc/geometry.h``) do the same arithmetic in the same
order, so all three implementations choose exactly the same faces.
"""
import math

import torch

# The same constants as geometry.h.
AREA_EPSILON = 1e-8
DENOM_EPSILON = 1e-10


def pixel_centers_ndc(size, ndc_range, dtype, device):
    """NDC centres of the pixels along one image axis, pixel 0 at ``+ndc_range``: ``(size,)``.

    +X points left and +Y up, so pixel (0, 0) is the top-left of the image. The shorter image side
    spans [-1, 1] (``ndc_range`` 1); the longer one spans [-longer/shorter, longer/shorter].
    """
    index = torch.arange(size, dtype=torch.float64, device=device)
    return (ndc_range * (1.0 - (2.0 * index + 1.0) / size)).to(dtype)


def edge_function(px, py, ax, ay, bx, by):
    """Twice the signed area of the triangle (a, b, p); its sign says on which side of a->b p is."""
    return (px - ax) * (by - ay) - (py - ay) * (bx - ax)


def point_segment_dist2(px, py, ax, ay, bx, by):
    """Squared distance from p to the segment a-b (elementwise)."""
    abx, aby = bx - ax, by - ay
    len2 = abx * abx + aby * aby
    inv_len2 = torch.where(len2 > 0, 1.0 / torch.where(len2 > 0, len2, 1.0), 0.0)
    t = (((px - ax) * abx + (py - ay) * aby) * inv_len2).clamp(0.0, 1.0)
    dx, dy = px - (ax + t * abx), py - (ay + t * aby)
    return dx * dx + dy * dy


def eval_pixel_faces(px, py, faces, blur_radius, perspective_correct, clip_barycentric,
                     cull_backfaces):
    """Evaluates faces at pixel centres, elementwise over any batch shape ``(...)``.

    Args:
        px, py: ``(...)`` pixel centres in NDC.
        faces: ``(..., 3, 3)`` the faces' vertices: x, y in NDC and view depth z.
    Returns:
        covers: ``(...)`` bool, whether the face covers the pixel.
        z: ``(...)`` interpolated view depth.
        bary: ``(..., 3)`` barycentric coordinates (perspective-corrected and clipped as asked).
        dist: ``(...)`` signed squared distance to the face's edges, negative inside.
    """
    x0, y0, z0 = faces[..., 0, 0], faces[..., 0, 1], faces[..., 0, 2]
    x1, y1, z1 = faces[..., 1, 0], faces[..., 1, 1], faces[..., 1, 2]
    x2, y2, z2 = faces[..., 2, 0], faces[..., 2, 1], faces[..., 2, 2]
    area = edge_function(x2, y2, x0, y0, x1, y1)
    covers = ~((area < AREA_EPSILON) & (area > -AREA_EPSILON))
    if cull_backfaces:  # clockwise on screen: we see the face from behind
        covers = covers & (area >= 0)

    # Barycentrics: each edge function over the area. They sum to one and are all positive
    # exactly when p is inside the face.
    inv_area = 1.0 / torch.where(covers, area, 1.0)
    b0 = edge_function(px, py, x1, y1, x2, y2) * inv_area
    b1 = edge_function(px, py, x2, y2, x0, y0) * inv_area
    b2 = edge_function(px, py, x0, y0, x1, y1) * inv_area
    inside = (b0 > 0) & (b1 > 0) & (b2 > 0)

    d2 = torch.minimum(torch.minimum(point_segment_dist2(px, py, x0, y0, x1, y1),
                                     point_segment_dist2(px, py, x1, y1, x2, y2)),
                       point_segment_dist2(px, py, x2, y2, x0, y0))
    covers = covers & (inside | (d2 < blur_radius))
    dist = torch.where(inside, -d2, d2)

    if perspective_correct:
        # Screen-space barycentrics are weighted by 1/z; undo that to interpolate in view space.
        w0, w1, w2 = b0 * z1 * z2, b1 * z0 * z2, b2 * z0 * z1
        denom = (w0 + w1 + w2).clamp_min(DENOM_EPSILON)
        b0, b1, b2 = w0 / denom, w1 / denom, w2 / denom
    if clip_barycentric:  # points in the blur ring get the coordinates of the nearest face point
        c0, c1, c2 = b0.clamp_min(0), b1.clamp_min(0), b2.clamp_min(0)
        total = (c0 + c1 + c2).clamp_min(DENOM_EPSILON)
        b0, b1, b2 = c0 / total, c1 / total, c2 / total
    z = b0 * z0 + b1 * z1 + b2 * z2
    covers = covers & (z >= 0)
    return covers, z, torch.stack([b0, b1, b2], dim=-1), dist


def _select_faces(face_verts, first_face, num_faces, H, W, K, settings, tile):
    """Step 1: the packed indices of the K nearest covering faces of every pixel, (N, H, W, K)."""
    N = len(first_face)
    dtype, device = face_verts.dtype, face_verts.device
    range_x, range_y = max(W / H, 1.0), max(H / W, 1.0)
    xs = pixel_centers_ndc(W, range_x, dtype, device)
    ys = pixel_centers_ndc(H, range_y, dtype, device)
    margin = math.sqrt(settings["blur_radius"]) + 1e-6
    pix_to_face = torch.full((N, H, W, K), -1, dtype=torch.int64, device=device)
    for n in range(N):
        first, count = int(first_face[n]), int(num_faces[n])
        faces = face_verts[first:first + count]
        # Faces entirely behind the camera, or with non-finite corners, never cover a pixel.
        usable = (faces[:, :, 2].amax(1) >= AREA_EPSILON) & faces[:, :, :2].isfinite().all((1, 2))
        lo, hi = faces[:, :, :2].amin(1) - margin, faces[:, :, :2].amax(1) + margin
        for y_start in range(0, H, tile):
            ty = ys[y_start:y_start + tile]
            for x_start in range(0, W, tile):
                tx = xs[x_start:x_start + tile]
                # Only faces whose blur-expanded bounding box overlaps the tile can cover it.
                near = usable & (lo[:, 0] <= tx[0]) & (hi[:, 0] >= tx[-1]) \
                    & (lo[:, 1] <= ty[0]) & (hi[:, 1] >= ty[-1])
                candidates = near.nonzero()[:, 0]
                if len(candidates) == 0:
                    continue
                py, px = torch.meshgrid(ty, tx, indexing="ij")
                covers, z, _, _ = eval_pixel_faces(
                    px[..., None], py[..., None], faces[candidates], **settings)
                # Nearest first; the stable sort breaks ties by face index, as the kernels do.
                z = torch.where(covers, z, math.inf)
                z_sorted, order = torch.sort(z, dim=-1, stable=True)
                chosen = (first + candidates)[order[..., :K]]
                chosen[~z_sorted[..., :K].isfinite()] = -1
                pix_to_face[n, y_start:y_start + tile, x_start:x_start + tile, :chosen.shape[-1]] = chosen
    return pix_to_face


def rasterize_faces_torch(face_verts, first_face, num_faces, image_size, faces_per_pixel,
                          blur_radius, perspective_correct, clip_barycentric, cull_backfaces,
                          tile=32):
    """Rasterizes packed faces of N meshes (the ``"torch"`` backend of ``rasterize_meshes``).

    Args:
        face_verts: ``(F, 3, 3)`` faces' vertices, x and y in NDC, z view depth.
        first_face, num_faces: ``(N,)`` int64, each mesh's first face and face count in face_verts.
        image_size: ``(H, W)``.
    Returns:
        pix_to_face ``(N, H, W, K)`` int64, zbuf ``(N, H, W, K)``, bary_coords
        ``(N, H, W, K, 3)``, dists ``(N, H, W, K)``; -1 where a pixel has fewer than K faces.
    """
    H, W = image_size
    N, K = len(first_face), faces_per_pixel
    settings = dict(blur_radius=blur_radius, perspective_correct=perspective_correct,
                    clip_barycentric=clip_barycentric, cull_backfaces=cull_backfaces)
    with torch.no_grad():
        pix_to_face = _select_faces(face_verts.detach(), first_face, num_faces, H, W, K, settings,
                                    tile)

    # Step 2: evaluate the chosen (pixel, face) pairs, differentiably.
    chosen = pix_to_face >= 0
    _, y, x, _ = chosen.nonzero(as_tuple=True)
    xs = pixel_centers_ndc(W, max(W / H, 1.0), face_verts.dtype, face_verts.device)
    ys = pixel_centers_ndc(H, max(H / W, 1.0), face_verts.dtype, face_verts.device)
    _, z, bary, dist = eval_pixel_faces(xs[x], ys[y], face_verts[pix_to_face[chosen]], **settings)

    def padded(values, shape):
        out = torch.full(shape, -1.0, dtype=face_verts.dtype, device=face_verts.device)
        out[chosen] = values
        return out

    return (pix_to_face, padded(z, (N, H, W, K)), padded(bary, (N, H, W, K, 3)),
            padded(dist, (N, H, W, K)))
