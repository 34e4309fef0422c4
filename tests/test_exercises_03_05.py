"""The exercises of chapters 3-5: the visible checks (lib3dr_book.exercises) accept right
answers and reject wrong ones with a message that says what is wrong, the library's own functions
do not pass for the student's work, the hidden tests (in the chapters' test cells) reject answers
fitted to the visible checks; and the small pose helpers of lib3dr.pose that those chapters share."""
import math

import numpy as np
import pytest
import torch
from chapter_cells import answer, hidden_tests_reject, rejects, run_tests
from helpers import UNIT_ROUNDOFF

from lib3dr_book.exercises import chapter03, chapter04, chapter05


# ------------------------------------------------------------------------------------ chapter 3

def axes_camera(position):
    """The camera from its axes, as the section on the camera as three numbers writes them."""
    z = position / -position.norm()
    x = torch.linalg.cross(torch.tensor([0.0, 1.0, 0.0]), z)
    x = x / x.norm()
    R = torch.stack([x, torch.linalg.cross(z, x), z], dim=-1)[None]
    return R, -(position[None] @ R[0])


def test_camera_from_position_accepts_the_instructors_answer_and_the_axes():
    instructor = answer("03", "ex3_1_answer")["my_camera_from_position"]
    assert chapter03.check_camera_from_position(instructor) is True
    run_tests("03", "ex3_1_tests", my_camera_from_position=instructor)
    assert chapter03.check_camera_from_position(axes_camera) is True
    run_tests("03", "ex3_1_tests", my_camera_from_position=axes_camera)


def test_camera_from_position_rejects_the_library():
    from lib3dr.pose import camera_from_position
    from lib3dr.renderer import look_at_rotation, look_at_view_transform

    def textbook(position):  # the textbook's lines: R from look_at_rotation
        R = look_at_rotation(position[None, :])
        return R, -torch.bmm(R.transpose(1, 2), position[None, :, None])[:, :, 0]

    def view_transform(position):
        return look_at_view_transform(eye=position[None])

    for cheat in (textbook, view_transform, camera_from_position):
        rejects(chapter03.check_camera_from_position, cheat, "build R from the camera's axes")
    hidden_tests_reject("03", "ex3_1_tests", my_camera_from_position=textbook)


def test_camera_from_position_rejects_wrong_answers():
    def wrong_sign_of_T(position):
        R, T = axes_camera(position)
        return R, -T

    def R_times_C(position):
        R, _ = axes_camera(position)
        return R, -(R[0] @ position)[None]

    def transposed(position):
        R, T = axes_camera(position)
        return R.transpose(1, 2), T

    def backwards(position):
        return axes_camera(-position)

    def detached(position):
        return axes_camera(position.detach())

    def unbatched(position):
        R, T = axes_camera(position)
        return R[0], T[0]

    rejects(chapter03.check_camera_from_position, wrong_sign_of_T, "C @ R + T = 0")
    rejects(chapter03.check_camera_from_position, R_times_C, "C @ R + T = 0")
    rejects(chapter03.check_camera_from_position, transposed, "transpose")
    rejects(chapter03.check_camera_from_position, backwards, "z axis")
    rejects(chapter03.check_camera_from_position, detached, "autograd")
    rejects(chapter03.check_camera_from_position, unbatched, "(1, 3, 3)")
    rejects(chapter03.check_camera_from_position, lambda p: axes_camera(p)[0], "pair")


def test_best_distance():
    walk = np.round(np.arange(2.95, 3.1501, 0.005), 3)
    assert chapter03.check_best_distance(walk[19], walk) is True  # 3.045, a plausible answer
    for distance, words in [(3.0, "true distance"), (2.98, "nearer"), (3.046, "not one of the distances"),
                            (walk[-1], "end of the walk"), (float("nan"), "finite")]:
        with pytest.raises(AssertionError) as error:
            chapter03.check_best_distance(distance, walk)
        assert words in str(error.value), (distance, str(error.value))
    assert not any(isinstance(getattr(chapter03, name), float) for name in dir(chapter03)), (
        "no distance in the package: the hidden test holds it")


def test_plateau_rule():
    instructor = answer("03", "ex3_3_answer")["should_stop"]

    def absolute(losses):  # a threshold on the change, not scale-free
        return len(losses) >= 11 and min(losses[:-10]) - min(losses[-10:]) < 1.0

    def last_two(losses):  # looks at one step only: a wobble fools it
        return len(losses) >= 2 and losses[-1] >= losses[-2]

    assert chapter03.check_plateau_rule(instructor) is True
    run_tests("03", "ex3_3_tests", should_stop=instructor)
    rejects(chapter03.check_plateau_rule, lambda losses: True, "fewer than 11")
    rejects(chapter03.check_plateau_rule, lambda losses: len(losses) > 10, "still falls")
    rejects(chapter03.check_plateau_rule, absolute, "scale")
    rejects(chapter03.check_plateau_rule, last_two, "noisy")


@pytest.mark.parametrize("rule", ["one percent", "previous ten"])
def test_hidden_tests_reject_plateau_rules_fitted_to_the_visible_cases(rule):
    def should_stop(losses):
        if len(losses) < 11:
            return False
        before = losses[-20:-10] if rule == "previous ten" else losses[:-10]
        return min(losses[-10:]) > (1 - (1e-2 if rule == "one percent" else 1e-3)) * min(before)

    assert chapter03.check_plateau_rule(should_stop)
    hidden_tests_reject("03", "ex3_3_tests", should_stop=should_stop)


# ------------------------------------------------------------------------------------ chapter 4

def test_twin():
    instructor = answer("04", "ex4_1_answer")["twin"]
    assert chapter04.check_twin(instructor) is True
    run_tests("04", "ex4_1_tests", twin=instructor)
    assert chapter04.check_twin(lambda C: torch.stack([C[0], -C[1], -C[2]])) is True
    rejects(chapter04.check_twin, lambda C: -C, "mirrored left to right")
    rejects(chapter04.check_twin, lambda C: C * torch.tensor([-1.0, 1.0, 1.0]), "mirror image")
    rejects(chapter04.check_twin, lambda C: C.clone(), "C itself")
    rejects(chapter04.check_twin, lambda C: C * torch.tensor([-1.0, -1.0, 1.0]), "different images")
    rejects(chapter04.check_twin, lambda C: 2 * C * torch.tensor([1.0, -1.0, -1.0]), "another distance")
    rejects(chapter04.check_twin, lambda C: C.tolist(), "(3,) tensor")
    assert not hasattr(chapter04, "_reference_loss")

    seen = {(1.0, 2.0, -0.5), (0.0, 2.2981, 1.9284), (-2.0, 0.5, 1.5), (0.3, -1.0, 2.0)}

    def only_the_checked_cameras(C):
        known = tuple(round(x, 4) for x in C.tolist()) in seen
        return C * torch.tensor([1.0, -1.0, -1.0]) if known else -C

    assert chapter04.check_twin(only_the_checked_cameras)
    hidden_tests_reject("04", "ex4_1_tests", twin=only_the_checked_cameras)


def test_textured_loss():
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

    def not_squared(alpha, rgb, silhouette_ref, rgb_ref, rgb_weight=0.1):
        return (alpha - silhouette_ref).abs().sum((1, 2)) + rgb_weight * ((rgb - rgb_ref) ** 2).sum((1, 2, 3))

    instructor = answer("04", "ex4_2_answer")["textured_loss"]
    assert chapter04.check_textured_loss(instructor) is True
    run_tests("04", "ex4_2_tests", textured_loss=instructor)
    assert chapter04.check_textured_loss(good) is True
    rejects(chapter04.check_textured_loss, summed_over_batch, "one loss per image")
    rejects(chapter04.check_textured_loss, swapped, "swapped")
    rejects(chapter04.check_textured_loss, unweighted, "multiplied by rgb_weight")
    rejects(chapter04.check_textured_loss, averaged, "averaged")
    rejects(chapter04.check_textured_loss, ignores_weight, "rgb_weight argument")
    rejects(chapter04.check_textured_loss, detached, "differentiable")
    rejects(chapter04.check_textured_loss, not_squared, "0.5^2 = 0.25")

    def clamped(alpha, rgb, silhouette_ref, rgb_ref, rgb_weight=0.1):  # right for the probes only
        return good((alpha - silhouette_ref).clamp(-0.5, 0.5) + silhouette_ref, rgb, silhouette_ref, rgb_ref, rgb_weight)

    assert chapter04.check_textured_loss(clamped)
    hidden_tests_reject("04", "ex4_2_tests", textured_loss=clamped)


# ------------------------------------------------------------------------------------ chapter 5

def test_predict():
    instructor = answer("05", "ex5_1_answer")["predict"]

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

    def with_the_library(estimates):
        from lib3dr.pose import _predict
        return _predict([(c, c) for c in estimates])[1]

    assert chapter05.check_predict(instructor) is True
    run_tests("05", "ex5_1_tests", predict=instructor)
    rejects(chapter05.check_predict, no_prediction, "without prediction")
    rejects(chapter05.check_predict, backwards, "behind the last estimate")
    rejects(chapter05.check_predict, in_place, "must not modify")
    with pytest.raises(IndexError):  # a crash on the first frame is the student's to read
        chapter05.check_predict(needs_two)
    rejects(chapter05.check_predict, half_step, "constant velocity", "comes to")
    rejects(chapter05.check_predict, with_the_library, "_predict")

    def quadratic(estimates):  # exact at constant velocity too, but not what was asked
        if len(estimates) < 3:
            return instructor(estimates)
        return 3 * estimates[-1] - 3 * estimates[-2] + estimates[-3]

    assert chapter05.check_predict(quadratic)
    hidden_tests_reject("05", "ex5_1_tests", predict=quadratic)


def test_lost():
    instructor = answer("05", "ex5_2_answer")["lost"]

    def with_mean(losses):
        return len(losses) >= 2 and losses[-1] > 3 * float(np.mean(losses[-11:-1]))

    def all_history(losses):
        return len(losses) >= 2 and losses[-1] > 3 * float(np.median(losses[:-1]))

    def absolute(losses):
        return len(losses) >= 2 and losses[-1] - float(np.median(losses[-11:-1])) > 200

    def includes_last(losses):
        return len(losses) >= 2 and losses[-1] > 3 * float(np.median(losses[-10:]))

    def lower_median(losses):
        return len(losses) >= 2 and losses[-1] > 3 * float(torch.tensor(losses[-11:-1]).median())

    assert chapter05.check_lost(instructor) is True
    run_tests("05", "ex5_2_tests", lost=instructor, track_losses=[100.0] * 5, num_frames=5)
    rejects(chapter05.check_lost, with_mean, "mean")
    rejects(chapter05.check_lost, all_history, "only the last 10")
    rejects(chapter05.check_lost, absolute, "scale")
    rejects(chapter05.check_lost, lambda losses: len(losses) > 5, "should return")
    rejects(chapter05.check_lost, includes_last, "should return")
    rejects(chapter05.check_lost, lower_median, "torch.median")

    def eleven_before(losses):  # one loss too many in the window
        return len(losses) >= 2 and losses[-1] > 3 * float(np.median(losses[-12:-1]))

    assert chapter05.check_lost(eleven_before)
    hidden_tests_reject("05", "ex5_2_tests", lost=eleven_before, track_losses=[100.0] * 5, num_frames=5)


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
