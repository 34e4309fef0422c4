"""Visible checks for chapter 3's exercises (silhouette pose estimation).

Exercise 3.1 ``check_camera_from_position(fn)``: a differentiable camera from its position, built
from the camera's axes (the library's ``look_at_rotation``, ``look_at_view_transform`` and
``lib3dr.pose.camera_from_position`` are blocked while it runs).
Exercise 3.2 ``check_best_distance(distance, distances)``: where, along the true viewing direction,
the loss is smallest for sigma = 3e-5.
Exercise 3.3 ``check_plateau_rule(should_stop)``: a stopping rule that needs no threshold.

Each check raises ``AssertionError`` saying what is wrong and returns True when the answer passes.
They hold no answers; the chapter's hidden tests decide the points.
"""
import math

import torch

from lib3dr.transforms import look_at_view_transform
from lib3dr_book.exercises import shortcuts

CAMERA_SHORTCUTS = ("lib3dr.pose.camera_from_position", "lib3dr.transforms.look_at_rotation",
                    "lib3dr.transforms.look_at_view_transform")


def check_camera_from_position(camera_from_position):
    """Exercise 3.1: ``camera_from_position(position)`` takes a (3,) tensor C and returns
    ``R (1, 3, 3)``, ``T (1, 3)`` of the camera at C looking at the origin with +Y up, such that
    ``X_view = X_world @ R + T``; both must be differentiable with respect to C."""
    positions = [(3.0, 6.9, 2.5), (0.0, 2.2981, 1.9284), (-1.0, 0.5, -2.0), (2.0, -1.0, 0.5)]
    for values in positions:
        R_ref, T_ref = look_at_view_transform(eye=(values,))
        position = torch.tensor(values, requires_grad=True)
        result = shortcuts.call_honestly(
            camera_from_position, (position,), targets=CAMERA_SHORTCUTS,
            why="build R from the camera's axes z, x, y (section 'The camera as three numbers', "
                "torch.linalg.cross and a norm) and T from R; the library's look_at functions are "
                "what the check compares with")
        assert isinstance(result, (tuple, list)) and len(result) == 2, (
            f"camera_from_position must return the pair (R, T), got {type(result).__name__}")
        R, T = result
        assert torch.is_tensor(R) and torch.is_tensor(T), "R and T must be torch tensors"
        assert tuple(R.shape) == (1, 3, 3), (
            f"R must have shape (1, 3, 3) (a batch of one camera), got {tuple(R.shape)}")
        assert tuple(T.shape) == (1, 3), f"T must have shape (1, 3), got {tuple(T.shape)}"
        if not torch.allclose(R.detach().float(), R_ref, atol=1e-4):
            if torch.allclose(R.detach().float().transpose(1, 2), R_ref, atol=1e-4):
                raise AssertionError(
                    f"R at C = {values} is the transpose of the right one: the camera's axes "
                    f"(x left, y up, z towards the origin) are the columns of R, not its rows")
            if torch.allclose(R.detach().float()[..., 2], -R_ref[..., 2], atol=1e-4):
                raise AssertionError(f"at C = {values} your z axis points away from the origin: "
                                     f"z = -C / |C| goes from the camera to the origin")
            raise AssertionError(
                f"R at C = {values} is not the rotation of a camera at C looking at the origin with "
                f"+Y up: expected {[[round(x, 4) for x in row] for row in R_ref[0].tolist()]}, got "
                f"{[[round(x, 4) for x in row] for row in R.detach()[0].tolist()]}")
        if not torch.allclose(T.detach().float(), T_ref, atol=1e-4):
            centre = position.detach() @ R.detach()[0].float() + T.detach()[0].float()
            raise AssertionError(
                f"T at C = {values} is wrong: the camera centre must land at the view-space origin, "
                f"C @ R + T = 0, but it lands at {[round(x, 3) for x in centre.tolist()]}")
        assert R.requires_grad and T.requires_grad, (
            "R and T must depend on the position through autograd (no torch.tensor(...) or "
            ".detach() on the way); otherwise no gradient reaches the camera")
        grad, = torch.autograd.grad((R * torch.arange(9.0).reshape(1, 3, 3)).sum() + T.sum(),
                                    position)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, (
            f"the gradient reaching the position is {grad.tolist()}: it must be finite and non-zero")
    return True


def check_best_distance(distance, distances):
    """Exercise 3.2: the camera distance among ``distances`` (along the direction of
    look_at_view_transform(3, 50, 0)) at which the silhouette loss of the teapot at 256 x 256 is
    smallest with sigma = 3e-5."""
    distance = float(distance)
    assert math.isfinite(distance), "the distance must be a finite number"
    grid = [float(d) for d in distances]
    assert any(abs(distance - d) < 1e-9 for d in grid), (
        f"{distance} is not one of the distances walked ({grid[0]:.3f} to {grid[-1]:.3f} in steps "
        f"of {grid[1] - grid[0]:.3f}): return the distance whose loss is smallest")
    assert abs(distance - 3.0) >= 1e-3, (
        "3.0 is the true distance, where the loss is smallest only for a hard silhouette: measure "
        "the soft loss at every distance of the walk")
    assert distance > 3.0, (
        f"{distance:.3f} is nearer than the true camera (3.0): the soft silhouette is wider than "
        f"the hard mask, so the loss prefers a camera farther away, not nearer. Is your loss the "
        f"sum of squared differences between the soft alpha and image_ref?")
    assert min(abs(distance - grid[0]), abs(distance - grid[-1])) > 1e-9, (
        f"{distance:.3f} is at an end of the walk: the loss is smallest where the walk stops, so "
        f"its minimum may lie beyond it (or the losses are not compared as they should be)")
    return True


def _plateau_cases():
    """(losses, whether a good rule stops, why) triples for check_plateau_rule."""
    falling = [1000.0 * 0.97 ** i for i in range(60)]  # 3 % per iteration: keep going
    flat = [1000.0 * 0.97 ** i for i in range(30)] + [1000.0 * 0.97 ** 29] * 15
    wiggle = [1000.0 * 0.97 ** i for i in range(30)] + [
        1000.0 * 0.97 ** 29 * (1 + 2e-4 * (-1) ** i) for i in range(15)]
    noisy = [1000.0 * 0.97 ** i * (1 + 0.03 * (-1) ** i) for i in range(41)]  # last step goes up
    return [
        (falling[:5], False, "fewer than 11 losses: too early to judge"),
        (noisy, False, "the loss is noisy (its last step went up) but still falls by 3 % per "
                       "iteration on average"),
        (falling, False, "the loss still falls by 3 % per iteration"),
        ([x * 1e-3 for x in falling], False, "the same fall at a thousandth of the scale"),
        (flat, True, "the loss has not changed for 15 iterations"),
        ([x * 1e3 for x in flat], True, "the same plateau at a thousand times the scale"),
        (wiggle, True, "the loss wobbles by 0.02 % around a plateau"),
    ]


def check_plateau_rule(should_stop):
    """Exercise 3.3: ``should_stop(losses)`` takes the list of losses so far and returns True when
    the best loss of the last 10 iterations is less than 0.1 % below the best loss before them
    (and False while there are fewer than 11 losses). It must not depend on the loss's scale."""
    for losses, expected, why in _plateau_cases():
        answer = should_stop(list(losses))
        assert isinstance(answer, (bool, torch.Tensor)) or answer in (0, 1), (
            f"should_stop must return a bool, got {type(answer).__name__}")
        assert bool(answer) == expected, (
            f"should_stop returned {bool(answer)} where it should return {expected}: {why} "
            f"(last losses {[round(x, 4) for x in losses[-3:]]})")
    return True
