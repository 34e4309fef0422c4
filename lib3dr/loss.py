"""Losses on point clouds and meshes, as ``pytorch3d.loss``: ``chamfer_distance`` and the mesh regularisers
``mesh_edge_loss``, ``mesh_laplacian_smoothing`` and ``mesh_normal_consistency``.

The mesh losses are batched over heterogeneous ``Meshes`` and, as PyTorch3D's, average each mesh's terms and
then the meshes (``1 / N`` each, empty meshes counting as 0), so a small mesh weighs as much as a large one.
"""
import torch
import torch.nn.functional as F

from lib3dr.ops import knn_gather, knn_points

__all__ = ["chamfer_distance", "mesh_edge_loss", "mesh_laplacian_smoothing", "mesh_normal_consistency"]


# ----------------------------------------------------------------------------------------- chamfer


def chamfer_distance(x, y, x_lengths=None, y_lengths=None, x_normals=None, y_normals=None, weights=None,
                     batch_reduction="mean", point_reduction="mean", norm=2, single_directional=False,
                     abs_cosine=True):
    """Chamfer distance between point clouds x and y (PyTorch3D's ``chamfer_distance``).

    For cloud n, with d(p, q) = |p - q|^2 (norm=2) or |p - q|_1 (norm=1) and NN_y(p) the point of y[n] nearest p:

        forward  = reduce_{p in x[n]} d(p, NN_y(p))       backward = reduce_{q in y[n]} d(q, NN_x(q))
        loss[n]  = forward + backward (only forward with single_directional; max of the two for "max")

    where reduce is the point_reduction: "mean" (sum / the cloud's length), "sum", "max" (then loss is the
    Hausdorff distance, squared for norm 2) or None (the per-point terms, padding 0). With normals, the normal
    term of a point is 1 - |cos| (1 - cos if not abs_cosine) of the angle between its normal and its nearest
    neighbour's, reduced the same way. Each cloud's terms are multiplied by weights[n]; then batch_reduction
    "sum" sums over n, "mean" divides that sum by N (by sum(weights) when given and not 0), None keeps (N,).

    Args:
        x: (N, P1, D), y: (N, P2, D) float tensors (padded clouds).
        x_lengths, y_lengths: optional (N,) int64, the real points of each cloud.
        x_normals, y_normals: optional (N, P1, D), (N, P2, D); the normal term needs both.
        weights: optional (N,) non-negative.
        batch_reduction: "mean", "sum" or None; point_reduction: "mean", "sum", "max" or None (which needs
            batch_reduction None).
        norm: 2 or 1; single_directional: only the x-to-y term; abs_cosine: ignore the normals' sign.
    Returns:
        (loss, loss_normals): scalars, or (N,) for batch_reduction None, or per-point (N, P1) and (N, P2)
        (a pair, or only the first with single_directional) for point_reduction None. loss_normals is None
        without both normals.
    """
    if batch_reduction not in ("mean", "sum", None):
        raise ValueError(f"batch_reduction must be 'mean', 'sum' or None, got {batch_reduction!r}")
    if point_reduction not in ("mean", "sum", "max", None):
        raise ValueError(f"point_reduction must be 'mean', 'sum', 'max' or None, got {point_reduction!r}")
    if point_reduction is None and batch_reduction is not None:
        raise ValueError("point_reduction=None needs batch_reduction=None")
    if point_reduction == "max" and (x_normals is not None or y_normals is not None):
        raise ValueError("point_reduction='max' takes no normals")
    if norm not in (1, 2):
        raise ValueError(f"norm must be 1 or 2, got {norm!r}")
    for name, cloud in (("x", x), ("y", y)):
        if not torch.is_tensor(cloud) or cloud.dim() != 3:
            raise ValueError(f"{name} must be an (N, P, D) tensor")
    if x.shape[0] != y.shape[0] or x.shape[2] != y.shape[2]:
        raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)} must agree in N and D")
    N = len(x)
    if weights is not None and (weights.shape != (N,) or bool((weights < 0).any())):
        raise ValueError(f"weights must be a non-negative (N,) = ({N},) tensor")
    x_lengths = torch.full((N,), x.shape[1], device=x.device) if x_lengths is None else x_lengths
    y_lengths = torch.full((N,), y.shape[1], device=y.device) if y_lengths is None else y_lengths
    with_normals = x_normals is not None and y_normals is not None

    terms = [_one_way(x, y, x_lengths, y_lengths, x_normals, y_normals, with_normals, norm, abs_cosine)]
    if not single_directional:
        terms.append(_one_way(y, x, y_lengths, x_lengths, y_normals, x_normals, with_normals, norm, abs_cosine))
    lengths = [x_lengths, y_lengths]
    losses = []
    for which in range(2 if with_normals else 1):  # 0: distances, 1: normals
        per_point = [t[which] * (1 if weights is None else weights[:, None]) for t in terms]
        if point_reduction is None:
            losses.append(per_point[0] if single_directional else tuple(per_point))
            continue
        reduced = [_reduce_points(p, n, point_reduction) for p, n in zip(per_point, lengths)]
        loss = torch.maximum(*reduced) if point_reduction == "max" and len(reduced) == 2 else sum(reduced)
        if batch_reduction is not None:
            loss = loss.sum()
            if batch_reduction == "mean":
                loss = loss / (weights.sum() if weights is not None and weights.sum() > 0 else max(N, 1))
        losses.append(loss)
    return losses[0], (losses[1] if with_normals else None)


def _one_way(x, y, x_lengths, y_lengths, x_normals, y_normals, with_normals, norm, abs_cosine):
    """Per-point (N, P1) distances from x to its nearest point of y and, if asked, normal terms; 0 on padding."""
    nearest = knn_points(x, y, x_lengths, y_lengths, norm=norm, K=1)
    if not with_normals:
        return nearest.dists[..., 0], None
    real = (torch.arange(x.shape[1], device=x.device) < x_lengths[:, None])[..., None]
    x_normals = torch.where(real, x_normals, 0.0)  # padding may hold nan, which would reach the gradients
    cos = F.cosine_similarity(x_normals, knn_gather(y_normals, nearest.idx, y_lengths)[:, :, 0], dim=2, eps=1e-6)
    return nearest.dists[..., 0], torch.where(real[..., 0], 1 - (cos.abs() if abs_cosine else cos), 0.0)


def _reduce_points(per_point, lengths, point_reduction):
    """(N, P) -> (N,): "max", "sum", or "mean" over each cloud's real points (padding holds 0)."""
    if point_reduction == "max":
        return per_point.max(dim=1).values if per_point.shape[1] else per_point.sum(dim=1)
    total = per_point.sum(dim=1)
    return total / lengths.clamp(min=1) if point_reduction == "mean" else total


# ------------------------------------------------------------------------------------ mesh regularisers


def _zero(meshes):
    """The loss of a batch with no faces: 0, a leaf that accepts ``backward()`` (as PyTorch3D)."""
    return torch.zeros((), dtype=meshes.verts_packed().dtype, device=meshes.device, requires_grad=True)


def _mean_per_mesh(terms, owner, N):
    """sum_n (1/N) mean of mesh n's terms: each term weighted by 1 / (its mesh's count of terms), summed, / N."""
    counts = torch.bincount(owner, minlength=N)
    return (terms / counts[owner]).sum() / N


def mesh_edge_loss(meshes, target_length=0.0):
    """Mean squared deviation of the edge lengths from ``target_length``:

        loss = (1/N) sum_n (1/E_n) sum_{edges (a, b) of mesh n} (|v_a - v_b| - target_length)^2

    Args:
        meshes: ``Meshes``; target_length: float.
    Returns:
        scalar; 0 when no mesh has a face.
    """
    if meshes.isempty():
        return _zero(meshes)
    a, b = meshes.verts_packed()[meshes.edges_packed()].unbind(1)
    terms = ((a - b).norm(dim=1) - target_length) ** 2
    return _mean_per_mesh(terms, meshes.edges_packed_to_mesh_idx(), len(meshes))


def mesh_laplacian_smoothing(meshes, method="uniform"):
    """Mean length of the Laplacian of the vertices (PyTorch3D's ``mesh_laplacian_smoothing``):

        loss = (1/N) sum_n (1/V_n) sum_{i in mesh n} |delta_i|,

    with, for vertex i, its neighbours j, and a_ij, b_ij the angles opposite edge ij in its two faces:

        "uniform":  delta_i = (1/deg i) sum_j v_j - v_i                     (Meshes.laplacian_packed() @ verts)
        "cot":      delta_i = sum_j w_ij v_j / sum_j w_ij - v_i,     w_ij = cot a_ij + cot b_ij
        "cotcurv":  delta_i = sum_j w_ij (v_j - v_i) / (4 A_i),      A_i = the area of i's faces

    "uniform" pulls each vertex to its neighbours' centroid; the cotangent forms vanish at the inner vertices of
    any flat patch, where "uniform" does not unless the triangles are regular, and "cotcurv" approximates the
    mean curvature normal. As in PyTorch3D, the weights are constants for autograd (computed from the current
    vertices without gradient), and a "cot" vertex whose weights do not sum to a positive number gets
    delta_i = -v_i.

    Returns:
        scalar; 0 when no mesh has a face.
    """
    if method not in ("uniform", "cot", "cotcurv"):
        raise ValueError(f"method must be 'uniform', 'cot' or 'cotcurv', got {method!r}")
    if meshes.isempty():
        return _zero(meshes)
    verts = meshes.verts_packed()
    if method == "uniform":
        delta = torch.sparse.mm(meshes.laplacian_packed(), verts)
    else:
        with torch.no_grad():
            W, inv_areas = _cot_weights(verts, meshes.faces_packed())
            total = torch.sparse.sum(W, dim=1).to_dense()[:, None]
        if method == "cot":
            delta = torch.sparse.mm(W, verts) * torch.where(total > 0, 1 / total, 0.0) - verts
        else:
            delta = (torch.sparse.mm(W, verts) - total * verts) * inv_areas / 4
    return _mean_per_mesh(delta.norm(dim=1), meshes.verts_packed_to_mesh_idx(), len(meshes))


def _faces_across_edges(meshes):
    """The (face, corner) entries sorted by the edge opposite the corner, and the pairs of entries on one edge.

    Returns:
        edge, opposite: (3F,) each entry's edge and its corner's vertex, sorted by edge;
        first, second: (P,) the pairs (i, i + d), d >= 1, within each run of one edge in the sorted list.
    Computed once per set of faces (``Meshes._topology_cached``).
    """
    def make():
        # Each (face, corner k) pairs the edge opposite corner k with that corner, its opposite vertex.
        edge, opposite = meshes.faces_packed_to_edges_packed().flatten(), meshes.faces_packed().flatten()
        edge, order = edge.sort(stable=True)
        # Runs are short (2 on a closed manifold), so the loop over d is too.
        firsts, seconds = [], []
        for d in range(1, int(torch.bincount(edge).max())):
            i = torch.arange(len(edge) - d, device=edge.device)
            i = i[edge[i] == edge[i + d]]
            firsts.append(i)
            seconds.append(i + d)
        empty = edge.new_zeros(0)
        return edge, opposite[order], torch.cat(firsts or [empty]), torch.cat(seconds or [empty])
    return meshes._topology_cached("faces_across_edges", make)


def _cot_weights(verts, faces):
    """Cotangent weights and inverse vertex areas of a packed mesh (called without gradient).

    Returns:
        W: (V, V) sparse, W[i, j] = cot a_ij + cot b_ij, over the angles opposite edge ij (one on a boundary);
        inv_areas: (V, 1), 1 / (sum of the areas of i's faces), 0 for a vertex on no face.
    """
    corners = verts[faces]  # (F, 3, 3)
    # Corner k's angle is opposite the side from corner k + 1 to k + 2. With e1, e2 the sides from corner k,
    # cot = (e1 . e2) / |e1 x e2|, and |e1 x e2| = twice the area; slivers are held at area 1e-6 (as PyTorch3D).
    e1 = corners.roll(-1, dims=1) - corners
    e2 = corners.roll(-2, dims=1) - corners
    area = 0.5 * torch.cross(e1[:, 0], e2[:, 0], dim=1).norm(dim=1).clamp(min=1e-6)  # (F,)
    cot = (e1 * e2).sum(-1) / (2 * area[:, None])  # (F, 3)
    i, j = faces.roll(-1, dims=1), faces.roll(-2, dims=1)  # the side opposite corner k
    i, j = i.flatten(), j.flatten()
    V = len(verts)
    W = torch.sparse_coo_tensor(torch.stack([torch.cat([i, j]), torch.cat([j, i])]), cot.flatten().repeat(2),
                                (V, V), check_invariants=False).coalesce()  # coalesce sums the two faces' terms
    vertex_area = torch.zeros_like(verts[:, 0]).index_add(0, faces.flatten(), area.repeat_interleave(3))
    inv_areas = torch.where(vertex_area > 0, 1 / vertex_area, 0.0)
    return W, inv_areas[:, None]


def mesh_normal_consistency(meshes):
    """Mean of 1 - cos(angle between the normals) over the pairs of faces that share an edge:

        loss = (1/N) sum_n (1/P_n) sum_{pairs of mesh n} (1 - cos(n0, n1)),

    for the faces (v0, v1, a) and (v0, v1, b) on edge (v0, v1): n0 = (v1 - v0) x (a - v0) and
    n1 = (b - v0) x (v1 - v0), the normals of the two faces oriented consistently across the edge whatever
    their winding. Two coplanar faces give 0, a fold at 90 degrees 1, a fold flat onto itself 2. An edge shared
    by c faces gives the c (c - 1) / 2 pairs (PyTorch3D's enumeration repeats some pairs when c >= 4); a
    boundary edge gives none.

    Returns:
        scalar; 0 when no mesh has a face.
    """
    if meshes.isempty():
        return _zero(meshes)
    edge, opposite, first, second = _faces_across_edges(meshes)
    if len(first) == 0:
        return _zero(meshes)
    verts = meshes.verts_packed()
    v0, v1 = verts[meshes.edges_packed()[edge]].unbind(1)
    normal = torch.cross(v1 - v0, verts[opposite] - v0, dim=1)
    terms = 1 - F.cosine_similarity(normal[first], -normal[second], dim=1)
    return _mean_per_mesh(terms, meshes.edges_packed_to_mesh_idx()[edge[first]], len(meshes))
