"""Texture containers that travel with a ``Meshes`` batch (PyTorch3D's names and conventions).

* ``TexturesVertex``: a feature vector (e.g. an RGB colour) per vertex.
* ``TexturesUV``: an image per mesh plus UV coordinates; each face corner picks a UV point in the image.

Both hold one entry per mesh, in the same list/padded forms as ``Meshes``, and follow the batch through
indexing, ``extend``, ``clone``, ``detach``, ``to`` and ``join_meshes_as_batch``.

Turning textures into colours at rasterised pixels is each class's ``sample_textures(fragments,
faces_packed)`` method, which ``Meshes.sample_textures(fragments)`` calls (PyTorch3D's protocol).
"""
import torch
import torch.nn.functional as F

from lib3dr.renderer.interpolate import (covered_by_image, interpolate_covered,
                                         interpolate_face_attributes, scatter_covered)
from lib3dr.renderer.packed import PackedFragments
from lib3dr.structures import _check_faces_in_range, _index_list, _packed_to_padded, _padded_to_packed


def _check_batch(data, dim, last, name, shape, floating):
    """Validate a list of (L_n, D) tensors or a padded (N, L, D) tensor; returns (data, per-element row counts).

    ``last`` is the required size of the last dimension, or None for any size shared by all elements.
    A padded tensor gives every element all L rows until a ``Meshes`` tells it the real counts.
    """
    if torch.is_tensor(data):
        tensors, padded = [data], True
        if data.dim() != dim + 1:
            raise ValueError(f"{name} must be a list of {shape} tensors or one padded (N, *{shape}) tensor, "
                             f"got shape {tuple(data.shape)}")
        if len(data) == 0:
            raise ValueError(f"{name} must hold at least one mesh")
    elif isinstance(data, (list, tuple)) and len(data) > 0 and all(torch.is_tensor(t) for t in data):
        tensors, padded = list(data), False
        bad = [tuple(t.shape) for t in tensors if t.dim() != dim]
        if bad:
            raise ValueError(f"{name} must be a list of {shape} tensors, got shape {bad[0]}")
    else:
        raise ValueError(f"{name} must be a non-empty list of {shape} tensors or a padded tensor")
    sizes = {t.shape[-1] for t in tensors}
    if len(sizes) != 1 or (last is not None and sizes != {last}):
        want = last or "the same for every mesh"
        raise ValueError(f"{name}: the last dimension must be {want}, got {sorted(sizes)}")
    if any(t.is_floating_point() != floating or t.dtype == torch.bool for t in tensors):
        raise ValueError(f"{name} must be {'floating point' if floating else 'integer'}, got {tensors[0].dtype}")
    if len({t.device for t in tensors}) != 1:
        raise ValueError(f"{name} must all be on one device")
    counts = [data.shape[1]] * len(data) if padded else [len(t) for t in tensors]
    return (data if padded else tensors), counts


def _device(data):
    """The device of a list of tensors or of a padded tensor."""
    return data[0].device if isinstance(data, list) else data.device


def _as_list(data, counts):
    """The first ``counts[n]`` rows of each element, as a list, whether ``data`` is a list or padded."""
    if isinstance(data, list):
        return list(data)
    return list(_padded_to_packed(data, torch.tensor(counts)).split(counts))


def _as_padded(data, counts, pad_value):
    """``data`` as a padded (N, max count, D) tensor; a padded input is returned as given."""
    if isinstance(data, list):
        return _packed_to_padded(torch.cat(data), torch.tensor(counts), pad_value)
    return data


def _bind_counts(data, counts, want, name, what):
    """Check per-mesh row counts against a mesh batch's ``want``; returns the counts the views use from now on.

    A list must match exactly. A padded tensor must be exactly as wide as the largest mesh and then takes the
    meshes' counts, since its padding rows cannot be told apart from data by looking at it.
    """
    if isinstance(data, list):
        for n, (have, need) in enumerate(zip(counts, want)):
            if have != need:
                raise ValueError(f"mesh {n} has {need} {what} but {name}[{n}] has {have} rows")
        return counts
    if data.shape[1] != max(want, default=0):
        raise ValueError(f"padded {name} has {data.shape[1]} rows per mesh but the largest mesh has "
                         f"{max(want, default=0)} {what}")
    return want


def _check_same_batch(textures, meshes):
    kind = type(textures).__name__
    if len(textures) != len(meshes):
        raise ValueError(f"{kind} holds {len(textures)} meshes but the Meshes batch has {len(meshes)}")
    if textures.device != meshes.device:
        raise ValueError(f"{kind} is on {textures.device} but the meshes are on {meshes.device}")


class _Textures:
    """What both texture classes do through their ``_apply(method, *args)``, which applies a
    tensor method to every tensor they hold."""

    def clone(self):
        return self._apply("clone")

    def detach(self):
        return self._apply("detach")

    def to(self, device):
        """These textures on ``device`` (self when already there)."""
        return self if self.device == torch.device(device) else self._apply("to", device)


class TexturesVertex(_Textures):
    """A (C,) feature per vertex, e.g. an RGB colour.

    Args:
        verts_features: a list of N float tensors (V_n, C) or a float tensor (N, V, C). A padded tensor attached
            to meshes with fewer than V vertices ignores its rows past each mesh's vertex count.
    """

    def __init__(self, verts_features):
        self._features, self._counts = _check_batch(verts_features, 2, None, "verts_features", "(V, C)", True)

    @property
    def device(self):
        return _device(self._features)

    def __len__(self):
        return len(self._counts)

    def check_shapes(self, meshes):
        """Raise ValueError unless there is one feature row per vertex of every mesh in ``meshes``.

        A padded input takes the meshes' vertex counts here, so its list and packed views skip the padding.
        """
        _check_same_batch(self, meshes)
        want = meshes.num_verts_per_mesh().tolist()
        self._counts = _bind_counts(self._features, self._counts, want, "verts_features", "vertices")

    def verts_features_list(self):
        """List of N tensors (V_n, C)."""
        return _as_list(self._features, self._counts)

    def verts_features_packed(self):
        """(sum V_n, C), in the order of ``Meshes.verts_packed()``."""
        return torch.cat(self.verts_features_list())

    def verts_features_padded(self):
        """(N, max V_n, C), zero padded (a padded input is returned as given)."""
        return _as_padded(self._features, self._counts, 0.0)

    def _apply(self, method, *args):
        return TexturesVertex([getattr(t, method)(*args) for t in self.verts_features_list()])

    def __getitem__(self, index):
        features = self.verts_features_list()
        return TexturesVertex([features[i] for i in _index_list(index, len(self))])

    def extend(self, N):
        """Each mesh's features repeated N times in a row, matching ``Meshes.extend``."""
        return self[torch.arange(len(self)).repeat_interleave(N)]

    def sample_textures(self, fragments, faces_packed):
        """Features at the fragments, interpolated from the face's vertices: ``(N, H, W, K, C)``
        (``(M, C)`` for ``PackedFragments``)."""
        face_features = self.verts_features_packed()[faces_packed]
        if isinstance(fragments, PackedFragments):
            return fragments.interpolate(face_features)
        return interpolate_face_attributes(fragments.pix_to_face, fragments.bary_coords,
                                           face_features)

    def join_batch(self, textures):
        """A new TexturesVertex with these meshes followed by those of every TexturesVertex in ``textures``."""
        if not all(isinstance(t, TexturesVertex) for t in textures):
            raise ValueError("join_batch: every texture must be a TexturesVertex")
        return TexturesVertex([f for t in [self, *textures] for f in t.verts_features_list()])


class TexturesUV(_Textures):
    """An image per mesh, looked up through UV coordinates at each face corner.

    Args:
        maps: float (N, H, W, C) tensor, or a list of N (H, W, C) tensors of one size. Stored once per mesh
            (never copied per face) for ``torch.nn.functional.grid_sample``.
        faces_uvs: list of N integer (F_n, 3) tensors or an (N, F, 3) tensor: for each face corner, a row of
            ``verts_uvs``. Row f of mesh n belongs to face f of mesh n, so there is one row per face.
        verts_uvs: list of N float (T_n, 2) tensors or an (N, T, 2) tensor of UV coordinates in [0, 1],
            u to the right and v up the image.
        padding_mode, align_corners, sampling_mode: how the sampler calls ``grid_sample``.

    Face counts and index ranges are checked when the textures are attached to a ``Meshes``.
    """

    def __init__(self, maps, faces_uvs, verts_uvs, padding_mode="border", align_corners=True,
                 sampling_mode="bilinear"):
        if isinstance(maps, (list, tuple)):
            if not maps or not all(torch.is_tensor(m) and m.shape == maps[0].shape for m in maps):
                raise ValueError("maps given as a list must be a non-empty list of (H, W, C) tensors of one size")
            maps = torch.stack(maps)
        if not torch.is_tensor(maps) or maps.dim() != 4 or not maps.is_floating_point() or len(maps) == 0:
            raise ValueError("maps must be a float (N, H, W, C) tensor or a non-empty list of (H, W, C) tensors")
        self._maps = maps
        faces_uvs, self._num_faces = _check_batch(faces_uvs, 2, 3, "faces_uvs", "(F, 3)", False)
        self._faces_uvs = [f.long() for f in faces_uvs] if isinstance(faces_uvs, list) else faces_uvs.long()
        self._verts_uvs, self._num_uvs = _check_batch(verts_uvs, 2, 2, "verts_uvs", "(T, 2)", True)
        if not len(maps) == len(self._num_faces) == len(self._num_uvs):
            raise ValueError(f"maps, faces_uvs and verts_uvs hold {len(maps)}, {len(self._num_faces)} and "
                             f"{len(self._num_uvs)} meshes")
        if len({maps.device, _device(self._faces_uvs), _device(self._verts_uvs)}) != 1:
            raise ValueError("maps, faces_uvs and verts_uvs must be on one device")
        if padding_mode not in ("zeros", "border", "reflection"):
            raise ValueError(f"padding_mode must be 'zeros', 'border' or 'reflection', got {padding_mode!r}")
        if sampling_mode not in ("bilinear", "nearest"):
            raise ValueError(f"sampling_mode must be 'bilinear' or 'nearest', got {sampling_mode!r}")
        self.padding_mode, self.align_corners, self.sampling_mode = padding_mode, align_corners, sampling_mode

    @property
    def device(self):
        return self._maps.device

    def __len__(self):
        return len(self._maps)

    def check_shapes(self, meshes):
        """Raise ValueError unless each mesh has one ``faces_uvs`` row per face, all indexing its ``verts_uvs``.

        A padded ``faces_uvs`` takes the meshes' face counts here, so its list view skips the padding.
        """
        _check_same_batch(self, meshes)
        want = meshes.num_faces_per_mesh().tolist()
        self._num_faces = _bind_counts(self._faces_uvs, self._num_faces, want, "faces_uvs", "faces")
        num_uvs = torch.tensor(self._num_uvs, device=self.device)
        _check_faces_in_range(torch.cat(self.faces_uvs_list()), meshes.faces_packed_to_mesh_idx(), num_uvs,
                              "faces_uvs", "verts_uvs")

    def maps_padded(self):
        """(N, H, W, C)."""
        return self._maps

    def maps_list(self):
        """List of N tensors (H, W, C)."""
        return list(self._maps.unbind(0))

    def faces_uvs_list(self):
        """List of N integer tensors (F_n, 3)."""
        return _as_list(self._faces_uvs, self._num_faces)

    def faces_uvs_padded(self):
        """(N, max F_n, 3), padded with 0 (as PyTorch3D) so it is always safe to index with."""
        return _as_padded(self._faces_uvs, self._num_faces, 0)

    def verts_uvs_list(self):
        """List of N tensors (T_n, 2)."""
        return _as_list(self._verts_uvs, self._num_uvs)

    def verts_uvs_padded(self):
        """(N, max T_n, 2), zero padded."""
        return _as_padded(self._verts_uvs, self._num_uvs, 0.0)

    def _new(self, maps, faces_uvs, verts_uvs):
        return TexturesUV(maps, faces_uvs, verts_uvs, self.padding_mode, self.align_corners, self.sampling_mode)

    def _apply(self, method, *args):
        call = lambda t: getattr(t, method)(*args)  # noqa: E731
        faces_uvs = list(map(call, self.faces_uvs_list()))
        return self._new(call(self._maps), faces_uvs, list(map(call, self.verts_uvs_list())))

    def __getitem__(self, index):
        indices = _index_list(index, len(self))
        faces, verts = self.faces_uvs_list(), self.verts_uvs_list()
        return self._new(self._maps[indices], [faces[i] for i in indices], [verts[i] for i in indices])

    def extend(self, N):
        """Each mesh's texture repeated N times in a row, matching ``Meshes.extend``. One mesh's
        map is shared by the N copies (an expanded view), not copied N times."""
        if len(self) != 1:
            return self[torch.arange(len(self)).repeat_interleave(N)]
        return self._new(self._maps.expand(N, -1, -1, -1), self.faces_uvs_list() * N,
                         self.verts_uvs_list() * N)

    def sample_textures(self, fragments, faces_packed=None):
        """Texture colours at the fragments: ``(N, H, W, K, C)``, 0 where there is no face
        (``(M, C)`` for ``PackedFragments``).

        The UV coordinates are interpolated at the covered fragments, then looked up with one
        ``grid_sample`` call on the (N, C, H, W) maps: a map is read in place, never copied per
        face or per K. Differentiable w.r.t. the maps, the UVs and the barycentrics.
        """
        packed = isinstance(fragments, PackedFragments)
        N = fragments.shape[0] if packed else fragments.pix_to_face.shape[0]
        if N != len(self):
            raise ValueError(f"fragments hold {N} images but the textures {len(self)} meshes")
        uv_offsets = torch.tensor([0] + self._num_uvs[:-1], device=self.device).cumsum(0)
        faces_uvs = torch.cat([f + o for f, o in zip(self.faces_uvs_list(), uv_offsets)])
        face_uvs = torch.cat(self.verts_uvs_list())[faces_uvs]  # (F, 3, 2)
        if packed:  # the UVs' map to grid_sample's (x, y) commutes with the interpolation
            xy = fragments.interpolate(self._grid_xy(face_uvs.to(fragments.bary_coords.dtype)))
            maps = self._maps.permute(0, 3, 1, 2).to(xy.dtype)
            first = fragments.image_starts()  # image n's fragments: xy[first[n]:first[n + 1]]
            return torch.cat([self._grid_sample(maps[n:n + 1], xy[first[n]:first[n + 1]])
                              for n in range(N)])
        uv = interpolate_covered(fragments.pix_to_face, fragments.bary_coords, face_uvs)
        texels = self._sample(self._grid_xy(uv), *covered_by_image(fragments.pix_to_face), N)
        return scatter_covered(fragments.pix_to_face, texels)

    @staticmethod
    def _grid_xy(uv):
        """grid_sample's (x, y), which run from (-1, -1) at the top-left corner, of UVs ``(..., 2)``
        whose v runs up the image."""
        return torch.stack([2 * uv[..., 0] - 1, 1 - 2 * uv[..., 1]], dim=-1)

    def _grid_sample(self, image_map, xy):
        """One (1, C, H, W) map at grid points ``xy (M, 2)``: ``(M, C)``."""
        if len(xy) == 0:
            return xy.new_zeros(0, image_map.shape[1])
        texels = F.grid_sample(image_map, xy[None, None], mode=self.sampling_mode,
                               padding_mode=self.padding_mode, align_corners=self.align_corners)
        return texels[0, :, 0].transpose(0, 1)

    def _sample(self, xy, image, slot, width, N):
        """The maps at grid points ``xy (M, 2)``, fragment i in image ``image[i]``: ``(M, C)``."""
        if N == 1:  # one image: its fragments are the grid
            grid = xy[None, None]
        else:
            grid = xy.new_zeros(N, 1, width, 2)
            grid[image, 0, slot] = xy
        maps = self._maps.permute(0, 3, 1, 2).to(grid.dtype)
        texels = F.grid_sample(maps, grid, mode=self.sampling_mode, padding_mode=self.padding_mode,
                               align_corners=self.align_corners)  # (N, C, 1, width)
        texels = texels[:, :, 0].transpose(1, 2)  # (N, width, C)
        return texels[0] if N == 1 else texels[image, slot]

    def join_batch(self, textures):
        """A new TexturesUV with these meshes followed by those of every TexturesUV in ``textures``.

        All must share the map size and the sampling settings, because the maps are stacked into one tensor.
        """
        everything = [self, *textures]
        if not all(isinstance(t, TexturesUV) for t in textures):
            raise ValueError("join_batch: every texture must be a TexturesUV")
        settings = {(t.padding_mode, t.align_corners, t.sampling_mode) for t in everything}
        if len(settings) > 1:
            raise ValueError(f"join_batch: padding_mode, align_corners or sampling_mode differ: {settings}")
        sizes = {tuple(t._maps.shape[1:]) for t in everything}
        if len(sizes) > 1:
            raise ValueError(f"join_batch: maps differ in size: {sorted(sizes)}")
        return self._new(
            torch.cat([t._maps for t in everything]),
            [f for t in everything for f in t.faces_uvs_list()],
            [v for t in everything for v in t.verts_uvs_list()],
        )
