"""Wavefront OBJ files, with MTL materials and texture images: ``load_obj``, ``load_objs_as_meshes``,
``save_obj``.

The return values follow PyTorch3D. An OBJ file is a list of statements, one a line::

    v 0.5 0.0 1.0          # a vertex position
    vt 0.25 0.75           # a texture (UV) coordinate
    vn 0.0 0.0 1.0         # a normal
    usemtl red             # faces from here on use material "red" from the mtllib file
    f 1/1/1 2/2/1 3/3/1    # a face: vertex/uv/normal indices, 1-based (negative: counted back from here)

Parsing is vectorised: the lines are split once, grouped by keyword, and each group's numbers are converted by
numpy in one call. Only when that fails are the lines of the group scanned one by one, to report where.
Errors are ValueErrors that start with ``file:line:``, like a compiler's.

Not supported: line continuations (``\\``), free-form curves and surfaces, texture options in ``map_Kd`` lines,
texture atlases (``create_texture_atlas``); ``l`` and ``p`` elements are ignored like other unknown statements.
"""
import os
import warnings
from typing import NamedTuple, Optional

import imageio.v3 as iio
import numpy as np
import torch

from lib3dr.structures import Meshes, join_meshes_as_batch
from lib3dr.renderer.textures import TexturesUV


class Faces(NamedTuple):
    """The faces returned by ``load_obj`` (after fan triangulation of polygons); F triangles."""

    verts_idx: torch.Tensor  # (F, 3) int64 into verts
    normals_idx: torch.Tensor  # (F, 3) int64 into aux.normals, -1 for faces without normals
    textures_idx: torch.Tensor  # (F, 3) int64 into aux.verts_uvs, -1 for faces without UVs
    materials_idx: torch.Tensor  # (F,) int64 into the materials in order of first use, -1 before any usemtl


class Properties(NamedTuple):
    """The ``aux`` output of ``load_obj``."""

    normals: Optional[torch.Tensor]  # (Vn, 3), None when the file has no vn
    verts_uvs: Optional[torch.Tensor]  # (T, 2), None when the file has no vt
    material_colors: Optional[dict]  # name -> {"ambient_color": (3,), "diffuse_color": (3,), ...}
    texture_images: Optional[dict]  # name -> (H, W, 3) float32 in [0, 1]
    texture_atlas: None  # not supported; present so PyTorch3D code can read it


def _fail(name, line_idx, message):
    """Raise ValueError "name:line: message", ``line_idx`` being the 0-based index of the line."""
    raise ValueError(f"{name}:{line_idx + 1}: {message}")


def _read_text(f):
    """(text, name for messages, directory that relative material paths start from) of a path or open file."""
    if isinstance(f, (str, os.PathLike)):
        name = os.fspath(f)
        with open(name, "rb") as handle:
            data = handle.read()
    else:
        data = f.read()
        name = str(getattr(f, "name", "<file>"))
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    return data, name, os.path.dirname(name)


def _tokenize(text):
    """The tokens of each line, comments removed. Splitting on "\\n" alone keeps line numbers what editors show;
    the "\\r" of CRLF files goes with the other whitespace."""
    return [line.split("#", 1)[0].split() for line in text.split("\n")]


def _numbers(name, tokens, line_idx, keyword, width):
    """(len(line_idx), width) float32 array of the first ``width`` numbers of each of these lines."""
    rows = [tokens[i][1 : width + 1] for i in line_idx]
    short = np.flatnonzero(np.array([len(row) for row in rows], dtype=np.int64) < width)
    if short.size:
        _fail(name, line_idx[short[0]], f"'{keyword}' needs {width} numbers, got {len(rows[short[0]])}")
    try:
        with np.errstate(over="ignore"):  # numbers too big for float32 become inf, reported below
            values = np.array(rows, dtype=np.float32).reshape(len(rows), width)
    except ValueError:
        for i, row in zip(line_idx, rows):
            for token in row:
                try:
                    float(token)
                except ValueError:
                    _fail(name, i, f"bad number {token!r} in '{keyword}' statement")
        raise
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        i = line_idx[np.flatnonzero(~finite)[0]]
        _fail(name, i, f"non-finite number in '{keyword}' statement: {' '.join(tokens[i][1:])}")
    return values


def _indices(name, strings, corner_line, label):
    """int64 array of the index strings of face corners, ``corner_line`` giving each corner's line."""
    try:
        return np.array(strings, dtype=np.int64)
    except (ValueError, OverflowError):
        for i, s in zip(corner_line, strings):
            try:
                np.int64(s)
            except (ValueError, OverflowError):
                _fail(name, i, f"bad {label} {s!r}")
        raise


def _corner_indices(name, strings, corner_line, defined_lines, label, plural):
    """0-based int64 indices (-1 where absent) and the mask of present ones, from face corners' index strings.

    OBJ indices are 1-based and a negative one counts back from the face's line: -1 is the last item defined
    above it. Positive ones may point below the face (some exporters write that), so they are checked against
    the file's total.
    """
    present = np.array([s != "" for s in strings], dtype=bool)
    idx = _indices(name, [s or "0" for s in strings], corner_line, label)
    before = np.searchsorted(defined_lines, corner_line)
    zero_based = np.where(idx > 0, idx - 1, before + idx)
    bad = present & ((idx == 0) | (zero_based < 0) | (zero_based >= len(defined_lines)))
    if bad.any():
        k = np.flatnonzero(bad)[0]
        count = len(defined_lines) if idx[k] > 0 else before[k]
        _fail(name, corner_line[k], f"{label} {idx[k]} out of range ({count} {plural})")
    return np.where(present, zero_based, -1), present


def _parse_faces(name, tokens, lines_of):
    """The OBJ file's faces, fan-triangulated: numpy (verts_idx, normals_idx, textures_idx, line of each)."""
    face_lines = np.array(lines_of.get("f", []), dtype=np.int64)
    sizes = np.array([len(tokens[i]) - 1 for i in face_lines], dtype=np.int64)  # corners per polygon
    if (sizes < 3).any():
        k = np.flatnonzero(sizes < 3)[0]
        _fail(name, face_lines[k], f"a face needs at least 3 vertices, got {sizes[k]}")
    corners = [c for i in face_lines for c in tokens[i][1:]]
    corner_face = np.repeat(np.arange(len(face_lines)), sizes)
    corner_line = face_lines[corner_face]
    first_corner = np.cumsum(sizes) - sizes

    # A corner is "v", "v/vt", "v//vn" or "v/vt/vn"; the appended "//" gives every one three fields.
    too_many = np.array([c.count("/") > 2 for c in corners], dtype=bool)
    if too_many.any():
        k = np.flatnonzero(too_many)[0]
        _fail(name, corner_line[k], f"bad face vertex {corners[k]!r}")
    v_str, vt_str, vn_str = zip(*[(c + "//").split("/")[:3] for c in corners]) if corners else ((), (), ())

    def indices(strings, keyword, label, plural):
        defined_lines = np.array(lines_of.get(keyword, []), dtype=np.int64)
        return _corner_indices(name, strings, corner_line, defined_lines, label, plural)

    v, has_v = indices(v_str, "v", "face index", "vertices")
    if not has_v.all():
        k = np.flatnonzero(~has_v)[0]
        _fail(name, corner_line[k], f"bad face vertex {corners[k]!r}")
    vt, has_vt = indices(vt_str, "vt", "face texture index", "texture coordinates")
    vn, has_vn = indices(vn_str, "vn", "face normal index", "normals")
    kind = has_vt + 2 * has_vn
    mixed = kind != kind[first_corner][corner_face]  # every corner of a face must be written the same way
    if mixed.any():
        _fail(name, corner_line[np.flatnonzero(mixed)[0]],
              "inconsistent vertex formats in face (e.g. 1/2 next to 1//3)")

    # Fan triangulation: polygon (c0, c1, ..., ck) -> (c0, c1, c2), (c0, c2, c3), ...
    tris = sizes - 2
    tri_face = np.repeat(np.arange(len(face_lines)), tris)
    step = np.arange(len(tri_face)) - np.repeat(np.cumsum(tris) - tris, tris)
    start = first_corner[tri_face]
    tri = np.stack([start, start + step + 1, start + step + 2], axis=1)
    return v[tri], vn[tri], vt[tri], face_lines[tri_face]


def _read_image(path):
    """(H, W, 3) float32 in [0, 1]; grey images are repeated to RGB and alpha is dropped (as PIL's "RGB")."""
    image = np.atleast_3d(iio.imread(path))
    if image.shape[2] < 3:
        image = image[..., :1].repeat(3, axis=2)
    scale = np.iinfo(image.dtype).max if np.issubdtype(image.dtype, np.integer) else 1.0
    return torch.from_numpy(image[..., :3].astype(np.float32) / np.float32(scale))


_COLORS = {"Ka": "ambient_color", "Kd": "diffuse_color", "Ks": "specular_color", "Ns": "shininess"}


def _parse_mtl(path):
    """({material: {property: tensor}}, {material: texture image path}) of one MTL file."""
    text, _, directory = _read_text(path)
    tokens = _tokenize(text)
    colors, maps, current = {}, {}, None
    for i, (line, toks) in enumerate(zip(text.split("\n"), tokens)):
        if not toks:
            continue
        if toks[0] == "newmtl":
            current = " ".join(toks[1:])
            colors[current] = {}
        elif current is not None and toks[0] in _COLORS:
            width = 1 if toks[0] == "Ns" else 3
            colors[current][_COLORS[toks[0]]] = torch.from_numpy(_numbers(path, tokens, [i], toks[0], width)[0])
        elif current is not None and toks[0] == "map_Kd" and len(toks) > 1:
            # The file name is the rest of the line, so names with spaces work.
            maps[current] = os.path.join(directory, line.split("#", 1)[0].split(None, 1)[1].strip())
    return colors, maps


def _load_materials(name, directory, mtl_files, material_names, device):
    """(material_colors, texture_images) of the used materials, or (None, None) when no MTL file could be read."""
    if not mtl_files:
        warnings.warn(f"{name}: materials are used (usemtl) but no mtllib file is named")
        return None, None
    colors, maps, found = {}, {}, False
    for mtl in mtl_files:
        path = os.path.join(directory, mtl)
        if not os.path.isfile(path):
            warnings.warn(f"{name}: material file {path} not found; loading the mesh without its materials")
            continue
        found = True
        file_colors, file_maps = _parse_mtl(path)
        colors.update(file_colors)
        maps.update(file_maps)
    if not found:
        return None, None
    images = {}
    for material in material_names:
        if material not in maps:
            continue
        if os.path.isfile(maps[material]):
            images[material] = _read_image(maps[material]).to(device)
        else:
            warnings.warn(f"{name}: texture image {maps[material]} of material {material!r} not found")
    used_colors = {m: {k: v.to(device) for k, v in colors[m].items()} for m in material_names if m in colors}
    return used_colors, images


def load_obj(f, load_textures=True, device="cpu"):
    """Load a mesh from an OBJ file, with its materials and texture images when ``load_textures``.

    Polygons are split into triangles as a fan around their first vertex, which keeps their winding.

    Args:
        f: a path (str or pathlib.Path) or an open file; material files are looked up next to it.
        load_textures: read the MTL files and texture images named by the OBJ file.
        device: where the returned tensors live.
    Returns:
        ``(verts, faces, aux)``: verts (V, 3) float32; ``faces`` a ``Faces`` (verts_idx, normals_idx and
        textures_idx (F, 3) int64, -1 where a face has no normals/UVs, and materials_idx (F,) int64, -1 where a
        face has no material); ``aux`` a ``Properties`` (normals (Vn, 3) or None, verts_uvs (T, 2) or None,
        material_colors and texture_images dicts keyed by material name, or None when no MTL file was read or
        ``load_textures`` is False, and texture_atlas None).
    Raises:
        ValueError ``"file:line: message"`` on a malformed line, an index out of range or a non-finite number.
    """
    text, name, directory = _read_text(f)
    tokens = _tokenize(text)
    lines_of = {}  # keyword -> the indices of its lines, in file order
    for i, toks in enumerate(tokens):
        if toks:
            lines_of.setdefault(toks[0], []).append(i)

    verts = _numbers(name, tokens, lines_of.get("v", []), "v", 3)
    normals = _numbers(name, tokens, lines_of.get("vn", []), "vn", 3)
    verts_uvs = _numbers(name, tokens, lines_of.get("vt", []), "vt", 2)
    verts_idx, normals_idx, textures_idx, face_lines = _parse_faces(name, tokens, lines_of)
    mtl_files, material_names, materials_idx = _face_materials(name, tokens, lines_of, face_lines)
    material_colors = texture_images = None
    if load_textures and material_names:
        material_colors, texture_images = _load_materials(name, directory, mtl_files, material_names, device)

    as_tensor = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
    faces = Faces(as_tensor(verts_idx), as_tensor(normals_idx), as_tensor(textures_idx), as_tensor(materials_idx))
    aux = Properties(
        normals=as_tensor(normals) if len(normals) else None,
        verts_uvs=as_tensor(verts_uvs) if len(verts_uvs) else None,
        material_colors=material_colors,
        texture_images=texture_images,
        texture_atlas=None,
    )
    return as_tensor(verts), faces, aux


def _face_materials(name, tokens, lines_of, face_lines):
    """The MTL files named (``mtllib``), the materials in order of first use (``usemtl``), and each
    face's material index (-1 above the first ``usemtl``)."""
    usemtl_lines = lines_of.get("usemtl", [])
    mtl_files = []
    for i in lines_of.get("mtllib", []):
        if len(tokens[i]) < 2:
            _fail(name, i, "mtllib needs a file name")
        mtl_files += tokens[i][1:]
    for i in usemtl_lines:
        if len(tokens[i]) < 2:
            _fail(name, i, "usemtl needs a material name")
    used = [" ".join(tokens[i][1:]) for i in usemtl_lines]
    number_of = {m: k for k, m in enumerate(dict.fromkeys(used))}
    # Material of each usemtl line, after a leading -1 for faces above the first usemtl.
    material_of = np.array([-1] + [number_of[m] for m in used], dtype=np.int64)
    materials_idx = material_of[np.searchsorted(np.array(usemtl_lines, dtype=np.int64), face_lines)]
    return mtl_files, list(number_of), materials_idx


def load_objs_as_meshes(files, device=None, load_textures=True):
    """Load OBJ files into one ``Meshes`` batch, in order.

    A mesh gets a ``TexturesUV`` (its first material's texture image, ``faces.textures_idx`` and
    ``aux.verts_uvs``) when it has a texture image and every face has UVs; otherwise it has no textures.
    Joining meshes with and without textures raises ValueError (see ``join_meshes_as_batch``).
    """
    meshes = []
    for f in files:
        verts, faces, aux = load_obj(f, load_textures=load_textures)
        textures = None
        if aux.texture_images and aux.verts_uvs is not None and bool((faces.textures_idx >= 0).all()):
            image = next(iter(aux.texture_images.values()))
            textures = TexturesUV(
                maps=image[None].to(device),
                faces_uvs=[faces.textures_idx.to(device)],
                verts_uvs=[aux.verts_uvs.to(device)],
            )
        meshes.append(Meshes([verts.to(device)], [faces.verts_idx.to(device)], textures))
    return meshes[0] if len(meshes) == 1 else join_meshes_as_batch(meshes)


def save_obj(f, verts, faces, decimal_places=None, *, verts_uvs=None, faces_uvs=None, texture_map=None):
    """Write a mesh to an OBJ file that ``load_obj`` reads back.

    With ``verts_uvs`` (T, 2), ``faces_uvs`` (F, 3) int and ``texture_map`` (H, W, 3) in [0, 1] (all three or
    none), also writes ``<name>.mtl`` and ``<name>.png`` next to the file; ``f`` must then be a path. The UV
    arguments are keyword-only because PyTorch3D has a ``path_manager`` argument in that position.

    Args:
        f: a path (str or pathlib.Path) or a file open for writing text.
        verts: (V, 3) float.
        faces: (F, 3) int, 0-based.
        decimal_places: digits after the decimal point (default: 6, as "%f").
    """
    verts, faces = _checked(verts, "verts", (None, 3)), _checked(faces, "faces", (None, 3))
    _check_range(faces, len(verts), "faces", "verts")
    given = [a is not None for a in (verts_uvs, faces_uvs, texture_map)]
    if any(given) and not all(given):
        raise ValueError("give verts_uvs, faces_uvs and texture_map together, or none of them")
    textured = all(given)
    if textured:
        if not isinstance(f, (str, os.PathLike)):
            raise ValueError("saving a texture needs f to be a path, to name the .mtl and .png files")
        verts_uvs = _checked(verts_uvs, "verts_uvs", (None, 2))
        faces_uvs = _checked(faces_uvs, "faces_uvs", (None, 3))
        _check_range(faces_uvs, len(verts_uvs), "faces_uvs", "verts_uvs")
        if faces_uvs.shape != faces.shape:
            raise ValueError(f"faces_uvs must have the shape of faces {faces.shape}, got {faces_uvs.shape}")
        texture_map = _checked(texture_map, "texture_map", (None, None, 3))
        base = os.path.splitext(os.fspath(f))[0]
        stem = os.path.basename(base)
        iio.imwrite(base + ".png", (np.clip(texture_map, 0, 1) * 255).round().astype(np.uint8))
        with open(base + ".mtl", "w") as mtl:
            mtl.write(f"newmtl mesh\nmap_Kd {stem}.png\nKa 1.0 1.0 1.0\nKd 1.0 1.0 1.0\nKs 0.0 0.0 0.0\nNs 10.0\n")

    number = "%f" if decimal_places is None else f"%.{decimal_places}f"
    handle = open(f, "w") if isinstance(f, (str, os.PathLike)) else f
    try:
        if textured:
            handle.write(f"mtllib {stem}.mtl\nusemtl mesh\n")
        np.savetxt(handle, verts, fmt=f"v {number} {number} {number}")
        if textured:
            np.savetxt(handle, verts_uvs, fmt=f"vt {number} {number}")
            corners = np.stack([faces, faces_uvs], axis=2).reshape(-1, 6)  # v0 vt0 v1 vt1 v2 vt2
            np.savetxt(handle, corners + 1, fmt="f %d/%d %d/%d %d/%d")
        else:
            np.savetxt(handle, faces + 1, fmt="f %d %d %d")
    finally:
        if handle is not f:
            handle.close()


def _checked(t, name, shape):
    """A tensor or array as a numpy array, ValueError unless it has ``shape`` (None: any size)."""
    a = t.detach().cpu().numpy() if torch.is_tensor(t) else np.asarray(t)
    if a.ndim != len(shape) or any(want not in (None, have) for want, have in zip(shape, a.shape)):
        raise ValueError(f"{name} must have shape {tuple('*' if n is None else n for n in shape)}, got {a.shape}")
    return a


def _check_range(faces, count, name, target):
    """ValueError unless every entry of the index array ``faces`` is in [0, count)."""
    if faces.size and (faces.min() < 0 or faces.max() >= count):
        raise ValueError(f"{name} must index the {count} {target}, got indices {faces.min()}..{faces.max()}")
