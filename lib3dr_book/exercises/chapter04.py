"""Visible checks for chapter 4's exercises (pose from silhouette and texture).

Exercise 4.1 ``check_twin(twin)``: the camera that sees the same silhouette of a mirror-symmetric
object, checked by looking: a symmetric point cloud projected (orthographically) from C and from
``twin(C)`` must give the same outline.
Exercise 4.2 ``check_textured_loss(textured_loss)``: the silhouette + colour loss per image of a
batch, checked on images that differ from the references by one pixel at a time.

Each check raises ``AssertionError`` saying what is wrong and returns True when the answer passes.
They hold no answers; the chapter's hidden tests decide the points.
"""
import torch

from lib3dr.transforms import look_at_rotation

MIRROR_X = torch.tensor([-1.0, 1.0, 1.0])  # reflection in the plane x = 0


def _symmetric_points():
    """(80, 3) points of a cloud that the reflection in x = 0 maps onto itself, and nothing else does."""
    generator = torch.Generator().manual_seed(41)
    half = torch.rand(40, 3, generator=generator, dtype=torch.float64) * 2 - 1
    half[:, 0] = half[:, 0].abs() + 0.05
    return torch.cat([half, half * MIRROR_X.double()])


def view(points, C):
    """(M, 2) orthographic image of ``points`` (M, 3) seen by a camera at C looking at the origin,
    +Y up: their view-space x and y."""
    R = look_at_rotation(C.detach().double()[None])[0]
    return (points.double() @ R)[:, :2]


def outline_difference(C, other):
    """How far apart (view-space units) the symmetric cloud looks from C and from ``other``: the
    largest distance from a point of one image to the nearest point of the other."""
    points = _symmetric_points()
    distances = torch.cdist(view(points, C), view(points, other), compute_mode="donot_use_mm_for_euclid_dist")
    return max(distances.min(0).values.max().item(), distances.min(1).values.max().item())


def check_twin(twin):
    """Exercise 4.1: ``twin(C)`` returns, for a camera at C looking at the origin, the other camera
    at the same distance that sees (orthographically) the same silhouette of an object symmetric
    about the plane x = 0."""
    for values in [(1.0, 2.0, -0.5), (0.0, 2.2981, 1.9284), (-2.0, 0.5, 1.5), (0.3, -1.0, 2.0)]:
        C = torch.tensor(values)
        result = twin(C.clone())
        assert torch.is_tensor(result) and tuple(result.shape) == (3,), (
            f"twin must return a (3,) tensor, got {type(result).__name__} "
            f"{tuple(result.shape) if torch.is_tensor(result) else ''}")
        result = result.detach().float()
        assert torch.isfinite(result).all(), f"twin({list(values)}) returned {result.tolist()}"
        same_distance = abs(result.norm().item() - C.norm().item()) < 1e-4 * C.norm().item()
        difference = outline_difference(C, result)
        if torch.allclose(result, C, atol=1e-5):
            raise AssertionError("twin returned C itself: look for a different camera")
        if same_distance and difference < 1e-6:
            continue
        if torch.allclose(result, -C, atol=1e-5):
            raise AssertionError(
                "-C sees the silhouette mirrored left to right; which reflection maps the object "
                "onto itself, and what does it do to a camera and its image?")
        if torch.allclose(result, C * MIRROR_X, atol=1e-5):
            raise AssertionError(
                "(-c_x, c_y, c_z) is C reflected in x = 0: it sees the mirror image of the "
                "silhouette, not the same one (compare the cow from its left and from its right)")
        assert same_distance, (
            f"twin({list(values)}) is at distance {result.norm().item():.4f} from the origin, C at "
            f"{C.norm().item():.4f}: with perspective a camera at another distance sees another size")
        raise AssertionError(
            f"a cloud of points symmetric about x = 0, seen from C = {list(values)} and from your "
            f"twin {[round(x, 4) for x in result.tolist()]}, gives different images: points up to "
            f"{difference:.3f} apart. The twin sees the object from the opposite side, and then "
            f"a reflection puts its image back the right way round.")
    return True


def check_textured_loss(textured_loss):
    """Exercise 4.2: ``textured_loss(alpha, rgb, silhouette_ref, rgb_ref, rgb_weight=0.1)`` with
    ``alpha (N, H, W)``, ``rgb (N, H, W, 3)``, ``silhouette_ref (H, W)``, ``rgb_ref (H, W, 3)``
    returns the (N,) losses ``sum (alpha - ref)^2 + rgb_weight * sum |rgb - rgb_ref|^2``."""
    generator = torch.Generator().manual_seed(4)
    N, H, W = 3, 5, 7
    silhouette_ref = (torch.rand(H, W, generator=generator) > 0.5).float()
    rgb_ref = torch.rand(H, W, 3, generator=generator) * 0.5
    alpha = silhouette_ref.expand(N, H, W).clone()
    rgb = rgb_ref.expand(N, H, W, 3).clone()

    def loss(alpha, rgb, **kwargs):
        alpha, rgb = alpha.clone().requires_grad_(True), rgb.clone().requires_grad_(True)
        result = textured_loss(alpha, rgb, silhouette_ref, rgb_ref, **kwargs)
        assert torch.is_tensor(result), f"textured_loss must return a tensor, got {type(result).__name__}"
        assert tuple(result.shape) == (N,), (
            f"textured_loss must return one loss per image, shape ({N},), got {tuple(result.shape)}: "
            f"sum over the pixels (and colour channels) only, not over the batch")
        return result, alpha, rgb

    def rounded(x):
        return [round(v, 5) for v in x.detach().tolist()]

    result, _, _ = loss(alpha, rgb)
    assert torch.allclose(result, torch.zeros(N), atol=1e-6), (
        f"images equal to the references must have loss 0, got {rounded(result)}")

    off_alpha = alpha.clone()
    off_alpha[1, 2, 3] += 0.5
    result, _, _ = loss(off_alpha, rgb)
    expected = torch.tensor([0.0, 0.25, 0.0])
    if torch.allclose(result, torch.tensor([0.0, 0.025, 0.0]), atol=1e-6):
        raise AssertionError("the weights are swapped: 1 for the silhouette, rgb_weight for the colours")
    if torch.allclose(result, expected / (H * W), atol=1e-6):
        raise AssertionError(f"the loss is averaged over the pixels; sum the squared differences "
                             f"(expected {rounded(expected)}, got {rounded(result)})")
    assert torch.allclose(result, expected, atol=1e-6), (
        f"alpha of image 1 differs from the reference by 0.5 at one pixel: its loss should be "
        f"0.5^2 = 0.25 and the others 0, expected {rounded(expected)}, got {rounded(result)}")

    off_rgb = rgb.clone()
    off_rgb[2, 4, 1, 0] += 0.5
    result, _, _ = loss(alpha, off_rgb)
    expected = torch.tensor([0.0, 0.0, 0.1 * 0.25])
    if torch.allclose(result, torch.tensor([0.0, 0.0, 0.25]), atol=1e-6):
        raise AssertionError("the colour term must be multiplied by rgb_weight (0.1 by default)")
    if torch.allclose(result, torch.tensor([0.0, 0.0, 0.01 * 0.25]), atol=1e-7):
        raise AssertionError("the colour term is weighted twice (0.1 * 0.1)")
    assert torch.allclose(result, expected, atol=1e-7), (
        f"the red channel of image 2 differs from the reference by 0.5 at one pixel: its loss "
        f"should be rgb_weight * 0.5^2 = 0.025 and the others 0, expected {rounded(expected)}, "
        f"got {rounded(result)}")

    result, _, _ = loss(alpha, off_rgb, rgb_weight=1.0)
    assert torch.allclose(result, torch.tensor([0.0, 0.0, 0.25]), atol=1e-6), (
        f"with rgb_weight=1.0 the same colour difference should cost 0.25, got {rounded(result)}: "
        f"does textured_loss use its rgb_weight argument?")

    both_alpha, both_rgb = alpha.clone(), rgb.clone()
    both_alpha[0, 0, 0] += 0.5
    both_alpha[0, 1, 1] -= 0.5
    both_rgb[0, 3, 3, 2] += 0.5
    result, alpha_in, rgb_in = loss(both_alpha, both_rgb)
    expected = torch.tensor([0.25 + 0.25 + 0.025, 0.0, 0.0])
    assert torch.allclose(result, expected, atol=1e-6), (
        f"two alpha pixels off by +0.5 and -0.5 and one colour off by 0.5, all in image 0: "
        f"expected {rounded(expected)}, got {rounded(result)} (squared differences, summed)")
    grad_alpha, grad_rgb = torch.autograd.grad(result.sum(), (alpha_in, rgb_in), allow_unused=True)
    assert grad_alpha is not None and grad_rgb is not None, (
        "the loss must be differentiable with respect to both alpha and rgb (no .detach())")
    return True
