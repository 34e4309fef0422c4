"""Rotations, 4x4 transforms and look-at cameras, with PyTorch3D's names and conventions.

Rotation matrices here are the usual ones that act on column vectors (``R @ v``); quaternions are
``(w, x, y, z)``, real part first; an axis-angle vector is the unit axis times the angle in radians.
Every conversion is batched over any leading dimensions and differentiable, including at the
identity, where the textbook formulas divide 0 by 0.

Cameras use row vectors instead: ``X_view = X_world @ R + T``, and ``Transform3d`` holds
``(N, 4, 4)`` matrices that act as ``[x, y, z, 1] @ M``. World and view space are +X left, +Y up,
+Z into the screen.
"""
import functools
import math
import warnings

import torch
import torch.nn.functional as F

__all__ = [
    "axis_angle_to_matrix", "matrix_to_axis_angle", "quaternion_to_matrix", "matrix_to_quaternion",
    "axis_angle_to_quaternion", "quaternion_to_axis_angle", "standardize_quaternion",
    "euler_angles_to_matrix", "matrix_to_euler_angles", "rotation_6d_to_matrix",
    "matrix_to_rotation_6d", "random_quaternions", "random_rotations", "so3_rotation_angle",
    "so3_relative_angle", "so3_exp_map", "so3_log_map", "hat", "hat_inv", "Transform3d", "Translate",
    "Rotate", "Scale", "look_at_rotation",
    "camera_position_from_spherical_angles", "look_at_view_transform",
]

# Below this squared angle the closed forms lose precision and have 0/0 gradients, so a Taylor
# series takes over; its first dropped term is far below float32 resolution there.
_SMALL = 1e-6


def _sqrt_where(x, small):
    """sqrt(x) where ``small`` is False, and 1 where it is True.

    The caller replaces the ``small`` entries with a series; feeding 1 rather than ~0 to sqrt keeps
    the discarded branch's infinite gradient from turning into NaN (0 * inf) through torch.where.
    """
    return torch.sqrt(torch.where(small, torch.ones_like(x), x))


# ----------------------------------------------------------------------------------- quaternions


def standardize_quaternion(quaternions):
    """Picks, of q and -q (the same rotation), the one with non-negative real part.

    Args:
        quaternions: (..., 4), real part first.
    Returns:
        (..., 4).
    """
    return torch.where(quaternions[..., :1] < 0, -quaternions, quaternions)


def quaternion_to_matrix(quaternions):
    """Rotation matrices from quaternions (real part first; need not have unit length).

    Args:
        quaternions: (..., 4).
    Returns:
        (..., 3, 3).
    """
    w, x, y, z = quaternions.unbind(-1)
    s = 2.0 / (quaternions * quaternions).sum(-1)  # 2 / |q|^2 rather than 2 normalises q for free
    entries = [
        1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w),
        s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w),
        s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y),
    ]
    return torch.stack(entries, -1).unflatten(-1, (3, 3))


def matrix_to_quaternion(matrix):
    """Quaternions (real part first and >= 0) from rotation matrices.

    Each of |w|, |x|, |y|, |z| can be read off the diagonal (e.g. 4 w^2 = 1 + trace), and the
    products of pairs off the off-diagonal sums and differences. Dividing those products by the
    largest of the four components (Shepperd's method) is accurate for every rotation, angles near
    pi included, where w -> 0.

    Args:
        matrix: (..., 3, 3).
    Returns:
        (..., 4).
    """
    if matrix.shape[-2:] != (3, 3):
        raise ValueError(f"matrix must have shape (..., 3, 3), got {tuple(matrix.shape)}")
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = matrix.flatten(-2).unbind(-1)
    four_q2 = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22,
                           1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)  # 4 (w^2, x^2, y^2, z^2)
    # Row i holds 4 q_i (w, x, y, z), taking q_i >= 0.
    rows = torch.stack([
        torch.stack([four_q2[..., 0], m21 - m12, m02 - m20, m10 - m01], -1),
        torch.stack([m21 - m12, four_q2[..., 1], m10 + m01, m02 + m20], -1),
        torch.stack([m02 - m20, m10 + m01, four_q2[..., 2], m12 + m21], -1),
        torch.stack([m10 - m01, m20 + m02, m21 + m12, four_q2[..., 3]], -1),
    ], -2)
    zero = four_q2 <= 0  # rounding can push the smaller ones just below 0
    two_q = torch.where(zero, 0.0, _sqrt_where(four_q2, zero))
    # The floor only spares the rows that are never selected a division by ~0.
    candidates = rows / (2 * two_q.clamp(min=0.1))[..., None]
    best = two_q.argmax(-1)[..., None, None].expand(*matrix.shape[:-2], 1, 4)
    return standardize_quaternion(torch.take_along_dim(candidates, best, -2)[..., 0, :])


def axis_angle_to_quaternion(axis_angle):
    """Quaternions (real part first) from axis-angle vectors: (cos(a/2), sin(a/2) axis).

    Args:
        axis_angle: (..., 3), axis times angle a in radians.
    Returns:
        (..., 4).
    """
    angle2 = (axis_angle * axis_angle).sum(-1, keepdim=True)
    small = angle2 < _SMALL
    half = _sqrt_where(angle2, small) / 2
    w = torch.where(small, 1 - angle2 / 8, torch.cos(half))
    # sin(a/2) axis = (sin(a/2) / a) axis_angle, and sin(a/2) / a -> 1/2 as a -> 0.
    sin_half_over_angle = torch.where(small, 0.5 - angle2 / 48, torch.sin(half) / (2 * half))
    return torch.cat([w, sin_half_over_angle * axis_angle], -1)


def quaternion_to_axis_angle(quaternions):
    """Axis-angle vectors from quaternions (real part first; need not have unit length).

    q and -q give the same vector, with its angle in [0, pi].

    Args:
        quaternions: (..., 4).
    Returns:
        (..., 3).
    """
    quaternions = standardize_quaternion(quaternions)
    w, xyz = quaternions[..., :1], quaternions[..., 1:]
    n2 = (xyz * xyz).sum(-1, keepdim=True)  # |xyz| = |q| sin(a/2), w = |q| cos(a/2)
    small = n2 < _SMALL * w * w
    n = _sqrt_where(n2, small)
    # angle / |xyz| = 2 atan(n / w) / n -> 2 / w - 2 n^2 / (3 w^3) as n / w -> 0.
    scale = torch.where(small, 2 / w - 2 * n2 / (3 * w ** 3), 2 * torch.atan2(n, w) / n)
    return scale * xyz


def axis_angle_to_matrix(axis_angle):
    """Rotation matrices from axis-angle vectors (Rodrigues' formula, by way of quaternions).

    Args:
        axis_angle: (..., 3), axis times angle in radians.
    Returns:
        (..., 3, 3).
    """
    return quaternion_to_matrix(axis_angle_to_quaternion(axis_angle))


def matrix_to_axis_angle(matrix):
    """Axis-angle vectors, angle in [0, pi], from rotation matrices.

    Going through quaternions stays accurate near pi, where the axis read off R - R^T vanishes.

    Args:
        matrix: (..., 3, 3).
    Returns:
        (..., 3).
    """
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


# ---------------------------------------------------------------------------------- Euler angles


def _axis_rotation(axis, angle):
    """Rotations by ``angle`` (...,) about the world axis "X", "Y" or "Z": (..., 3, 3)."""
    i = "XYZ".index(axis)
    j, k = (i + 1) % 3, (i + 2) % 3  # (i, j, k) is cyclic, so the rotation takes j towards k
    cos, sin = torch.cos(angle), torch.sin(angle)
    entries = [[torch.zeros_like(angle)] * 3 for _ in range(3)]
    entries[i][i] = torch.ones_like(angle)
    entries[j][j], entries[j][k] = cos, -sin
    entries[k][j], entries[k][k] = sin, cos
    return torch.stack([torch.stack(row, -1) for row in entries], -2)


def _check_convention(convention):
    if len(convention) != 3:
        raise ValueError(f"convention must have 3 letters, got {convention!r}")
    if any(axis not in "XYZ" for axis in convention):
        raise ValueError(f"convention may only use the letters X, Y, Z, got {convention!r}")
    if convention[1] in (convention[0], convention[2]):
        raise ValueError(f"consecutive axes of a convention must differ, got {convention!r}")


def euler_angles_to_matrix(euler_angles, convention):
    """Rotation matrices from Euler angles.

    ``convention`` such as "XYZ" names the axis of each angle; the result is the product
    R = R_X(a0) @ R_Y(a1) @ R_Z(a2) (intrinsic rotations, applied to column vectors right to left).
    Tait-Bryan ("XYZ") and proper Euler ("ZXZ") conventions are both accepted.

    Args:
        euler_angles: (..., 3), radians.
        convention: 3-letter string over "X", "Y", "Z".
    Returns:
        (..., 3, 3).
    """
    if euler_angles.shape[-1] != 3:
        raise ValueError(f"euler_angles must have shape (..., 3), got {tuple(euler_angles.shape)}")
    _check_convention(convention)
    first, middle, last = (_axis_rotation(axis, angle)
                           for axis, angle in zip(convention, euler_angles.unbind(-1)))
    return first @ middle @ last


def matrix_to_euler_angles(matrix, convention):
    """Euler angles of rotation matrices, inverting ``euler_angles_to_matrix``.

    The outer angles are in (-pi, pi]; the middle one is in [-pi/2, pi/2] for Tait-Bryan
    conventions and in [0, pi] for proper Euler ones. At gimbal lock (middle angle at the end of its
    range) only the sum or difference of the outer angles is defined, and the split is arbitrary.

    Args:
        matrix: (..., 3, 3).
        convention: 3-letter string over "X", "Y", "Z".
    Returns:
        (..., 3), radians.
    """
    if matrix.shape[-2:] != (3, 3):
        raise ValueError(f"matrix must have shape (..., 3, 3), got {tuple(matrix.shape)}")
    _check_convention(convention)
    i, j, k = ("XYZ".index(axis) for axis in convention)
    sign = 1.0 if (j - i) % 3 == 1 else -1.0  # +1 when the first two axes are in cyclic order
    m = [row.unbind(-1) for row in matrix.unbind(-2)]  # m[r][c] is a (...,) tensor
    if i != k:  # Tait-Bryan: three different axes; m[i][k] = sign * sin(middle)
        middle = torch.asin((sign * m[i][k]).clamp(-1, 1))
        first = torch.atan2(-sign * m[j][k], m[k][k])
        last = torch.atan2(-sign * m[i][j], m[i][i])
    else:  # proper Euler: first and last axes equal; m[i][i] = cos(middle)
        unnamed = 3 - i - j
        middle = torch.acos(m[i][i].clamp(-1, 1))
        first = torch.atan2(m[j][i], -sign * m[unnamed][i])
        last = torch.atan2(m[i][j], sign * m[i][unnamed])
    return torch.stack([first, middle, last], -1)


# --------------------------------------------------------------------------- 6D representation


def rotation_6d_to_matrix(d6):
    """Rotation matrices from the continuous 6D representation of Zhou et al. (CVPR 2019).

    The two 3-vectors are Gram-Schmidt orthonormalised into the first two rows; their cross
    product is the third. Any 6-vector with independent halves maps to a rotation, which is what
    makes this representation pleasant to regress or optimise.

    Args:
        d6: (..., 6).
    Returns:
        (..., 3, 3).
    """
    a1, a2 = d6[..., :3], d6[..., 3:]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], -2)


def matrix_to_rotation_6d(matrix):
    """The 6D representation of rotation matrices: their first two rows, concatenated.

    Args:
        matrix: (..., 3, 3).
    Returns:
        (..., 6).
    """
    return matrix[..., :2, :].flatten(-2)


# ----------------------------------------------------------------------- sampling and distances


def random_quaternions(n, dtype=None, device=None):
    """Quaternions of rotations drawn uniformly from SO(3), real part >= 0.

    A 4D Gaussian is isotropic, so normalising it gives a uniform point on the unit 3-sphere,
    which is a uniform rotation.

    Returns:
        (n, 4).
    """
    q = torch.randn(n, 4, dtype=dtype, device=device)
    return standardize_quaternion(F.normalize(q, dim=-1))


def random_rotations(n, dtype=None, device=None):
    """Rotation matrices drawn uniformly from SO(3).

    Returns:
        (n, 3, 3).
    """
    return quaternion_to_matrix(random_quaternions(n, dtype=dtype, device=device))


def so3_rotation_angle(R, cos_angle=False):
    """Rotation angle in [0, pi] of rotation matrices (or its cosine).

    cos(a) = (trace - 1) / 2 alone (the usual acos formula) loses half its digits near 0 and pi,
    and acos has infinite slope there. The antisymmetric part R - R^T holds 2 sin(a) axis, so
    atan2(sin, cos) is accurate, with finite gradients, over the whole range.

    Args:
        R: (..., 3, 3).
    Returns:
        (...,).
    """
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"R must have shape (..., 3, 3), got {tuple(R.shape)}")
    cos = (R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    if cos_angle:
        return cos
    axis_sin = torch.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0],
                            R[..., 1, 0] - R[..., 0, 1]], -1) / 2
    n2 = (axis_sin * axis_sin).sum(-1)
    zero = n2 == 0  # exactly 0 or pi: the norm has no gradient there, and we give it 0
    sin = torch.where(zero, 0.0, _sqrt_where(n2, zero))
    return torch.atan2(sin, cos)


def so3_relative_angle(R1, R2, cos_angle=False):
    """Angle in [0, pi] of the rotation R1 R2^T that takes R2 to R1 (or its cosine): a pose error.

    Args:
        R1, R2: (..., 3, 3).
    Returns:
        (...,).
    """
    return so3_rotation_angle(R1 @ R2.transpose(-1, -2), cos_angle=cos_angle)


def hat(v):
    """The skew-symmetric matrices [v]_x with [v]_x w = v x w.

    Args:
        v: (N, 3).
    Returns:
        (N, 3, 3): [[0, -z, y], [z, 0, -x], [-y, x, 0]].
    """
    if v.dim() != 2 or v.shape[1] != 3:
        raise ValueError(f"v must have shape (N, 3), got {tuple(v.shape)}")
    x, y, z = v.unbind(1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], 1).view(-1, 3, 3)


def hat_inv(h):
    """The vectors v of skew-symmetric matrices h = [v]_x, inverting ``hat``.

    Args:
        h: (N, 3, 3), skew-symmetric to within 1e-5 (else ValueError).
    Returns:
        (N, 3).
    """
    if h.dim() != 3 or h.shape[1:] != (3, 3):
        raise ValueError(f"h must have shape (N, 3, 3), got {tuple(h.shape)}")
    if len(h) and float((h + h.transpose(1, 2)).abs().max()) > 1e-5:
        raise ValueError("hat_inv: a matrix is not skew-symmetric")
    return torch.stack([h[:, 2, 1], h[:, 0, 2], h[:, 1, 0]], 1)


def so3_exp_map(log_rot, eps=0.0001):
    """Rotation matrices exp([log_rot]_x) of axis-angle vectors (PyTorch3D's ``so3_exp_map``).

    The exponential of the skew matrix of an axis-angle vector is Rodrigues' rotation, so this is
    ``axis_angle_to_matrix``, whose series near the identity keeps the gradients exact there.

    Args:
        log_rot: (N, 3), axis times angle in radians.
        eps: accepted for PyTorch3D's signature (whose current version ignores it too): no clamp is needed.
    Returns:
        (N, 3, 3), acting on column vectors.
    """
    if log_rot.dim() != 2 or log_rot.shape[1] != 3:
        raise ValueError(f"log_rot must have shape (N, 3), got {tuple(log_rot.shape)}")
    return axis_angle_to_matrix(log_rot)


def so3_log_map(R, eps=0.0001, cos_bound=1e-4):
    """Axis-angle vectors, angle in [0, pi], of rotation matrices: the inverse of ``so3_exp_map``.

    Args:
        R: (N, 3, 3).
        eps, cos_bound: accepted for PyTorch3D's signature (whose current version ignores them too): going
            through quaternions is accurate at 0 and pi without bounds.
    Returns:
        (N, 3).
    """
    if R.dim() != 3 or R.shape[1:] != (3, 3):
        raise ValueError(f"R must have shape (N, 3, 3), got {tuple(R.shape)}")
    return matrix_to_axis_angle(R)


# ---------------------------------------------------------------------------------- Transform3d


def _check_batches(n1, n2):
    if n1 != n2 and 1 not in (n1, n2):
        raise ValueError(f"batch sizes {n1} and {n2} do not broadcast: they must be equal or 1")


class Transform3d:
    """A batch of 4x4 transforms in row-vector form: a point maps as ``[x, y, z, 1] @ M``.

    So the translation is the last row of M, and ``a.compose(b)`` (a first, then b) is the matrix
    product ``M_a @ M_b``. Batches of 1 broadcast against batches of N.

    Args:
        dtype, device: of the identity made when ``matrix`` is None.
        matrix: (N, 4, 4) or (4, 4).
    """

    def __init__(self, dtype=torch.float32, device="cpu", matrix=None):
        if matrix is None:
            matrix = torch.eye(4, dtype=dtype, device=device)
        if matrix.dim() not in (2, 3) or matrix.shape[-2:] != (4, 4):
            raise ValueError(
                f"matrix must have shape (N, 4, 4) or (4, 4), got {tuple(matrix.shape)}")
        self._matrix = matrix.reshape(-1, 4, 4)
        self.dtype, self.device = self._matrix.dtype, self._matrix.device

    def __len__(self):
        return self._matrix.shape[0]

    def get_matrix(self):
        """The (N, 4, 4) matrix."""
        return self._matrix

    def compose(self, *others):
        """The transform that applies ``self`` first, then each of ``others`` in order."""
        matrix = self._matrix
        for other in others:
            _check_batches(len(matrix), len(other))
            matrix = matrix @ other.get_matrix()
        return Transform3d(matrix=matrix)

    def inverse(self):
        return Transform3d(matrix=torch.linalg.inv(self._matrix))

    def _apply(self, vectors, matrix):
        """vectors (P, k) or (N, P, k) @ matrix (N, k, m), keeping an unbatched input unbatched."""
        if vectors.dim() not in (2, 3):
            raise ValueError(
                f"expected points of shape (P, 3) or (N, P, 3), got {tuple(vectors.shape)}")
        if vectors.dim() == 3:
            _check_batches(len(vectors), len(matrix))
        out = vectors @ matrix
        return out[0] if vectors.dim() == 2 and len(out) == 1 else out

    def transform_points(self, points, eps=None):
        """Applies the transform, then divides by the homogeneous coordinate w.

        Args:
            points: (P, 3) or (N, P, 3).
            eps: if given, |w| is clamped to at least eps (keeping its sign, + for w = 0), so that
                points on a camera's plane z = 0 give large values instead of inf or NaN.
        Returns:
            (P, 3) if points is (P, 3) and the transform has N = 1, else (N, P, 3).
        """
        homogeneous = torch.cat([points, torch.ones_like(points[..., :1])], -1)
        out = self._apply(homogeneous, self._matrix)
        w = out[..., 3:]
        if eps is not None:
            w = torch.where(w < 0, w.clamp(max=-eps), w.clamp(min=eps))
        return out[..., :3] / w

    def transform_normals(self, normals):
        """Transforms normals by the inverse transpose of the linear part, which keeps them
        perpendicular to transformed surfaces under non-uniform scaling.

        Args:
            normals: (P, 3) or (N, P, 3).
        Returns:
            (P, 3) or (N, P, 3), as ``transform_points``; not renormalised.
        """
        return self._apply(normals, torch.linalg.inv(self._matrix)[:, :3, :3].transpose(1, 2))

    def to(self, device, copy=False, dtype=None):
        """This transform on ``device``: self when nothing changes, else a new one (like a tensor)."""
        matrix = self._matrix.to(device=device, dtype=dtype, copy=copy)
        return self if matrix is self._matrix else Transform3d(matrix=matrix)

    def clone(self):
        return Transform3d(matrix=self._matrix.clone())


def _xyz(x, y, z, dtype, device, name, one_for_all=False):
    """(N, 3) from an (N, 3) tensor x, or from x, y, z, each a number or an (N,) tensor (batches of 1 broadcast);
    with ``one_for_all``, x alone stands for all three. Tensors keep their autograd graph."""
    if torch.is_tensor(x) and x.dim() == 2:
        if x.shape[1] != 3 or y is not None or z is not None:
            raise ValueError(f"{name}: a 2D tensor must be (N, 3) and come without y and z, got {tuple(x.shape)}")
        return x.to(dtype=dtype, device=device)
    if one_for_all and y is None and z is None:
        y = z = x
    if y is None or z is None:
        raise ValueError(f"{name} takes an (N, 3) tensor or all three of x, y, z")
    coords = [torch.as_tensor(c, device=device).to(dtype).reshape(-1) for c in (x, y, z)]
    n = max(len(c) for c in coords)
    if any(len(c) not in (1, n) for c in coords):
        raise ValueError(f"{name}: sizes {[len(c) for c in coords]} do not broadcast")
    return torch.stack([c.expand(n) for c in coords], dim=1)


def _input_device(device, *values):
    """``device`` if given, else that of the first tensor among ``values``, else the CPU."""
    if device is not None:
        return torch.device(device)
    return next((v.device for v in values if torch.is_tensor(v)), torch.device("cpu"))


class Translate(Transform3d):
    """Translations: a point maps to ``p + t``; the matrix is the identity with t in its last row.

    ``Translate(xyz)`` with an (N, 3) tensor, or ``Translate(x, y, z)`` with numbers or (N,) tensors.
    ``device`` defaults to that of a tensor argument.
    """

    def __init__(self, x, y=None, z=None, dtype=torch.float32, device=None):
        device = _input_device(device, x, y, z)
        xyz = _xyz(x, y, z, dtype, device, "Translate")
        matrix = torch.eye(4, dtype=dtype, device=device).repeat(len(xyz), 1, 1)
        matrix[:, 3, :3] = xyz
        super().__init__(matrix=matrix)


class Scale(Transform3d):
    """Scalings about the origin: a point maps to ``p * s`` (per axis); the matrix is diag(s_x, s_y, s_z, 1).

    ``Scale(s)`` with a number or (N,) tensor (uniform), or an (N, 3) tensor; or ``Scale(x, y, z)``.
    ``device`` defaults to that of a tensor argument.
    """

    def __init__(self, x, y=None, z=None, dtype=torch.float32, device=None):
        device = _input_device(device, x, y, z)
        xyz = _xyz(x, y, z, dtype, device, "Scale", one_for_all=True)
        ones = torch.ones_like(xyz[:, :1])
        super().__init__(matrix=torch.diag_embed(torch.cat([xyz, ones], dim=1)))


class Rotate(Transform3d):
    """Rotations: a point (row vector) maps to ``p @ R``; the matrix holds R in its top-left 3 x 3 block.

    Note the row-vector convention: ``Rotate(R)`` applies R^T to column vectors, as the cameras' R does.

    Args:
        R: (3, 3) or (N, 3, 3); a warning is issued unless R R^T = I and det R = 1 to within ``orthogonal_tol``.
        device: defaults to R's.
    """

    def __init__(self, R, dtype=torch.float32, device=None, orthogonal_tol=1e-5):
        device = _input_device(device, R)
        if R.dim() not in (2, 3) or R.shape[-2:] != (3, 3):
            raise ValueError(f"R must have shape (3, 3) or (N, 3, 3), got {tuple(R.shape)}")
        R = R.to(dtype=dtype, device=device).reshape(-1, 3, 3)
        eye = torch.eye(3, dtype=dtype, device=device)
        if not (torch.allclose(R @ R.transpose(1, 2), eye.expand_as(R), atol=orthogonal_tol)
                and torch.allclose(torch.linalg.det(R), torch.ones_like(R[:, 0, 0]), atol=orthogonal_tol)):
            warnings.warn("Rotate: R is not a valid rotation matrix")
        matrix = torch.eye(4, dtype=dtype, device=device).repeat(len(R), 1, 1)
        matrix[:, :3, :3] = R
        super().__init__(matrix=matrix)


# ------------------------------------------------------------------------------- look-at cameras


def _broadcast(device, **values):
    """Converts numbers, sequences and tensors to tensors with one batch size N, dtype and device.

    Each keyword maps to (value, width): width None reads a number per batch element, giving (N,);
    width k reads k-vectors, giving (N, k) (a single (k,) vector counts as a batch of 1). Batches of
    1 expand to N. The dtype is float32 unless a tensor among the values has a wider float dtype.
    Tensors keep their autograd graph.
    """
    floats = [v.dtype for v, _ in values.values() if torch.is_tensor(v) and v.is_floating_point()]
    dtype = functools.reduce(torch.promote_types, floats, torch.float32)
    tensors = {}
    for name, (value, width) in values.items():
        t = torch.as_tensor(value, dtype=dtype, device=device)
        shape = (-1,) if width is None else (-1, width)
        if t.dim() > len(shape) or (width is not None and (t.dim() == 0 or t.shape[-1] != width)):
            expected = "a number or (N,)" if width is None else f"({width},) or (N, {width})"
            raise ValueError(f"{name} must have shape {expected}, got {tuple(t.shape)}")
        tensors[name] = t.reshape(shape)
    n = max(len(t) for t in tensors.values())
    for name, t in tensors.items():
        if len(t) not in (1, n):
            raise ValueError(f"{name} has batch size {len(t)}, which does not broadcast to {n}")
    return [t.expand(n, *t.shape[1:]) for t in tensors.values()]


def look_at_rotation(camera_position, at=((0, 0, 0),), up=((0, 1, 0),), device="cpu"):
    """The rotation R of cameras at ``camera_position`` looking at ``at``, with ``up`` upwards.

    The camera's axes in world coordinates are z (viewing direction, at - camera), x = up x z
    (left, as view +X is left) and y = z x x (the part of up perpendicular to z). They are the
    columns of R, so ``X_world @ R`` gives a point's coordinates along them.

    Args:
        camera_position, at, up: (3,) or (N, 3) each, or sequences; batches of 1 broadcast.
        device: where the result lives.
    Returns:
        R: (N, 3, 3).
    """
    camera_position, at, up = _broadcast(device, camera_position=(camera_position, 3), at=(at, 3),
                                         up=(up, 3))
    z = F.normalize(at - camera_position, dim=-1, eps=1e-5)
    x = torch.cross(up, z, dim=-1)
    # Looking along up leaves "left" undefined; any world axis far from z then serves as up.
    fallback_up = F.one_hot(z.abs().argmin(-1), 3).to(z)
    degenerate = x.norm(dim=-1, keepdim=True) < 1e-5
    x = F.normalize(torch.where(degenerate, torch.cross(fallback_up, z, dim=-1), x), dim=-1)
    y = torch.cross(z, x, dim=-1)  # unit already: z and x are orthonormal
    return torch.stack([x, y, z], -1)


def camera_position_from_spherical_angles(distance, elevation, azimuth, degrees=True, device="cpu"):
    """Points at ``distance`` from the origin, ``elevation`` above the XZ plane, and ``azimuth``
    around +Y measured from +Z towards +X.

    Args:
        distance, elevation, azimuth: numbers or (N,) each; batches of 1 broadcast.
        degrees: whether the angles are in degrees rather than radians.
    Returns:
        (N, 3).
    """
    distance, elevation, azimuth = _broadcast(device, distance=(distance, None),
                                              elevation=(elevation, None), azimuth=(azimuth, None))
    if degrees:
        elevation, azimuth = elevation * (math.pi / 180), azimuth * (math.pi / 180)
    return distance[:, None] * torch.stack([torch.cos(elevation) * torch.sin(azimuth),
                                            torch.sin(elevation),
                                            torch.cos(elevation) * torch.cos(azimuth)], -1)


def look_at_view_transform(dist=1.0, elev=0.0, azim=0.0, degrees=True, eye=None, at=((0, 0, 0),),
                           up=((0, 1, 0),), device="cpu"):
    """World-to-view R, T of cameras looking at ``at``.

    The camera centre C is ``eye`` if given, else the point at spherical angles (dist, elev, azim)
    around ``at``. T = -C R, so that the centre lands at the view-space origin: C @ R + T = 0.

    Args:
        dist, elev, azim: numbers or (N,) each.
        degrees: whether elev and azim are in degrees.
        eye: (3,) or (N, 3), overriding dist, elev and azim.
        at, up: (3,) or (N, 3). All batches of 1 broadcast to the largest N.
    Returns:
        R: (N, 3, 3), T: (N, 3).
    """
    if eye is not None:
        C, at, up = _broadcast(device, eye=(eye, 3), at=(at, 3), up=(up, 3))
    else:
        dist, elev, azim, at, up = _broadcast(device, dist=(dist, None), elev=(elev, None),
                                              azim=(azim, None), at=(at, 3), up=(up, 3))
        C = camera_position_from_spherical_angles(dist, elev, azim, degrees, device) + at
    R = look_at_rotation(C, at, up, device)
    T = -(C[:, None, :] @ R)[:, 0]
    return R, T
