import math

import pytest
import torch
from helpers import UNIT_ROUNDOFF

from lib3dr.transforms import (
    Transform3d, axis_angle_to_matrix, axis_angle_to_quaternion,
    camera_position_from_spherical_angles, euler_angles_to_matrix, look_at_rotation,
    look_at_view_transform, matrix_to_axis_angle, matrix_to_euler_angles, matrix_to_quaternion,
    matrix_to_rotation_6d, quaternion_to_axis_angle, quaternion_to_matrix, random_quaternions,
    random_rotations, rotation_6d_to_matrix, so3_relative_angle, so3_rotation_angle,
    standardize_quaternion)
from lib3dr.renderer.cameras import FoVPerspectiveCameras
from lib3dr.transforms import Rotate, Scale, Translate, hat, hat_inv, so3_exp_map, so3_log_map

CONVENTIONS = ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX", "XYX", "XZX", "YXY", "YZY", "ZXZ", "ZYZ"]
F64 = dict(dtype=torch.float64)
U32 = UNIT_ROUNDOFF[torch.float32]
# Comparisons without a tolerance use assert_close's defaults for their dtype (float32: 1.3e-6
# relative plus 1e-5 absolute; float64: 1e-7 and 1e-7): closed-form results of a few operations
# on values of order 1, some ulps apart at most.


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


def rotations(n=200):
    return random_rotations(n, **F64)


def axis_angles(angles):
    """Axis-angle vectors with the given angles about random axes: (len(angles), 3)."""
    axes = torch.nn.functional.normalize(torch.randn(len(angles), 3, **F64), dim=-1)
    return axes * torch.tensor(angles, **F64)[:, None]


def assert_rotation(R, atol=None):
    # Entries of a few tens of roundings; R R^T sums 3 products of them, det 6 triple products:
    # a few hundred u at most.
    atol = 512 * UNIT_ROUNDOFF[R.dtype] if atol is None else atol
    eye = torch.eye(3, dtype=R.dtype).expand_as(R)
    torch.testing.assert_close(R @ R.transpose(-1, -2), eye, atol=atol, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(R.shape[:-2], dtype=R.dtype),
                               atol=atol, rtol=0)


# ------------------------------------------------------------------------------- rotations


def test_axis_angle_to_matrix_quarter_turn_about_z_takes_x_to_y():
    R = axis_angle_to_matrix(torch.tensor([0, 0, math.pi / 2], **F64))
    torch.testing.assert_close(R @ torch.tensor([1.0, 0, 0], **F64),
                               torch.tensor([0.0, 1, 0], **F64))


def test_random_rotations_are_rotations():
    R = random_rotations(100)
    assert R.shape == (100, 3, 3) and R.dtype == torch.float32
    assert_rotation(R)
    assert (random_quaternions(100)[:, 0] >= 0).all()


def test_quaternion_round_trips():
    R = rotations()
    q = matrix_to_quaternion(R)
    assert (q[:, 0] >= 0).all()
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(len(q), **F64))
    torch.testing.assert_close(quaternion_to_matrix(q), R)
    q = torch.randn(50, 4, **F64)  # not unit, half with negative real part
    torch.testing.assert_close(matrix_to_quaternion(quaternion_to_matrix(q)),
                               standardize_quaternion(q / q.norm(dim=-1, keepdim=True)))


@pytest.mark.parametrize("angles", [[0.0, 1e-12, 1e-8, 1e-5, 1e-3, 0.1], [1.0, 2.0, 3.0],
                                    [math.pi - 1e-3, math.pi - 1e-6, math.pi - 1e-9]])
def test_axis_angle_round_trip_including_near_zero_and_pi(angles):
    aa = axis_angles(angles)
    R = axis_angle_to_matrix(aa)
    assert_rotation(R)
    # Within 1e-9 of pi, R holds the axis only to about u / (pi - angle) = 1e-7 (float64).
    torch.testing.assert_close(matrix_to_axis_angle(R), aa, atol=1e-7, rtol=1e-7)
    torch.testing.assert_close(quaternion_to_axis_angle(axis_angle_to_quaternion(aa)), aa)


def test_axis_angle_at_exactly_pi_gives_the_same_rotation():
    aa = axis_angles([math.pi] * 10)
    R = axis_angle_to_matrix(aa)
    back = matrix_to_axis_angle(R)  # aa or -aa: both are the same rotation
    torch.testing.assert_close(back.norm(dim=-1), torch.full((10,), math.pi, **F64))
    torch.testing.assert_close(axis_angle_to_matrix(back), R)


def test_matrix_to_axis_angle_of_random_rotations():
    R = rotations()
    aa = matrix_to_axis_angle(R)
    assert (aa.norm(dim=-1) <= math.pi + 1e-9).all()
    torch.testing.assert_close(axis_angle_to_matrix(aa), R)


def test_conversions_batch_over_leading_dims():
    aa = torch.randn(2, 5, 3)
    R = axis_angle_to_matrix(aa)
    assert R.shape == (2, 5, 3, 3)
    assert matrix_to_quaternion(R).shape == (2, 5, 4)
    assert matrix_to_euler_angles(R, "ZYX").shape == (2, 5, 3)
    assert matrix_to_rotation_6d(R).shape == (2, 5, 6)
    torch.testing.assert_close(axis_angle_to_matrix(matrix_to_axis_angle(R)), R)


@pytest.mark.parametrize("convention", CONVENTIONS)
def test_euler_round_trip(convention):
    R = rotations()
    angles = matrix_to_euler_angles(R, convention)
    torch.testing.assert_close(euler_angles_to_matrix(angles, convention), R)
    # angles inside the returned ranges come back unchanged
    middle_range = (0.1, 3.0) if convention[0] == convention[2] else (-1.5, 1.5)
    angles = torch.stack([torch.empty(100, **F64).uniform_(-3.1, 3.1),
                          torch.empty(100, **F64).uniform_(*middle_range),
                          torch.empty(100, **F64).uniform_(-3.1, 3.1)], -1)
    torch.testing.assert_close(
        matrix_to_euler_angles(euler_angles_to_matrix(angles, convention), convention), angles)


def test_euler_angles_compose_as_intrinsic_rotations():
    a, b, c = 0.3, -0.7, 1.1
    expected = (axis_angle_to_matrix(torch.tensor([a, 0, 0], **F64))
                @ axis_angle_to_matrix(torch.tensor([0, b, 0], **F64))
                @ axis_angle_to_matrix(torch.tensor([0, 0, c], **F64)))
    torch.testing.assert_close(euler_angles_to_matrix(torch.tensor([a, b, c], **F64), "XYZ"),
                               expected)


@pytest.mark.parametrize("convention", ["XY", "XXY", "XYY", "XYW"])
def test_euler_rejects_bad_conventions(convention):
    with pytest.raises(ValueError, match="convention"):
        euler_angles_to_matrix(torch.zeros(3), convention)


def test_rotation_6d_round_trip_and_gram_schmidt():
    R = rotations()
    torch.testing.assert_close(rotation_6d_to_matrix(matrix_to_rotation_6d(R)), R)
    torch.testing.assert_close(matrix_to_rotation_6d(R)[:, :3], R[:, 0])  # the first ROW
    d6 = torch.randn(100, 6, **F64)
    R = rotation_6d_to_matrix(d6)
    # Gram-Schmidt loses orthogonality as 1 / sin of the angle between the two halves.
    a, b = d6[:, :3], d6[:, 3:]
    sin = torch.linalg.cross(a, b).norm(dim=-1) / (a.norm(dim=-1) * b.norm(dim=-1))
    assert_rotation(R, atol=512 * UNIT_ROUNDOFF[torch.float64] / sin.min().item())
    torch.testing.assert_close(R[:, 0], d6[:, :3] / d6[:, :3].norm(dim=-1, keepdim=True))


def test_so3_relative_angle_is_accurate_near_0_and_pi():
    angles = [0.0, 1e-7, 1e-4, 0.5, 2.0, math.pi - 1e-4, math.pi - 1e-7]
    R2 = rotations(len(angles))
    R1 = axis_angle_to_matrix(axis_angles(angles)) @ R2
    # atan2 of (sin, cos) from R1 R2^T, sums of products of entries of a few ulps: a few hundred
    # u radians at most, at any angle.
    torch.testing.assert_close(so3_relative_angle(R1, R2), torch.tensor(angles, **F64),
                               atol=512 * UNIT_ROUNDOFF[torch.float64], rtol=0)
    torch.testing.assert_close(so3_relative_angle(R1, R2, cos_angle=True),
                               torch.cos(torch.tensor(angles, **F64)))
    assert so3_rotation_angle(torch.eye(3)).item() == 0


# ------------------------------------------------------------------------------- gradients


def test_gradcheck_axis_angle_to_matrix():
    aa = torch.randn(4, 3, **F64, requires_grad=True)
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (aa,))
    small = (1e-4 * torch.randn(4, 3, **F64)).requires_grad_()  # the series branch
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (small,), eps=1e-8)


def test_gradcheck_rotation_6d_to_matrix():
    assert torch.autograd.gradcheck(rotation_6d_to_matrix,
                                    (torch.randn(4, 6, **F64, requires_grad=True),))


def test_gradcheck_matrix_to_quaternion_and_axis_angle():
    R = rotations(4).requires_grad_()
    assert torch.autograd.gradcheck(matrix_to_quaternion, (R,))
    assert torch.autograd.gradcheck(matrix_to_axis_angle, (R,))


def test_no_nan_gradients_at_the_identity():
    aa = torch.zeros(3, requires_grad=True)
    axis_angle_to_matrix(aa).sum().backward()
    assert torch.isfinite(aa.grad).all()
    # d(R v)/d(aa) = -[v]_x at the identity: the gradient is exact, not just finite
    aa.grad = None
    v = torch.tensor([1.0, 2.0, 3.0])
    (axis_angle_to_matrix(aa) @ v)[0].backward()
    torch.testing.assert_close(aa.grad, torch.tensor([0.0, 3.0, -2.0]))

    R = torch.eye(3, requires_grad=True)
    (matrix_to_axis_angle(R).sum() + matrix_to_quaternion(R).sum()
     + so3_relative_angle(R, torch.eye(3)) + quaternion_to_axis_angle(
         torch.tensor([1.0, 0, 0, 0])).sum()).backward()
    assert torch.isfinite(R.grad).all()


# ------------------------------------------------------------------------------ Transform3d


def test_transform3d_composes_self_first_and_inverts():
    scale = Transform3d(matrix=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
    shift = torch.eye(4)
    shift[3, :3] = torch.tensor([1.0, 0, 0])
    shift = Transform3d(matrix=shift)
    p = torch.tensor([[1.0, 1.0, 1.0]])
    torch.testing.assert_close(scale.compose(shift).transform_points(p),
                               torch.tensor([[3.0, 2, 2]]))
    torch.testing.assert_close(shift.compose(scale).transform_points(p),
                               torch.tensor([[4.0, 2, 2]]))
    both = scale.compose(shift)
    torch.testing.assert_close(both.inverse().transform_points(both.transform_points(p)), p)
    assert len(Transform3d()) == 1 and Transform3d().get_matrix().shape == (1, 4, 4)


def test_transform3d_shapes_broadcast_and_eps():
    M = torch.eye(4).repeat(3, 1, 1)
    M[:, 3, 3] = torch.tensor([1.0, 2.0, 4.0])  # w = 1, 2, 4
    t = Transform3d(matrix=M)
    p = torch.ones(5, 3)
    out = t.transform_points(p)
    assert out.shape == (3, 5, 3)
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([1.0, 0.5, 0.25]))
    assert t.transform_points(p[None].expand(3, 5, 3)).shape == (3, 5, 3)
    assert Transform3d().transform_points(p).shape == (5, 3)
    with pytest.raises(ValueError, match="broadcast"):
        t.transform_points(torch.ones(2, 5, 3))
    with pytest.raises(ValueError, match="4, 4"):
        Transform3d(matrix=torch.eye(3))

    M = torch.eye(4)[None].repeat(3, 1, 1)
    M[:, 3, 3] = torch.tensor([0.0, 1e-6, -1e-6])
    out = Transform3d(matrix=M).transform_points(torch.ones(1, 3), eps=1e-2)
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([100.0, 100.0, -100.0]))


def test_transform3d_normals_stay_perpendicular_under_nonuniform_scale():
    t = Transform3d(matrix=torch.diag(torch.tensor([1.0, 4.0, 1.0, 1.0])))
    tangent, normal = torch.tensor([[1.0, 1.0, 0.0]]), torch.tensor([[1.0, -1.0, 0.0]])
    dot = (t.transform_points(tangent) * t.transform_normals(normal)).sum()
    torch.testing.assert_close(dot, torch.tensor(0.0))


def test_transform3d_to_and_clone():
    t = Transform3d()
    assert t.to("cpu") is t
    assert t.to("cpu", dtype=torch.float64).dtype == torch.float64
    c = t.clone()
    c.get_matrix()[0, 0, 0] = 5.0
    assert t.get_matrix()[0, 0, 0] == 1.0


# -------------------------------------------------------------------------- look-at cameras


def test_spherical_angles():
    C = camera_position_from_spherical_angles([2.0, 2.0, 2.0], [0.0, 90.0, 0.0], [0.0, 0.0, 90.0])
    # dist * products of float32 sines and cosines: cos(pi / 2) is 4e-8, not 0, and a few roundings.
    torch.testing.assert_close(C, torch.tensor([[0.0, 0, 2], [0, 2, 0], [2, 0, 0]]), atol=16 * U32 * 2,
                               rtol=0)
    C = camera_position_from_spherical_angles(1.0, math.pi / 2, 0.0, degrees=False)
    torch.testing.assert_close(C, torch.tensor([[0.0, 1, 0]]), atol=16 * U32, rtol=0)


def test_look_at_view_transform_default_camera():
    R, T = look_at_view_transform(2.7, 0, 0)  # at +Z, looking back along -Z at the origin
    torch.testing.assert_close(R, torch.diag(torch.tensor([-1.0, 1.0, -1.0]))[None])
    torch.testing.assert_close(T, torch.tensor([[0.0, 0.0, 2.7]]))


def test_look_at_view_transform_camera_centre_at_50_degrees_elevation():
    R, T = look_at_view_transform(3, 50, 0)
    C = -(T[:, None] @ R.transpose(1, 2))[:, 0]  # C @ R + T = 0
    # float32 look-at and back: a few tens of roundings of values of size 3, angles in radians.
    assert C.norm().item() == pytest.approx(3.0, abs=32 * U32 * 3)
    assert math.degrees(math.asin(C[0, 1] / 3)) == pytest.approx(50.0, abs=math.degrees(64 * U32))
    assert C[0, 0].abs() < 32 * U32 * 3 and C[0, 2] > 0
    assert_rotation(R)
    # the optical axis (R's third column) points from the camera at the origin
    torch.testing.assert_close(R[0, :, 2], -C[0] / 3)


def test_look_at_view_transform_broadcasts_and_eye_and_at():
    R, T = look_at_view_transform(dist=[1.0, 2.0, 3.0], elev=10.0, azim=torch.tensor([0.0]))
    assert R.shape == (3, 3, 3) and T.shape == (3, 3)
    torch.testing.assert_close(T[:, 2], torch.tensor([1.0, 2.0, 3.0]))  # distance along the axis
    eye = torch.tensor([[1.0, 2.0, -3.0]])  # behind `at`, looking along +Z: R is the identity
    R, T = look_at_view_transform(dist=9.0, eye=eye, at=((1.0, 2.0, 0.0),))
    torch.testing.assert_close(R, torch.eye(3)[None])
    torch.testing.assert_close(T, torch.tensor([[-1.0, -2.0, 3.0]]))
    # the spherical angles are measured around `at`
    R, T = look_at_view_transform(2.0, 0.0, 0.0, at=((1.0, 1.0, 1.0),))
    torch.testing.assert_close(-(T[:, None] @ R.transpose(1, 2))[:, 0], torch.tensor([[1.0, 1, 3]]))
    with pytest.raises(ValueError, match="broadcast"):
        look_at_view_transform(dist=[1.0, 2.0], elev=[1.0, 2.0, 3.0])


def test_look_at_rotation_axes_and_up_parallel_to_view():
    R = look_at_rotation(torch.tensor([[0.0, 0.0, -5.0], [3.0, 4.0, 5.0]]))
    assert_rotation(R)
    torch.testing.assert_close(R[0], torch.eye(3))
    assert (R[1, 1, 1] > 0).all()  # the camera's +Y keeps a world-up component
    R = look_at_rotation(((0.0, 3.0, 0.0), (0.0, -3.0, 0.0)))  # looking straight down and up
    assert_rotation(R)
    torch.testing.assert_close(R[:, :, 2], torch.tensor([[0.0, -1, 0], [0, 1, 0]]))
    with pytest.raises(ValueError, match="camera_position"):
        look_at_rotation(torch.zeros(2, 2))


def test_gradcheck_look_at_rotation_and_view_transform():
    position = torch.tensor([[1.0, 2.0, 3.0], [-2.0, 0.5, 1.0]], **F64, requires_grad=True)
    assert torch.autograd.gradcheck(look_at_rotation, (position,))
    angles = torch.tensor([2.0, 30.0, 40.0], **F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: look_at_view_transform(a[0], a[1], a[2]), (angles,))


# ---------------------------------------------------------------- so3 maps, Translate, Rotate, Scale


def test_hat_is_the_cross_product_matrix_and_hat_inv_inverts_it():
    v, w = torch.randn(10, 3, **F64), torch.randn(10, 3, **F64)
    # Each entry of hat(v) @ w is a difference of two products, as in cross(); a fused multiply-add may round
    # them differently: a few ulps of |v| |w| < 30 (ulp 3.6e-15).
    torch.testing.assert_close((hat(v) @ w[..., None])[..., 0], torch.cross(v, w, dim=1), atol=1e-13, rtol=0)
    assert torch.equal(hat_inv(hat(v)), v)
    with pytest.raises(ValueError, match="skew"):
        hat_inv(torch.eye(3, **F64)[None])


def test_so3_exp_map_is_the_matrix_exponential_of_hat():
    log_rot = axis_angles([0.0, 1e-9, 1e-3, 0.5, 2.0, math.pi - 1e-6, 3.0])
    # Two independent float64 computations (Rodrigues by quaternions; scaling-and-squaring Pade) of entries
    # of size <= 1: they agree to a few ulps times the number of squarings, far below 1e-13.
    torch.testing.assert_close(so3_exp_map(log_rot), torch.linalg.matrix_exp(hat(log_rot)), atol=1e-13, rtol=0)


def test_so3_log_and_exp_round_trip():
    # Below pi the logarithm is unique, so log(exp(w)) = w; a few ulps per step of size <= pi.
    log_rot = axis_angles(torch.linspace(0, math.pi - 1e-3, 50).tolist())
    torch.testing.assert_close(so3_log_map(so3_exp_map(log_rot)), log_rot, atol=1e-12, rtol=0)
    R = rotations()
    torch.testing.assert_close(so3_exp_map(so3_log_map(R)), R, atol=1e-12, rtol=0)
    torch.testing.assert_close(so3_log_map(R).norm(dim=1), so3_rotation_angle(R), atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="N, 3"):
        so3_exp_map(torch.zeros(3))


def test_gradcheck_so3_maps():
    log_rot = axis_angles([0.0, 1e-4, 0.5, 2.0]).requires_grad_()
    assert torch.autograd.gradcheck(so3_exp_map, log_rot)
    R = so3_exp_map(axis_angles([1e-3, 0.5, 2.0])).detach().requires_grad_()
    # The log's derivative is taken along all 9 entries, off the rotation group too: still well defined.
    assert torch.autograd.gradcheck(so3_log_map, R)


def test_translate_rotate_scale_act_on_row_vectors():
    p = torch.randn(5, 3, **F64)
    t, R, s = torch.randn(2, 3, **F64), rotations(2), torch.tensor([2.0, 0.5], **F64)
    # [p, 1] @ M sums 4 products where p @ R sums 3: a few ulps of values below 10 (ulp 1.8e-15) apart.
    torch.testing.assert_close(Translate(t, **F64).transform_points(p), p + t[:, None], atol=1e-14, rtol=0)
    torch.testing.assert_close(Translate(t[:, 0], t[:, 1], t[:, 2], **F64).get_matrix(),
                               Translate(t, **F64).get_matrix(), atol=0, rtol=0)
    torch.testing.assert_close(Rotate(R, **F64).transform_points(p), p @ R, atol=1e-14, rtol=0)
    torch.testing.assert_close(Scale(s, **F64).transform_points(p), p * s[:, None, None], atol=0, rtol=0)
    torch.testing.assert_close(Scale(1.0, 2.0, 3.0).transform_points(p.float()),
                               p.float() * torch.tensor([1.0, 2.0, 3.0]), atol=0, rtol=0)
    # Numbers broadcast against (N,) tensors; the default dtype is float32, as PyTorch3D's.
    mixed = Translate(torch.tensor([1.0, 2.0]), 0.0, -1.0)
    assert mixed.dtype == torch.float32
    assert mixed.get_matrix()[:, 3, :3].tolist() == [[1.0, 0.0, -1.0], [2.0, 0.0, -1.0]]


def test_rotate_then_translate_is_the_world_to_view_transform():
    R, T = rotations(3).float(), torch.randn(3, 3)
    view = Rotate(R).compose(Translate(T))  # X_view = X_world @ R + T
    assert torch.equal(view.get_matrix(), FoVPerspectiveCameras(R=R, T=T).get_world_to_view_transform().get_matrix())
    p = torch.randn(4, 3)
    back = view.inverse().transform_points(view.transform_points(p[None].expand(3, 4, 3)))
    # float32, entries of size ~3: a 4x4 inverse and two products stay within 1e-5.
    torch.testing.assert_close(back, p[None].expand(3, 4, 3), atol=1e-5, rtol=0)


def test_transforms_gradcheck_through_pose_parameters():
    p = torch.randn(6, 3, **F64)
    log_rot, t = torch.randn(2, 3, **F64, requires_grad=True), torch.randn(2, 3, **F64, requires_grad=True)
    f = lambda w, x: Rotate(so3_exp_map(w), **F64).compose(Translate(x, **F64)).transform_points(p)  # noqa: E731
    assert torch.autograd.gradcheck(f, (log_rot, t))


def test_transform_subclasses_reject_bad_input():
    with pytest.raises(ValueError, match="N, 3"):
        Translate(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="x, y, z"):
        Translate(1.0)
    with pytest.raises(ValueError, match="broadcast"):
        Translate(torch.zeros(2), torch.zeros(3), 0.0)
    with pytest.raises(ValueError, match="3, 3"):
        Rotate(torch.eye(4))
    with pytest.warns(UserWarning, match="rotation"):
        Rotate(2 * torch.eye(3))
