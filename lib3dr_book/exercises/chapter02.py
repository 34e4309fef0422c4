"""Visible checks for chapter 2's exercises (``chapters/02_making_rendering_differentiable``).

Exercise 2.1: ``check_coverage_and_alpha(fn)``, ``fn(fragments, sigma) -> (D, alpha)``: Soft
Rasterizer's coverage probabilities ``D`` (0 in padded slots) and soft silhouette ``alpha``.
Exercise 2.2: ``check_soft_rgb(fn)``, ``fn(colors, fragments, sigma, gamma, background, znear,
zfar) -> rgb``: the colour of ``softmax_rgb_blend``.

Each check raises ``AssertionError`` saying what is wrong and returns True when the answer passes.
They compare with the library's own functions (``coverage_probability``,
``silhouette_from_dists``, ``softmax_rgb_blend``), which are blocked while the student's function
runs: an answer that calls them fails. The chapter's hidden tests decide the points.
"""
import torch

from lib3dr.renderer.blending import BlendParams, coverage_probability, silhouette_from_dists, softmax_rgb_blend
from lib3dr.renderer.rasterizer import default_blur_radius, Fragments, rasterize_meshes
from lib3dr.structures import Meshes
from lib3dr.utils import ico_sphere
from lib3dr_book.exercises import shortcuts

# What the exercises ask the student to write, and so may not call.
BLENDING = "lib3dr.renderer.blending"
COVERAGE_SHORTCUTS = (f"{BLENDING}.coverage_probability", f"{BLENDING}.silhouette_from_dists",
                      f"{BLENDING}.sigmoid_alpha_blend", f"{BLENDING}.softmax_rgb_blend",
                      "lib3dr.renderer.compiled.SilhouetteBlend.apply",
                      "lib3dr._C.silhouette_blend_forward")
RGB_SHORTCUTS = (f"{BLENDING}.softmax_rgb_blend", f"{BLENDING}.coverage_probability")


# ---------------------------------------------------------------------------------------------
# Test data: fragments of two overlapping spheres, with padded slots, in NDC.

def sample_fragments(sigma=1e-3, K=6, image_size=24, dtype=torch.float64):
    """Fragments of two overlapping ico_sphere(1) placed in NDC with view depth, with covered and
    padded slots, faces inside and outside the pixel, and ``dists`` requiring grad."""
    sphere = ico_sphere(1)
    v = sphere.verts_packed().to(dtype)
    f = sphere.faces_packed()
    # x, y in NDC; z = view depth between 2 and 3.
    def placed(scale, offset):
        return v * torch.tensor(scale, dtype=dtype) + torch.tensor(offset, dtype=dtype)

    near, far = placed([0.45, 0.45, 0.3], [0.2, 0.1, 2.3]), placed([0.5, 0.5, 0.3], [-0.25, -0.15, 2.7])
    meshes = Meshes(verts=[torch.cat([near, far])], faces=[torch.cat([f, f + len(v)])])
    pix_to_face, zbuf, bary, dists = rasterize_meshes(
        meshes, image_size=image_size, blur_radius=default_blur_radius(sigma), faces_per_pixel=K,
        clip_barycentric_coords=True)
    return Fragments(pix_to_face, zbuf, bary, dists.detach().clone().requires_grad_(True))


def _where(mask):
    """A readable location (n, y, x[, k]) of the first True in mask."""
    return tuple(int(i) for i in mask.nonzero()[0])


# ---------------------------------------------------------------------------------------------
# Exercise 2.1

def check_coverage_and_alpha(coverage_and_alpha):
    """Checks ``coverage_and_alpha(fragments, sigma) -> (D (N, H, W, K), alpha (N, H, W))``
    against the library's ``coverage_probability`` and ``silhouette_from_dists``."""
    for sigma in (1e-3, 3e-4):
        fragments = sample_fragments(sigma)
        valid = fragments.pix_to_face >= 0
        expected_D = coverage_probability(fragments, sigma)
        expected_alpha = silhouette_from_dists(fragments.pix_to_face, fragments.dists, sigma)
        answer = shortcuts.call_honestly(
            coverage_and_alpha, (fragments, sigma), targets=COVERAGE_SHORTCUTS,
            why="the exercise is to compute D and alpha yourself, from fragments.pix_to_face, "
                "fragments.dists and torch; the library's functions are what the check compares with")
        assert isinstance(answer, (tuple, list)) and len(answer) == 2, (
            "return a pair (D, alpha)")
        D, alpha = answer
        assert torch.is_tensor(D) and torch.is_tensor(alpha), "D and alpha must be tensors"
        assert D.shape == fragments.dists.shape, (
            f"D must have one value per slot, shape (N, H, W, K) = {tuple(fragments.dists.shape)}, "
            f"got {tuple(D.shape)}")
        assert alpha.shape == fragments.dists.shape[:-1], (
            f"alpha must have one value per pixel, shape (N, H, W) = "
            f"{tuple(fragments.dists.shape[:-1])}, got {tuple(alpha.shape)}")
        D64, alpha64 = D.detach().to(torch.float64), alpha.detach().to(torch.float64)
        assert torch.isfinite(D64).all() and torch.isfinite(alpha64).all(), "D or alpha has NaN or Inf"

        bad_padding = ~valid & (D64.abs() > 1e-6)
        if bad_padding.any():
            raise AssertionError(
                f"D must be 0 in padded slots (pix_to_face == -1), e.g. at {_where(bad_padding)} "
                f"you have D = {float(D64[bad_padding][0]):.3f}. Padded slots hold dists = -1, "
                f"which sigmoid(-dists / sigma) turns into 'certainly covered': mask them with "
                f"pix_to_face >= 0.")
        dists = fragments.dists.detach()
        if torch.allclose(D64[valid], torch.sigmoid(dists / sigma)[valid], atol=1e-6):
            raise AssertionError(
                "D has the wrong sign: dists is negative inside a face, where D must be above "
                "1/2. Use sigmoid(-dists / sigma).")
        if torch.allclose(D64[valid], torch.sigmoid(-dists * sigma)[valid], atol=1e-6):
            raise AssertionError("divide the distance by sigma, don't multiply: D = sigmoid(-dists / sigma)")
        wrong_D = (D64 - expected_D.detach()).abs() > 1e-6
        assert not wrong_D.any(), (
            f"wrong D at {_where(wrong_D)} (sigma = {sigma:g}, dists = "
            f"{float(dists[wrong_D][0]):.3e}): you have {float(D64[wrong_D][0]):.4f}, "
            f"coverage_probability gives {float(expected_D.detach()[wrong_D][0]):.4f}")

        if torch.allclose(alpha64, 1 - expected_alpha.detach(), atol=1e-6):
            raise AssertionError(
                "alpha is the probability that NO face covers the pixel; the silhouette is the "
                "probability that at least one does")
        if torch.allclose(alpha64, expected_D.detach().amax(-1), atol=1e-6):
            raise AssertionError("alpha is not the largest D_k: combine all K faces, 1 - prod_k (1 - D_k)")
        wrong_alpha = (alpha64 - expected_alpha.detach()).abs() > 1e-6
        assert not wrong_alpha.any(), (
            f"wrong alpha at {_where(wrong_alpha)}: you have {float(alpha64[wrong_alpha][0]):.4f}, "
            f"silhouette_from_dists gives {float(expected_alpha.detach()[wrong_alpha][0]):.4f} "
            f"(1 - prod_k (1 - D_k))")

        assert alpha.requires_grad, (
            "alpha is right but not differentiable with respect to fragments.dists: compute it "
            "with torch operations (no .item(), .numpy() or .detach())")
        weights = torch.linspace(0.5, 1.5, alpha.numel(), dtype=torch.float64).reshape(alpha.shape)
        grad, = torch.autograd.grad((alpha.to(torch.float64) * weights).sum(), fragments.dists)
        expected_grad, = torch.autograd.grad((expected_alpha * weights).sum(), fragments.dists)
        assert torch.allclose(grad, expected_grad, rtol=1e-5, atol=1e-8), (
            "alpha has the right values but the wrong gradient with respect to dists: does a "
            "detached or constant tensor stand in for part of the computation?")
    return True


# ---------------------------------------------------------------------------------------------
# Exercise 2.2

def check_soft_rgb(soft_rgb):
    """Checks ``soft_rgb(colors, fragments, sigma, gamma, background, znear, zfar) -> (N, H, W, 3)``
    against ``lib3dr.renderer.blending.softmax_rgb_blend``, for several gamma down to 1e-6."""
    sigma = 1e-3
    fragments = sample_fragments(sigma).detach()
    generator = torch.Generator().manual_seed(2)
    colors = torch.rand(*fragments.pix_to_face.shape, 3, generator=generator, dtype=torch.float64)
    colors = colors * (fragments.pix_to_face >= 0)[..., None]
    background = (0.2, 0.5, 0.9)
    znear, zfar = 1.0, 10.0
    empty = fragments.pix_to_face[..., 0] < 0
    for gamma in (0.1, 1e-2, 1e-4, 1e-6):
        params = BlendParams(sigma=sigma, gamma=gamma, background_color=background)
        expected = softmax_rgb_blend(colors, fragments, params, znear=znear, zfar=zfar)[..., :3]
        black = BlendParams(sigma=sigma, gamma=gamma, background_color=(0.0, 0.0, 0.0))
        no_background = softmax_rgb_blend(colors, fragments, black, znear=znear, zfar=zfar)[..., :3]
        answer = shortcuts.call_honestly(
            soft_rgb, (colors, fragments, sigma, gamma, background, znear, zfar), targets=RGB_SHORTCUTS,
            why="the exercise is to write the blend yourself from the formula in section 2 (your "
                "answer to exercise 2.1 may compute D); softmax_rgb_blend is what the check compares with")
        assert torch.is_tensor(answer), f"soft_rgb must return a tensor, got {type(answer).__name__}"
        assert answer.shape == expected.shape, (
            f"soft_rgb must return (N, H, W, 3) = {tuple(expected.shape)}, got {tuple(answer.shape)}")
        answer = answer.detach().to(torch.float64)
        finite = torch.isfinite(answer).all(-1)
        if not finite.all() and finite[~empty].all():
            raise AssertionError(
                f"NaN at the pixels that no face covers: there the face weights are all 0, and "
                f"without the background weight you divide 0 by 0. Give the background the weight "
                f"exp((eps - z_max) / gamma), clamped to at least eps = 1e-10, and add it to the "
                f"numerator (times the background colour) and the denominator.")
        if not finite.all():
            raise AssertionError(
                f"NaN or Inf with gamma = {gamma:g}: exp(z_k / gamma) overflows for small gamma. "
                f"Subtract z_max (the largest z_k of the pixel) in both exponents before exp; it "
                f"cancels between numerator and denominator.")
        wrong = (answer - expected).abs() > 1e-6
        if not wrong.any():
            continue
        if not torch.allclose(answer[empty], expected[empty], atol=1e-6):
            raise AssertionError(
                f"pixels with no face must show the background colour {background} (gamma = "
                f"{gamma:g}): give the background the weight exp((eps - z_max) / gamma), clamped "
                f"to at least eps = 1e-10")
        if torch.allclose(answer, no_background, atol=1e-6):
            raise AssertionError("the background colour is missing: add w_b * background to the "
                                 "numerator and w_b to the denominator")
        where = _where(wrong)
        raise AssertionError(
            f"wrong colour at pixel {where} with gamma = {gamma:g}: you have "
            f"{answer[where].numpy().round(4).tolist()}, softmax_rgb_blend gives "
            f"{expected[where].numpy().round(4).tolist()}. Check that padded slots "
            f"(pix_to_face == -1, zbuf == -1) get no weight and do not count in z_max, and that "
            f"the normalised depth is (zfar - zbuf) / (zfar - znear).")
    return True
