"""Blending: from the K colours at each pixel to one RGBA value (PyTorch3D's functions).

``colors`` are ``(N, H, W, K, 3)``, one per face kept at the pixel; every function returns
``(N, H, W, 4)``. The hard blend keeps the nearest face; the soft blends are Soft Rasterizer's
aggregation (Liu et al. 2019), explained in chapter 2. ``blended_fragments`` and
``softmax_rgb_blend_packed`` are ``softmax_rgb_blend`` on packed fragments, by compiled CPU kernels:
the soft shaders' fast path, which colours only the fragments that the blend weighs.
"""
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F

from lib3dr import _backend
from lib3dr.renderer.compiled import SilhouetteBlend, SoftmaxBlend


@dataclass
class BlendParams:
    """sigma: sharpness of the coverage probability ``D = sigmoid(-dist / sigma)``.
    gamma: sharpness of the depth weighting, small gamma lets the nearest face dominate.
    background_color: RGB where no face is.
    dropped_weight: lib3dr's own. On packed fragments (``MeshRenderer`` with a soft shader on
        the CPU) the blend shades and weighs only the fragments that matter: it drops those whose
        weights add up to at most this share of the pixel's total (``blended_fragments``), which
        moves a colour by at most this share of the range of the colours involved. 0 keeps every
        fragment: the blend of ``softmax_rgb_blend`` exactly."""

    sigma: float = 1e-4
    gamma: float = 1e-4
    background_color: Sequence[float] = (1.0, 1.0, 1.0)
    dropped_weight: float = 1e-4

    def __post_init__(self):
        _check_dropped_weight(self.dropped_weight)


def _check_dropped_weight(value):
    # `not 0 <= value < 1` also rejects NaN, which would keep or drop fragments arbitrarily.
    if not 0 <= value < 1:
        raise ValueError(f"BlendParams.dropped_weight must be in [0, 1), got {value}")


def _background(blend_params, like):
    return torch.as_tensor(blend_params.background_color, dtype=like.dtype, device=like.device)


def coverage_probability(fragments, sigma):
    """``D_k = sigmoid(-dists_k / sigma)`` where face k exists, else 0: ``(N, H, W, K)``."""
    return torch.sigmoid(-fragments.dists / sigma) * (fragments.pix_to_face >= 0)


def silhouette_from_dists(pix_to_face, dists, sigma, backend="auto"):
    """Soft Rasterizer's silhouette from fragments, ``alpha = 1 - prod_k (1 - D_k)``: ``(N, H, W)``.

    ``D_k = sigmoid(-dists_k / sigma)`` is the probability that face k covers the pixel, alpha the
    probability that at least one does. It is computed as ``1 - exp(sum_k log(1 - D_k))`` with
    ``log(1 - D_k) = logsigmoid(dists_k / sigma)``: the same value, finite where a face covers the
    pixel completely, and far cheaper to differentiate than a product. On the CPU the compiled
    kernel does the same in one pass (``backend="torch"`` forces the formula below).
    """
    if _backend.resolve(backend, dists.device) == "cpu" and dists.dtype in (torch.float32,
                                                                            torch.float64):
        return SilhouetteBlend.apply(pix_to_face, dists, float(sigma))
    log_transmittance = (F.logsigmoid(dists / sigma) * (pix_to_face >= 0)).sum(dim=-1)
    return 1.0 - torch.exp(log_transmittance)


def hard_rgb_blend(colors, fragments, blend_params):
    """The nearest face's colour, the background where there is none; alpha 1 on the object."""
    is_background = fragments.pix_to_face[..., 0] < 0
    rgb = torch.where(is_background[..., None], _background(blend_params, colors), colors[..., 0, :])
    return torch.cat([rgb, (~is_background).to(colors.dtype)[..., None]], dim=-1)


def sigmoid_alpha_blend(colors, fragments, blend_params):
    """The soft silhouette ``alpha = 1 - prod_k (1 - D_k)``; RGB is the nearest face's colour."""
    alpha = silhouette_from_dists(fragments.pix_to_face, fragments.dists, blend_params.sigma)
    return torch.cat([colors[..., 0, :], alpha[..., None]], dim=-1)


def softmax_rgb_blend(colors, fragments, blend_params, znear=1.0, zfar=100.0):
    """Soft Rasterizer's colour aggregation.

    Each face gets the weight ``w_k = D_k exp((z_k - z_max) / gamma)`` with the normalised depth
    ``z_k = (zfar - zbuf_k) / (zfar - znear)`` (reversed and linear in depth, as PyTorch3D and
    Soft Rasterizer's released code have it; chapter 2 compares it with 1/z), the background ``w_b = exp((eps - z_max) / gamma)``;
    ``rgb = (sum_k w_k c_k + w_b c_bg) / (sum_k w_k + w_b)`` and ``alpha = 1 - prod_k (1 - D_k)``.
    Subtracting ``z_max`` (the nearest face) keeps the exponentials finite for tiny gamma.
    ``znear``/``zfar`` are numbers or ``(N,)`` tensors.
    """
    eps = 1e-10
    valid = fragments.pix_to_face >= 0
    D = coverage_probability(fragments, blend_params.sigma)
    alpha = silhouette_from_dists(fragments.pix_to_face, fragments.dists, blend_params.sigma)
    if torch.is_tensor(zfar):
        zfar = zfar.reshape(-1, 1, 1, 1)
    if torch.is_tensor(znear):
        znear = znear.reshape(-1, 1, 1, 1)
    z_norm = (zfar - fragments.zbuf) / (zfar - znear) * valid
    z_max = z_norm.amax(dim=-1, keepdim=True).clamp_min(eps)
    weights = D * torch.exp((z_norm - z_max) / blend_params.gamma)
    w_background = torch.exp((eps - z_max) / blend_params.gamma).clamp_min(eps)
    denom = weights.sum(dim=-1, keepdim=True) + w_background
    rgb = ((weights[..., None] * colors).sum(dim=-2)
           + w_background * _background(blend_params, colors)) / denom
    return torch.cat([rgb, alpha[..., None]], dim=-1)


def _per_image(value, N, like):
    """znear or zfar, a number or ``(N,)``, as an ``(N,)`` tensor like ``like`` (no gradient)."""
    return torch.as_tensor(value, dtype=like.dtype, device=like.device).detach().reshape(-1) \
        .expand(N).contiguous()


def _check_compiled(fragments):
    if fragments.zbuf.device.type != "cpu" or _backend._C is None:
        raise ValueError("the packed blend runs on lib3dr._C's CPU kernels: on CUDA, or without "
                         "the extension, use Fragments and softmax_rgb_blend")
    if fragments.pixel_start is None:
        raise ValueError("the packed blend needs PackedFragments with pixel_start, not a subset "
                         "from PackedFragments.select")


class BlendWeights(NamedTuple):
    """What ``softmax_rgb_blend_packed`` needs besides the colours, from packed fragments' depths
    and distances (``blended_fragments``; no autograd: the blend's backward differentiates them).

    kept: ``(M',)`` int64, increasing: the fragments to colour and blend.
    coverage: ``(M,)`` ``D_i = sigmoid(-dists_i / sigma)``.
    share: ``(M,)`` each kept fragment's share of its pixel's colour,
        ``w_i / (sum_kept w_j + w_b)``; 0 for the others.
    background_share: ``(N * H * W,)`` the background's, ``w_b / (sum_kept w_j + w_b)``.
    transmittance: ``(N * H * W,)`` ``prod_i (1 - D_i)`` over every fragment: alpha is 1 minus it.
    pixel_start, znear, zfar, sigma, gamma: what these were computed with (``znear``, ``zfar``
        ``(N,)``); the blend walks this pixel_start and checks the others against its own, since
        its backward recomputes the weights' derivatives from them.
    """

    kept: torch.Tensor
    coverage: torch.Tensor
    share: torch.Tensor
    background_share: torch.Tensor
    transmittance: torch.Tensor
    pixel_start: torch.Tensor
    znear: torch.Tensor
    zfar: torch.Tensor
    sigma: float
    gamma: float


def blended_fragments(fragments, blend_params, znear=1.0, zfar=100.0, kept=None):
    """The packed fragments (``PackedFragments``) that ``softmax_rgb_blend_packed`` weighs, and
    their weights: ``BlendWeights``; CPU only.

    With ``w_i`` the weight of ``softmax_rgb_blend`` and ``W`` the sum of a pixel's weights
    including the background's, fragment i of a pixel with n fragments is dropped when
    ``w_i <= blend_params.dropped_weight / n * W``: the dropped fragments carry at most a share
    ``tau = dropped_weight`` of ``W``. Shading only the others changes the pixel's colour by at
    most ``tau`` times the range of its colours (``softmax_rgb_blend_packed``). With gamma = 1e-4
    the depth factor ``exp(-dz / gamma)`` leaves the faces behind the surface almost no weight:
    on the cow at K = 50, tau = 1e-4 keeps about half of the covered fragments. ``kept``
    (increasing int64 indices), when given, chooses the fragments instead.
    """
    _check_compiled(fragments)
    _check_dropped_weight(blend_params.dropped_weight)  # BlendParams' fields can be reassigned
    N, H, W, _ = fragments.shape
    given = None
    if kept is not None:
        # Passed on as a mask, which would silently sort indices given in another order.
        kept = torch.as_tensor(kept, dtype=torch.int64)
        if kept.dim() != 1 or (len(kept) and (kept[0] < 0 or kept[-1] >= len(fragments)
                                              or (kept.diff() <= 0).any())):
            raise ValueError(f"kept must be increasing, unique fragment indices in "
                             f"[0, {len(fragments)}), got {kept.tolist()[:8]}...")
        given = torch.zeros(len(fragments), dtype=torch.bool)
        given[kept] = True
    znear, zfar = _per_image(znear, N, fragments.zbuf), _per_image(zfar, N, fragments.zbuf)
    sigma, gamma = float(blend_params.sigma), float(blend_params.gamma)
    return BlendWeights(*_backend._C.softmax_blend_weights(
        fragments.pixel_start, fragments.zbuf.detach().contiguous(),
        fragments.dists.detach().contiguous(), znear, zfar, given, H * W, sigma, gamma,
        float(blend_params.dropped_weight)), fragments.pixel_start, znear, zfar, sigma, gamma)


def softmax_rgb_blend_packed(colors, weights, fragments, blend_params, znear=1.0, zfar=100.0):
    """``softmax_rgb_blend`` over packed fragments, of which only ``weights.kept`` are coloured:
    ``(N, H, W, C + 1)``; CPU only, by a compiled kernel.

    Args:
        colors: ``(M', C)`` colours of the fragments ``weights.kept``.
        weights: ``BlendWeights`` of these fragments, from ``blended_fragments`` with the same
            blend parameters, znear and zfar (``ValueError`` otherwise).
        fragments: ``PackedFragments`` with ``pixel_start``.
    Returns:
        ``rgb = (sum_kept w_i c_i + w_b c_bg) / (sum_kept w_i + w_b)`` with ``softmax_rgb_blend``'s
        weights, and alpha ``1 - prod_i (1 - D_i)`` over all of the pixel's fragments.
        Differentiable w.r.t. ``colors`` and the fragments' ``zbuf`` and ``dists`` (not znear,
        zfar or the background).

    When every fragment is kept this is ``softmax_rgb_blend`` exactly. Otherwise, with
    ``delta <= tau`` the share of a pixel's weight dropped and ``R`` the range of the pixel's
    colours (the background's included), per channel: the colour differs from the full blend by at
    most ``delta R``; the gradients w.r.t. the log-weights ``log w_i`` (through which ``dists``
    and ``zbuf`` act: ``d log w_i / d dists_i = -(1 - D_i) / sigma``, ``d log w_i / d zbuf_i =
    -1 / (gamma (zfar - znear))``) differ in sum over the pixel's fragments by at most
    ``3 delta R`` times the output gradient (the background's log-weight counted among them; z_max,
    which scales them all, by ``3 delta R / gamma``), and those w.r.t. the colours by at most
    ``2 delta``. ``tests/test_soft_blend.py`` checks these bounds.
    """
    _check_compiled(fragments)
    N, H, W, _ = fragments.shape
    # The backward differentiates the weights with the blend's arguments: any that differ from
    # those the weights were computed with would give wrong gradients without an error.
    if (fragments.pixel_start is not weights.pixel_start
            and not torch.equal(fragments.pixel_start, weights.pixel_start)):
        raise ValueError("fragments are not those blended_fragments weighed (another pixel_start)")
    given = dict(sigma=float(blend_params.sigma), gamma=float(blend_params.gamma),
                 znear=_per_image(znear, N, fragments.zbuf),
                 zfar=_per_image(zfar, N, fragments.zbuf))
    for name, value in given.items():
        stored = getattr(weights, name)
        if not (torch.equal(value, stored) if torch.is_tensor(value) else value == stored):
            raise ValueError(f"{name} differs from the one blended_fragments computed the weights "
                             f"with: {value} != {stored}")
    rgba = SoftmaxBlend.apply(colors.to(fragments.zbuf.dtype), fragments.zbuf, fragments.dists,
                              weights, _background(blend_params, fragments.zbuf), H * W)
    return rgba.reshape(N, H, W, -1)
