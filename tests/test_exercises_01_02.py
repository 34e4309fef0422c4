"""The exercise checks of chapters 1 and 2 accept right answers and reject wrong ones with a
message that says what is wrong."""
import pytest
import torch

from lib3dr.renderer.blending import BlendParams, softmax_rgb_blend
from lib3dr_book.exercises import chapter01, chapter02


def rejects(check, answer, *words):
    """The check raises AssertionError, and its message contains every word in words."""
    with pytest.raises(AssertionError) as info:
        check(*answer) if isinstance(answer, tuple) else check(answer)
    message = str(info.value).lower()
    assert all(word.lower() in message for word in words), message
    return message


# ---------------------------------------------------------------------------------------------
# Chapter 1, exercise 1.1: the gradient of a soft edge

def edge_value(c, p, r, s):
    return torch.sigmoid((r - (p - c).abs()) / s)


def test_soft_edge_gradient_accepts_the_reference_and_an_equivalent_form():
    assert chapter01.check_soft_edge_gradient(chapter01.reference_soft_edge_gradient) is True

    def via_derivative_of_sigmoid(c, p, r, s):
        u = (r - (p - c).abs()) / s
        return torch.exp(-u) / (1 + torch.exp(-u)) ** 2 * torch.sign(p - c) / s

    assert chapter01.check_soft_edge_gradient(via_derivative_of_sigmoid)


def test_soft_edge_gradient_rejects_common_mistakes():
    def flipped(c, p, r, s):
        a = edge_value(c, p, r, s)
        return a * (1 - a) * torch.sign(c - p) / s

    def no_chain_rule(c, p, r, s):
        a = edge_value(c, p, r, s)
        return a * (1 - a) * torch.sign(p - c)

    def twice(c, p, r, s):
        a = edge_value(c, p, r, s)
        return a * (1 - a) * torch.sign(p - c) / s ** 2

    def derivative_of_value_only(c, p, r, s):
        return edge_value(c, p, r, s)

    rejects(chapter01.check_soft_edge_gradient, flipped, "sign")
    rejects(chapter01.check_soft_edge_gradient, no_chain_rule, "1/s")
    rejects(chapter01.check_soft_edge_gradient, twice, "once")
    rejects(chapter01.check_soft_edge_gradient, derivative_of_value_only, "wrong gradient", "sigmoid'")
    rejects(chapter01.check_soft_edge_gradient, lambda c, p, r, s: torch.zeros(()), "elementwise")
    rejects(chapter01.check_soft_edge_gradient, lambda c, p, r, s: 0.0, "tensor")
    rejects(chapter01.check_soft_edge_gradient, lambda c, p, r, s: c / 0.0 * 0.0, "nan")


# ---------------------------------------------------------------------------------------------
# Chapter 1, exercise 1.2: a sphere from its silhouette

TRUE_CENTRE = torch.tensor(chapter01._MYSTERY_CENTRE)
TRUE_RADIUS = chapter01._MYSTERY_RADIUS


def test_sphere_fit_accepts_the_true_sphere_and_a_close_fit():
    assert chapter01.check_sphere_fit(TRUE_CENTRE, TRUE_RADIUS) is True
    assert chapter01.check_sphere_fit(TRUE_CENTRE.tolist(), torch.tensor(TRUE_RADIUS + 0.003))
    assert chapter01.check_sphere_fit(TRUE_CENTRE + torch.tensor([0.004, -0.003, 0.0]), TRUE_RADIUS)


def test_sphere_fit_explains_the_scale_ambiguity():
    camera = torch.tensor([0.0, 0.0, chapter01.CAMERA_DISTANCE])
    scale = 0.8  # the same silhouette: radius and distance to the camera scaled alike
    centre = camera + scale * (TRUE_CENTRE - camera)
    rejects(chapter01.check_sphere_fit, (centre, scale * TRUE_RADIUS), "same image", "z = 0")


def test_sphere_fit_rejects_wrong_spheres():
    rejects(chapter01.check_sphere_fit, (torch.zeros(3), 0.5), "does not match")
    rejects(chapter01.check_sphere_fit, (TRUE_CENTRE, -0.4), "positive")
    rejects(chapter01.check_sphere_fit, (TRUE_CENTRE[:2], TRUE_RADIUS), "3 numbers")
    rejects(chapter01.check_sphere_fit, (TRUE_CENTRE, TRUE_RADIUS + 0.04), "does not match")
    rejects(chapter01.check_sphere_fit, (TRUE_CENTRE, TRUE_RADIUS + 0.01), "not there yet")
    rejects(chapter01.check_sphere_fit, (TRUE_CENTRE + torch.tensor([0.0, 0.0, 0.05]), TRUE_RADIUS), "z = 0")


def test_mystery_silhouette_is_the_documented_image():
    image = chapter01.mystery_silhouette()
    assert image.shape == (1, 64, 64)
    assert 0.03 < float(image.mean()) < 0.3 and float(image.max()) > 0.99


# ---------------------------------------------------------------------------------------------
# Chapter 2, exercise 2.1: D and alpha from the fragments

def test_coverage_and_alpha_accepts_the_reference_and_the_library():
    assert chapter02.check_coverage_and_alpha(chapter02.reference_coverage_and_alpha) is True

    def with_library(fragments, sigma):
        from lib3dr.renderer.blending import coverage_probability
        from lib3dr.renderer.blending import silhouette_from_dists
        return (coverage_probability(fragments, sigma),
                silhouette_from_dists(fragments.pix_to_face, fragments.dists, sigma))

    assert chapter02.check_coverage_and_alpha(with_library)


def coverage(fragments, sigma):
    return torch.sigmoid(-fragments.dists / sigma) * (fragments.pix_to_face >= 0)


def test_coverage_and_alpha_rejects_common_mistakes():
    check = chapter02.check_coverage_and_alpha

    def unmasked(fragments, sigma):
        D = torch.sigmoid(-fragments.dists / sigma)
        return D, 1 - (1 - D).prod(-1)

    def flipped(fragments, sigma):
        D = torch.sigmoid(fragments.dists / sigma) * (fragments.pix_to_face >= 0)
        return D, 1 - (1 - D).prod(-1)

    def times_sigma(fragments, sigma):
        D = torch.sigmoid(-fragments.dists * sigma) * (fragments.pix_to_face >= 0)
        return D, 1 - (1 - D).prod(-1)

    def fixed_sigma(fragments, sigma):
        return chapter02.reference_coverage_and_alpha(fragments, 1e-3)

    def no_face(fragments, sigma):
        D = coverage(fragments, sigma)
        return D, (1 - D).prod(-1)

    def largest(fragments, sigma):
        D = coverage(fragments, sigma)
        return D, D.amax(-1)

    def detached(fragments, sigma):
        D = coverage(fragments, sigma)
        return D, (1 - (1 - D).prod(-1)).detach()

    def alpha_per_slot(fragments, sigma):
        D = coverage(fragments, sigma)
        return D, D

    rejects(check, unmasked, "padded")
    rejects(check, flipped, "sign")
    rejects(check, times_sigma, "divide")
    rejects(check, fixed_sigma, "wrong d", "sigma = 0.0003")
    rejects(check, no_face, "at least one")
    rejects(check, largest, "largest")
    rejects(check, detached, "differentiable")
    rejects(check, alpha_per_slot, "one value per pixel")
    rejects(check, lambda f, sigma: (coverage(f, sigma), coverage(f, sigma).sum(-1).clamp(max=1)), "wrong alpha")
    rejects(check, lambda fragments, sigma: coverage(fragments, sigma), "pair")


# ---------------------------------------------------------------------------------------------
# Chapter 2, exercise 2.2: the soft colour blend

def test_soft_rgb_accepts_the_reference_and_the_library():
    assert chapter02.check_soft_rgb(chapter02.reference_soft_rgb) is True

    def with_library(colors, fragments, sigma, gamma, background, znear, zfar):
        params = BlendParams(sigma=sigma, gamma=gamma, background_color=background)
        return softmax_rgb_blend(colors, fragments, params, znear=znear, zfar=zfar)[..., :3]

    assert chapter02.check_soft_rgb(with_library)


def blend(colors, fragments, sigma, gamma, background, znear, zfar, subtract_max=True,
          mask_padding=True, with_background=True):
    """softmax_rgb_blend's colour with switches for the usual mistakes."""
    valid = fragments.pix_to_face >= 0
    D = torch.sigmoid(-fragments.dists / sigma) * valid
    z_inv = (zfar - fragments.zbuf) / (zfar - znear)
    if mask_padding:
        z_inv = z_inv * valid
    z_max = z_inv.amax(-1, keepdim=True).clamp_min(1e-10) if subtract_max else torch.zeros(())
    weights = D * torch.exp((z_inv - z_max) / gamma)
    w_b = torch.exp((1e-10 - z_max) / gamma).clamp_min(1e-10) if with_background else torch.zeros(())
    rgb = (weights[..., None] * colors).sum(-2) + w_b * torch.as_tensor(background, dtype=colors.dtype)
    return rgb / (weights.sum(-1, keepdim=True) + w_b)


def test_soft_rgb_rejects_common_mistakes():
    check = chapter02.check_soft_rgb
    rejects(check, lambda *args: blend(*args, subtract_max=False), "overflow", "z_max")
    rejects(check, lambda *args: blend(*args, mask_padding=False), "wrong colour", "padded")
    rejects(check, lambda *args: blend(*args, with_background=False), "background")
    rejects(check, lambda *args: blend(*args)[..., :2], "(n, h, w, 3)")
    rejects(check, lambda *args: blend(*args).numpy(), "tensor")

