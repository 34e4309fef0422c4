"""Batches of triangle meshes: ``Meshes``, ``join_meshes_as_batch`` and ``join_meshes_as_scene`` (PyTorch3D's
names and conventions).

A batch of N meshes, mesh n having V_n vertices and F_n faces, has three views:

* list:   ``verts_list()[n]`` is (V_n, 3); ``faces_list()[n]`` is (F_n, 3), indexing mesh n's vertices.
* padded: ``verts_padded()`` is (N, max V_n, 3), zero padded; ``faces_padded()`` is (N, max F_n, 3),
  padded with -1.
* packed: ``verts_packed()`` is (sum V_n, 3), the meshes one after another; ``faces_packed()`` is
  (sum F_n, 3) and indexes the packed vertices, so the whole batch can be processed as one big mesh with
  no padding to skip.

The index maps (``verts_packed_to_mesh_idx`` and friends) translate between the views.

Only the vertices can carry gradients, so only they are kept in the form they were given (a list or a
padded tensor) and every float view is recomputed from them with differentiable ops on each call. Nothing
differentiable is cached: a cached view would go stale when an optimiser updates the input tensor in place,
and its graph would be freed by the first ``backward()``. The integer bookkeeping (counts, packed faces, edges)
and the uniform Laplacian cannot carry gradients and are computed once.
"""
import copy

import torch
import torch.nn.functional as F


def _index_list(index, n):
    """The mesh indices that ``batch[index]`` selects from a batch of n, as a list of ints.

    ``index`` may be an int, a slice, a list of ints or bools, or an integer or bool tensor; torch's own indexing
    rules decide what it means (negative ints count from the end, an int out of range raises IndexError).
    """
    if torch.is_tensor(index):
        index = index.cpu()
    return torch.arange(n)[index].reshape(-1).tolist()


def _padded_to_packed_idx(counts):
    """Where each packed row sits in the flattened padded tensor.

    Args:
        counts: (N,) int64, the number of rows of each batch element.
    Returns:
        (sum counts,) int64: packed row i of element n at local position j maps to ``n * max(counts) + j``.
    """
    n = len(counts)
    width = int(counts.max()) if n else 0
    owner = torch.repeat_interleave(torch.arange(n, device=counts.device), counts)
    first = counts.cumsum(0) - counts
    local = torch.arange(len(owner), device=counts.device) - first[owner]
    return owner * width + local


def _packed_to_padded(packed, counts, pad_value):
    """(sum counts, *D) -> (N, max counts, *D), the rows past each element's count set to ``pad_value``.

    ``index_copy`` (not in-place assignment) keeps this differentiable with respect to ``packed``.
    """
    counts = counts.to(packed.device)
    n = len(counts)
    width = int(counts.max()) if n else 0
    tail = packed.shape[1:]
    if n and int(counts.min()) == width:  # nothing to pad (a single mesh, or equal sizes)
        return packed.view(n, width, *tail)
    padded = packed.new_full((n * width, *tail), pad_value)
    return padded.index_copy(0, _padded_to_packed_idx(counts), packed).view(n, width, *tail)


def _padded_to_packed(padded, counts):
    """(N, M, *D) -> (sum counts, *D): the first ``counts[n]`` rows of each element, one element after another."""
    if len(counts) and int(counts.min()) == padded.shape[1]:  # no padding rows
        return padded.flatten(0, 1)
    return padded.flatten(0, 1)[_padded_to_packed_idx(counts.to(padded.device))]


def _check_faces_in_range(faces, owner, counts, what="faces", items="vertices"):
    """Raise ValueError naming the mesh and the index if any index of ``faces`` is outside its mesh's items.

    Args:
        faces: (F, 3) int64 indices local to each face's mesh.
        owner: (F,) int64, the mesh each face belongs to.
        counts: (N,) int64, the number of indexable items (vertices, UVs) of each mesh.
    """
    bad = (faces < 0) | (faces >= counts[owner][:, None])
    if bad.any():
        face, corner = divmod(int(bad.flatten().nonzero()[0]), 3)
        mesh = int(owner[face])
        raise ValueError(
            f"{what} of mesh {mesh} contain index {int(faces[face, corner])}, out of range for its "
            f"{int(counts[mesh])} {items}"
        )


class Meshes:
    """A batch of N triangle meshes with (possibly) different numbers of vertices and faces.

    Args:
        verts: a list of N float tensors (V_n, 3), or a float tensor (N, V, 3). In the padded form every mesh has
            all V vertices (as in PyTorch3D); use a list for meshes with different vertex counts.
        faces: a list of N integer tensors (F_n, 3), or an integer tensor (N, F, 3) in which rows of -1 are
            padding and come after the mesh's real faces. Indices are 0-based and local to each mesh.
            Stored as int64.
        textures: optional ``TexturesVertex`` / ``TexturesUV`` (from ``lib3dr.renderer.textures``) holding one entry per
            mesh; checked against the meshes with ``textures.check_shapes(self)``.

    Meshes with 0 vertices and 0 faces are allowed. Raises ValueError on malformed input.
    """

    def __init__(self, verts, faces, textures=None):
        if isinstance(verts, (list, tuple)) and isinstance(faces, (list, tuple)):
            if len(verts) != len(faces):
                raise ValueError(f"got {len(verts)} vertex tensors but {len(faces)} face tensors")
            for n, (v, f) in enumerate(zip(verts, faces)):
                _check_tensor(v, 2, 3, f"verts[{n}]", "(V, 3)", floating=True)
                _check_tensor(f, 2, 3, f"faces[{n}]", "(F, 3)", floating=False)
            self.device = _common_device(list(verts) + list(faces))
            num_verts = [len(v) for v in verts]
            num_faces = [len(f) for f in faces]
            # An empty batch is stored padded, so the views never have to concatenate an empty list.
            self._verts = list(verts) if verts else torch.zeros(0, 0, 3)
            local_faces = torch.cat(faces).long() if faces else torch.zeros(0, 3, dtype=torch.int64)
        elif torch.is_tensor(verts) and torch.is_tensor(faces):
            _check_tensor(verts, 3, 3, "verts", "(N, V, 3)", floating=True)
            _check_tensor(faces, 3, 3, "faces", "(N, F, 3)", floating=False)
            if len(verts) != len(faces):
                raise ValueError(f"verts hold {len(verts)} meshes but faces hold {len(faces)}")
            self.device = _common_device([verts, faces])
            faces = faces.long()
            real = (faces != -1).any(dim=2)  # (N, F): rows that are not all -1
            num_faces = real.sum(dim=1)
            rows = torch.arange(faces.shape[1], device=faces.device)
            if not torch.equal(real, rows < num_faces[:, None]):
                raise ValueError("padded faces: padding rows (all -1) must come after every real face of a mesh")
            num_verts = [verts.shape[1]] * len(verts)
            self._verts = verts
            local_faces = faces[real]
        else:
            raise ValueError(
                "verts and faces must both be lists of tensors or both be padded tensors, "
                f"got {type(verts).__name__} and {type(faces).__name__}"
            )

        self._N = len(num_verts)
        self._num_verts = torch.as_tensor(num_verts, dtype=torch.int64, device=self.device)
        self._num_faces = torch.as_tensor(num_faces, dtype=torch.int64, device=self.device)
        owner = self.faces_packed_to_mesh_idx()
        _check_faces_in_range(local_faces, owner, self._num_verts)
        self._faces_packed = local_faces + self.mesh_to_verts_packed_first_idx()[owner][:, None]
        # What depends on the faces only (edges, Laplacian, ...), made on first use and shared by the
        # batches that update_padded, offset_verts and scale_verts make from this one.
        self._topology = {}

        self.textures = textures
        if textures is not None:
            textures.check_shapes(self)

    # ---- sizes and index maps -------------------------------------------------------------------------------

    def __len__(self):
        return self._N

    def isempty(self):
        """True when the batch has no meshes or no mesh has a face."""
        return self._N == 0 or bool((self._num_faces == 0).all())

    def num_verts_per_mesh(self):
        """(N,) int64."""
        return self._num_verts

    def num_faces_per_mesh(self):
        """(N,) int64."""
        return self._num_faces

    def mesh_to_verts_packed_first_idx(self):
        """(N,) int64: the packed index of each mesh's first vertex."""
        return self._num_verts.cumsum(0) - self._num_verts

    def mesh_to_faces_packed_first_idx(self):
        """(N,) int64: the packed index of each mesh's first face."""
        return self._num_faces.cumsum(0) - self._num_faces

    def verts_packed_to_mesh_idx(self):
        """(sum V_n,) int64: the mesh each packed vertex belongs to."""
        return torch.repeat_interleave(torch.arange(self._N, device=self.device), self._num_verts)

    def faces_packed_to_mesh_idx(self):
        """(sum F_n,) int64: the mesh each packed face belongs to."""
        return torch.repeat_interleave(torch.arange(self._N, device=self.device), self._num_faces)

    def verts_padded_to_packed_idx(self):
        """(sum V_n,) int64: ``verts_packed()[i] == verts_padded().flatten(0, 1)[idx[i]]``."""
        return _padded_to_packed_idx(self._num_verts)

    # ---- vertices and faces ---------------------------------------------------------------------------------

    def verts_list(self):
        """List of N tensors (V_n, 3)."""
        if isinstance(self._verts, list):
            return list(self._verts)  # a copy, so callers cannot change what this batch holds
        return list(self._verts.unbind(0))

    def verts_packed(self):
        """(sum V_n, 3)."""
        if isinstance(self._verts, list):
            return self._verts[0] if len(self._verts) == 1 else torch.cat(self._verts)
        return self._verts.flatten(0, 1)

    def verts_padded(self):
        """(N, max V_n, 3), zero padded."""
        if isinstance(self._verts, list):
            return _packed_to_padded(self.verts_packed(), self._num_verts, 0.0)
        return self._verts

    def faces_packed(self):
        """(sum F_n, 3) int64 indices into ``verts_packed()``."""
        return self._faces_packed

    def _faces_packed_local(self):
        """(sum F_n, 3) int64, each face indexing its own mesh's vertices."""
        return self._faces_packed - self.mesh_to_verts_packed_first_idx()[self.faces_packed_to_mesh_idx()][:, None]

    def faces_list(self):
        """List of N int64 tensors (F_n, 3) indexing each mesh's own vertices."""
        return list(self._faces_packed_local().split(self._num_faces.tolist()))

    def faces_padded(self):
        """(N, max F_n, 3) int64 indexing each mesh's own vertices, padded with -1."""
        return _packed_to_padded(self._faces_packed_local(), self._num_faces, -1)

    def get_mesh_verts_faces(self, index):
        """Mesh ``index``'s vertices (V_n, 3) and faces (F_n, 3), as ``verts_list()[index], faces_list()[index]``."""
        if not isinstance(index, int) or not 0 <= index < self._N:
            raise ValueError(f"index must be an int in [0, {self._N}), got {index!r}")
        return self.verts_list()[index], self.faces_list()[index]

    # ---- edges ----------------------------------------------------------------------------------------------

    def _topology_cached(self, key, make):
        """``make()``, computed once for these faces: integer tables and constants that carry no gradient."""
        if key not in self._topology:
            self._topology[key] = make()
        return self._topology[key]

    def _edges_and_face_edges(self):
        """Both edge tables, computed together."""
        def make():
            V = int(self._num_verts.sum())
            # Column k of a face is its edge opposite corner k (PyTorch3D's order). Sorting each pair lets the
            # faces on both sides of an edge list it identically; the key a * V + b then numbers the edges.
            pairs = self._faces_packed[:, [[1, 2], [2, 0], [0, 1]]].sort(dim=2).values  # (F, 3, 2)
            keys, face_edges = torch.unique(pairs[..., 0] * V + pairs[..., 1], return_inverse=True)
            return torch.stack([keys // V, keys % V], dim=1), face_edges.view(-1, 3)
        return self._topology_cached("edges", make)

    def edges_packed(self):
        """(sum E_n, 2) int64: each edge once, as (a, b) with a < b packed vertex indices, sorted.

        Mesh n's vertices come before mesh n + 1's, so the sorted edges are grouped by mesh.
        """
        return self._edges_and_face_edges()[0]

    def faces_packed_to_edges_packed(self):
        """(sum F_n, 3) int64: row f holds face f's edges, column k the edge opposite its corner k."""
        return self._edges_and_face_edges()[1]

    def edges_packed_to_mesh_idx(self):
        """(sum E_n,) int64: the mesh each packed edge belongs to."""
        return self.verts_packed_to_mesh_idx()[self.edges_packed()[:, 0]]

    def num_edges_per_mesh(self):
        """(N,) int64."""
        return torch.bincount(self.edges_packed_to_mesh_idx(), minlength=self._N)

    def mesh_to_edges_packed_first_idx(self):
        """(N,) int64: the packed index of each mesh's first edge."""
        counts = self.num_edges_per_mesh()
        return counts.cumsum(0) - counts

    def laplacian_packed(self):
        """(sum V_n, sum V_n) sparse uniform Laplacian, block diagonal over the meshes (PyTorch3D's definition):

            L[i, j] = 1 / deg(i) for each neighbour j of i,   L[i, i] = -1,   0 elsewhere,

        so ``(L @ verts_packed())[i]`` is the centroid of vertex i's neighbours minus v_i (and -v_i for a vertex on
        no edge). It depends on the faces only and carries no gradient; its dtype is the vertices'.
        """
        V, dtype = int(self._num_verts.sum()), self.verts_packed().dtype

        def make():
            a, b = self.edges_packed().unbind(1)
            rows, cols = torch.cat([a, b]), torch.cat([b, a])
            degree = torch.bincount(rows, minlength=V)
            diagonal = torch.arange(V, device=self.device)
            values = torch.cat([1.0 / degree[rows].to(dtype), torch.full((V,), -1.0, dtype=dtype, device=self.device)])
            index = torch.stack([torch.cat([rows, diagonal]), torch.cat([cols, diagonal])])
            # The indices are in range by construction, so torch's invariant checks are skipped.
            return torch.sparse_coo_tensor(index, values, (V, V), check_invariants=False).coalesce()
        return self._topology_cached(("laplacian", dtype), make)

    # ---- normals and areas ----------------------------------------------------------------------------------

    def _faces_cross_packed(self):
        """(sum F_n, 3): (v1 - v0) x (v2 - v0), along the counter-clockwise normal, twice the area long."""
        v0, v1, v2 = self.verts_packed()[self._faces_packed].unbind(1)
        return torch.cross(v1 - v0, v2 - v0, dim=1)

    def faces_normals_packed(self):
        """(sum F_n, 3) unit normals (zero for degenerate faces)."""
        return F.normalize(self._faces_cross_packed(), dim=1, eps=1e-6)

    def faces_normals_list(self):
        """List of N tensors (F_n, 3)."""
        return list(self.faces_normals_packed().split(self._num_faces.tolist()))

    def faces_normals_padded(self):
        """(N, max F_n, 3), zero padded."""
        return _packed_to_padded(self.faces_normals_packed(), self._num_faces, 0.0)

    def faces_areas_packed(self):
        """(sum F_n,)."""
        return 0.5 * self._faces_cross_packed().norm(dim=1)

    def verts_normals_packed(self):
        """(sum V_n, 3) unit normals: the sum of the adjacent faces' un-normalised normals, normalised.

        The un-normalised cross product weights each face by its area, so slivers barely tilt the normal.
        Vertices used by no face get a zero normal.
        """
        cross = self._faces_cross_packed()
        verts = self.verts_packed()
        corners = self._faces_packed.flatten()  # (3F,), each face's cross product goes to its 3 corners
        summed = torch.zeros_like(verts).index_add(0, corners, cross.repeat_interleave(3, dim=0))
        return F.normalize(summed, dim=1, eps=1e-6)

    def verts_normals_list(self):
        """List of N tensors (V_n, 3)."""
        return list(self.verts_normals_packed().split(self._num_verts.tolist()))

    def verts_normals_padded(self):
        """(N, max V_n, 3), zero padded."""
        return _packed_to_padded(self.verts_normals_packed(), self._num_verts, 0.0)

    def get_bounding_boxes(self):
        """(N, 3, 2): per mesh and axis, [min, max] of the vertices; all zero for a mesh with no vertices."""
        verts = self.verts_packed()
        owner = self.verts_packed_to_mesh_idx()[:, None].expand(-1, 3)
        zeros = verts.new_zeros(self._N, 3)
        lo = zeros.scatter_reduce(0, owner, verts, "amin", include_self=False)
        hi = zeros.scatter_reduce(0, owner, verts, "amax", include_self=False)
        return torch.stack([lo, hi], dim=2)

    def sample_textures(self, fragments):
        """The textures' colours at the rasterised pixels of ``fragments``: ``self.textures.sample_textures``.

        The packed faces go along because per-vertex textures interpolate the colours of each face's corners.
        """
        if self.textures is None:
            raise ValueError("these Meshes have no textures to sample")
        return self.textures.sample_textures(fragments, faces_packed=self.faces_packed())

    # ---- new vertex positions -------------------------------------------------------------------------------

    def _verts_as_given(self, verts_packed):
        """(sum V_n, 3) vertices in the form (list or padded) this batch was built from."""
        if isinstance(self._verts, list):
            return list(verts_packed.split(self._num_verts.tolist()))
        return verts_packed.reshape(self._verts.shape)

    def _faces_as_given(self):
        return self.faces_list() if isinstance(self._verts, list) else self.faces_padded()

    def _with_verts_packed(self, verts_packed):
        """A new batch with these (sum V_n, 3) vertices and this batch's faces and textures.

        The faces were checked when this batch was built; the new batch shares them unchecked, which
        matters to an optimisation loop that calls ``update_padded`` at every step.
        """
        _check_tensor(verts_packed, 2, 3, "the new vertices", "(sum V_n, 3)", floating=True)
        if verts_packed.device != self.device:
            raise ValueError(f"the new vertices are on {verts_packed.device} but the faces on {self.device}")
        batch = copy.copy(self)
        batch._verts = self._verts_as_given(verts_packed)
        return batch

    def _offset(self, vert_offsets_packed):
        verts = self.verts_packed()
        if vert_offsets_packed.shape not in (torch.Size([3]), verts.shape):
            raise ValueError(
                f"vert_offsets_packed must have shape (3,) or {tuple(verts.shape)}, "
                f"got {tuple(vert_offsets_packed.shape)}"
            )
        return verts + vert_offsets_packed

    def offset_verts_(self, vert_offsets_packed):
        """Move the vertices by (sum V_n, 3) or (3,) offsets, replacing this batch's vertices. Returns self."""
        self._verts = self._verts_as_given(self._offset(vert_offsets_packed))
        return self

    def offset_verts(self, vert_offsets_packed):
        """A new batch with the vertices moved by (sum V_n, 3) or (3,) offsets; gradients reach the offsets."""
        return self._with_verts_packed(self._offset(vert_offsets_packed))

    def _scaled(self, scale):
        scale = torch.as_tensor(scale, device=self.device)
        if scale.shape not in (torch.Size([]), torch.Size([self._N])):
            raise ValueError(f"scale must be a number or have shape ({self._N},), got {tuple(scale.shape)}")
        return self.verts_packed() * scale.expand(self._N)[self.verts_packed_to_mesh_idx()][:, None]

    def scale_verts_(self, scale):
        """Scale each mesh's vertices by a number or (N,) factors, replacing the vertices. Returns self."""
        self._verts = self._verts_as_given(self._scaled(scale))
        return self

    def scale_verts(self, scale):
        """A new batch with each mesh's vertices scaled by a number or (N,) factors."""
        return self._with_verts_packed(self._scaled(scale))

    def update_padded(self, new_verts_padded):
        """A new batch with vertices taken from (N, max V_n, 3) ``new_verts_padded`` (padding rows ignored)."""
        if new_verts_padded.shape != (self._N, int(self._num_verts.max()) if self._N else 0, 3):
            raise ValueError(
                f"new_verts_padded must have shape {tuple(self.verts_padded().shape)}, "
                f"got {tuple(new_verts_padded.shape)}"
            )
        return self._with_verts_packed(_padded_to_packed(new_verts_padded, self._num_verts))

    # ---- copies, devices and batch manipulation -------------------------------------------------------------

    def _apply(self, method, *args):
        """A new batch with ``tensor.method(*args)`` applied to every tensor and ``textures.method(*args)``."""
        call = lambda x: getattr(x, method)(*args)  # noqa: E731
        verts = list(map(call, self._verts)) if isinstance(self._verts, list) else call(self._verts)
        faces = self._faces_as_given()
        faces = list(map(call, faces)) if isinstance(faces, list) else call(faces)
        return Meshes(verts, faces, None if self.textures is None else call(self.textures))

    def clone(self):
        """A copy with its own tensors (still differentiable with respect to this batch's vertices)."""
        return self._apply("clone")

    def detach(self):
        """A copy cut from the autograd graph, sharing storage with this batch."""
        return self._apply("detach")

    def to(self, device, copy=False):
        """This batch on ``device``: self when it is already there (unless ``copy``), else a new batch."""
        if not copy and self.device == torch.device(device):
            return self
        return self._apply("to", device)

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def _select(self, indices, textures):
        verts, faces = self.verts_list(), self.faces_list()
        return Meshes([verts[i] for i in indices], [faces[i] for i in indices], textures)

    def __getitem__(self, index):
        """A new batch of the meshes picked by an int, slice, list, or int/bool tensor (always a batch)."""
        indices = _index_list(index, self._N)
        return self._select(indices, None if self.textures is None else self.textures[indices])

    def extend(self, N):
        """A new batch with each mesh repeated N times in a row: [m0, m0, ..., m1, m1, ...]."""
        if not isinstance(N, int) or N < 1:
            raise ValueError(f"N must be a positive int, got {N!r}")
        indices = torch.arange(self._N).repeat_interleave(N).tolist()
        return self._select(indices, None if self.textures is None else self.textures.extend(N))


def join_meshes_as_batch(meshes, include_textures=True):
    """One ``Meshes`` holding every mesh of every batch in ``meshes`` (a list of ``Meshes``), in order.

    Textures are joined with the first batch's ``join_batch`` when every batch has textures of one type
    (ValueError if only some have them); with ``include_textures=False`` they are dropped.
    """
    if isinstance(meshes, Meshes) or not all(isinstance(m, Meshes) for m in meshes):
        raise ValueError("join_meshes_as_batch expects a list of Meshes")
    verts = [v for m in meshes for v in m.verts_list()]
    faces = [f for m in meshes for f in m.faces_list()]
    textures = [m.textures for m in meshes]
    if not include_textures or all(t is None for t in textures):
        return Meshes(verts, faces)
    if any(type(t) is not type(textures[0]) for t in textures):
        raise ValueError(
            "cannot join meshes whose textures differ in type (or are missing): "
            f"{sorted({type(t).__name__ for t in textures})}"
        )
    return Meshes(verts, faces, textures[0].join_batch(textures[1:]))


def join_meshes_as_scene(meshes, include_textures=True):
    """One mesh made of every mesh of ``meshes`` (a ``Meshes``, or a list of them, joined first with
    ``join_meshes_as_batch``): the batch's packed vertices and faces become a batch of one.

    Textures are joined into one: ``TexturesVertex`` features are concatenated; ``TexturesUV`` maps are laid side
    by side in one (H, N W, C) map and each mesh's UVs moved onto its own part, which reads the same texels as
    before when ``align_corners=True`` and every UV lies in [0, 1] (else ValueError: a lookup could stray into
    the next map). ``include_textures=False`` drops them.
    """
    if not isinstance(meshes, Meshes):
        meshes = join_meshes_as_batch(meshes, include_textures)
    if len(meshes) == 1:
        return meshes
    textures = meshes.textures if include_textures else None
    return Meshes([meshes.verts_packed()], [meshes.faces_packed()],
                  None if textures is None else _join_textures_as_scene(textures))


def _join_textures_as_scene(textures):
    """The textures of a batch as the textures of one mesh whose faces are the batch's packed faces."""
    from lib3dr.renderer.textures import TexturesUV, TexturesVertex  # imported here: lib3dr.renderer.textures imports this module

    if isinstance(textures, TexturesVertex):
        return TexturesVertex([textures.verts_features_packed()])
    uvs = textures.verts_uvs_list() if isinstance(textures, TexturesUV) else []
    if not (uvs and textures.align_corners and all(((uv >= 0) & (uv <= 1)).all() for uv in uvs)):
        raise ValueError("join_meshes_as_scene joins TexturesVertex, and TexturesUV with align_corners=True and "
                         "UVs in [0, 1]; pass include_textures=False to drop other textures")
    maps = textures.maps_padded()
    N, H, W, C = maps.shape
    # With align_corners=True, u = x / (W - 1) is texel column x; map n's column x is the atlas's n W + x.
    verts_uvs = torch.cat([torch.stack([(n * W + uv[:, 0] * (W - 1)) / (N * W - 1), uv[:, 1]], dim=1)
                           for n, uv in enumerate(uvs)])
    first_uv = torch.tensor([0] + [len(uv) for uv in uvs[:-1]], device=maps.device).cumsum(0)
    faces_uvs = torch.cat([f + o for f, o in zip(textures.faces_uvs_list(), first_uv)])
    atlas = maps.permute(1, 0, 2, 3).reshape(H, N * W, C)
    return TexturesUV([atlas], [faces_uvs], [verts_uvs], textures.padding_mode, textures.align_corners,
                      textures.sampling_mode)


def _check_tensor(t, dim, last, name, shape, floating):
    """Raise ValueError unless t is a ``dim``-D tensor whose last size is ``last`` and whose dtype fits."""
    if not torch.is_tensor(t):
        raise ValueError(f"{name} must be a tensor of shape {shape}, got {type(t).__name__}")
    if t.dim() != dim or t.shape[-1] != last:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
    if floating and not t.is_floating_point():
        raise ValueError(f"{name} must be a floating point tensor, got {t.dtype}")
    if not floating and (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool):
        raise ValueError(f"{name} must be an integer tensor, got {t.dtype}")


def _common_device(tensors):
    """The device all ``tensors`` are on (CPU for none); ValueError if they are spread over several."""
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise ValueError(f"all verts and faces must be on one device, got {sorted(map(str, devices))}")
    return devices.pop() if devices else torch.device("cpu")
