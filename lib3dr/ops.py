"""Operations on meshes and point clouds, as ``pytorch3d.ops``: ``sample_points_from_meshes``, ``SubdivideMeshes``,
``knn_points`` and ``knn_gather``.

All are plain PyTorch, batched over heterogeneous ``Meshes`` (or padded point clouds with lengths), and
differentiable with respect to vertex and point positions; the discrete choices (which face a sample lands on,
which points are nearest) are made without gradient, as in PyTorch3D.
"""
from collections import namedtuple

import torch
import torch.nn.functional as F

from lib3dr.renderer.rasterizer import Fragments
from lib3dr.structures import Meshes, _packed_to_padded

__all__ = ["sample_points_from_meshes", "SubdivideMeshes", "knn_points", "knn_gather"]


# ---------------------------------------------------------------------------------------- sampling


def sample_points_from_meshes(meshes, num_samples=10000, return_normals=False, return_textures=False):
    """Points drawn uniformly from the surface of each mesh.

    A face is picked with probability proportional to its area, then a point uniformly inside it: with u, v
    uniform in [0, 1), the barycentrics (1 - sqrt(u), sqrt(u) (1 - v), sqrt(u) v) are uniform over the triangle
    (the sqrt undoes the fact that a slice at distance t from the first corner has length proportional to t).
    The face choice and the barycentrics carry no gradient; the points are barycentric combinations of the
    vertices, so gradients reach the vertices.

    Args:
        meshes: ``Meshes`` of N meshes, not all empty.
        num_samples: points per mesh, S.
        return_normals: also return the unit normal of the face each point lies on.
        return_textures: also return the textures sampled at the points (``TexturesVertex`` interpolated at the
            barycentrics, ``TexturesUV`` looked up at the interpolated UVs).
    Returns:
        samples (N, S, 3) in the vertices' dtype; then normals (N, S, 3) and textures (N, S, C) if asked.
        Rows of meshes without faces are 0.
    """
    if meshes.isempty():
        raise ValueError("sample_points_from_meshes: the meshes have no faces")
    verts = meshes.verts_packed()
    if not torch.isfinite(verts).all():
        raise ValueError("sample_points_from_meshes: the vertices contain nan or inf")
    if return_textures and meshes.textures is None:
        raise ValueError("sample_points_from_meshes: return_textures=True but the meshes have no textures")
    N, S = len(meshes), num_samples
    has_faces = meshes.num_faces_per_mesh() > 0
    with torch.no_grad():
        areas_padded = _packed_to_padded(meshes.faces_areas_packed(), meshes.num_faces_per_mesh(), 0.0)
        areas_padded[~has_faces, 0] = 1  # a dummy face for multinomial; these rows are zeroed below
        face = areas_padded.multinomial(S, replacement=True) + meshes.mesh_to_faces_packed_first_idx()[:, None]
        u, v = torch.rand(2, N, S, 1, dtype=verts.dtype, device=verts.device)
        bary = torch.cat([1 - u.sqrt(), u.sqrt() * (1 - v), u.sqrt() * v], dim=2)  # (N, S, 3)
    keep = has_faces[:, None, None]
    corners = verts[meshes.faces_packed()[face]]  # (N, S, 3 corners, 3)
    samples = torch.where(keep, (bary[..., None] * corners).sum(2), 0.0)
    out = [samples]
    if return_normals:
        out.append(torch.where(keep, meshes.faces_normals_packed()[face], 0.0))
    if return_textures:
        # The textures' own sampler reads fragments; here each sample is a 1 x 1 "pixel" with one fragment.
        pix_to_face = torch.where(keep[..., 0], face, -1).view(N, S, 1, 1)
        unused = torch.zeros_like(pix_to_face, dtype=verts.dtype)
        fragments = Fragments(pix_to_face, unused, bary.view(N, S, 1, 1, 3), unused)
        out.append(meshes.sample_textures(fragments)[:, :, 0, 0])
    return out[0] if len(out) == 1 else tuple(out)


def _local_index(counts):
    """(sum counts,) int64: each element's position within its group, for groups of ``counts`` elements."""
    first = counts.cumsum(0) - counts
    return torch.arange(int(counts.sum()), device=counts.device) - first.repeat_interleave(counts)


# -------------------------------------------------------------------------------------- subdivision


class SubdivideMeshes(torch.nn.Module):
    """Splits every triangle into four at its edge midpoints (PyTorch3D's ``SubdivideMeshes``; no smoothing).

    Mesh n of the result has V_n + E_n vertices (its own, then one midpoint per edge in ``edges_packed`` order)
    and 4 F_n faces: the three corner triangles of every face, then the middle ones. A counter-clockwise face
    gives four counter-clockwise faces. Textures are not carried over; pass per-vertex values as ``feats``.

    Args:
        meshes: optional ``Meshes``; the topology of its first mesh is computed once here and reused by every
            call, which must then pass meshes that all have that topology (e.g. ``Meshes.extend`` of it, moved).
    """

    def __init__(self, meshes=None):
        super().__init__()
        self.precomputed = meshes is not None
        if self.precomputed:
            mesh = meshes[0]
            self.register_buffer("_edges", mesh.edges_packed())
            self.register_buffer("_subdivided_faces", _subdivided_faces(mesh)[0])

    def forward(self, meshes, feats=None):
        """Subdivide ``meshes`` and, if given, per-vertex ``feats``, averaged at the midpoints like the vertices.

        Args:
            meshes: ``Meshes``.
            feats: optional (sum V_n, D), parallel to ``meshes.verts_packed()``; with a precomputed topology also
                (N, V, D).
        Returns:
            the new ``Meshes``; and, if ``feats`` is given, the new features: (sum V_n + E_n, D) packed, or
            (N, V + E, D) with a precomputed topology (as PyTorch3D).
        """
        if self.precomputed:
            verts = meshes.verts_padded()  # one topology: all meshes have the same V
            new_verts = torch.cat([verts, verts[:, self._edges].mean(dim=2)], dim=1)
            new_meshes = Meshes(new_verts, self._subdivided_faces.expand(len(meshes), -1, -1))
            if feats is None:
                return new_meshes
            feats = feats.view(verts.shape[0], verts.shape[1], -1)
            return new_meshes, torch.cat([feats, feats[:, self._edges].mean(dim=2)], dim=1)
        faces, order = _subdivided_faces(meshes)
        edges = meshes.edges_packed()
        new_verts = torch.cat([meshes.verts_packed(), meshes.verts_packed()[edges].mean(dim=1)])[order]
        num_verts = (meshes.num_verts_per_mesh() + meshes.num_edges_per_mesh()).tolist()
        num_faces = (4 * meshes.num_faces_per_mesh()).tolist()
        new_meshes = Meshes(list(new_verts.split(num_verts)), list(faces.split(num_faces)))
        if feats is None:
            return new_meshes
        return new_meshes, torch.cat([feats, feats[edges].mean(dim=1)])[order]


def _subdivided_faces(meshes):
    """The faces of the subdivided batch and where its vertices come from.

    Returns:
        faces (4 sum F_n, 3) int64 local to each new mesh, grouped by mesh: [corner triangles at v0, at v1, at v2,
        middle triangles] of mesh 0, then of mesh 1, ...;
        order (sum V_n + E_n,) int64: new packed vertex i is row order[i] of cat([verts_packed, midpoints]).
    """
    num_verts = meshes.num_verts_per_mesh()
    face_mesh, edge_mesh = meshes.faces_packed_to_mesh_idx(), meshes.edges_packed_to_mesh_idx()
    # Mesh n's new vertices: its V_n old ones, then its midpoints; the local index of a midpoint is thus
    # V_n + (the edge's index within mesh n).
    midpoint = num_verts[edge_mesh] + _local_index(meshes.num_edges_per_mesh())
    m12, m20, m01 = midpoint[meshes.faces_packed_to_edges_packed()].unbind(1)  # column k: edge opposite corner k
    v0, v1, v2 = meshes._faces_packed_local().unbind(1)
    quads = torch.stack([torch.stack([v0, m01, m20], 1), torch.stack([v1, m12, m01], 1),
                         torch.stack([v2, m20, m12], 1), torch.stack([m12, m20, m01], 1)])  # (4, F, 3)
    # A stable sort by (mesh, kind) groups each mesh's faces, kind by kind, each kind in the original order.
    kind = torch.arange(4, device=face_mesh.device)[:, None]
    faces = quads.flatten(0, 1)[torch.argsort((face_mesh * 4 + kind).flatten(), stable=True)]
    source_mesh = torch.cat([meshes.verts_packed_to_mesh_idx(), edge_mesh])
    is_midpoint = torch.arange(len(source_mesh), device=source_mesh.device) >= int(num_verts.sum())
    order = torch.argsort(source_mesh * 2 + is_midpoint, stable=True)
    return faces, order


# ------------------------------------------------------------------------------- nearest neighbours

_KNN = namedtuple("KNN", "dists idx knn")

# Scores (candidate distances) held at once by the search: 2^18 entries, 1 MiB in float32, which stay in a
# core's L2 cache from the product to the search (1.4x as fast as 2^22 for 5000 x 5000 points, one thread).
_CHUNK = 2 ** 18


def knn_points(p1, p2, lengths1=None, lengths2=None, norm=2, K=1, version=-1, return_nn=False,
               return_sorted=True):
    """The K nearest points of p2 to each point of p1, cloud by cloud (PyTorch3D's ``knn_points``).

    A brute-force search in chunks of p1's points: each chunk scores all of p2 at once. For norm 2 the score of
    q in p2 for p in p1 is |q|^2 - 2 p.q (|p - q|^2 less |p|^2, which is the same for the whole row), one batched
    matrix product; rounding can then swap two candidates whose squared distances differ by less than a few ulps
    of |p|^2 + |q|^2. The distances of the K found are recomputed exactly, with gradients to p1 and p2, and
    sorted.

    Memory: besides the outputs ((N, P1, K) dists and idx, (N, P1, K, D) knn) and the (N, P1, K, D) neighbours
    that autograd keeps, the search holds one chunk of max(2^18, N P2) scores at a time (1 MiB in float32 when
    N P2 <= 2^18; the chunks are runs of max(1, 2^18 // (N P2)) points of p1).

    Args:
        p1: (N, P1, D) float; p2: (N, P2, D) float.
        lengths1, lengths2: optional (N,) int64, the number of real points of each cloud (the rest is padding,
            which is never a neighbour and has 0 results); None for all.
        norm: 2 for squared Euclidean distances, 1 for L1 distances.
        K: number of neighbours.
        version, return_sorted: accepted for PyTorch3D's signature; there is one implementation and the K
            neighbours always come sorted (sorting K values costs nothing next to the search).
        return_nn: also return the neighbours' coordinates.
    Returns:
        ``KNN(dists, idx, knn)``: dists (N, P1, K), nearest first; idx (N, P1, K) int64 indices into p2[n];
        knn (N, P1, K, D) or None. Slots past a cloud's lengths2 and rows past its lengths1 hold 0.
    """
    if not (torch.is_tensor(p1) and torch.is_tensor(p2) and p1.dim() == 3 and p2.dim() == 3):
        raise ValueError("p1 and p2 must be (N, P, D) tensors")
    if p1.shape[0] != p2.shape[0] or p1.shape[2] != p2.shape[2]:
        raise ValueError(f"p1 {tuple(p1.shape)} and p2 {tuple(p2.shape)} must agree in N and D")
    if norm not in (1, 2):
        raise ValueError(f"norm must be 1 or 2, got {norm!r}")
    if not isinstance(K, int) or K < 1:
        raise ValueError(f"K must be a positive int, got {K!r}")
    (N, P1, _), P2 = p1.shape, p2.shape[1]
    real1 = _real_points(lengths1, N, P1, p1.device, "lengths1")  # (N, P1)
    real2 = _real_points(lengths2, N, P2, p2.device, "lengths2")
    # Padding may hold anything, nan included; zeros keep it out of the products and of the gradients.
    p1 = torch.where(real1[..., None], p1, 0.0)
    p2 = torch.where(real2[..., None], p2, 0.0)
    k = min(K, P2)
    with torch.no_grad():
        squares = torch.where(real2, (p2 * p2).sum(-1), float("inf"))[:, None, :]  # (N, 1, P2), inf: padding
        rows = max(1, _CHUNK // max(1, N * P2))
        idx = torch.cat([_search(chunk, p2, squares, real2, norm, k) for chunk in p1.split(rows, dim=1)], dim=1)
    diff = p1[:, :, None] - knn_gather(p2, idx)
    dists = diff.abs().sum(-1) if norm == 1 else (diff * diff).sum(-1)
    found = real1[..., None] & (torch.arange(k, device=p1.device) < real2.sum(1)[:, None, None])  # (N, P1, k)
    dists, order = torch.where(found, dists, float("inf")).sort(dim=2)  # slots with nothing found sort last
    dists, idx = torch.where(found, dists, 0.0), torch.where(found, idx.gather(2, order), 0)
    knn = torch.where(found[..., None], knn_gather(p2, idx), 0.0) if return_nn else None
    if K > k:  # p2 has fewer points than neighbours asked for
        dists, idx = F.pad(dists, (0, K - k)), F.pad(idx, (0, K - k))
        knn = None if knn is None else F.pad(knn, (0, 0, 0, K - k))
    return _KNN(dists, idx, knn)


def _real_points(lengths, N, P, device, name):
    """(N, P) bool: which of the P slots of each cloud hold real points."""
    if lengths is None:
        return torch.ones(N, P, dtype=torch.bool, device=device)
    if not torch.is_tensor(lengths) or lengths.shape != (N,) or lengths.is_floating_point():
        raise ValueError(f"{name} must be an (N,) = ({N},) integer tensor")
    if len(lengths) and (int(lengths.min()) < 0 or int(lengths.max()) > P):
        raise ValueError(f"{name} must lie in [0, {P}], got {lengths.tolist()}")
    return torch.arange(P, device=device) < lengths.to(device)[:, None]


def _search(chunk, p2, squares, real2, norm, k):
    """(N, C, k) int64: the indices of the k best-scored points of p2 for each of the C points of ``chunk``."""
    if norm == 2:
        # |q|^2 - 2 p.q; a padding q has |q|^2 = inf and q = 0, so its score is inf and it is never picked.
        scores = torch.baddbmm(squares, chunk, p2.transpose(1, 2), alpha=-2)
    else:
        scores = torch.cdist(chunk, p2, p=1).masked_fill_(~real2[:, None], float("inf"))
    if k == 1:  # one pass of argmin is faster than topk
        return scores.argmin(dim=2, keepdim=True)
    return scores.topk(k, dim=2, largest=False).indices


def knn_gather(x, idx, lengths=None):
    """Rows of x at the indices ``knn_points`` returns: ``out[n, i, k] = x[n, idx[n, i, k]]``.

    Args:
        x: (N, M, U); idx: (N, L, K) int64 in [0, M); lengths: optional (N,), the real rows of each x[n]
            (slots k >= lengths[n] give 0, as PyTorch3D).
    Returns:
        (N, L, K, U), differentiable with respect to x.
    """
    N, L, K = idx.shape
    out = x.gather(1, idx.reshape(N, L * K, 1).expand(-1, -1, x.shape[2])).view(N, L, K, x.shape[2])
    if lengths is None:
        return out
    empty = torch.arange(K, device=idx.device) >= lengths.to(idx.device)[:, None]  # (N, K)
    return out.masked_fill(empty[:, None, :, None], 0.0)
