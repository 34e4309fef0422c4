"""The exercises of chapters 1 and 2: the visible checks (lib3dr_book.exercises) accept right
answers and reject wrong ones with a message that says what is wrong; the library's own functions
do not pass for the student's work; the hidden tests (in the chapters' test cells) reject what
slips past the visible checks; and no answer is importable."""
import numpy as np
import pytest
import torch
from chapter_cells import ROOT, answer, hidden_tests_reject, rejects, run_tests

from lib3dr.renderer.blending import BlendParams, coverage_probability, silhouette_from_dists, softmax_rgb_blend
from lib3dr_book.exercises import chapter01, chapter02, shortcuts


# ---------------------------------------------------------------------------------------------
# Chapter 1, exercise 1.1: the gradient of a soft edge

def edge_value(c, p, r, s):
    return torch.sigmoid((r - (p - c).abs()) / s)


def test_soft_edge_gradient_accepts_the_instructors_answer_and_an_equivalent_form():
    instructor = answer("01", "ex1_1_answer")["soft_edge_gradient"]
    assert chapter01.check_soft_edge_gradient(instructor) is True
    run_tests("01", "ex1_1_tests", soft_edge_gradient=instructor)

    def via_derivative_of_sigmoid(c, p, r, s):
        u = (r - (p - c).abs()) / s
        return torch.exp(-u) / (1 + torch.exp(-u)) ** 2 * torch.sign(p - c) / s

    assert chapter01.check_soft_edge_gradient(via_derivative_of_sigmoid)
    run_tests("01", "ex1_1_tests", soft_edge_gradient=via_derivative_of_sigmoid)


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


def with_autograd(c, p, r, s):
    c = c.clone().requires_grad_(True)
    edge_value(c, p, r, s).sum().backward()
    return c.grad


def test_soft_edge_gradient_rejects_autograd_in_every_form():
    from torch.autograd import grad as imported_grad

    def via_grad(c, p, r, s):
        c = c.clone().requires_grad_(True)
        return torch.autograd.grad(edge_value(c, p, r, s).sum(), c)[0]

    def via_alias(c, p, r, s):
        c = c.clone().requires_grad_(True)
        return imported_grad(edge_value(c, p, r, s).sum(), c)[0]

    def via_default(c, p, r, s, g=imported_grad):
        c = c.clone().requires_grad_(True)
        return g(edge_value(c, p, r, s).sum(), c)[0]

    def via_helper(c, p, r, s):
        return with_autograd(c, p, r, s)

    def via_getattr(c, p, r, s):
        c = c.clone().requires_grad_(True)
        getattr(edge_value(c, p, r, s).sum(), "back" + "ward")()
        return c.grad

    for cheat in (with_autograd, via_grad, via_alias, via_default, via_helper, via_getattr):
        rejects(chapter01.check_soft_edge_gradient, cheat, "by hand")
    hidden_tests_reject("01", "ex1_1_tests", soft_edge_gradient=via_getattr)
    assert torch.Tensor.backward.__name__ == "backward"  # put back after the check
    assert torch.autograd.grad is imported_grad


# ---------------------------------------------------------------------------------------------
# Chapter 1, exercise 1.2: a sphere from its silhouette (the image is data, its sphere is not)

MYSTERY = torch.from_numpy(np.load(ROOT / "data" / "exercises" / "mystery_sphere.npy"))


@pytest.fixture(scope="module")
def fitted_sphere():
    """A sphere found without its parameters, as a student would: the silhouette's centroid and
    area give a first guess (the camera at distance 3 on +Z mirrors x), Adam refines it."""
    image = MYSTERY[0]
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    weight = image / image.sum()
    ndc_x, ndc_y = 1 - (2 * (weight * xs).sum() + 1) / 64, 1 - (2 * (weight * ys).sum() + 1) / 64
    scale = chapter01.CAMERA_DISTANCE * np.tan(np.radians(30))  # NDC to the plane z = 0
    xy = torch.stack([-ndc_x * scale, ndc_y * scale]).requires_grad_(True)
    radius = (torch.sqrt(image.sum() / np.pi) * 2 / 64 * scale).requires_grad_(True)
    optimizer = torch.optim.Adam([xy, radius], lr=0.005)
    for _ in range(60):
        optimizer.zero_grad()
        loss = ((chapter01.sphere_silhouette(torch.cat([xy, torch.zeros(1)]), radius) - MYSTERY) ** 2).mean()
        loss.backward()
        optimizer.step()
    return torch.cat([xy.detach(), torch.zeros(1)]), float(radius.detach())


def test_sphere_fit_accepts_a_sphere_that_explains_the_image(fitted_sphere):
    centre, radius = fitted_sphere
    assert chapter01.check_sphere_fit(centre, radius, MYSTERY) is True
    assert chapter01.check_sphere_fit(centre.tolist(), torch.tensor(radius), MYSTERY)


def test_sphere_fit_explains_the_scale_ambiguity_and_rejects_wrong_spheres(fitted_sphere):
    centre, radius = fitted_sphere
    camera = torch.tensor([0.0, 0.0, chapter01.CAMERA_DISTANCE])
    scale = 0.8  # the same silhouette: radius and distance to the camera scaled alike
    rejects(chapter01.check_sphere_fit, (camera + scale * (centre - camera), scale * radius, MYSTERY),
            "same image", "z = 0")
    rejects(chapter01.check_sphere_fit, (torch.zeros(3), 0.5, MYSTERY), "does not match")
    rejects(chapter01.check_sphere_fit, (centre, -0.4, MYSTERY), "positive")
    rejects(chapter01.check_sphere_fit, (centre[:2], radius, MYSTERY), "3 numbers")
    rejects(chapter01.check_sphere_fit, (centre, radius + 0.06, MYSTERY), "does not match")
    rejects(chapter01.check_sphere_fit, (centre, radius + 0.01, MYSTERY), "not there yet")
    rejects(chapter01.check_sphere_fit, (centre + torch.tensor([0.0, 0.0, 0.05]), radius, MYSTERY), "z = 0")


def test_the_mystery_sphere_is_data_not_package():
    assert MYSTERY.shape == (1, 64, 64) and MYSTERY.dtype == torch.float32
    assert 0.01 < float(MYSTERY.mean()) < 0.3 and float(MYSTERY.max()) > 0.99
    assert not hasattr(chapter01, "mystery_silhouette") and not hasattr(chapter01, "_MYSTERY_CENTRE")


# ---------------------------------------------------------------------------------------------
# Chapter 2, exercise 2.1: D and alpha from the fragments

def coverage(fragments, sigma):
    return torch.sigmoid(-fragments.dists / sigma) * (fragments.pix_to_face >= 0)


def test_coverage_and_alpha_accepts_the_instructors_answer_and_another_form():
    instructor = answer("02", "ex2_1_answer")["soft_silhouette_from_fragments"]
    assert chapter02.check_coverage_and_alpha(instructor) is True
    run_tests("02", "ex2_1_tests", soft_silhouette_from_fragments=instructor)

    def through_logs(fragments, sigma):
        D = coverage(fragments, sigma)
        log_miss = torch.nn.functional.logsigmoid(fragments.dists / sigma) * (fragments.pix_to_face >= 0)
        return D, 1 - torch.exp(log_miss.sum(-1))

    assert chapter02.check_coverage_and_alpha(through_logs)
    run_tests("02", "ex2_1_tests", soft_silhouette_from_fragments=through_logs)


def test_coverage_and_alpha_rejects_the_librarys_functions():
    import lib3dr.renderer.blending as blending
    from lib3dr.renderer import SoftSilhouetteShader

    def with_library(fragments, sigma):
        return (coverage_probability(fragments, sigma),
                silhouette_from_dists(fragments.pix_to_face, fragments.dists, sigma))

    def alpha_from_library(fragments, sigma):
        return coverage(fragments, sigma), blending.silhouette_from_dists(fragments.pix_to_face, fragments.dists, sigma)

    def alpha_by_name(fragments, sigma):  # invisible to reading the code: blocked while it runs
        blend = getattr(blending, "silhouette_" + "from_dists")
        return coverage(fragments, sigma), blend(fragments.pix_to_face, fragments.dists, sigma)

    def alpha_from_a_shader(fragments, sigma):
        shader = SoftSilhouetteShader(blend_params=BlendParams(sigma=sigma))
        return coverage(fragments, sigma), shader(fragments, None)[..., 3]

    def alpha_from_the_rgb_blend(fragments, sigma):
        colors = torch.zeros(*fragments.pix_to_face.shape, 3, dtype=fragments.dists.dtype)
        blend = getattr(blending, "softmax" + "_rgb_blend")
        return coverage(fragments, sigma), blend(colors, fragments, BlendParams(sigma=sigma))[..., 3]

    for cheat in (with_library, alpha_from_library, alpha_by_name, alpha_from_a_shader, alpha_from_the_rgb_blend):
        rejects(chapter02.check_coverage_and_alpha, cheat, "yourself")
        hidden_tests_reject("02", "ex2_1_tests", soft_silhouette_from_fragments=cheat)
    assert blending.silhouette_from_dists is silhouette_from_dists  # put back after the check


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
        D = coverage(fragments, 1e-3)
        return D, 1 - (1 - D).prod(-1)

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


def test_hidden_tests_reject_an_answer_fitted_to_the_visible_check():
    def only_at_the_checked_sigmas(fragments, sigma):
        D = coverage(fragments, sigma if sigma in (1e-3, 3e-4) else 1e-3)
        return D, 1 - (1 - D).prod(-1)

    assert chapter02.check_coverage_and_alpha(only_at_the_checked_sigmas)
    hidden_tests_reject("02", "ex2_1_tests", soft_silhouette_from_fragments=only_at_the_checked_sigmas)


# ---------------------------------------------------------------------------------------------
# Chapter 2, exercise 2.2: the soft colour blend

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


def test_soft_rgb_accepts_the_instructors_answer_and_another_form():
    instructor = answer("02", "ex2_2_answer")["soft_rgb"]
    assert chapter02.check_soft_rgb(instructor) is True
    run_tests("02", "ex2_2_tests", soft_rgb=instructor)
    assert chapter02.check_soft_rgb(blend)
    run_tests("02", "ex2_2_tests", soft_rgb=blend)


def test_soft_rgb_rejects_the_library():
    def with_library(colors, fragments, sigma, gamma, background, znear, zfar):
        params = BlendParams(sigma=sigma, gamma=gamma, background_color=background)
        return softmax_rgb_blend(colors, fragments, params, znear=znear, zfar=zfar)[..., :3]

    def library_coverage(colors, fragments, sigma, gamma, background, znear, zfar):
        from lib3dr.renderer import blending
        D = getattr(blending, "coverage" + "_probability")(fragments, sigma)
        return blend(colors, fragments, sigma, gamma, background, znear, zfar) * D.new_ones(())

    for cheat in (with_library, library_coverage):
        rejects(chapter02.check_soft_rgb, cheat, "yourself")
        hidden_tests_reject("02", "ex2_2_tests", soft_rgb=cheat)


def test_soft_rgb_rejects_common_mistakes():
    check = chapter02.check_soft_rgb
    rejects(check, lambda *args: blend(*args, subtract_max=False), "overflow", "z_max")
    rejects(check, lambda *args: blend(*args, mask_padding=False), "wrong colour", "padded")
    rejects(check, lambda *args: blend(*args, with_background=False), "background")
    rejects(check, lambda *args: blend(*args)[..., :2], "(n, h, w, 3)")
    rejects(check, lambda *args: blend(*args).numpy(), "tensor")


def test_hidden_tests_reject_a_blend_fitted_to_the_visible_background():
    def fixed_background(colors, fragments, sigma, gamma, background, znear, zfar):
        return blend(colors, fragments, sigma, gamma, (0.2, 0.5, 0.9), znear, zfar)

    assert chapter02.check_soft_rgb(fixed_background)
    hidden_tests_reject("02", "ex2_2_tests", soft_rgb=fixed_background)
