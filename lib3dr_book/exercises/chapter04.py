"""Checks for chapter 4's exercises (pose from silhouette and texture).

Exercise 4.1 ``check_twin(twin)``: the camera that sees the same silhouette of a mirror-symmetric
object.
Exercise 4.2 ``check_textured_loss(textured_loss)``: the silhouette + colour loss per image of a
batch.
"""
import torch


def check_twin(twin):
    """Exercise 4.1: ``twin(C)`` returns, for a camera at C looking at the origin, the camera that
    sees (orthographically) the same silhouette of an object symmetric about the plane x = 0:
    ``(c_x, -c_y, -c_z)``."""
    for values in [(1.0, 2.0, -0.5), (0.0, 2.2981, 1.9284), (-2.0, 0.5, 1.5), (0.3, -1.0, 2.0)]:
        C = torch.tensor(values)
        result = twin(C.clone())
        assert torch.is_tensor(result) and tuple(result.shape) == (3,), (
            f"twin must return a (3,) tensor, got {type(result).__name__} "
            f"{tuple(result.shape) if torch.is_tensor(result) else ''}")
        result = result.detach().float()
        expected = C * torch.tensor([1.0, -1.0, -1.0])
        if torch.allclose(result, expected, atol=1e-5):
            continue
        if torch.allclose(result, C, atol=1e-5):
            raise AssertionError("twin returned C itself: look for a different camera")
        if torch.allclose(result, -C, atol=1e-5):
            raise AssertionError(
                "-C sees the silhouette mirrored left to right; reflect -C in the plane x = 0 "
                "(which maps the object onto itself) to mirror it back")
        if torch.allclose(result, C * torch.tensor([-1.0, 1.0, 1.0]), atol=1e-5):
            raise AssertionError(
                "(-c_x, c_y, c_z) is C reflected in x = 0: it sees the mirror image of the "
                "silhouette, not the same one (compare the cow from its left and from its right)")
        raise AssertionError(f"twin({list(values)}) returned {[round(x, 4) for x in result.tolist()]}, "
                             f"which is not the camera opposite C, reflected in x = 0")
    return True


def _reference_loss(alpha, rgb, silhouette_ref, rgb_ref, rgb_weight):
    return (((alpha - silhouette_ref) ** 2).sum((1, 2))
            + rgb_weight * ((rgb - rgb_ref) ** 2).sum((1, 2, 3)))


def check_textured_loss(textured_loss):
    """Exercise 4.2: ``textured_loss(alpha, rgb, silhouette_ref, rgb_ref, rgb_weight=0.1)`` with
    ``alpha (N, H, W)``, ``rgb (N, H, W, 3)``, ``silhouette_ref (H, W)``, ``rgb_ref (H, W, 3)``
    returns the (N,) losses ``sum (alpha - ref)^2 + rgb_weight * sum |rgb - rgb_ref|^2``."""
    generator = torch.Generator().manual_seed(4)
    N, H, W = 3, 5, 7
    alpha = torch.rand(N, H, W, generator=generator, requires_grad=True)
    rgb = torch.rand(N, H, W, 3, generator=generator, requires_grad=True)
    silhouette_ref = (torch.rand(H, W, generator=generator) > 0.5).float()
    rgb_ref = torch.rand(H, W, 3, generator=generator)
    result = textured_loss(alpha, rgb, silhouette_ref, rgb_ref)
    assert torch.is_tensor(result), f"textured_loss must return a tensor, got {type(result).__name__}"
    assert tuple(result.shape) == (N,), (
        f"textured_loss must return one loss per image, shape ({N},), got {tuple(result.shape)}: "
        f"sum over the pixels (and colour channels) only, not over the batch")
    expected = _reference_loss(alpha, rgb, silhouette_ref, rgb_ref, 0.1)
    silhouette_part = _reference_loss(alpha, rgb, silhouette_ref, rgb_ref, 0.0)
    colour_part = expected - silhouette_part
    if torch.allclose(result, silhouette_part + colour_part / 0.1 * 0.01, rtol=1e-4):
        raise AssertionError("the colour term is weighted twice (0.1 * 0.1)")
    if torch.allclose(result, 0.1 * silhouette_part + colour_part / 0.1, rtol=1e-4):
        raise AssertionError("the weights are swapped: 1 for the silhouette, rgb_weight for the colours")
    if torch.allclose(result, silhouette_part, rtol=1e-4):
        raise AssertionError("the colour term is missing")
    if torch.allclose(result, silhouette_part + colour_part / 0.1, rtol=1e-4):
        raise AssertionError("the colour term must be multiplied by rgb_weight (0.1 by default)")
    assert torch.allclose(result, expected, rtol=1e-4), (
        f"expected {[round(x, 3) for x in expected.tolist()]}, got "
        f"{[round(x, 3) for x in result.tolist()]}: squared differences, summed, not averaged")
    other = textured_loss(alpha, rgb, silhouette_ref, rgb_ref, rgb_weight=1.0)
    assert torch.allclose(other, _reference_loss(alpha, rgb, silhouette_ref, rgb_ref, 1.0), rtol=1e-4), (
        "textured_loss ignores its rgb_weight argument")
    grad_alpha, grad_rgb = torch.autograd.grad(result.sum(), (alpha, rgb), allow_unused=True)
    assert grad_alpha is not None and grad_rgb is not None, (
        "the loss must be differentiable with respect to both alpha and rgb (no .detach())")
    return True
