import math

import pytest
import torch
from helpers import UNIT_ROUNDOFF

from lib3dr.renderer.cameras import (FoVOrthographicCameras, FoVPerspectiveCameras,
                                     OrthographicCameras, PerspectiveCameras)
from lib3dr.transforms import look_at_view_transform, random_rotations

F64 = dict(dtype=torch.float64)
U32 = UNIT_ROUNDOFF[torch.float32]
# Comparisons without a tolerance use assert_close's defaults for their dtype (float32: 1.3e-6
# relative plus 1e-5 absolute; float64: 1e-7 and 1e-7): closed-form results of a few operations
# on values of order 1, some ulps apart at most.
T3 = torch.tensor([[0.0, 0.0, 3.0]])  # identity R: the camera sits at world (0, 0, -3)


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


def all_cameras(**kwargs):
    return [FoVPerspectiveCameras(**kwargs), FoVOrthographicCameras(**kwargs),
            PerspectiveCameras(**kwargs), OrthographicCameras(**kwargs)]


@pytest.mark.parametrize("cameras", all_cameras(T=T3), ids=type)
def test_optical_axis_lands_at_ndc_origin_and_plus_x_on_the_left(cameras):
    points = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.5, 0.0]])
    ndc = cameras.transform_points(points)
    torch.testing.assert_close(ndc[0, :2], torch.zeros(2))
    assert ndc[1, 0] > 0 and ndc[2, 1] > 0  # world +X is NDC +X (left), +Y is up
    screen = cameras.transform_points_screen(points, image_size=(64, 64))
    torch.testing.assert_close(screen[0, :2], torch.tensor([32.0, 32.0]))
    assert screen[1, 0] < 32 and screen[2, 1] < 32  # left half of the image, upper half
    torch.testing.assert_close(cameras.transform_points_ndc(points), ndc)


def test_fov_perspective_maps_znear_to_0_zfar_to_1_and_the_fov_edge_to_1():
    cameras = FoVPerspectiveCameras(znear=0.5, zfar=20.0, fov=90.0)
    points = torch.tensor([[0.0, 0.0, 0.5], [0.0, 0.0, 20.0], [2.0, 0.0, 2.0], [0.0, -3.0, 3.0]])
    ndc = cameras.transform_points(points)
    # z_ndc = f (Z - n) / ((f - n) Z)
    expected_z = torch.tensor([0.0, 1.0, 20 * 1.5 / (19.5 * 2), 20 * 2.5 / (19.5 * 3)])
    torch.testing.assert_close(ndc[:, 2], expected_z)
    torch.testing.assert_close(ndc[2:, :2], torch.tensor([[1.0, 0.0], [0.0, -1.0]]))  # tan 45 = 1
    # aspect_ratio widens the frustum in x; radians work too
    wide = FoVPerspectiveCameras(fov=math.pi / 2, degrees=False, aspect_ratio=2.0)
    torch.testing.assert_close(wide.transform_points(points)[2, 0], torch.tensor(0.5))


def test_fov_perspective_projection_matrix():
    cameras = FoVPerspectiveCameras(znear=1.0, zfar=3.0, fov=60.0, aspect_ratio=1.5)
    s = 1 / math.tan(math.radians(30))
    expected = torch.tensor([[s / 1.5, 0, 0, 0], [0, s, 0, 0], [0, 0, 1.5, -1.5], [0, 0, 1, 0]])
    K = cameras.compute_projection_matrix(cameras.znear, cameras.zfar, cameras.fov,
                                          cameras.aspect_ratio, True)
    torch.testing.assert_close(K[0], expected)
    torch.testing.assert_close(cameras.get_projection_transform().get_matrix()[0], expected.T)
    # a given K replaces the parameters
    points = torch.randn(10, 3) + torch.tensor([0.0, 0.0, 5.0])
    torch.testing.assert_close(FoVPerspectiveCameras(K=K).transform_points(points),
                               cameras.transform_points(points))


def test_fov_orthographic_box():
    cameras = FoVOrthographicCameras(znear=1.0, zfar=5.0, max_x=2.0, min_x=-2.0, max_y=3.0,
                                     min_y=1.0)
    ndc = cameras.transform_points(torch.tensor([[2.0, 3.0, 1.0], [-2.0, 1.0, 5.0], [0, 2, 3]]))
    torch.testing.assert_close(ndc, torch.tensor([[1.0, 1.0, 0.0], [-1.0, -1.0, 1.0],
                                                  [0.0, 0.0, 0.5]]))
    scaled = FoVOrthographicCameras(scale_xyz=((2.0, 3.0, 1.0),))
    torch.testing.assert_close(scaled.transform_points(torch.tensor([[0.25, 0.25, 1.0]])),
                               torch.tensor([[0.5, 0.75, 0.0]]))
    assert not cameras.is_perspective() and cameras.get_znear().tolist() == [1.0]


def test_perspective_and_orthographic_ndc_formulas():
    points = torch.tensor([[1.0, -2.0, 4.0]])
    cameras = PerspectiveCameras(focal_length=((2.0, 3.0),), principal_point=((0.1, -0.2),))
    torch.testing.assert_close(cameras.transform_points(points),
                               torch.tensor([[2 * 1 / 4 + 0.1, 3 * -2 / 4 - 0.2, 1 / 4]]))
    cameras = OrthographicCameras(focal_length=2.0, principal_point=((0.1, -0.2),))
    torch.testing.assert_close(cameras.transform_points(points),
                               torch.tensor([[2.0 + 0.1, -4.0 - 0.2, 4.0]]))
    assert PerspectiveCameras(focal_length=[1.0, 2.0]).focal_length.tolist() == [[1, 1], [2, 2]]
    assert PerspectiveCameras().is_perspective() and PerspectiveCameras().get_znear() is None


def test_non_square_screen_conversion():
    # an identity orthographic camera passes view x, y through as NDC x, y
    cameras = OrthographicCameras()
    ndc = torch.tensor([[1.0, 0.5, 7.0], [-2.0, -1.0, 7.0]])
    screen = cameras.transform_points_screen(ndc, image_size=(100, 200))  # H = 100, W = 200
    # the shorter side (H) spans [-1, 1]: s = 50; x = 100 - 50 x_ndc, y = 50 - 50 y_ndc
    torch.testing.assert_close(screen, torch.tensor([[50.0, 25.0, 7.0], [200.0, 100.0, 7.0]]))
    flipless = cameras.transform_points_screen(ndc, with_xyflip=False, image_size=((100, 200),))
    torch.testing.assert_close(flipless, torch.tensor([[-50.0, -25.0, 7.0], [-200.0, -100.0, 7.0]]))
    with pytest.raises(ValueError, match="image_size"):
        cameras.transform_points_screen(ndc)


@pytest.mark.parametrize("cls", [PerspectiveCameras, OrthographicCameras])
def test_pixel_cameras_agree_with_the_equivalent_ndc_cameras(cls):
    H, W = 120, 200
    s = min(H, W) / 2
    focal, principal = torch.tensor([[150.0, 170.0]]), torch.tensor([[90.0, 70.0]])  # pixels
    R, T = look_at_view_transform(4.0, 20.0, 30.0)
    pixels = cls(focal_length=focal, principal_point=principal, R=R, T=T, in_ndc=False,
                 image_size=((H, W),))
    ndc = cls(focal_length=focal / s,
              principal_point=torch.tensor([[(W / 2 - 90.0) / s, (H / 2 - 70.0) / s]]), R=R, T=T)
    assert not pixels.in_ndc() and ndc.in_ndc()
    points = torch.randn(20, 3)
    torch.testing.assert_close(pixels.transform_points(points), ndc.transform_points(points))
    torch.testing.assert_close(pixels.transform_points_screen(points),  # its own image_size
                               ndc.transform_points_screen(points, image_size=(H, W)))
    if cls is PerspectiveCameras:  # the pinhole model in pixels: x = px - fx X/Z (+X is left)
        view = pixels.get_world_to_view_transform().transform_points(points)
        screen = pixels.transform_points_screen(points)
        torch.testing.assert_close(screen[:, 0], 90.0 - 150.0 * view[:, 0] / view[:, 2])
        torch.testing.assert_close(screen[:, 1], 70.0 - 170.0 * view[:, 1] / view[:, 2])
    with pytest.raises(ValueError, match="image_size"):
        cls(in_ndc=False)


def test_camera_center_and_world_to_view():
    R, T = look_at_view_transform(3, 50, 0)
    cameras = FoVPerspectiveCameras(R=R, T=T)
    C = cameras.get_camera_center()
    # float32 look-at and back: a few tens of roundings of values of size 3, angles in radians.
    assert C.norm().item() == pytest.approx(3.0, abs=32 * U32 * 3)
    assert math.degrees(math.asin(C[0, 1] / 3)) == pytest.approx(50.0, abs=math.degrees(64 * U32))
    view = cameras.get_world_to_view_transform().transform_points(C)
    torch.testing.assert_close(view, torch.zeros(1, 3), atol=32 * U32 * 3, rtol=0)  # C R + T cancels
    # the origin, which the camera looks at, is straight ahead at distance 3
    torch.testing.assert_close(cameras.get_world_to_view_transform().transform_points(
        torch.zeros(1, 3)), torch.tensor([[0.0, 0.0, 3.0]]), atol=32 * U32 * 3, rtol=0)


def test_per_call_overrides_leave_the_cameras_unchanged():
    R, T = look_at_view_transform(dist=[2.0, 3.0], elev=[10.0, 40.0], azim=[30.0, -60.0])
    points = torch.randn(2, 15, 3)
    reference = FoVPerspectiveCameras(R=R, T=T, fov=40.0)
    cameras = FoVPerspectiveCameras()
    torch.testing.assert_close(cameras.transform_points(points, R=R, T=T, fov=40.0),
                               reference.transform_points(points))
    torch.testing.assert_close(cameras.get_camera_center(R=R, T=T),
                               reference.get_camera_center())
    assert len(cameras) == 1 and torch.equal(cameras.R, torch.eye(3)[None])
    assert cameras.fov.tolist() == [60.0]
    # keywords meant for other components are ignored, as in PyTorch3D
    torch.testing.assert_close(cameras.transform_points(points, R=R, T=T, fov=40.0, blur=0.1),
                               reference.transform_points(points))


def test_batch_broadcasting_and_shape_validation():
    cameras = FoVPerspectiveCameras(fov=[30.0, 60.0, 90.0], T=T3)
    assert len(cameras) == 3 and cameras.T.shape == (3, 3) and cameras.R.shape == (3, 3, 3)
    points = torch.tensor([[1.0, 0.0, 0.0]])
    ndc = cameras.transform_points(points)
    assert ndc.shape == (3, 1, 3)
    torch.testing.assert_close(ndc[:, 0, 0], 1 / (3 * torch.tan(torch.deg2rad(
        torch.tensor([15.0, 30.0, 45.0])))))
    assert cameras.transform_points(points.expand(3, 1, 3)).shape == (3, 1, 3)
    assert cameras.transform_points_screen(points, image_size=(10, 10)).shape == (3, 1, 3)
    with pytest.raises(ValueError, match=r"R must have shape \(N, 3, 3\), got \(3, 3\)"):
        FoVPerspectiveCameras(R=torch.eye(3))
    with pytest.raises(ValueError, match=r"T must have shape \(N, 3\), got \(3,\)"):
        FoVPerspectiveCameras(T=(0.0, 0.0, 3.0))
    with pytest.raises(ValueError, match="batch size 2"):
        FoVPerspectiveCameras(fov=[30.0, 60.0, 90.0], R=random_rotations(2))
    with pytest.raises(ValueError, match="principal_point"):
        PerspectiveCameras(principal_point=(0.0, 0.0, 0.0))


def test_eps_keeps_points_in_the_camera_plane_finite():
    cameras = FoVPerspectiveCameras()
    ndc = cameras.transform_points(torch.tensor([[1.0, 1.0, 0.0]]), eps=1e-4)
    assert torch.isfinite(ndc).all()


def test_dtype_follows_tensor_parameters_and_to_clone():
    cameras = FoVPerspectiveCameras(R=torch.eye(3, **F64)[None])
    assert cameras.dtype == torch.float64 and cameras.znear.dtype == torch.float64
    assert cameras.to("cpu") is cameras and cameras.device == torch.device("cpu")
    copy = cameras.clone()
    copy.T[0, 2] = 5.0
    assert cameras.T[0, 2] == 0.0 and copy.T[0, 2] == 5.0


@pytest.mark.parametrize("cls", [FoVPerspectiveCameras, FoVOrthographicCameras,
                                 PerspectiveCameras, OrthographicCameras])
def test_gradcheck_transform_points_wrt_R_and_T(cls):
    R = random_rotations(2, **F64).requires_grad_()
    T = torch.tensor([[0.1, -0.2, 4.0], [0.3, 0.0, 5.0]], **F64, requires_grad=True)
    points = torch.randn(2, 6, 3, **F64)

    def project(R, T):
        return cls(R=R, T=T).transform_points_screen(points, image_size=(30, 40))

    assert torch.autograd.gradcheck(project, (R, T))
    cameras = cls(R=R.detach(), T=T.detach())  # float64 cameras, optimised through overrides
    assert torch.autograd.gradcheck(lambda R, T: cameras.transform_points(points, R=R, T=T),
                                    (R, T))
