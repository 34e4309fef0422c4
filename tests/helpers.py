"""What the tests share: tolerances derived from floating-point rounding, and the devices the
backends run on.

A float32 (float64) operation is exact up to a relative error u = 2^-24 (2^-53). Two sums of the
same n terms in different orders differ by at most 2 n u sum|terms| (n u each way; sqrt(n)
typically), so a gradient that a backward pass adds up from many fragments is compared with a
tolerance per entry built from the magnitudes actually summed (``grad_tolerance``), never with a
constant chosen on one processor.
"""
import os

import pytest
import torch

import lib3dr
from lib3dr.renderer.blending import silhouette_from_dists
from lib3dr.renderer.rasterize_torch import eval_pixel_faces, pixel_centers_ndc
from lib3dr.renderer.cameras import ndc_meshes
from lib3dr.renderer.rasterizer import default_blur_radius, rasterize_meshes
from lib3dr.structures import Meshes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def data_path(*parts):
    """A mesh shipped in the repository's data/ folder."""
    return os.path.join(ROOT, "data", *parts)

UNIT_ROUNDOFF = {torch.float32: 2.0 ** -24, torch.float64: 2.0 ** -53}
# Roundings of one term of a vertex gradient on its own: the fragment's geometry (an edge function,
# a distance, the perspective and clipping divisions), its derivative and the camera's chain rule.
TERM_OPS = 32
# Roundings of one factor 1 - D_k of a soft silhouette (argument, exp within 2 ulp, division,
# product) or of its logarithm; all factors are <= 1, so alpha's error is at most their sum.
SILHOUETTE_OPS = 8
# Roundings of one output of the rasterizer (edge functions, a distance, a division): the backends
# run the same operations in the same order, so they differ, if at all, by rounding a compiler
# reorders, a few ulps of the order-1 NDC operands.
FORWARD_OPS = 16
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
    device; the message names the worst entry."""
    err = (actual.detach().cpu().double() - expected.detach().cpu().double()).abs()
    atol = torch.as_tensor(atol, dtype=torch.float64).cpu().expand_as(err)
    excess = (err - atol).flatten()
    worst = int(excess.argmax())
    assert (excess <= 0).all(), (
        f"{what}: {int((excess > 0).sum())} of {err.numel()} entries differ by more than rounding "
        f"allows; worst {err.flatten()[worst]:.3g} > {atol.flatten()[worst]:.3g} at entry {worst}")


def forward_tolerance(reference):
    """Allowed difference between two backends' zbuf, bary_coords or dists (see FORWARD_OPS)."""
    return FORWARD_OPS * UNIT_ROUNDOFF[reference.dtype] * (1 + reference.detach().cpu().double().abs())


def silhouette_tolerance(K, dtype):
    """Allowed difference between two soft silhouettes of K faces per pixel (see SILHOUETTE_OPS)."""
    return SILHOUETTE_OPS * (K + 1) * UNIT_ROUNDOFF[dtype]


def grad_tolerance(terms, dtype, term_ops=TERM_OPS):
    """Allowed difference between two vertex gradients summed from the same terms in their own
    orders: ``2 (4 sqrt(n) + term_ops) u S`` with ``(S, n) = terms`` from ``vertex_grad_terms``.

    A sum's rounding errors, one per addition and each below u times a partial sum, add up like a
    random walk: about sqrt(n) u S, and 4 sqrt(n) u S lies many standard deviations out. The worst
    case, n u S, is too loose to notice a term 1% wrong in a sum of a thousand."""
    S, n = terms
    return 2 * (4 * n.sqrt() + term_ops) * UNIT_ROUNDOFF[dtype] * S


def silhouette_dists_grad(pix_to_face, dists, sigma, weight):
    """``d (alpha * weight).sum() / d dists`` of the soft silhouette, in float64: the upstream
    gradient of the fragments' distances."""
    dists = dists.detach().cpu().double().requires_grad_()
    alpha = silhouette_from_dists(pix_to_face.cpu(), dists, sigma, backend="torch")
    return torch.autograd.grad((alpha * weight.detach().cpu().double()).sum(), dists)[0]


def vertex_grad_terms(verts, faces, pix_to_face, image_size, grads, to_ndc=None, blur_radius=0.0,
                      perspective_correct=False, clip_barycentric_coords=False,
                      cull_backfaces=False, **_):
    """The magnitudes a backward pass of the rasterizer adds up into a vertex gradient.

    The gradient of packed vertices ``verts (V, 3)`` is a sum of terms, one per fragment
    (``pix_to_face >= 0``), output (z, three barycentrics, dist) and NDC coordinate:
    ``grad_out * d out / d ndc * d ndc / d verts``, each counted at the size of the largest
    derivative of its output at that fragment. ``grads`` are the upstream gradients
    ``(grad_zbuf, grad_bary, grad_dists)``, None where unused; ``to_ndc`` maps ``verts`` to NDC
    x, y and view depth (None: they are already). The other arguments are the rasterization's.
    Returns ``(S, n)``: ``S (V, 3)`` the sum of the terms' magnitudes per coordinate, ``n (V, 1)``
    the number of terms per vertex; float64 on the CPU.
    """
    x = verts.detach().requires_grad_()
    ndc = x if to_ndc is None else to_ndc(x)
    if to_ndc is not None:  # (V, 3 NDC, 3 world): each vertex maps on its own
        jacobian = torch.stack([torch.autograd.grad(ndc[:, i].sum(), x, retain_graph=True)[0]
                                for i in range(3)], dim=1).cpu().double()
    ndc, pix_to_face, faces = ndc.detach().cpu().double(), pix_to_face.cpu(), faces.cpu()
    H, W = (image_size, image_size) if isinstance(image_size, int) else image_size
    chosen = pix_to_face >= 0
    _, y, x_index, _ = chosen.nonzero(as_tuple=True)
    px = pixel_centers_ndc(W, max(W / H, 1.0), torch.float64, "cpu")[x_index]
    py = pixel_centers_ndc(H, max(H / W, 1.0), torch.float64, "cpu")[y]
    corners = faces[pix_to_face[chosen]]  # (M, 3) vertex indices of each fragment's face
    face_verts = ndc[corners].requires_grad_()
    _, z, bary, dist = eval_pixel_faces(px, py, face_verts, blur_radius, perspective_correct,
                                        clip_barycentric_coords, cull_backfaces)
    grad_zbuf, grad_bary, grad_dists = (None if g is None else g.detach().cpu().double()[chosen]
                                        for g in grads)
    pairs = [(z, grad_zbuf), (dist, grad_dists)]
    if grad_bary is not None:
        pairs += list(zip(bary.unbind(-1), grad_bary.unbind(-1)))
    S_frag, n_frag = torch.zeros_like(face_verts), torch.zeros_like(face_verts)
    for out, grad in pairs:
        if grad is not None:  # each fragment's terms on their own, not yet summed
            term, = torch.autograd.grad((out * grad).sum(), face_verts, retain_graph=True)
            # The derivatives of one output share their operands (edge functions, the area, the
            # barycentrics that sum to 1), whose rounding is relative to the largest of them.
            size = term.abs().amax((1, 2), keepdim=True)
            S_frag += size
            n_frag += size > 0
    S = torch.zeros_like(ndc).index_add_(0, corners.flatten(), S_frag.reshape(-1, 3))
    n = torch.zeros_like(ndc).index_add_(0, corners.flatten(), n_frag.reshape(-1, 3))
    if to_ndc is not None:
        S = torch.einsum("vij,vi->vj", jacobian.abs(), S)
    return S, n.sum(1, keepdim=True)


def silhouette_terms(meshes, cameras, image_size, sigma, faces_per_pixel, weight):
    """``vertex_grad_terms`` of ``(soft_silhouette(meshes, cameras, ...) * weight).sum()`` with
    respect to the packed world vertices, from the reference's fragments on the CPU."""
    meshes, cameras = meshes.detach().to("cpu"), cameras.clone().to("cpu")
    settings = dict(image_size=image_size, faces_per_pixel=faces_per_pixel,
                    blur_radius=default_blur_radius(sigma), clip_barycentric_coords=True,
                    perspective_correct=cameras.is_perspective())
    pix_to_face, _, _, dists = rasterize_meshes(ndc_meshes(meshes, cameras), backend="torch",
                                                **settings)
    counts, faces = meshes.num_verts_per_mesh().tolist(), meshes.faces_list()

    def to_ndc(verts):
        return ndc_meshes(Meshes(verts=list(verts.split(counts)), faces=faces), cameras).verts_packed()

    grad_dists = silhouette_dists_grad(pix_to_face, dists, sigma, weight)
    return vertex_grad_terms(meshes.verts_packed(), meshes.faces_packed(), pix_to_face,
                             grads=(None, None, grad_dists), to_ndc=to_ndc, **settings)
