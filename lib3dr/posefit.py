"""Small helpers shared by the pose chapters (3, 4 and 5): a camera from its position, and how far
one camera is from another.

Chapter 3 explains them: the textbook parametrises a camera by its centre ``C`` alone, always
looking at the origin with +Y up (``camera_from_position``), and we judge a fit by the distance
between camera centres (``camera_centre_distance``), by the angle of the rotation that takes one
camera's orientation to the other's (``rotation_error_degrees``) and by the angle between their
viewing directions (``viewing_angle_degrees``). Chapters 4 and 5 reuse them, and so does
``lib3dr.pose``, the robust fitting and tracking built on them.
"""
import math

import torch

from lib3dr.transforms import look_at_rotation, so3_relative_angle

__all__ = ["camera_from_position", "camera_centre_distance", "rotation_error_degrees",
           "viewing_angle_degrees"]


def camera_from_position(position):
    """World-to-view ``R, T`` of cameras at ``position`` looking at the origin, +Y up.

    ``R = look_at_rotation(C)`` and ``T = -C R`` (so that the centre lands at the view-space
    origin), differentiable with respect to ``position`` (chapter 3).

    Args:
        position: (3,) or (N, 3) camera centres C in world space.
    Returns:
        R: (N, 3, 3), T: (N, 3), in the dtype and on the device of ``position``.
    """
    C = position.reshape(-1, 3)
    R = look_at_rotation(C, device=C.device).to(C.dtype)
    T = -(C[:, None, :] @ R)[:, 0]
    return R, T


def camera_centre_distance(position, reference):
    """Euclidean distance between camera centres, ``(N,)`` (or a 0-d tensor for (3,) inputs)."""
    return (torch.as_tensor(position) - torch.as_tensor(reference)).norm(dim=-1)


def rotation_error_degrees(R, R_ref):
    """Angle in degrees of the rotation that takes the camera orientation ``R_ref`` to ``R``.

    It is at least the angle between the two viewing directions (``viewing_angle_degrees``), and
    larger when the cameras also roll relative to each other: two look-at cameras at elevation 50
    degrees whose azimuths differ by 10 degrees view directions 6.4 degrees apart, but one is the
    other turned by 10 degrees about +Y (chapter 3).

    Args:
        R, R_ref: (N, 3, 3) or (3, 3) rotation matrices.
    Returns:
        (N,) angles in degrees.
    """
    R, R_ref = R.reshape(-1, 3, 3), R_ref.reshape(-1, 3, 3).to(R.dtype)
    return so3_relative_angle(R, R_ref.expand_as(R)) * (180.0 / math.pi)


def viewing_angle_degrees(position, reference):
    """Angle in degrees between the directions from the origin to two camera centres: for cameras
    looking at the origin, the angle between their viewing directions (chapter 3)."""
    a, b = torch.as_tensor(position), torch.as_tensor(reference)
    a, b = torch.broadcast_tensors(a, b.to(a.dtype))
    # atan2(|a x b|, a . b) stays accurate for small angles, where acos of the cosine does not.
    return torch.atan2(torch.cross(a, b, dim=-1).norm(dim=-1), (a * b).sum(-1)) * (180.0 / math.pi)
