"""The exercise checks of chapters 3-5 accept correct answers and reject wrong ones with a message
that says what is wrong; and the small pose helpers of lib3dr.pose that those chapters share."""
import math

import pytest
import torch
from helpers import UNIT_ROUNDOFF

from lib3dr_book.exercises import chapter03
from lib3dr.renderer import look_at_rotation


def rejects(check, answer, *fragments):
    """``check(answer)`` raises AssertionError whose message contains every fragment."""
    with pytest.raises(AssertionError) as error:
        check(answer)
    message = str(error.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


# ------------------------------------------------------------------------------------ chapter 3

def good_camera(position):
    R = look_at_rotation(position[None, :])
    T = -torch.bmm(R.transpose(1, 2), position[None, :, None])[:, :, 0]
    return R, T


def test_camera_from_position_accepts_the_textbook_lines_and_posefit():
    from lib3dr.pose import camera_from_position
    assert chapter03.check_camera_from_position(good_camera) is True
    assert chapter03.check_camera_from_position(camera_from_position) is True


def test_camera_from_position_rejects_wrong_answers():
    def wrong_sign_of_T(position):
        R, T = good_camera(position)
        return R, -T

    def R_times_C(position):
        R = look_at_rotation(position[None, :])
        return R, -torch.bmm(R, position[None, :, None])[:, :, 0]

    def transposed(position):
        R, T = good_camera(position)
        return R.transpose(1, 2), T

    def detached(position):
        R, T = good_camera(position.detach())
        return R, T

    def unbatched(position):
        R, T = good_camera(position)
        return R[0], T[0]

    rejects(chapter03.check_camera_from_position, wrong_sign_of_T, "C @ R + T = 0")
    rejects(chapter03.check_camera_from_position, R_times_C, "T at C")
    rejects(chapter03.check_camera_from_position, transposed, "transpose")
    rejects(chapter03.check_camera_from_position, detached, "autograd")
    rejects(chapter03.check_camera_from_position, unbatched, "(1, 3, 3)")
    rejects(chapter03.check_camera_from_position, lambda p: good_camera(p)[0], "pair")


def test_best_distance():
    assert chapter03.check_best_distance(3.045) is True
    assert chapter03.check_best_distance(3.04) is True
    rejects(chapter03.check_best_distance, 3.09, "sigma = 1e-4")
    rejects(chapter03.check_best_distance, 3.0, "true distance")
    rejects(chapter03.check_best_distance, 2.98, "nearer")
    rejects(chapter03.check_best_distance, 3.02, "too near")
    rejects(chapter03.check_best_distance, 3.07, "too far")
    rejects(chapter03.check_best_distance, float("nan"), "finite")


def test_plateau_rule():
    def good(losses):
        return len(losses) >= 11 and min(losses[-10:]) > (1 - 1e-3) * min(losses[:-10])

    def absolute(losses):  # a threshold on the change, not scale-free
        return len(losses) >= 11 and min(losses[:-10]) - min(losses[-10:]) < 1.0

    def last_two(losses):  # looks at one step only: a wobble fools it
        return len(losses) >= 2 and losses[-1] >= losses[-2]

    assert chapter03.check_plateau_rule(good) is True
    rejects(chapter03.check_plateau_rule, lambda losses: True, "fewer than 11")
    rejects(chapter03.check_plateau_rule, lambda losses: len(losses) > 10, "still falls")
    rejects(chapter03.check_plateau_rule, absolute, "scale")
    rejects(chapter03.check_plateau_rule, last_two, "noisy")


# ------------------------------------------------------------------------------------ chapter 4

def test_twin():
    from lib3dr_book.exercises import chapter04
    assert chapter04.check_twin(lambda C: C * torch.tensor([1.0, -1.0, -1.0])) is True
    assert chapter04.check_twin(lambda C: torch.stack([C[0], -C[1], -C[2]])) is True
    rejects(chapter04.check_twin, lambda C: -C, "reflect -C")
    rejects(chapter04.check_twin, lambda C: C * torch.tensor([-1.0, 1.0, 1.0]), "mirror image")
    rejects(chapter04.check_twin, lambda C: C.clone(), "C itself")
    rejects(chapter04.check_twin, lambda C: C * torch.tensor([-1.0, -1.0, 1.0]), "not the camera")
    rejects(chapter04.check_twin, lambda C: C.tolist(), "(3,) tensor")


def test_textured_loss():
    from lib3dr_book.exercises import chapter04

    def good(alpha, rgb, silhouette_ref, rgb_ref, rgb_weight=0.1):
        return (((alpha - silhouette_ref) ** 2).sum((1, 2))
                + rgb_weight * ((rgb - rgb_ref) ** 2).sum((1, 2, 3)))

    def summed_over_batch(alpha, rgb, silhouette_ref, rgb_ref, rgb_weight=0.1):
        return good(alpha, rgb, silhouette_ref, rgb_ref, rgb_weight).sum()

    def swapped(alpha, rgb, silhouette_ref, rgb_ref, rgb_weight=0.1):
        return (rgb_weight * ((alpha - silhouette_ref) ** 2).sum((1, 2))
                + ((rgb - rgb_ref) ** 2).sum((1, 2, 3)))

    def unweighted(alpha, rgb, silhouette_ref, rgb_ref, rgb_weight=0.1):
        return good(alpha, rgb, silhouette_ref, rgb_ref, 1.0)

    def averaged(alpha, rgb, silhouette_ref, rgb_ref, rgb_weight=0.1):
        return (((alpha - silhouette_ref) ** 2).mean((1, 2))
                + rgb_weight * ((rgb - rgb_ref) ** 2).mean((1, 2, 3)))

    def ignores_weight(alpha, rgb, silhouette_ref, rgb_ref, rgb_weight=0.1):
        return good(alpha, rgb, silhouette_ref, rgb_ref, 0.1)

    def detached(alpha, rgb, silhouette_ref, rgb_ref, rgb_weight=0.1):
        return good(alpha, rgb.detach(), silhouette_ref, rgb_ref, rgb_weight)

    assert chapter04.check_textured_loss(good) is True
    rejects(chapter04.check_textured_loss, summed_over_batch, "one loss per image")
    rejects(chapter04.check_textured_loss, swapped, "swapped")
    rejects(chapter04.check_textured_loss, unweighted, "multiplied by rgb_weight")
    rejects(chapter04.check_textured_loss, averaged, "not averaged")
    rejects(chapter04.check_textured_loss, ignores_weight, "ignores its rgb_weight")
    rejects(chapter04.check_textured_loss, detached, "differentiable")


# ------------------------------------------------------------------------------------ chapter 5

def test_predict():
    from lib3dr_book.exercises import chapter05

    def good(estimates):
        return estimates[-1].clone() if len(estimates) < 2 else 2 * estimates[-1] - estimates[-2]

    def no_prediction(estimates):
        return estimates[-1].clone()

    def backwards(estimates):
        return estimates[-1].clone() if len(estimates) < 2 else 2 * estimates[-2] - estimates[-1]

    def in_place(estimates):
        if len(estimates) < 2:
            return estimates[-1].clone()
        estimates[-1] += estimates[-1] - estimates[-2]
        return estimates[-1]

    def needs_two(estimates):
        return 2 * estimates[-1] - estimates[-2]

    def half_step(estimates):
        return estimates[-1].clone() if len(estimates) < 2 else 1.5 * estimates[-1] - 0.5 * estimates[-2]

    assert chapter05.check_predict(good) is True
    rejects(chapter05.check_predict, no_prediction, "without prediction")
    rejects(chapter05.check_predict, backwards, "wrong sign")
    rejects(chapter05.check_predict, in_place, "must not modify")
    with pytest.raises(IndexError):  # a crash on the first frame is the student's to read
        chapter05.check_predict(needs_two)
    rejects(chapter05.check_predict, half_step, "expected 2 C[t-1] - C[t-2]")


def test_lost():
    import numpy as np
    from lib3dr_book.exercises import chapter05

    def good(losses):
        return len(losses) >= 2 and losses[-1] > 3 * float(np.median(losses[-11:-1]))

    def with_mean(losses):
        return len(losses) >= 2 and losses[-1] > 3 * float(np.mean(losses[-11:-1]))

    def all_history(losses):
        return len(losses) >= 2 and losses[-1] > 3 * float(np.median(losses[:-1]))

    def absolute(losses):
        return len(losses) >= 2 and losses[-1] - float(np.median(losses[-11:-1])) > 200

    def includes_last(losses):
        return len(losses) >= 2 and losses[-1] > 3 * float(np.median(losses[-10:]))

    assert chapter05.check_lost(good) is True
    rejects(chapter05.check_lost, with_mean, "mean")
    rejects(chapter05.check_lost, all_history, "only the last 10")
    rejects(chapter05.check_lost, absolute, "scale")
    rejects(chapter05.check_lost, lambda losses: len(losses) > 5, "should return")
    rejects(chapter05.check_lost, includes_last, "should return")


# ------------------------------------------------------------------------- lib3dr.pose helpers

def test_posefit_helpers():
    from lib3dr.pose import (camera_centre_distance, camera_from_position, rotation_error_degrees,
                             viewing_angle_degrees)
    from lib3dr.renderer import camera_position_from_spherical_angles, look_at_view_transform
    u = UNIT_ROUNDOFF[torch.float32]
    C = camera_position_from_spherical_angles(3.0, 50.0, [0.0, 10.0])
    R, T = camera_from_position(C)
    R_ref, T_ref = look_at_view_transform(3.0, 50.0, [0.0, 10.0])
    # Normalised cross products of order-1 values, a few roundings each; T = -C R with |C| = 3.
    torch.testing.assert_close(R, R_ref, rtol=0, atol=32 * u)
    torch.testing.assert_close(T, T_ref, rtol=0, atol=32 * u * 3)
    # 10 degrees of azimuth at elevation 50: a 10 degree turn about +Y, viewing directions 6.4 apart.
    # atan2 of (sin, cos) from R R_ref^T, sums of products of 32-ulp entries: a few hundred u radians.
    assert rotation_error_degrees(R[1:], R[:1]).item() == pytest.approx(10.0, abs=math.degrees(512 * u))
    expected = math.degrees(math.acos(math.cos(math.radians(50)) ** 2 * math.cos(math.radians(10))
                                      + math.sin(math.radians(50)) ** 2))
    # atan2(|a x b|, a . b) of float32 centres: a few roundings relative to |a| |b|, in radians.
    assert viewing_angle_degrees(C[1], C[0]).item() == pytest.approx(expected, abs=math.degrees(32 * u))
    distance = 2 * 3.0 * math.cos(math.radians(50)) * math.sin(math.radians(5))
    # The norm of a difference of float32 centres of length 3: a few roundings of 3.
    assert camera_centre_distance(C[1], C[0]).item() == pytest.approx(distance, abs=32 * u * 3)
    # small angles stay accurate (no acos of a cosine rounded to 1, which gives 0 or 0.02 degrees):
    # a few roundings relative to the angle itself
    small = torch.tensor([3.0, 0.0, 0.0]), torch.tensor([3.0, 3.0 * math.tan(math.radians(0.01)), 0.0])
    assert viewing_angle_degrees(*small).item() == pytest.approx(0.01, rel=16 * u)
    # gradients reach the camera position
    position = torch.tensor([1.0, 2.0, 2.0], requires_grad=True)
    R, T = camera_from_position(position)
    (R.sum() + T.sum()).backward()
    assert torch.isfinite(position.grad).all() and position.grad.abs().sum() > 0
