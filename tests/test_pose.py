"""lib3dr.pose: parameterisations, losses, the candidate views, fit_pose, track and bad input."""
import math

import pytest
import torch
import torch.nn.functional as F
from helpers import data_path, UNIT_ROUNDOFF

import lib3dr.pose as pose_module
from lib3dr.io import load_objs_as_meshes
from lib3dr.pose import (LookAtPose, ObjectPose, _roll, fibonacci_directions, fit_pose,
                         hard_silhouette, rgb_loss, silhouette_iou, silhouette_mse, soft_iou_loss,
                         track)
from lib3dr.pose import camera_from_position, rotation_error_degrees
from lib3dr.renderer import FoVPerspectiveCameras, camera_position_from_spherical_angles

SMALL = dict(directions=60, rolls=12, levels=(64,), max_iterations=30)
U32 = UNIT_ROUNDOFF[torch.float32]
# Comparisons without a tolerance use assert_close's defaults for their dtype (float32: 1.3e-6
# relative plus 1e-5 absolute; float64: 1e-7 and 1e-7): closed-form results of a few operations
# on values of order 1, some ulps apart at most.


@pytest.fixture(scope="module")
def cow():
    return load_objs_as_meshes([data_path("cow_mesh/cow.obj")])


def target_pose(distance=3.0, elevation=30.0, azimuth=40.0, roll=0.0):
    R, T = camera_from_position(camera_position_from_spherical_angles(distance, elevation, azimuth))
    return _roll(R, T, torch.tensor([roll]))


def test_fibonacci_directions_cover_the_sphere():
    d = fibonacci_directions(100)
    torch.testing.assert_close(d.norm(dim=1), torch.ones(100))
    assert d.mean(0).norm() < 0.02
    angles = torch.acos((d @ d.T).clamp(-1, 1)) + 10 * torch.eye(100)
    # Even spacing: every direction's nearest neighbour is about sqrt(4 pi / n) away.
    nearest = angles.min(1).values
    assert nearest.min() > 0.5 * math.sqrt(4 * math.pi / 100)
    assert nearest.max() < 1.5 * math.sqrt(4 * math.pi / 100)


@pytest.mark.parametrize("cls", [LookAtPose, ObjectPose])
def test_parameterisations_round_trip(cls):
    R, T = target_pose()
    R2, T2 = cls.from_RT(R, T)()
    # Through the parameters and back: normalisations and cross products of order-1 values, a few
    # tens of roundings; T has |T| = 3.
    torch.testing.assert_close(R2, R, atol=64 * U32, rtol=0)
    torch.testing.assert_close(T2, T, atol=64 * U32 * 3, rtol=0)


def test_roll_rotates_the_image(cow):
    # fit_pose renders each candidate direction once and rotates the image for the rolls.
    cameras = FoVPerspectiveCameras()
    R, T = target_pose()
    angle = 0.9
    rolled = hard_silhouette(cow, cameras, 96, *_roll(R, T, torch.tensor([angle])))
    c, s = math.cos(angle), math.sin(angle)
    grid = F.affine_grid(torch.tensor([[[c, -s, 0.0], [s, c, 0.0]]]), (1, 1, 96, 96), align_corners=False)
    rotated = F.grid_sample(hard_silhouette(cow, cameras, 96, R, T)[:, None], grid, align_corners=False)[:, 0]
    assert silhouette_iou(rotated, rolled).item() > 0.95


def test_losses():
    a = torch.zeros(2, 8, 8)
    a[0, 2:6, 2:6] = 1
    b = a.clone()
    b[1, 0, 0] = 1
    assert soft_iou_loss(a[:1], b[:1]).item() == 0
    assert soft_iou_loss(a[1:], b[1:]).item() == 1
    torch.testing.assert_close(silhouette_mse(a, b), torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(silhouette_iou(a, b), torch.tensor([1.0, 0.0]))
    image, goal = torch.rand(2, 8, 8, 3), torch.rand(2, 8, 8, 3)
    mask = torch.zeros(2, 8, 8)
    mask[:, :4] = 1
    changed = goal.clone()
    changed[:, 4:] = 0  # outside the mask: does not count
    torch.testing.assert_close(rgb_loss(image, goal, mask), rgb_loss(image, changed, mask))
    torch.testing.assert_close(rgb_loss(image, goal, mask),
                               (image - goal)[:, :4].abs().flatten(1).mean(1))
    alpha = torch.rand(1, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: soft_iou_loss(x, (b[:1, :5, :5] > 0).double()), (alpha,))


@pytest.mark.parametrize("parameterisation,roll", [("object", 2.0), ("look_at", 0.0)])
def test_fit_pose_recovers_a_pose_far_from_any_start(cow, parameterisation, roll):
    cameras = FoVPerspectiveCameras()
    R, T = target_pose(distance=3.3, elevation=-35.0, azimuth=150.0, roll=roll)
    target = hard_silhouette(cow, cameras, 96, R, T)[0]
    fit = fit_pose(cow, target, cameras, parameterisation=parameterisation, snapshots=True, **SMALL)
    assert rotation_error_degrees(fit.R, R[0]).item() < 5.0
    assert fit.iou > 0.95
    assert fit.history[-1] < fit.history[0]
    assert fit.snapshots and not fit.diverged
    R_fit, T_fit = fit.pose()
    torch.testing.assert_close(R_fit[0], fit.R, atol=64 * U32, rtol=0)  # the same parameters, re-derived


def test_fit_pose_at_one_level_returns_the_best_of_its_batch(cow):
    # A 64-pixel target has a single level, where no pruning happens inside the refinement.
    cameras = FoVPerspectiveCameras()
    target = hard_silhouette(cow, cameras, 64, *target_pose(distance=3.0, azimuth=60.0))[0]
    fit = fit_pose(cow, target, cameras, attempts=1, **{**SMALL, "candidates": 3})
    R_fit, T_fit = fit.pose()
    assert R_fit.shape == (1, 3, 3)
    torch.testing.assert_close(R_fit[0], fit.R, atol=64 * U32, rtol=0)  # the same parameters, re-derived
    refit = hard_silhouette(cow, cameras, 64, fit.R[None], fit.T[None])[0]
    # The same pose rendered alone instead of in the fit's batch: a batched transform that rounds
    # otherwise may flip a few outline pixels, each about 1/500 of IoU (the cow covers ~500 here).
    torch.testing.assert_close(torch.tensor(fit.iou), silhouette_iou(refit[None], target[None])[0],
                               atol=0.02, rtol=0)


def test_fit_pose_stops_on_nan_and_keeps_the_last_good_pose(cow, monkeypatch):
    calls = []
    real = pose_module.soft_silhouette

    def breaks_on_the_fourth_call(*args, **kwargs):
        calls.append(1)
        alpha = real(*args, **kwargs)
        return alpha * float("nan") if len(calls) >= 4 else alpha

    monkeypatch.setattr(pose_module, "soft_silhouette", breaks_on_the_fourth_call)
    cameras = FoVPerspectiveCameras()
    target = hard_silhouette(cow, cameras, 64, *target_pose())[0]
    fit = fit_pose(cow, target, cameras, **SMALL)
    assert fit.diverged
    assert len(fit.history) == 3
    assert torch.isfinite(fit.R).all() and torch.isfinite(fit.T).all()


def test_fit_pose_bad_input(cow):
    cameras = FoVPerspectiveCameras()
    good = hard_silhouette(cow, cameras, 64, *target_pose())[0]
    with pytest.raises(ValueError, match="square"):
        fit_pose(cow, good[:, :40], cameras)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit_pose(cow, good * 255, cameras)
    with pytest.raises(ValueError, match="NaN"):
        fit_pose(cow, torch.where(good > 0, float("nan"), 0.0), cameras)
    with pytest.raises(ValueError, match="empty"):
        fit_pose(cow, torch.zeros(64, 64), cameras)
    with pytest.raises(ValueError, match="meta"):
        fit_pose(cow, good.to("meta"), cameras)
    with pytest.raises(TypeError, match="float"):
        fit_pose(cow, good > 0, cameras)
    with pytest.raises(ValueError, match="rgb_renderer"):
        fit_pose(cow, good, cameras, target_rgb=torch.rand(64, 64, 3))
    with pytest.raises(ValueError, match="parameterisation"):
        fit_pose(cow, good, cameras, parameterisation="euler")
    with pytest.raises(ValueError, match="one mesh"):
        fit_pose(cow.extend(2), good, cameras)


def test_track_follows_coasts_and_reinitialises(cow):
    cameras = FoVPerspectiveCameras()
    frames_n = 12
    s = torch.linspace(0, 1, frames_n)
    R, T = camera_from_position(camera_position_from_spherical_angles(3.0, 20 + 10 * s, -30 + 30 * s))
    # Frames 8-11 jump to a view on the other side: the tracker must notice and start again.
    R[8:], T[8:] = target_pose(distance=3.0, elevation=-40.0, azimuth=170.0)
    frames = hard_silhouette(cow.extend(frames_n), cameras, 96, R, T)
    frames[5] = 0  # hidden: coasts
    result = track(cow, frames, cameras, init=(R[0], T[0]), iou_threshold=0.85, **SMALL)
    errors = rotation_error_degrees(result.R, R)
    assert errors[:8].max() < 4.0
    assert math.isnan(result.iou[5].item()) and errors[5] < 4.0
    assert 8 in result.reinitialised
    assert errors[8:].max() < 5.0


def test_track_bad_input(cow):
    with pytest.raises(ValueError, match="frames"):
        track(cow, torch.rand(64, 64), FoVPerspectiveCameras())
    with pytest.raises(ValueError, match=r"frames\[1\]"):
        track(cow, torch.stack([torch.rand(8, 8), torch.full((8, 8), 2.0)]), FoVPerspectiveCameras())
