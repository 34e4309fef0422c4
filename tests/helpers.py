"""What the tests share: tolerances derived from floating-point rounding, and the devices the
backends run on.

A float32 (float64) operation is exact up to a relative error u = 2^-24 (2^-53). Two computations
of one quantity may differ by what each one's rounding allows, and that depends on the quantity:

* an output f of the rasterizer (depth, barycentric coordinate, distance) computed from inputs x_i
  (the face's corners in NDC, the pixel centre) is off by up to ``c u (s_f + |f|)`` with the
  sensitivity ``s_f = sum_i |df/dx_i| max(|x_i|, 1)`` (chapter 2, "How close is close enough?").
  A barycentric coordinate of a sliver face is very sensitive: its edge functions are divided by a
  tiny area. ``fragment_error`` evaluates s_f in float64, per fragment.
* a vertex gradient is a sum of n terms, one per fragment whose face has the vertex as a corner.
  Each term carries its own arithmetic's rounding, the rounding of the forward quantities it is
  computed from (its own sensitivity, from second derivatives) and, through a soft blend, the
  rounding of the upstream gradient: the blend divides the distances' rounding by sigma. Adding
  n terms in any order (a float32 sum, atomics, per-thread sums) is off by at most
  n u sum|terms| (worst case, first order). ``vertex_grad_terms`` collects these per vertex.

All bounds are first order in u, per implementation; two implementations differ by twice as much.
They hold whatever order or instructions an implementation uses, so on any processor. Where two
code paths perform the same IEEE operations in the same order their results are equal on every
IEEE machine (+, -, *, / are correctly rounded), but two codes written to match (the PyTorch
reference and geometry.h) are not guaranteed to stay so: a compiler or a vector width may change
one operation. The bounds leave out only what is computed once, by one function, for both sides
(``same_distances``, ``same_forward``, ``summation_tolerance``), and the tests say where they rely
on it. The faces chosen (``pix_to_face``) are a discrete choice with no tolerance: comparing
them relies on geometry.h doing the reference's operations in the reference's order.
"""
import os
from collections import namedtuple

import pytest
import torch

import lib3dr
from lib3dr.renderer.blending import silhouette_from_dists
from lib3dr.renderer.rasterize_torch import DENOM_EPSILON, eval_pixel_faces, pixel_centers_ndc
from lib3dr.renderer.cameras import ndc_meshes
from lib3dr.renderer.rasterizer import default_blur_radius, rasterize_meshes
from lib3dr.structures import Meshes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def data_path(*parts):
    """A mesh shipped in the repository's data/ folder."""
    return os.path.join(ROOT, "data", *parts)


UNIT_ROUNDOFF = {torch.float32: 2.0 ** -24, torch.float64: 2.0 ** -53}
# Roundings on the longest path inside the rasterizer from an input (a corner in NDC, the pixel
# centre) to each output, the c of c u (s_f + |f|): the computed output is the exact one of
# inputs each moved by c roundings. Screen-space barycentrics: the area 3, its reciprocal 1, the
# product with an edge function 1 (5); perspective correction: two products, a sum of three, a
# quotient (10); clipping: a sum of three, a quotient (13); the depth: a product, a sum of three
# (16). The distance: the edge vector 1, the closest point 2 (the position t on the edge rounds
# at no cost: the distance is stationary in t), the difference 1, the squares and their sum 2 (6).
FORWARD_OPS = {"zbuf": 16, "bary_coords": 13, "dists": 6}
# The same for a term of a vertex gradient computed from them: the longest path.
TERM_FORWARD_OPS = max(FORWARD_OPS.values())
# Roundings that an NDC input carries from a camera (a 4 x 4 transform: 4 per coordinate, the
# perspective division 1, the NDC scale 1; 8 with some room), relative to max(|x|, 1).
CAMERA_OPS = 8
# Roundings of one term of a vertex gradient in its own arithmetic (the backward of the edge
# functions, the area, the perspective and clipping divisions, a distance; summing a fragment's
# outputs), relative to its largest derivative, and the camera's chain rule.
TERM_OPS = 32
# Roundings of one factor 1 - D_k of a soft silhouette (exp or log1p within 2 ulp, the division,
# the product or the sum of logarithms); all factors are <= 1, so alpha's own error is at most
# their sum (chapter 2's c).
SILHOUETTE_OPS = 8
# gradcheck's check that two backward passes agree, on CUDA: its backward adds into double
# accumulators with atomicAdd in no fixed order. A one-hot output reaches each accumulator with
# one or two nonzero terms (exact in any order), so runs differ by ulps (2^-52 relative) at most
# of Jacobian entries below 20 here; 1e-10 is also far below gradcheck's atol of 1e-5.
CUDA_NONDET_TOL = 1e-10

HAS_CUDA = "cuda" in lib3dr.backends()  # a GPU, and lib3dr._C built with CUDA
needs_cpu = pytest.mark.skipif("cpu" not in lib3dr.backends(), reason="lib3dr._C is not built")
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a GPU and lib3dr._C built with CUDA")
COMPILED = [pytest.param("cpu", marks=needs_cpu), pytest.param("cuda", marks=needs_cuda)]
BACKENDS = ["torch"] + COMPILED
DEVICE = {"torch": "cpu", "cpu": "cpu", "cuda": "cuda"}  # where each backend's inputs live


def assert_within(actual, expected, atol, what):
    """``|actual - expected| <= atol`` entry by entry (``atol`` a number or a tensor), on any
    device; the message names the worst entry. Returns the largest share of its bound that an
    entry uses (0 where both are 0)."""
    err = (actual.detach().cpu().double() - expected.detach().cpu().double()).abs()
    atol = torch.as_tensor(atol, dtype=torch.float64).cpu().expand_as(err)
    excess = (err - atol).flatten()
    worst = int(excess.argmax()) if excess.numel() else 0
    assert (excess <= 0).all(), (
        f"{what}: {int((excess > 0).sum())} of {err.numel()} entries differ by more than rounding "
        f"allows; worst {err.flatten()[worst]:.3g} > {atol.flatten()[worst]:.3g} at entry {worst}")
    share = (err / atol).nan_to_num(0.0, posinf=0.0)  # 0 / 0 where both sides agree exactly
    return float(share.max()) if share.numel() else 0.0


# ---------------------------------------------------------------------------------------------
# The rasterizer's outputs

Slots = namedtuple("Slots", "chosen corners face_verts px py z bary dist jacobian")


def evaluate_slots(verts, faces, pix_to_face, image_size, to_ndc=None, blur_radius=0.0,
                   perspective_correct=False, clip_barycentric_coords=False,
                   cull_backfaces=False, lipschitz_clip=False, **_):
    """The reference's arithmetic for the chosen fragments, in float64 and differentiable.

    ``verts (V, 3)`` packed vertices, in NDC or mapped there by ``to_ndc``; ``faces (F, 3)``
    packed; ``pix_to_face (N, H, W, K)`` the faces chosen; the other arguments are the
    rasterization's. ``face_verts (M, 3, 3)`` and the pixel centres ``px, py (M,)`` are leaves,
    one copy per covered slot, so that a derivative of a sum over slots is per slot;
    ``jacobian (V, 3 NDC, 3 world)`` is None without ``to_ndc``. ``lipschitz_clip``: clipping's
    ``max(b, 0)`` keeps its value but passes derivatives through (it is 1-Lipschitz), so that a
    clipped coordinate is as sensitive as the one it was clipped from: where that one lies within
    rounding of 0, the two sides may clip it or not."""
    x = verts.detach().double().cpu().requires_grad_()
    ndc = x if to_ndc is None else to_ndc(x)
    jacobian = None
    if to_ndc is not None:  # each vertex maps on its own
        jacobian = torch.stack([torch.autograd.grad(ndc[:, i].sum(), x, retain_graph=True)[0]
                                for i in range(3)], dim=1)
    ndc, pix_to_face, faces = ndc.detach(), pix_to_face.cpu(), faces.cpu()
    H, W = (image_size, image_size) if isinstance(image_size, int) else image_size
    chosen = pix_to_face >= 0
    _, y, x_index, _ = chosen.nonzero(as_tuple=True)
    px = pixel_centers_ndc(W, max(W / H, 1.0), torch.float64, "cpu")[x_index].requires_grad_()
    py = pixel_centers_ndc(H, max(H / W, 1.0), torch.float64, "cpu")[y].requires_grad_()
    corners = faces[pix_to_face[chosen]]  # (M, 3) vertex indices of each fragment's face
    face_verts = ndc[corners].requires_grad_()
    clip_here = clip_barycentric_coords and lipschitz_clip
    _, z, bary, dist = eval_pixel_faces(px, py, face_verts, blur_radius, perspective_correct,
                                        clip_barycentric_coords and not clip_here, cull_backfaces)
    if clip_here:  # eval_pixel_faces's clipping and depth, with the derivatives of no clipping
        clipped = bary + (bary.clamp_min(0) - bary).detach()
        bary = clipped / clipped.sum(-1, keepdim=True).clamp_min(DENOM_EPSILON)
        z = (bary * face_verts[..., 2]).sum(-1)
    return Slots(chosen, corners, face_verts, px, py, z, bary, dist, jacobian)


def _sensitivity(f, slots):
    """``s_f = sum_i |df/dx_i| max(|x_i|, 1)`` per slot, for ``f (M,)`` a function of each slot's
    own inputs."""
    g_face, g_x, g_y = torch.autograd.grad(f.sum(), (slots.face_verts, slots.px, slots.py),
                                           retain_graph=True, allow_unused=True)
    scale = slots.face_verts.detach().abs().clamp_min(1)
    s = (g_face * scale).abs().sum((1, 2))
    for g, p in ((g_x, slots.px), (g_y, slots.py)):
        if g is not None:
            s = s + (g * p.detach().abs().clamp_min(1)).abs()
    return s


def fragment_error(verts, faces, pix_to_face, image_size, to_ndc=None, input_ops=0, **settings):
    """How far one implementation's zbuf, bary_coords and dists may be from the exact values,
    in units of u: ``(FORWARD_OPS[output] + input_ops) (s_f + |f|)`` per covered slot (0
    elsewhere), shaped like the outputs. ``input_ops``: the roundings the NDC inputs carry before
    the rasterizer (0 when both sides get the same NDC tensor, CAMERA_OPS when each side maps the
    vertices with its own camera arithmetic)."""
    slots = evaluate_slots(verts, faces, pix_to_face, image_size, to_ndc, lipschitz_clip=True,
                           **settings)

    def padded(f, name):
        out = torch.zeros(slots.chosen.shape, dtype=torch.float64)
        out[slots.chosen] = (FORWARD_OPS[name] + input_ops) * (_sensitivity(f, slots)
                                                               + f.detach().abs())
        return out

    return (padded(slots.z, "zbuf"),
            torch.stack([padded(b, "bary_coords") for b in slots.bary.unbind(-1)], -1),
            padded(slots.dist, "dists"))


def forward_tolerance(error, dtype):
    """Allowed difference between two implementations' zbuf, bary_coords or dists, from
    ``error`` (``fragment_error``'s, for that output): each within u * error of the exact value."""
    return 2 * UNIT_ROUNDOFF[dtype] * error


# ---------------------------------------------------------------------------------------------
# Vertex gradients

Terms = namedtuple("Terms", "size n own")
Terms.__doc__ = """Per vertex coordinate: ``size (V, 3)`` the sum of the terms' magnitudes,
``n (V, 1)`` the number of terms, ``own (V, 3)`` the sum of each term's own rounding in units
of u (its arithmetic, its forward quantities', its upstream gradient's); float64 on the CPU."""


def vertex_grad_terms(verts, faces, pix_to_face, image_size, grads, to_ndc=None, grad_error=None,
                      input_ops=0, same_forward=False, **settings):
    """The terms a backward pass of the rasterizer adds up into a vertex gradient, and how much
    rounding each of them carries.

    The gradient of packed vertices ``verts (V, 3)`` is a sum of terms ``t_s``, one per fragment
    ``s`` (``pix_to_face >= 0``) whose face has the vertex as a corner: the fragment's outputs
    (z, three barycentrics, dist) times their upstream gradients ``grads = (grad_zbuf, grad_bary,
    grad_dists)`` (None where unused), differentiated with respect to the face's corners in NDC
    (then carried to ``verts`` by ``to_ndc``'s Jacobian, if given). One implementation computes
    ``t_s`` within ``u * own_s`` with
        own_s = TERM_OPS |t_s| + (TERM_FORWARD_OPS + input_ops) s_t + grad_error_s |t_s|:
    ``|t_s|`` the largest of the fragment's derivatives of one output (the derivatives of one
    output share their operands: the edge functions, the area, the barycentrics that sum to 1, so
    they round relative to the largest), summed over outputs; ``s_t`` the sensitivity of each
    component of ``t_s`` to its inputs (second derivatives: the rounding of the area, edge
    functions and distances the term is computed from, as in ``fragment_error``);
    ``grad_error (N, H, W, K)`` the upstream gradient's relative error in units of u (None: the
    same upstream gradient on both sides, as a constant weight is). ``same_forward``: both
    sides compute the terms from the same forward quantities (one function of geometry.h on one
    NDC tensor), so ``s_t`` drops out. Returns ``Terms``.
    """
    slots = evaluate_slots(verts, faces, pix_to_face, image_size, to_ndc, **settings)
    chosen = slots.chosen
    grad_zbuf, grad_bary, grad_dists = (None if g is None else g.detach().cpu().double()[chosen]
                                        for g in grads)
    pairs = [(slots.z, grad_zbuf), (slots.dist, grad_dists)]
    if grad_bary is not None:
        pairs += list(zip(slots.bary.unbind(-1), grad_bary.unbind(-1)))
    size = torch.zeros(len(slots.corners), dtype=torch.float64)
    total = torch.zeros_like(slots.face_verts)
    for out, grad in pairs:
        if grad is not None:  # each fragment's term on its own, not yet summed
            term, = torch.autograd.grad((out * grad).sum(), slots.face_verts, retain_graph=True,
                                        create_graph=True)
            size = size + term.detach().abs().amax((1, 2))
            total = total + term
    # s_t per component (corner a, NDC coordinate i) of the fragment's whole term.
    sens = torch.stack([_sensitivity(total[:, a, i], slots)
                        if total.requires_grad and not same_forward else torch.zeros_like(size)
                        for a in range(3) for i in range(3)], -1)
    error = torch.zeros_like(size) if grad_error is None else grad_error.cpu().double()[chosen]
    own = ((TERM_OPS + error) * size)[:, None, None] + (TERM_FORWARD_OPS + input_ops) * sens.view(-1, 3, 3)
    reached = (size > 0).double()[:, None, None].expand(-1, 3, 3)

    def per_vertex(values):  # (M, 3, 3) per corner -> (V, 3) per vertex
        return torch.zeros(len(verts), 3, dtype=torch.float64).index_add_(
            0, slots.corners.flatten(), values.reshape(-1, 3))

    size_v = per_vertex(size[:, None, None].expand(-1, 3, 3))
    own_v, n = per_vertex(own), per_vertex(reached)[:, :1]
    if slots.jacobian is not None:
        size_v = torch.einsum("vij,vi->vj", slots.jacobian.abs(), size_v)
        own_v = torch.einsum("vij,vi->vj", slots.jacobian.abs(), own_v)
    return Terms(size_v, n, own_v)


def summation_tolerance(terms, dtype):
    """Allowed difference between two sums of the same computed terms in different orders: each
    within ``n u sum|t|`` (a sum of n terms in any order, worst case)."""
    return 2 * terms.n * UNIT_ROUNDOFF[dtype] * terms.size


def grad_tolerance(terms, dtype):
    """Allowed difference between two vertex gradients that sum the same terms, each computed in
    its own way: ``2 u (n sum|t| + sum own)`` with ``terms`` from ``vertex_grad_terms``."""
    return summation_tolerance(terms, dtype) + 2 * UNIT_ROUNDOFF[dtype] * terms.own


# ---------------------------------------------------------------------------------------------
# The soft silhouette

def silhouette_tolerance(K, dtype, pix_to_face=None, dists=None, sigma=None, dist_error=None):
    """Allowed difference between two soft silhouettes of K faces per pixel.

    The blend's own rounding: ``SILHOUETTE_OPS (K + 1) u`` (see SILHOUETTE_OPS). If the two
    sides computed the distances each in its own way (``dist_error``, fragment_error's for dists,
    with the reference's ``pix_to_face`` and ``dists``), each also moves ``log(1 - D_k)`` by
    ``D_k delta d_k / sigma``, so alpha by ``T sum_k D_k u dist_error_k / sigma`` (chapter 2's
    bound), with ``T = prod_k (1 - D_k)``."""
    u = UNIT_ROUNDOFF[dtype]
    blend = SILHOUETTE_OPS * (K + 1) * u
    if dist_error is None:
        return blend if pix_to_face is None else torch.full(pix_to_face.shape[:3], blend,
                                                            dtype=torch.float64)
    D, log_one_minus_D = _coverage(pix_to_face, dists, sigma)
    T = log_one_minus_D.sum(-1).exp()
    return blend + 2 * u * T * (D * dist_error).sum(-1) / sigma


def _coverage(pix_to_face, dists, sigma):
    """``D_k`` and ``log(1 - D_k)`` in float64, 0 in empty slots."""
    valid = pix_to_face.cpu() >= 0
    d = dists.detach().cpu().double()
    return (torch.sigmoid(-d / sigma) * valid,
            torch.nn.functional.logsigmoid(d / sigma) * valid)


def silhouette_dists_grad(pix_to_face, dists, sigma, weight):
    """``d (alpha * weight).sum() / d dists`` of the soft silhouette, in float64: the upstream
    gradient of the fragments' distances."""
    dists = dists.detach().cpu().double().requires_grad_()
    alpha = silhouette_from_dists(pix_to_face.cpu(), dists, sigma, backend="torch")
    return torch.autograd.grad((alpha * weight.detach().cpu().double()).sum(), dists)[0]


def silhouette_grad_error(pix_to_face, dists, sigma, dist_error=None):
    """The relative error, in units of u, of one implementation's ``G_s = d (alpha * w) / d d_s``
    per slot ``(N, H, W, K)``. ``G_s = -w T D_s / sigma``: T's product (or sum of logarithms) of
    K factors rounds by ``(K + c) sum_k |log(1 - D_k)|``, D_s and the quotients by c
    (c = SILHOUETTE_OPS). A change ``delta d_k`` of the distances moves ``G_s`` relatively by
    ``d log G_s / d d_k delta d_k = (D_k - [k = s] (1 - D_s)) delta d_k / sigma``: the division
    ``d_k / sigma`` rounds as a change ``u |d_k|`` does, and ``dist_error`` (fragment_error's, for
    dists; None where both sides blend the same distances) adds the distances' own rounding."""
    D, log_one_minus_D = _coverage(pix_to_face, dists, sigma)
    K = pix_to_face.shape[-1]
    delta = dists.detach().cpu().double().abs() * (pix_to_face.cpu() >= 0)
    if dist_error is not None:
        delta = delta + dist_error
    error = ((K + SILHOUETTE_OPS) * log_one_minus_D.abs().sum(-1, keepdim=True) + SILHOUETTE_OPS
             + ((1 - D) * delta + (D * delta).sum(-1, keepdim=True)) / sigma)
    return error * (pix_to_face.cpu() >= 0)


def _cameras64(cameras):
    """A float64 copy of ``cameras``, on the CPU."""
    other = cameras.clone().to("cpu")
    for name in other._shapes:
        value = getattr(other, name)
        if value is not None and value.is_floating_point():
            setattr(other, name, value.double())
    return other


def silhouette_terms(meshes, cameras, image_size, sigma, faces_per_pixel, weight, dtype,
                     same_distances=False):
    """The reference's fragments of ``soft_silhouette(meshes, cameras, ...)`` and what rounding
    allows in it: returns ``(fragments, alpha_tolerance, terms)`` where ``alpha_tolerance``
    (N, H, W) is ``silhouette_tolerance`` of two implementations in ``dtype`` and ``terms`` are
    ``vertex_grad_terms`` of ``(alpha * weight).sum()`` with respect to the packed world vertices.

    ``same_distances``: whether both sides blend the same distances, computed by one function
    (geometry.h's ``nearest_edge``, compiled once) from NDC vertices that one call of
    ``ndc_meshes`` gives both, so equal by IEEE arithmetic; else each side's distances carry
    their own rounding (the kernel's, and a camera's: a matrix product may round otherwise with
    another batch shape or BLAS), which the blend divides by sigma: at sigma = 1e-3 in float32
    that allows a term a few 1e-3 of its size, more than a 1% error on one face among its
    neighbours shows."""
    meshes, cameras = meshes.detach().to("cpu"), cameras.clone().to("cpu")
    settings = dict(image_size=image_size, faces_per_pixel=faces_per_pixel,
                    blur_radius=default_blur_radius(sigma), clip_barycentric_coords=True,
                    perspective_correct=cameras.is_perspective())
    fragments = rasterize_meshes(ndc_meshes(meshes, cameras), backend="torch", **settings)
    pix_to_face, dists = fragments[0], fragments[3]
    counts, faces = meshes.num_verts_per_mesh().tolist(), meshes.faces_list()
    world64 = Meshes(verts=[v.double() for v in meshes.verts_list()], faces=faces)
    cameras64 = _cameras64(cameras)

    def to_ndc(verts):
        return ndc_meshes(Meshes(verts=list(verts.split(counts)), faces=faces),
                          cameras64).verts_packed()

    verts = world64.verts_packed()
    _, _, dist_error = fragment_error(verts, meshes.faces_packed(), pix_to_face, to_ndc=to_ndc,
                                      input_ops=CAMERA_OPS, **settings)
    if same_distances:
        dist_error = None
    alpha_tolerance = silhouette_tolerance(faces_per_pixel, dtype, pix_to_face, dists,
                                           sigma, dist_error)
    grad_dists = silhouette_dists_grad(pix_to_face, dists, sigma, weight)
    terms = vertex_grad_terms(verts, meshes.faces_packed(), pix_to_face,
                              grads=(None, None, grad_dists), to_ndc=to_ndc,
                              grad_error=silhouette_grad_error(pix_to_face, dists, sigma,
                                                               dist_error),
                              input_ops=CAMERA_OPS, same_forward=same_distances, **settings)
    return fragments, alpha_tolerance, terms
