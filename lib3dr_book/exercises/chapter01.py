"""Visible checks for chapter 1's exercises (``chapters/01_why_differentiable_rendering``).

Exercise 1.1: ``check_soft_edge_gradient(soft_edge_gradient)``, the derivative of a 1D soft edge,
written by hand (autograd is blocked while it runs).
Exercise 1.2: ``check_sphere_fit(centre, radius, image_ref)``, a sphere fitted to the observed
silhouette ``data/exercises/mystery_sphere.npy``, knowing that its centre lies in the plane z = 0.

Each check raises ``AssertionError`` saying what is wrong and returns True when the answer passes.
They hold no answers: the expected values come from autograd and from the observed image; the
chapter's hidden tests decide the points.
"""
import torch

from lib3dr_book.exercises import shortcuts

# Exercise 1.2's camera and rendering settings (the observed image is data/exercises/mystery_sphere.npy).
IMAGE_SIZE = 64
SIGMA = 1e-4
CAMERA_DISTANCE = 3.0


# ---------------------------------------------------------------------------------------------
# Exercise 1.1

def _soft_edge(c, p, r, s):
    return torch.sigmoid((r - (p - c).abs()) / s)


def _soft_edge_samples(seed=11, shape=(64,)):
    generator = torch.Generator().manual_seed(seed)
    n = int(torch.Size(shape).numel())
    c = torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1
    p = torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1
    r = torch.rand(n, generator=generator, dtype=torch.float64) * 0.5 + 0.2
    s = 10 ** (-torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 0.5)
    # Put half the points near the edge, where the gradient is large.
    near = torch.arange(n) % 2 == 0
    offset = (torch.rand(n, generator=generator, dtype=torch.float64) - 0.5) * 2 * s
    p = torch.where(near, c + torch.where(torch.arange(n) % 4 == 0, 1.0, -1.0) * (r + offset), p)
    return tuple(x.reshape(shape) for x in (c, p, r, s))


def check_soft_edge_gradient(soft_edge_gradient):
    """Checks ``soft_edge_gradient(c, p, r, s)``, the derivative with respect to c of
    ``a(c) = sigmoid((r - |p - c|) / s)``, elementwise on float64 tensors, against autograd."""
    c, p, r, s = _soft_edge_samples()
    c_grad = c.clone().requires_grad_(True)
    expected, = torch.autograd.grad(_soft_edge(c_grad, p, r, s).sum(), c_grad)
    answer = shortcuts.call_honestly(
        soft_edge_gradient, (c.clone(), p.clone(), r.clone(), s.clone()),
        targets=shortcuts.AUTOGRAD, names=shortcuts.AUTOGRAD_NAMES,
        why="derive the derivative by hand and write the formula with torch operations; autograd "
            "is what the check compares with")
    assert torch.is_tensor(answer), f"soft_edge_gradient must return a tensor, got {type(answer).__name__}"
    assert answer.shape == expected.shape, (
        f"soft_edge_gradient must work elementwise: for inputs of shape {tuple(c.shape)} it "
        f"returned shape {tuple(answer.shape)}")
    answer = answer.detach().to(torch.float64)
    assert torch.isfinite(answer).all(), "soft_edge_gradient returned NaN or Inf"

    def close(x):
        return torch.allclose(x, expected, rtol=1e-6, atol=1e-9)

    if close(-answer):
        raise AssertionError(
            "the sign is flipped: moving c towards p makes the disk cover p more, so the "
            "gradient has the sign of (p - c). Note d|p - c|/dc = -sign(p - c).")
    if close(answer / s):
        raise AssertionError(
            "the gradient is s times too small: the chain rule through (r - |p - c|) / s "
            "contributes a factor 1/s")
    if close(answer * s):
        raise AssertionError("the gradient is 1/s times too large: divide by s once, not twice")
    worst = int((answer - expected).abs().argmax())
    assert close(answer), (
        f"wrong gradient: at c={c[worst]:.4f}, p={p[worst]:.4f}, r={r[worst]:.4f}, "
        f"s={s[worst]:.4g} you return {answer[worst]:.6g}, autograd gives "
        f"{expected[worst]:.6g}. Hint: sigmoid'(u) = sigmoid(u) (1 - sigmoid(u)).")
    return True


# ---------------------------------------------------------------------------------------------
# Exercise 1.2

def camera():
    """The chapter's camera, at distance 3 on +Z looking at the origin."""
    from lib3dr.renderer import FoVPerspectiveCameras, look_at_view_transform
    R, T = look_at_view_transform(CAMERA_DISTANCE, 0.0, 0.0)
    return FoVPerspectiveCameras(R=R, T=T)


def sphere_silhouette(centre, radius, image_size=IMAGE_SIZE, sigma=SIGMA):
    """Soft silhouette ``(1, H, W)`` of ``ico_sphere(2)`` scaled by ``radius`` and moved to
    ``centre`` (3,), seen by the chapter's camera; differentiable in both."""
    from lib3dr.renderer.silhouette import soft_silhouette
    from lib3dr.structures import Meshes
    from lib3dr.utils import ico_sphere
    sphere = ico_sphere(2)
    centre = torch.as_tensor(centre, dtype=torch.float32)
    radius = torch.as_tensor(radius, dtype=torch.float32)
    mesh = Meshes(verts=[radius * sphere.verts_packed() + centre], faces=[sphere.faces_packed()])
    return soft_silhouette(mesh, camera(), image_size=image_size, sigma=sigma)


def check_sphere_fit(centre, radius, image_ref, tolerance=0.02):
    """Checks a sphere fitted to the observed silhouette ``image_ref`` (1, 64, 64): ``centre`` (3,)
    with z = 0 and ``radius``. With z fixed, a sphere whose silhouette matches is the one."""
    centre = torch.as_tensor(centre, dtype=torch.float32).detach().reshape(-1)
    radius = float(torch.as_tensor(radius).detach().reshape(()))
    assert centre.shape == (3,), f"centre must hold 3 numbers (x, y, z), got {tuple(centre.shape)}"
    assert radius > 0, f"the radius must be positive, got {radius}"
    error = float(((sphere_silhouette(centre, radius) - image_ref) ** 2).mean())
    if error < 2e-3 and abs(float(centre[2])) > tolerance:
        raise AssertionError(
            f"your sphere's silhouette matches (mean squared error {error:.1e}) but its centre "
            f"has z = {float(centre[2]):.3f}: from one view, scaling the sphere's radius and its "
            f"distance to the camera by the same factor gives the same image. Use what you know "
            f"(the centre lies in the plane z = 0) and optimise x, y and the radius only.")
    assert error < 2e-3, (
        f"your sphere's silhouette does not match the observed one (mean squared error "
        f"{error:.2e}, a converged fit reaches about 1e-6): did the optimisation converge? Plot "
        f"the loss, and try more steps or a larger learning rate.")
    assert abs(float(centre[2])) <= tolerance, f"the centre must lie in the plane z = 0, got z = {float(centre[2]):.3f}"
    assert error < 2e-4, (
        f"close, but not there yet: the silhouettes still differ by {error:.1e} (a converged "
        f"fit reaches about 1e-6); run more steps, or lower the learning rate towards the end")
    return True
