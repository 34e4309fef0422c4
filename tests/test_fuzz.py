"""Property-based tests (hypothesis): random OBJ text into load_obj, random scenes into the rasterizer.

`make test` runs a bounded number of examples (the "ci" profile); `make fuzz` runs many more
(HYPOTHESIS_PROFILE=fuzz).
"""
import math
import os
import warnings

import pytest
import torch
from helpers import (COMPILED, DEVICE, assert_within, forward_tolerance, fragment_error,
                     silhouette_tolerance)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lib3dr.io import load_obj
from lib3dr.renderer.blending import silhouette_from_dists
from lib3dr.renderer.rasterizer import rasterize_meshes
from lib3dr.renderer.silhouette import soft_silhouette_ndc
from lib3dr.structures import Meshes

settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=3000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# ---------------------------------------------------------------------------------------------
# OBJ text

number = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                   st.integers(-10**12, 10**12).map(str),
                   st.sampled_from(["", "1e", "--1", "0x1F", "nan", "1,5", "½", "١"]))
index = st.one_of(st.integers(-12, 12), st.integers(-10**15, 10**15)).map(str)
corner = st.one_of(index, st.tuples(index, index).map("/".join), st.tuples(index, index, index).map("/".join),
                   st.tuples(index, index).map(lambda t: f"{t[0]}//{t[1]}"), st.sampled_from(["/", "//", "a/b"]))
line = st.one_of(
    st.lists(number, min_size=0, max_size=5).map(lambda xs: "v " + " ".join(xs)),
    st.lists(number, min_size=0, max_size=4).map(lambda xs: "vt " + " ".join(xs)),
    st.lists(number, min_size=0, max_size=4).map(lambda xs: "vn " + " ".join(xs)),
    st.lists(corner, min_size=0, max_size=6).map(lambda xs: "f " + " ".join(xs)),
    st.sampled_from(["mtllib missing.mtl", "usemtl nothing", "o thing", "g group", "s off", "# comment",
                     "", "   ", "\t", "l 1 2", "p 1"]),
    st.text(max_size=30),
)
valid_vertex = st.tuples(*[st.floats(-10, 10, allow_nan=False)] * 3).map(lambda v: "v %r %r %r" % v)


@given(lines=st.lists(st.one_of(line, valid_vertex), max_size=25), crlf=st.booleans())
def test_load_obj_loads_or_names_the_line(tmp_path_factory, lines, crlf):
    path = tmp_path_factory.mktemp("obj") / "fuzz.obj"
    path.write_bytes(("\r\n" if crlf else "\n").join(lines).encode("utf-8", "surrogatepass"))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            verts, faces, _ = load_obj(path)
    except ValueError as error:
        assert "fuzz.obj" in str(error)
        return
    assert verts.dim() == 2 and verts.shape[1] == 3 and verts.dtype == torch.float32
    if len(faces.verts_idx):
        assert faces.verts_idx.min() >= 0 and faces.verts_idx.max() < len(verts)


@given(data=st.binary(max_size=200))
def test_load_obj_survives_arbitrary_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("obj") / "bytes.obj"
    path.write_bytes(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            load_obj(path)
    except ValueError as error:
        assert "bytes.obj" in str(error)


# ---------------------------------------------------------------------------------------------
# Random scenes into the rasterizer

@st.composite
def scenes(draw):
    """1-3 meshes of 0-12 random faces in NDC (some degenerate, some behind the camera)."""
    meshes = []
    for _ in range(draw(st.integers(1, 3))):
        V = draw(st.integers(3, 9))
        F = draw(st.integers(0, 12))
        seed = draw(st.integers(0, 2**31 - 1))
        g = torch.Generator().manual_seed(seed)
        scale = draw(st.sampled_from([0.3, 1.0, 3.0]))
        verts = torch.cat([(torch.rand(V, 2, generator=g) * 2 - 1) * scale,
                           torch.rand(V, 1, generator=g) * 4 - 0.5], dim=1)
        if draw(st.booleans()):
            verts[1] = verts[0]  # a repeated vertex: degenerate faces
        faces = torch.randint(0, V, (F, 3), generator=g)
        meshes.append((verts, faces))
    size = draw(st.sampled_from([(8, 8), (9, 13), (16, 7)]))
    K = draw(st.sampled_from([1, 2, 5]))
    blur = draw(st.sampled_from([0.0, 1e-4, 1e-2]))
    return meshes, size, K, blur, draw(st.booleans()), draw(st.booleans())


@pytest.mark.parametrize("backend", COMPILED)
@given(scene=scenes())
def test_random_scenes_are_valid_and_backends_agree(backend, scene):
    meshes, size, K, blur, perspective, cull = scene
    mesh = Meshes(verts=[v for v, _ in meshes], faces=[f for _, f in meshes])
    out = {}
    for name in ("torch", backend):
        out[name] = rasterize_meshes(mesh.to(DEVICE[name]), image_size=size, faces_per_pixel=K,
                                     blur_radius=blur, perspective_correct=perspective,
                                     cull_backfaces=cull, backend=name)
    pix_to_face, zbuf, bary, dists = out["torch"]
    N, (H, W) = len(meshes), size
    assert pix_to_face.shape == (N, H, W, K) and bary.shape == (N, H, W, K, 3)
    first = mesh.mesh_to_faces_packed_first_idx()
    counts = mesh.num_faces_per_mesh()
    covered = pix_to_face >= 0
    for n in range(N):  # every index names a face of the pixel's own mesh
        p = pix_to_face[n][covered[n]]
        assert ((p >= first[n]) & (p < first[n] + counts[n])).all()
    # Padding is -1, and the hits come first.
    assert (zbuf[~covered] == -1).all() and (dists[~covered] == -1).all() and (bary[~covered] == -1).all()
    assert (covered[..., 1:] <= covered[..., :-1]).all()
    assert torch.isfinite(zbuf).all() and torch.isfinite(bary).all() and torch.isfinite(dists).all()
    # The faces chosen have no tolerance: geometry.h does the reference's IEEE operations in the
    # same order. The values are asked to be within each one's rounding of the exact ones,
    # c u (s_f + |f|) with the sensitivity s_f (large for the slivers random faces make).
    assert torch.equal(out[backend][0].cpu(), pix_to_face)
    errors = fragment_error(mesh.verts_packed(), mesh.faces_packed(), pix_to_face, size,
                            blur_radius=blur, perspective_correct=perspective, cull_backfaces=cull)
    for name, a, b, error in zip(["zbuf", "bary_coords", "dists"], out[backend][1:],
                                 out["torch"][1:], errors):
        assert_within(a, b, forward_tolerance(error, torch.float32), name)


@pytest.mark.parametrize("backend", COMPILED)
@given(scene=scenes(), sigma=st.sampled_from([1e-6, 1e-4, 1e-2]))
def test_random_fused_silhouettes_are_finite_with_finite_gradients(backend, scene, sigma):
    meshes, size, K, _, perspective, cull = scene
    verts = [v.to(DEVICE[backend], copy=True).requires_grad_() for v, _ in meshes]
    mesh = Meshes(verts=verts, faces=[f.to(DEVICE[backend]) for _, f in meshes])
    alpha = soft_silhouette_ndc(mesh, sigma, image_size=size, faces_per_pixel=K,
                                perspective_correct=perspective, cull_backfaces=cull,
                                backend=backend)
    assert alpha.shape == (len(meshes), *size)
    assert torch.isfinite(alpha).all() and (alpha >= 0).all() and (alpha <= 1).all()
    grads = torch.autograd.grad(alpha.square().sum(), verts, allow_unused=True)
    assert all(g is None or torch.isfinite(g).all() for g in grads)
    fragments = rasterize_meshes(mesh, image_size=size, faces_per_pixel=K,
                                 blur_radius=math.log(1 / 1e-4 - 1) * sigma,
                                 perspective_correct=perspective, cull_backfaces=cull,
                                 clip_barycentric_coords=True, backend=backend)
    # The same faces and the same distances (one function of geometry.h on one NDC tensor),
    # blended in another order: the blend's own rounding.
    assert_within(alpha, silhouette_from_dists(fragments[0], fragments[3], sigma),
                  silhouette_tolerance(K, torch.float32), "alpha")
