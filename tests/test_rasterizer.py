"""The rasterizer: every backend against the PyTorch reference, hand-made cases with known answers,
gradients, the fused soft silhouette, the memory guard and bad input."""
import math

import pytest
import torch
from helpers import (
    BACKENDS, COMPILED, CUDA_NONDET_TOL, DEVICE, UNIT_ROUNDOFF, assert_within, forward_tolerance,
    fragment_error, grad_tolerance, needs_cpu, needs_cuda, silhouette_dists_grad, silhouette_terms,
    silhouette_tolerance, summation_tolerance, vertex_grad_terms)

import lib3dr
from lib3dr.renderer.cameras import FoVPerspectiveCameras
from lib3dr.renderer.blending import silhouette_from_dists
from lib3dr.renderer.compiled import check_cuda_launch, CUDA_MAX_FACES_PER_PIXEL
from lib3dr.renderer.memory import memory_estimate, RasterMemoryError, set_memory_limit
from lib3dr.renderer.rasterizer import (Fragments, MeshRasterizer, RasterizationSettings,
                                        rasterize_meshes)
from lib3dr.renderer.silhouette import soft_silhouette
from lib3dr.structures import Meshes
from lib3dr.transforms import look_at_view_transform
from lib3dr.utils import ico_sphere

F64_ULPS = 16 * UNIT_ROUNDOFF[torch.float64]  # a hand-computed float64 value: a few roundings


def triangle_soup(faces_per_mesh, dtype=torch.float32, seed=0, device="cpu"):
    """Random triangles in NDC with positive depth, one mesh per entry (0 gives an empty mesh)."""
    gen = torch.Generator().manual_seed(seed)
    verts, faces = [], []
    for count in faces_per_mesh:
        centre = torch.rand(count, 1, 3, generator=gen, dtype=torch.float64) * \
            torch.tensor([2.4, 2.4, 3.0], dtype=torch.float64) - torch.tensor([1.2, 1.2, -0.5])
        spread = torch.randn(count, 3, 3, generator=gen, dtype=torch.float64) * \
            torch.tensor([0.4, 0.4, 0.2], dtype=torch.float64)
        verts.append((centre + spread).reshape(-1, 3).to(dtype=dtype, device=device))
        faces.append(torch.arange(3 * count, device=device).reshape(-1, 3))
    return Meshes(verts=verts, faces=faces)


def one_face_mesh(v, dtype=torch.float64):
    return Meshes(verts=[torch.tensor(v, dtype=dtype)], faces=[torch.tensor([[0, 1, 2]])])


CONFIGS = [  # image_size, K, blur, perspective_correct, clip, cull
    dict(image_size=24, faces_per_pixel=1, blur_radius=0.0),
    dict(image_size=32, faces_per_pixel=10, blur_radius=0.01, clip_barycentric_coords=True),
    dict(image_size=(20, 36), faces_per_pixel=100, blur_radius=0.02, perspective_correct=True),
    dict(image_size=(36, 20), faces_per_pixel=4, blur_radius=0.005, cull_backfaces=True,
         perspective_correct=True, clip_barycentric_coords=True),
]


def rasterize_on(backend, verts, meshes, **config):
    """rasterize_meshes of ``meshes`` with the vertices ``verts`` (packed, differentiable), on the
    backend's device."""
    device = DEVICE[backend]
    mesh = Meshes(verts=list(verts.to(device).split(meshes.num_verts_per_mesh().tolist())),
                  faces=[f.to(device) for f in meshes.faces_list()])
    return rasterize_meshes(mesh, backend=backend, **config)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_backends_agree_with_reference(backend, config, dtype):
    meshes = triangle_soup([15, 0, 30, 7], dtype=dtype)
    verts = meshes.verts_packed().detach().requires_grad_()
    ref = rasterize_on("torch", verts, meshes, **config)
    out = rasterize_on(backend, verts, meshes, **config)
    assert (ref[0] >= 0).any(), "the test scene must cover some pixels"
    # The faces chosen, a discrete choice, have no tolerance: this relies on geometry.h doing the
    # reference's IEEE operations in the same order (no FMA contraction on either side), which
    # gives the same result on any IEEE machine.
    assert torch.equal(out[0].cpu(), ref[0])
    # The values are only asked to be within each one's rounding of the exact ones, c u (s_f + |f|)
    # with the sensitivity s_f (a sliver face's barycentrics are very sensitive): they hold even
    # where a compiler or a vector width changes an operation.
    errors = fragment_error(verts, meshes.faces_packed(), ref[0], **config)
    for name, r, o, error in zip(["zbuf", "bary_coords", "dists"], ref[1:], out[1:], errors):
        assert_within(o, r, forward_tolerance(error, dtype), name)
    gen = torch.Generator().manual_seed(0)
    weights = [torch.randn(t.shape, generator=gen, dtype=dtype) for t in ref[1:]]
    grad_ref, = torch.autograd.grad(sum((t * w).sum() for t, w in zip(ref[1:], weights)), verts)
    grad_out, = torch.autograd.grad(
        sum((t * w.to(t.device)).sum() for t, w in zip(out[1:], weights)), verts)
    # The same terms, each computed in its own way (the kernel's backward, autograd's), summed
    # in another order (on CUDA, by atomics in no fixed order). The weights are the same
    # constants on both sides: no upstream rounding.
    terms = vertex_grad_terms(verts, meshes.faces_packed(), ref[0], grads=weights, **config)
    assert_within(grad_out, grad_ref, grad_tolerance(terms, dtype), "vertex gradient")


@pytest.mark.parametrize("config", CONFIGS)
def test_gradient_tolerance_catches_one_percent_on_one_face(config):
    # A gradient 1% wrong on the face with the most fragments (the loosest tolerance) fails the
    # comparison of test_backends_agree_with_reference, by twice its bound or more (5 to 50
    # times in these configurations).
    dtype, gen = torch.float32, torch.Generator().manual_seed(1)
    meshes = triangle_soup([15, 0, 30, 7], dtype=dtype)
    verts = meshes.verts_packed().detach().requires_grad_()
    ref = rasterize_on("torch", verts, meshes, **config)
    weights = [torch.randn(t.shape, generator=gen, dtype=dtype) for t in ref[1:]]
    face = int(ref[0][ref[0] >= 0].bincount().argmax())
    on_face = (ref[0] == face).to(dtype)
    wrong = [weights[0] * (1 + 0.01 * on_face), weights[1] * (1 + 0.01 * on_face[..., None]),
             weights[2] * (1 + 0.01 * on_face)]
    grad, = torch.autograd.grad(sum((t * w).sum() for t, w in zip(ref[1:], weights)), verts,
                                retain_graph=True)
    grad_wrong, = torch.autograd.grad(sum((t * w).sum() for t, w in zip(ref[1:], wrong)), verts)
    terms = vertex_grad_terms(verts, meshes.faces_packed(), ref[0], grads=weights, **config)
    with pytest.raises(AssertionError, match="differ by more than rounding allows"):
        assert_within(grad_wrong, grad, grad_tolerance(terms, dtype), "vertex gradient")
    excess = ((grad_wrong - grad).double().abs() / grad_tolerance(terms, dtype)).nan_to_num()
    assert excess.max() > 2


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("config", CONFIGS[1:])
def test_gradcheck(backend, config):
    meshes = triangle_soup([4, 3], dtype=torch.float64, seed=3, device=DEVICE[backend])
    counts = meshes.num_verts_per_mesh().tolist()
    faces = meshes.faces_list()
    config = dict(config, image_size=10, faces_per_pixel=min(config["faces_per_pixel"], 3))

    def render(verts):
        out = rasterize_meshes(Meshes(verts=list(verts.split(counts)), faces=faces),
                               backend=backend, **config)
        return out[1], out[2], out[3]

    verts = meshes.verts_packed().detach().requires_grad_()
    assert torch.autograd.gradcheck(render, (verts,), eps=1e-7, atol=1e-5,
                                    nondet_tol=CUDA_NONDET_TOL if backend == "cuda" else 0.0)


def test_pixel_centres_and_orientation():
    # A tiny triangle around the NDC centre of pixel (0, 0), (1 - 1/W, 1 - 1/H): +X left, +Y up,
    # so it must land in the top-left pixel.
    H, W = 8, 16
    range_x = W / H  # the shorter side (H) spans [-1, 1], the longer one [-2, 2]
    cx, cy = range_x * (1 - 1 / W), 1 - 1 / H
    mesh = one_face_mesh([[cx + 0.01, cy - 0.01, 1.0], [cx - 0.01, cy - 0.01, 1.0],
                          [cx, cy + 0.01, 1.0]])
    pix_to_face = rasterize_meshes(mesh, image_size=(H, W), faces_per_pixel=1)[0]
    assert pix_to_face[0, 0, 0, 0] == 0
    assert (pix_to_face >= 0).sum() == 1


def test_one_triangle_known_values():
    # Counter-clockwise on screen (+X left): area > 0.
    v = [[0.5, -0.5, 2.0], [-0.5, -0.5, 2.0], [0.0, 0.5, 2.0]]
    pix_to_face, zbuf, bary, dists = rasterize_meshes(one_face_mesh(v), image_size=4,
                                                      faces_per_pixel=1)
    # Pixel (2, 1) has its centre at NDC (x, y) = (1 - 3/4, 1 - 5/4) = (0.25, -0.25).
    assert pix_to_face[0, 2, 1, 0] == 0
    assert zbuf[0, 2, 1, 0].item() == pytest.approx(2.0, rel=F64_ULPS)
    # Barycentrics by hand: p = b0 v0 + b1 v1 + b2 v2 with b2 = (y + 0.5) / 1 = 0.25,
    # x = 0.5 b0 - 0.5 b1 = 0.25 and b0 + b1 = 0.75: b0 = 0.625, b1 = 0.125.
    torch.testing.assert_close(bary[0, 2, 1, 0], torch.tensor([0.625, 0.125, 0.25], dtype=torch.float64),
                               rtol=0, atol=F64_ULPS)  # edge functions of order-1 values
    # Inside, so negative: the nearest edge is v0-v2 (direction (-0.5, 1)); p - v0 = (-0.25, 0.25)
    # has cross product 0.125 with it, so the squared distance is 0.125^2 / 1.25 = 0.0125
    # (the bottom edge is farther, at 0.25^2).
    assert dists[0, 2, 1, 0].item() == pytest.approx(-0.0125, abs=F64_ULPS)  # of order-1 operands
    assert zbuf[0, 0, 0, 0] == -1 and (bary[0, 0, 0, 0] == -1).all() and dists[0, 0, 0, 0] == -1


def test_two_overlapping_faces_sorted_by_depth():
    near = [[1.0, -1.0, 1.0], [-1.0, -1.0, 1.0], [0.0, 1.0, 1.0]]
    far = [[1.0, -1.0, 3.0], [-1.0, -1.0, 3.0], [0.0, 1.0, 3.0]]
    mesh = Meshes(verts=[torch.tensor(far + near)], faces=[torch.tensor([[0, 1, 2], [3, 4, 5]])])
    pix_to_face, zbuf, _, _ = rasterize_meshes(mesh, image_size=8, faces_per_pixel=3)
    centre = pix_to_face[0, 4, 4]
    assert centre.tolist() == [1, 0, -1]  # the near face (index 1) first, then the far one
    assert zbuf[0, 4, 4].tolist() == [1.0, 3.0, -1.0]
    assert rasterize_meshes(mesh, image_size=8, faces_per_pixel=1)[0][0, 4, 4, 0] == 1


def test_pixel_exactly_on_an_edge():
    # With 4 pixels, the centres are at +-0.25 and +-0.75; put the vertical edge at x = 0.25.
    v = [[0.25, -1.0, 1.0], [0.25, 1.0, 1.0], [-1.0, 0.0, 1.0]]
    mesh = one_face_mesh(v)
    pix_to_face, _, _, dists = rasterize_meshes(mesh, image_size=4, faces_per_pixel=1)
    # Column 1 (x = 0.25) lies on the edge: not strictly inside, distance 0, not covered.
    assert (pix_to_face[0, :, 1, 0] == -1).all()
    assert (pix_to_face[0, 1:3, 2, 0] == 0).all()
    # Any blur covers it, at distance exactly 0.
    pix_to_face, _, _, dists = rasterize_meshes(mesh, image_size=4, faces_per_pixel=1, blur_radius=1e-6)
    assert pix_to_face[0, 1, 1, 0] == 0 and dists[0, 1, 1, 0] == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_degenerate_and_hidden_faces_are_not_drawn(backend):
    degenerate = [[0.5, 0.5, 1.0], [-0.5, -0.5, 1.0], [0.0, 0.0, 1.0]]  # collinear
    behind = [[1.0, -1.0, -2.0], [-1.0, -1.0, -2.0], [0.0, 1.0, -2.0]]  # z < 0
    for v in (degenerate, behind):
        out = rasterize_meshes(one_face_mesh(v).to(DEVICE[backend]), image_size=16,
                               faces_per_pixel=2, blur_radius=0.01, backend=backend)
        assert (out[0] == -1).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_mesh_in_batch_and_cull_backfaces(backend):
    ccw = [[0.5, -0.5, 1.0], [-0.5, -0.5, 1.0], [0.0, 0.5, 1.0]]
    cw = [ccw[1], ccw[0], ccw[2]]
    meshes = Meshes(verts=[torch.tensor(ccw), torch.zeros(0, 3), torch.tensor(cw)],
                    faces=[torch.tensor([[0, 1, 2]]), torch.zeros(0, 3, dtype=torch.int64),
                           torch.tensor([[0, 1, 2]])]).to(DEVICE[backend])
    drawn = rasterize_meshes(meshes, image_size=8, backend=backend)[0]
    culled = rasterize_meshes(meshes, image_size=8, cull_backfaces=True, backend=backend)[0]
    assert (drawn[1] == -1).all()
    assert (drawn[0] >= 0).any() and (drawn[2] >= 0).any()
    assert torch.equal(culled[0], drawn[0]) and (culled[2] == -1).all()


def thread_order_tolerance(grad, terms):
    """Allowed difference between two CPU gradients computed with different thread counts: the
    same float terms (one binary, one machine, the same operations on each fragment), added in
    double per thread and the threads' sums in a fixed order, so the double sums differ by
    2 n u64 S and their rounding to the gradient's dtype by an ulp."""
    return 2 * UNIT_ROUNDOFF[grad.dtype] * grad.abs() + summation_tolerance(terms, torch.float64)


@needs_cpu
def test_cpu_forward_is_independent_of_thread_count():
    meshes = triangle_soup([200, 150], seed=5)
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            verts = meshes.verts_packed().detach().requires_grad_()
            mesh = Meshes(verts=list(verts.split(meshes.num_verts_per_mesh().tolist())),
                          faces=meshes.faces_list())
            out = rasterize_meshes(mesh, image_size=48, faces_per_pixel=20, blur_radius=0.01,
                                   backend="cpu")
            alpha = silhouette_from_dists(out[0], out[3], 1e-2)
            grad, = torch.autograd.grad((out[1].sum() + alpha.sum()), verts)
            results.append((out, grad))
    finally:
        torch.set_num_threads(threads)
    (p2f, zbuf, _, dists), grad = results[0]
    grad_dists = silhouette_dists_grad(p2f, dists, 1e-2, torch.ones(p2f.shape[:3]))
    terms = vertex_grad_terms(verts, meshes.faces_packed(), p2f, 48, (torch.ones_like(zbuf), None,
                              grad_dists), blur_radius=0.01)
    for out, other in results[1:]:
        for a, b in zip(out, results[0][0]):
            assert torch.equal(a, b)  # work split by tile in a fixed round-robin: the same results
        assert_within(other, grad, thread_order_tolerance(grad, terms), "vertex gradient")


def random_fragments(dtype, seed=3):
    """(pix_to_face, dists) with -1 slots anywhere (not only at the end), a pixel without faces and
    faces so deep inside that D rounds to 1."""
    gen = torch.Generator().manual_seed(seed)
    pix_to_face = torch.randint(-1, 50, (2, 5, 7, 9), generator=gen)
    dists = torch.randn(2, 5, 7, 9, generator=gen, dtype=torch.float64).to(dtype) * 3e-3
    dists[1, ..., 0], pix_to_face[1, ..., 0] = -1.0, 7
    pix_to_face[0, 0, 0] = -1
    return pix_to_face, dists


@needs_cpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_blend_matches_the_formula(dtype):
    pix_to_face, dists = random_fragments(dtype)
    alphas, grads = [], []
    weight = torch.randn(2, 5, 7, generator=torch.Generator().manual_seed(4), dtype=dtype)
    for backend in ("cpu", "torch"):
        leaf = dists.clone().requires_grad_()
        alpha = silhouette_from_dists(pix_to_face, leaf, 1e-3, backend=backend)
        alphas.append(alpha)
        grads.append(torch.autograd.grad((alpha * weight).sum(), leaf)[0])
    compiled, formula = alphas
    assert compiled[0, 0, 0] == 0 and (compiled[1] == 1).all() and 0 < compiled[0].mean() < 1
    K = pix_to_face.shape[-1]
    # The same distances on both sides: only the blend rounds (the division by sigma included:
    # it moves log(1 - D_k) by D_k u |d_k| / sigma, which T = prod (1 - D_k) keeps below u / e).
    assert_within(compiled, formula, silhouette_tolerance(K, dtype), "alpha")
    assert (grads[0][pix_to_face < 0] == 0).all()
    # d alpha / d dists_k = -T D_k / sigma, at most 1 / sigma in size. Its relative rounding,
    # (K + c) sum_j |log(1 - D_j)| + c + u sum_j D_j |d_j| / sigma + |d_k| / sigma (see
    # silhouette_grad_error), times T D_k stays below (K + c) / e + c + (K + 1) / e <= c (K + 1):
    # the silhouette's rounding over its K factors, times |weight| / sigma.
    allowed = silhouette_tolerance(K, dtype) * weight.abs()[..., None] / 1e-3
    assert_within(grads[0], grads[1], allowed, "d alpha / d dists")
    with pytest.raises(RuntimeError, match="pix_to_face must be int64"):
        silhouette_from_dists(pix_to_face.int(), dists, 1e-3, backend="cpu")


@needs_cpu
def test_compiled_blend_gradcheck():
    pix_to_face, dists = random_fragments(torch.float64)
    dists = (dists * 20).requires_grad_()  # D away from 0 and 1 for most slots
    assert torch.autograd.gradcheck(
        lambda d: silhouette_from_dists(pix_to_face, d, 0.05, backend="cpu"), (dists,))


@pytest.mark.parametrize("backend", BACKENDS)
def test_outputs_the_loss_ignores_need_no_gradients(backend):
    # A silhouette loss uses dists only: the kernels get no zbuf/bary gradients (None), and the
    # vertex gradient equals the one with explicit zero gradients for them.
    meshes = triangle_soup([40, 30], dtype=torch.float64, seed=9, device=DEVICE[backend])
    verts = meshes.verts_packed().detach().requires_grad_()
    mesh = Meshes(verts=list(verts.split(meshes.num_verts_per_mesh().tolist())),
                  faces=meshes.faces_list())
    p2f, zbuf, bary, dists = rasterize_meshes(mesh, image_size=24, faces_per_pixel=6,
                                              blur_radius=1e-3, backend=backend)
    alpha = silhouette_from_dists(p2f, dists, 1e-3)
    only_dists, = torch.autograd.grad(alpha.sum(), verts, retain_graph=True)
    with_zeros, = torch.autograd.grad(alpha.sum() + 0 * zbuf.sum() + 0 * bary.sum(), verts)
    assert only_dists.abs().max() > 0
    # The CPU kernel's distance-only path computes the same terms another way (and CUDA sums
    # them in no fixed order): the terms' rounding and the order of their sum.
    # The upstream gradient is the same on both sides (one alpha).
    grad_dists = silhouette_dists_grad(p2f, dists, 1e-3, torch.ones(p2f.shape[:3]))
    terms = vertex_grad_terms(verts, mesh.faces_packed(), p2f, 24, (None, None, grad_dists),
                              blur_radius=1e-3)
    assert_within(only_dists, with_zeros, grad_tolerance(terms, torch.float64), "vertex gradient")


def camera_scene(dtype=torch.float32):
    mesh = ico_sphere(2)
    mesh = Meshes(verts=[v.to(dtype) for v in mesh.verts_list()], faces=mesh.faces_list())
    R, T = look_at_view_transform(3.0, 20.0, 30.0)
    return mesh, FoVPerspectiveCameras(R=R.to(dtype), T=T.to(dtype))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_silhouette_matches_unfused(backend):
    mesh, cameras = camera_scene(torch.float64)
    mesh = mesh.extend(2)
    verts = mesh.verts_packed().detach().requires_grad_()
    mesh = Meshes(verts=list(verts.split(mesh.num_verts_per_mesh().tolist())), faces=mesh.faces_list())
    sigma, K = 1e-3, 12
    settings = RasterizationSettings(image_size=40, faces_per_pixel=K,
                                     blur_radius=math.log(1 / 1e-4 - 1) * sigma, backend="torch")
    fragments = MeshRasterizer(cameras, settings)(mesh)
    unfused = silhouette_from_dists(fragments.pix_to_face, fragments.dists, sigma, backend="torch")
    device = DEVICE[backend]
    fused = soft_silhouette(mesh.to(device), cameras.clone().to(device), image_size=40,
                            sigma=sigma, faces_per_pixel=K, backend=backend)
    assert 0 < unfused.mean() < 1
    # The fused kernel (a compiled one, against the PyTorch reference's fragments) computes the
    # distances and the blend its own way: each distance's rounding divided by sigma, and the
    # blend's; the NDC vertices are allowed a camera's rounding too (see silhouette_terms).
    weight = torch.randn_like(unfused)
    _, alpha_tolerance, terms = silhouette_terms(mesh, cameras, 40, sigma, K, weight,
                                                 torch.float64)
    assert_within(fused, unfused, alpha_tolerance, "alpha")
    g_unfused, = torch.autograd.grad((unfused * weight).sum(), verts)
    g_fused, = torch.autograd.grad((fused * weight.to(device)).sum(), verts)
    assert_within(g_fused, g_unfused, grad_tolerance(terms, torch.float64), "vertex gradient")


def two_spheres(dtype):
    """Two overlapping spheres seen by one camera: pixels with front and back faces of both."""
    sphere = ico_sphere(2)
    verts = sphere.verts_packed().to(dtype)
    mesh = Meshes(verts=[torch.cat([verts, verts * 0.8 + torch.tensor([0.5, 0.2, 0.3], dtype=dtype)])],
                  faces=[torch.cat([sphere.faces_packed(), sphere.faces_packed() + len(verts)])])
    R, T = look_at_view_transform(3.5, 20.0, 30.0)
    return mesh, FoVPerspectiveCameras(R=R.to(dtype), T=T.to(dtype))


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("K", [3, 25])
def test_fused_float32_matches_unfused(backend, K):
    # float32 is what the fast kernels run (vectorized, with their own exp on the CPU). K = 3
    # keeps the 3 nearest of many faces at most covered pixels, K = 25 at a few: both ways of
    # choosing them (depth ranges, exact depths) against the fragments' sort by depth.
    mesh, cameras = two_spheres(torch.float32)
    mesh, cameras = mesh.to(DEVICE[backend]), cameras.to(DEVICE[backend])
    verts = mesh.verts_packed().detach().requires_grad_()
    mesh = mesh.update_padded(verts[None])
    sigma = 1e-3
    settings = RasterizationSettings(image_size=48, faces_per_pixel=K,
                                     blur_radius=math.log(1 / 1e-4 - 1) * sigma, backend=backend)
    fragments = MeshRasterizer(cameras, settings)(mesh)
    assert ((fragments.pix_to_face >= 0).sum(-1) == K).float().mean() > (0.3 if K == 3 else 0.01)
    unfused = silhouette_from_dists(fragments.pix_to_face, fragments.dists.double(), sigma,
                                    backend="torch")
    fused = soft_silhouette(mesh, cameras, image_size=48, sigma=sigma, faces_per_pixel=K,
                            backend=backend)
    # The unfused alpha blends the backend's float32 distances in float64; the fused kernel
    # computes the same distances, with the same function of geometry.h (nearest_edge) from the
    # same NDC tensor, and blends them in float32: only the blend rounds (its division by sigma
    # included). Distances that rounded otherwise would show here: at sigma = 1e-3 they would
    # move alpha by about 1e-4, fifty times this tolerance.
    weight = torch.randn_like(fused)
    _, alpha_tolerance, terms = silhouette_terms(mesh, cameras, 48, sigma, K, weight,
                                                 torch.float32, same_distances=True)
    assert_within(fused, unfused, alpha_tolerance, "alpha")
    g_unfused, = torch.autograd.grad((unfused * weight.double()).sum(), verts)
    g_fused, = torch.autograd.grad((fused * weight).sum(), verts)
    assert_within(g_fused, g_unfused, grad_tolerance(terms, torch.float32), "vertex gradient")


@pytest.mark.parametrize("K", [3, 25])
def test_silhouette_tolerance_catches_one_percent_on_one_face(K):
    # The gradient of test_fused_float32_matches_unfused made 1% wrong on the face with the most
    # fragments (its distances' upstream gradient times 1.01) fails that comparison: by 7.5
    # times the bound at K = 3 and 1.5 times at K = 25, where its vertices' terms are spread
    # over more faces.
    mesh, cameras = two_spheres(torch.float32)
    verts = mesh.verts_packed().detach().requires_grad_()
    sigma = 1e-3
    settings = RasterizationSettings(image_size=48, faces_per_pixel=K,
                                     blur_radius=math.log(1 / 1e-4 - 1) * sigma, backend="torch")
    fragments = MeshRasterizer(cameras, settings)(mesh.update_padded(verts[None]))
    weight = torch.randn(fragments.pix_to_face.shape[:3], generator=torch.Generator().manual_seed(2))
    grad_dists = silhouette_dists_grad(fragments.pix_to_face, fragments.dists, sigma, weight)
    face = int(fragments.pix_to_face[fragments.pix_to_face >= 0].bincount().argmax())
    wrong_dists = grad_dists * (1 + 0.01 * (fragments.pix_to_face == face))
    grad, = torch.autograd.grad((fragments.dists * grad_dists.float()).sum(), verts,
                                retain_graph=True)
    grad_wrong, = torch.autograd.grad((fragments.dists * wrong_dists.float()).sum(), verts)
    _, _, terms = silhouette_terms(mesh, cameras, 48, sigma, K, weight, torch.float32,
                                   same_distances=True)
    with pytest.raises(AssertionError, match="differ by more than rounding allows"):
        assert_within(grad_wrong, grad, grad_tolerance(terms, torch.float32), "vertex gradient")


@needs_cpu
def test_fused_silhouette_is_independent_of_thread_count():
    mesh, cameras = two_spheres(torch.float32)
    verts = mesh.verts_packed().detach().requires_grad_()
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            alpha = soft_silhouette(mesh.update_padded(verts[None]), cameras, image_size=40,
                                    sigma=1e-3, faces_per_pixel=5, backend="cpu")
            weight = torch.linspace(-1, 1, alpha.numel()).view_as(alpha)
            grad, = torch.autograd.grad((alpha * weight).sum(), verts)
            results.append((alpha, grad))
    finally:
        torch.set_num_threads(threads)
    _, _, terms = silhouette_terms(mesh, cameras, 40, 1e-3, 5, weight, torch.float32)
    alpha, grad = results[0]
    for other_alpha, other_grad in results[1:]:
        assert torch.equal(other_alpha, alpha)  # the product's order does not depend on threads
        assert_within(other_grad, grad, thread_order_tolerance(grad, terms), "vertex gradient")


@pytest.mark.parametrize("backend", COMPILED)
def test_fused_silhouette_gradcheck(backend):
    mesh = triangle_soup([3, 4], dtype=torch.float64, seed=7, device=DEVICE[backend])
    counts, faces = mesh.num_verts_per_mesh().tolist(), mesh.faces_list()
    cameras = FoVPerspectiveCameras(R=torch.eye(3, dtype=torch.float64)[None],
                                    T=torch.tensor([[0.0, 0.0, 0.5]], dtype=torch.float64),
                                    device=DEVICE[backend])

    def render(verts):
        return soft_silhouette(Meshes(verts=list(verts.split(counts)), faces=faces), cameras,
                               image_size=10, sigma=0.02, faces_per_pixel=3, backend=backend)

    verts = mesh.verts_packed().detach().requires_grad_()
    assert torch.autograd.gradcheck(render, (verts,), eps=1e-7, atol=1e-5,
                                    nondet_tol=CUDA_NONDET_TOL if backend == "cuda" else 0.0)


def test_mesh_rasterizer_uses_cameras_and_overrides():
    mesh, cameras = camera_scene()
    rasterizer = MeshRasterizer(cameras, RasterizationSettings(image_size=32, faces_per_pixel=1))
    fragments = rasterizer(mesh)
    assert isinstance(fragments, Fragments) and fragments.pix_to_face.shape == (1, 32, 32, 1)
    covered = fragments.pix_to_face[0, ..., 0] >= 0
    # The unit sphere seen from 3 units away is a disk in the middle of the image.
    assert covered[16, 16] and not covered[0, 0] and not covered[31, 31]
    # The sphere's front at 2 units, behind it the faces' sag: below 1 - cos(16 degrees, an edge
    # of ico_sphere(2)) = 0.04.
    assert fragments.zbuf[0, 16, 16, 0].item() == pytest.approx(2.0, abs=0.05)
    # Moving the camera back with a per-call T shrinks the disk.
    R, T = look_at_view_transform(6.0, 20.0, 30.0)
    smaller = rasterizer(mesh, R=R, T=T).pix_to_face[0, ..., 0] >= 0
    assert 0 < smaller.sum() < covered.sum()
    # Gradients flow through the camera to R and T.
    T = T.clone().requires_grad_()
    R = R.clone().requires_grad_()
    soft = MeshRasterizer(cameras, RasterizationSettings(image_size=32, faces_per_pixel=4,
                                                         blur_radius=1e-3))(mesh, R=R, T=T)
    silhouette_from_dists(soft.pix_to_face, soft.dists, 1e-3).sum().backward()
    assert T.grad.abs().sum() > 0 and R.grad.abs().sum() > 0


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_memory_guard(device):
    assert memory_estimate(8, 256, 256, 100) == 8 * 256 * 256 * 100 * 48
    mesh, cameras = camera_scene()
    mesh, cameras = mesh.to(device), cameras.to(device)
    settings = RasterizationSettings(image_size=64, faces_per_pixel=50)
    set_memory_limit(memory_estimate(1, 64, 64, 50) - 1)
    try:
        with pytest.raises(RasterMemoryError, match=r"K=50.*Reduce faces_per_pixel"):
            MeshRasterizer(cameras, settings)(mesh)
        with pytest.raises(MemoryError):
            rasterize_meshes(mesh, image_size=64, faces_per_pixel=50)
        # The fused silhouette does not allocate per-fragment tensors and is not limited.
        if "cpu" in lib3dr.backends():
            soft_silhouette(mesh, cameras, image_size=64, faces_per_pixel=50)
    finally:
        set_memory_limit(None)
    MeshRasterizer(cameras, settings)(mesh)


def test_bad_input_raises_clear_errors():
    mesh = one_face_mesh([[0.5, -0.5, 2.0], [-0.5, -0.5, 2.0], [0.0, 0.5, 2.0]])
    with pytest.raises(ValueError, match="faces_per_pixel"):
        rasterize_meshes(mesh, faces_per_pixel=0)
    with pytest.raises(ValueError, match="image_size"):
        rasterize_meshes(mesh, image_size=0)
    with pytest.raises(ValueError, match="image_size"):
        rasterize_meshes(mesh, image_size=(16, -2))
    with pytest.raises(ValueError, match="blur_radius"):
        rasterize_meshes(mesh, blur_radius=-1.0)
    with pytest.raises(NotImplementedError, match="z_clip_value"):
        rasterize_meshes(mesh, z_clip_value=0.1)
    with pytest.raises(ValueError, match="backend"):
        rasterize_meshes(mesh, backend="opengl")
    nan_mesh = one_face_mesh([[math.nan, -0.5, 2.0], [-0.5, -0.5, 2.0], [0.0, 0.5, 2.0]])
    with pytest.raises(ValueError, match="NaN or Inf"):
        rasterize_meshes(nan_mesh)
    with pytest.raises(ValueError, match="sigma"):
        soft_silhouette(mesh, FoVPerspectiveCameras(), sigma=0.0)
    with pytest.raises(TypeError, match="float64 but the cameras are torch.float32"):
        soft_silhouette(mesh, FoVPerspectiveCameras())


@needs_cpu
def test_kernel_checks_name_the_argument():
    from lib3dr import _C
    face_verts = torch.rand(4, 3, 3)
    first, num = torch.tensor([0]), torch.tensor([4])
    args = (16, 16, 1, 0.0, False, False, False, 0)
    with pytest.raises(RuntimeError, match="face_verts must have shape"):
        _C.rasterize_forward(torch.rand(4, 9), first, num, *args)
    with pytest.raises(RuntimeError, match="float32 or float64"):
        _C.rasterize_forward(face_verts.half(), first, num, *args)
    with pytest.raises(RuntimeError, match="contiguous"):
        _C.rasterize_forward(face_verts.transpose(1, 2), first, num, *args)
    with pytest.raises(RuntimeError, match="mesh_first_face must be int64"):
        _C.rasterize_forward(face_verts, first.int(), num, *args)
    with pytest.raises(RuntimeError, match="outside face_verts"):
        _C.rasterize_forward(face_verts, first, torch.tensor([5]), *args)
    with pytest.raises(RuntimeError, match="faces_per_pixel"):
        _C.rasterize_forward(face_verts, first, num, 16, 16, 0, 0.0, False, False, False, 0)


def test_cuda_launch_check_caps_faces_per_pixel():
    first, num = torch.tensor([0]), torch.tensor([4])
    check_cuda_launch(first, num, 4, CUDA_MAX_FACES_PER_PIXEL)
    with pytest.raises(ValueError, match=f"at most {CUDA_MAX_FACES_PER_PIXEL}.*soft_silhouette"):
        check_cuda_launch(first, num, 4, CUDA_MAX_FACES_PER_PIXEL + 1)


@pytest.mark.parametrize("first, num", [
    ([0, 3, 2], [3, 0, 2]),  # a mesh that starts before the one above it
    ([0, 2], [3, 2]),        # overlapping ranges
    ([0, 0, 3], [3, 0, 2]),  # an empty mesh placed inside another's range
    ([0, 3], [3, 3]),        # beyond face_verts
    ([-1, 3], [3, 2]),       # before face_verts
])
def test_cuda_launch_check_wants_sorted_disjoint_ranges(first, num):
    with pytest.raises(ValueError, match="sorted"):
        check_cuda_launch(torch.tensor(first), torch.tensor(num), 5, 1)


def test_cuda_launch_check_accepts_what_meshes_pack():
    meshes = triangle_soup([3, 0, 2, 0])
    check_cuda_launch(meshes.mesh_to_faces_packed_first_idx(), meshes.num_faces_per_mesh(), 5, 1)


@needs_cuda
def test_cuda_refuses_more_faces_per_pixel_than_its_cap():
    mesh = triangle_soup([5]).to("cuda")
    with pytest.raises(ValueError, match="soft_silhouette"):
        rasterize_meshes(mesh, faces_per_pixel=CUDA_MAX_FACES_PER_PIXEL + 1, backend="cuda")
    with pytest.raises(ValueError, match="faces_per_pixel"):
        lib3dr.renderer.silhouette.soft_silhouette_ndc(mesh, 1e-4, faces_per_pixel=CUDA_MAX_FACES_PER_PIXEL + 1)
