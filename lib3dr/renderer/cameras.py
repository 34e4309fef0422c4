"""Cameras: world space -> view space -> NDC, with PyTorch3D's names and conventions.

A camera first moves points into its own view space, ``X_view = X_world @ R + T`` (row vectors;
R (N, 3, 3), T (N, 3)), where it sits at the origin looking down +Z with +X left and +Y up. Its
projection then maps view space to normalised device coordinates (NDC): x and y in [-1, 1] across
the image (+X left, +Y up; on a non-square image the shorter side spans [-1, 1]) and a depth z.
Each class writes its projection as a 4x4 matrix K acting on column vectors ``K @ [X, Y, Z, 1]``;
as transforms here act on row vectors, the stored transform is K^T.

Every parameter holds a batch of N cameras: numbers, sequences and tensors are accepted, and a
batch of 1 broadcasts to the largest N given. Every method accepts any parameter as a keyword to
override it for that call alone (``cameras.transform_points(points, R=R, T=T)``), which is how the
pose of a camera is optimised; all methods are differentiable in all parameters.
"""
import copy
import functools
import math

import torch

from lib3dr.transforms import Transform3d

__all__ = ["CamerasBase", "FoVPerspectiveCameras", "FoVOrthographicCameras", "PerspectiveCameras",
           "OrthographicCameras"]

_R = torch.eye(3)[None]
_T = torch.zeros(1, 3)


def _stack_matrix(rows):
    """(N, 4, 4) matrices from a 4x4 nested list of (N,) tensors and numbers, so that code can
    write a projection matrix out as it reads on paper."""
    like = next(entry for row in rows for entry in row if torch.is_tensor(entry))
    entries = [torch.as_tensor(entry, dtype=like.dtype, device=like.device)
               for row in rows for entry in row]
    return torch.stack(torch.broadcast_tensors(*entries), -1).unflatten(-1, (4, 4))


def camera_centers(R, T):
    """(N, 3) world-space centres of cameras ``R (N, 3, 3), T (N, 3)``: C @ R + T = 0, so C = -T @ R^T."""
    return -(T[:, None, :] @ R.transpose(1, 2))[:, 0]


class CamerasBase:
    """What all cameras share: the world-to-view transform, and applying a projection.

    Subclasses list their tensor parameters with their shapes (less the batch dimension) in
    ``_shapes`` and write their projection matrix in ``_projection_matrix``. A parameter ``K``
    (N, 4, 4), when given, is used as the projection matrix instead.

    All parameters are converted to one dtype: float32, unless a tensor among them has a wider
    float dtype (float64 for gradcheck, say). Per-call overrides are converted to that dtype too.
    """

    _shapes = {"R": (3, 3), "T": (3,), "K": (4, 4)}

    def __init__(self, device="cpu", **params):
        self.device = torch.device(device)
        floats = [v.dtype for v in params.values() if torch.is_tensor(v) and v.is_floating_point()]
        self.dtype = functools.reduce(torch.promote_types, floats, torch.float32)
        params = {name: self._format(name, value) for name, value in params.items()}
        self._N = max(len(value) for value in params.values() if value is not None)
        for name, value in params.items():
            if value is not None:
                if len(value) not in (1, self._N):
                    raise ValueError(f"{name} has batch size {len(value)}, which does not "
                                     f"broadcast to the other parameters' {self._N}")
                value = value.expand(self._N, *value.shape[1:])  # a view: gradients still flow
            setattr(self, name, value)

    def _format(self, name, value):
        """``value`` as a (B, *shape) tensor of the cameras' dtype and device (None stays None)."""
        if value is None:
            return None
        shape = self._shapes[name]
        tensor = torch.as_tensor(value, dtype=self.dtype, device=self.device)  # keeps autograd
        if not shape and tensor.dim() == 0:  # a number is a batch of 1
            tensor = tensor[None]
        if tensor.shape[1:] != shape or tensor.dim() != 1 + len(shape):
            expected = "(N" + "".join(f", {size}" for size in shape) + ("" if shape else ",") + ")"
            raise ValueError(f"{name} must have shape {expected}, got {tuple(tensor.shape)}")
        return tensor

    def _get(self, name, kwargs):
        """Parameter ``name``: its override in ``kwargs`` for this call, else the stored one."""
        value = kwargs.get(name)
        return getattr(self, name) if value is None else self._format(name, value)

    def __len__(self):
        return self._N

    def to(self, device):
        """Moves all parameters to ``device``, in place; returns the cameras."""
        self.device = torch.device(device)
        for name in self._shapes:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.to(self.device))
        return self

    def clone(self):
        other = copy.copy(self)
        for name in self._shapes:
            value = getattr(self, name)
            setattr(other, name, None if value is None else value.clone())
        return other

    def is_perspective(self):
        raise NotImplementedError

    def in_ndc(self):
        """Whether the parameters are given in NDC (else in pixels)."""
        return True

    def get_znear(self):
        """(N,) near clipping distances, or None for cameras without one."""
        return getattr(self, "znear", None)

    def get_world_to_view_transform(self, **kwargs):
        """X_view = X_world @ R + T, as the row-vector matrix [[R, 0], [T, 1]]: (N, 4, 4)."""
        R, T = self._get("R", kwargs), self._get("T", kwargs)
        n = max(len(R), len(T))
        R, T = R.expand(n, 3, 3), T.expand(n, 3)
        top = torch.cat([R, torch.zeros_like(R[:, :, :1])], 2)
        bottom = torch.cat([T, torch.ones_like(T[:, :1])], 1)[:, None]
        return Transform3d(matrix=torch.cat([top, bottom], 1))

    def get_projection_transform(self, **kwargs):
        """View space -> NDC: the row-vector transform K^T."""
        K = self._get("K", kwargs)
        if K is None:
            K = self._projection_matrix(kwargs)
        return Transform3d(matrix=K.transpose(1, 2))

    def _projection_matrix(self, kwargs):
        """The (N, 4, 4) projection matrix K, in column-vector form."""
        raise NotImplementedError

    def get_full_projection_transform(self, **kwargs):
        """World space -> NDC: the world-to-view transform, then the projection."""
        return self.get_world_to_view_transform(**kwargs).compose(
            self.get_projection_transform(**kwargs))

    def get_ndc_camera_transform(self, **kwargs):
        """The identity, kept so that renderer code written for PyTorch3D runs unchanged.

        PyTorch3D's screen-space cameras project to pixels and need this further step to reach
        NDC; these cameras convert pixel parameters to NDC up front, so they always project to NDC.
        """
        return Transform3d(dtype=self.dtype, device=self.device)

    def transform_points(self, points, eps=None, **kwargs):
        """World space -> NDC.

        Args:
            points: (P, 3) or (N, P, 3) world points.
            eps: if given, clamps |w| to at least eps before the perspective division, so that
                points in the camera's plane Z = 0 give large values rather than inf or NaN.
        Returns:
            (N, P, 3) NDC points, or (P, 3) if points is (P, 3) and N = 1.
        """
        return self.get_full_projection_transform(**kwargs).transform_points(points, eps=eps)

    def transform_points_ndc(self, points, eps=None, **kwargs):
        """World space -> NDC; the same as ``transform_points``."""
        return self.transform_points(points, eps=eps, **kwargs)

    def transform_points_screen(self, points, eps=None, with_xyflip=True, image_size=None,
                                **kwargs):
        """World space -> screen space: pixel coordinates of an image of ``image_size``.

        With s = min(H, W) / 2 (the shorter side spans NDC [-1, 1]):
            x_screen = W / 2 - s x_ndc,   y_screen = H / 2 - s y_ndc,   z_screen = z_ndc,
        so (0, 0) is the top-left corner of the image and (W, H) its bottom-right one: the signs
        turn NDC's +X left, +Y up into the image's x right, y down. ``with_xyflip=False`` leaves
        them out, giving s x_ndc - W / 2 and s y_ndc - H / 2 as PyTorch3D does.

        Args:
            points: (P, 3) or (N, P, 3) world points.
            image_size: (H, W) or (N, 2); defaults to the cameras' own ``image_size``.
        Returns:
            (N, P, 3), or (P, 3) as ``transform_points``.
        """
        image_size = getattr(self, "image_size", None) if image_size is None else image_size
        if image_size is None:
            raise ValueError("image_size=(height, width) is needed to convert NDC to screen "
                             "coordinates")
        image_size = torch.as_tensor(image_size, dtype=self.dtype, device=self.device)
        image_size = image_size.reshape(-1, 2)
        ndc = self.transform_points(points, eps=eps, image_size=image_size, **kwargs)
        batched = ndc if ndc.dim() == 3 else ndc[None]
        height, width = image_size[:, 0, None], image_size[:, 1, None]  # (N, 1) against (N, P)
        scale = torch.minimum(height, width) / 2
        sign = -1 if with_xyflip else 1
        screen = torch.stack([sign * (scale * batched[..., 0] - width / 2),
                              sign * (scale * batched[..., 1] - height / 2),
                              batched[..., 2]], -1)
        return screen[0] if ndc.dim() == 2 and len(screen) == 1 else screen

    def get_camera_center(self, **kwargs):
        """(N, 3) camera centres in world space (``camera_centers``)."""
        return camera_centers(self._get("R", kwargs), self._get("T", kwargs))


class FoVPerspectiveCameras(CamerasBase):
    """Perspective cameras given by a vertical field of view, OpenGL style, with depth in [0, 1].

    The view frustum between depths n = znear and f = zfar, of half-height max_y = n tan(fov / 2)
    and half-width max_x = max_y aspect_ratio at depth n (min_x = -max_x, min_y = -max_y), maps to
    the NDC box by, with dx = max_x - min_x and dy = max_y - min_y,

        K = [[2n / dx,  0,        (max_x + min_x) / dx,  0             ],
             [0,        2n / dy,  (max_y + min_y) / dy,  0             ],
             [0,        0,        f / (f - n),           -f n / (f - n)],
             [0,        0,        1,                     0             ]]

    so w = Z, x_ndc = X / (aspect_ratio tan(fov / 2) Z) (the frustum is symmetric: the third
    column's top entries vanish), and z_ndc = f (Z - n) / ((f - n) Z), which is 0 at Z = n and 1
    at Z = f. NDC already gives the shorter image side [-1, 1], so aspect_ratio is usually 1.

    Args:
        znear, zfar, aspect_ratio, fov: numbers or (N,); fov is in degrees if ``degrees``.
        R: (N, 3, 3), T: (N, 3): world-to-view rotation and translation.
        K: (N, 4, 4) projection matrix to use instead of the parameters above.
    """

    _shapes = {**CamerasBase._shapes, "znear": (), "zfar": (), "aspect_ratio": (), "fov": ()}

    def __init__(self, znear=1.0, zfar=100.0, aspect_ratio=1.0, fov=60.0, degrees=True, R=_R, T=_T,
                 K=None, device="cpu"):
        super().__init__(device, znear=znear, zfar=zfar, aspect_ratio=aspect_ratio, fov=fov, R=R,
                         T=T, K=K)
        self.degrees = degrees

    def compute_projection_matrix(self, znear, zfar, fov, aspect_ratio, degrees):
        """K above from (N,) tensors: (N, 4, 4)."""
        half_fov = fov / 2 * (math.pi / 180 if degrees else 1.0)
        y_scale = 1 / torch.tan(half_fov)  # 2n / (max_y - min_y)
        depth_scale = zfar / (zfar - znear)
        return _stack_matrix([[y_scale / aspect_ratio, 0, 0, 0],
                              [0, y_scale, 0, 0],
                              [0, 0, depth_scale, -depth_scale * znear],
                              [0, 0, 1, 0]])

    def _projection_matrix(self, kwargs):
        znear, zfar, fov, aspect_ratio = (self._get(name, kwargs)
                                          for name in ("znear", "zfar", "fov", "aspect_ratio"))
        return self.compute_projection_matrix(znear, zfar, fov, aspect_ratio,
                                              kwargs.get("degrees", self.degrees))

    def is_perspective(self):
        return True


class FoVOrthographicCameras(CamerasBase):
    """Orthographic cameras given by the view-space box they see, OpenGL style, depth in [0, 1].

    The box [min_x, max_x] x [min_y, max_y] x [n, f] (n = znear, f = zfar), scaled by
    scale_xyz = (s_x, s_y, s_z), maps to the NDC box by, with dx = max_x - min_x and
    dy = max_y - min_y,

        K = [[2 s_x / dx,  0,           0,              -(max_x + min_x) / dx],
             [0,           2 s_y / dy,  0,              -(max_y + min_y) / dy],
             [0,           0,           s_z / (f - n),  -n / (f - n)         ],
             [0,           0,           0,              1                    ]]

    so w = 1 (no perspective division) and z_ndc = (Z - n) / (f - n) for s_z = 1.

    Args:
        znear, zfar, max_y, min_y, max_x, min_x: numbers or (N,).
        scale_xyz: (N, 3).
        R: (N, 3, 3), T: (N, 3): world-to-view rotation and translation.
        K: (N, 4, 4) projection matrix to use instead of the parameters above.
    """

    _shapes = {**CamerasBase._shapes, "znear": (), "zfar": (), "max_y": (), "min_y": (),
               "max_x": (), "min_x": (), "scale_xyz": (3,)}

    def __init__(self, znear=1.0, zfar=100.0, max_y=1.0, min_y=-1.0, max_x=1.0, min_x=-1.0,
                 scale_xyz=((1.0, 1.0, 1.0),), R=_R, T=_T, K=None, device="cpu"):
        super().__init__(device, znear=znear, zfar=zfar, max_y=max_y, min_y=min_y, max_x=max_x,
                         min_x=min_x, scale_xyz=scale_xyz, R=R, T=T, K=K)

    def compute_projection_matrix(self, znear, zfar, max_x, min_x, max_y, min_y, scale_xyz):
        """K above from (N,) tensors and scale_xyz (N, 3): (N, 4, 4)."""
        s_x, s_y, s_z = scale_xyz.unbind(-1)
        width, height, depth = max_x - min_x, max_y - min_y, zfar - znear
        return _stack_matrix([[2 * s_x / width, 0, 0, -(max_x + min_x) / width],
                              [0, 2 * s_y / height, 0, -(max_y + min_y) / height],
                              [0, 0, s_z / depth, -znear / depth],
                              [0, 0, 0, 1]])

    def _projection_matrix(self, kwargs):
        names = ("znear", "zfar", "max_x", "min_x", "max_y", "min_y", "scale_xyz")
        return self.compute_projection_matrix(*(self._get(name, kwargs) for name in names))

    def is_perspective(self):
        return False


class _FocalCameras(CamerasBase):
    """What PerspectiveCameras and OrthographicCameras share: a focal length (fx, fy) and a
    principal point (px, py), in NDC or, with ``in_ndc=False``, in pixels.

    focal_length may be a number, (N,) or (N, 1) for square pixels, or (N, 2); it is stored (N, 2).
    """

    _shapes = {**CamerasBase._shapes, "focal_length": (2,), "principal_point": (2,),
               "image_size": (2,)}

    def __init__(self, focal_length, principal_point, R, T, K, device, in_ndc, image_size):
        if not in_ndc and image_size is None:
            raise ValueError("in_ndc=False needs image_size, (N, 2) as (height, width), to convert "
                             "pixels to NDC")
        if not in_ndc and K is not None:
            raise ValueError("K must be given in NDC: it is not supported with in_ndc=False")
        super().__init__(device, focal_length=focal_length, principal_point=principal_point, R=R,
                         T=T, K=K, image_size=image_size)
        self._in_ndc = in_ndc

    def _format(self, name, value):
        if name == "focal_length" and value is not None:
            value = torch.as_tensor(value, dtype=self.dtype, device=self.device)
            if value.dim() <= 1:
                value = value.reshape(-1, 1)
            if value.dim() == 2 and value.shape[1] == 1:
                value = value.expand(-1, 2)
        return super()._format(name, value)

    def in_ndc(self):
        return self._in_ndc

    def _ndc_intrinsics(self, kwargs):
        """Focal lengths and principal points in NDC: (N, 2) each."""
        focal, principal = self._get("focal_length", kwargs), self._get("principal_point", kwargs)
        if self._in_ndc:
            return focal, principal
        height, width = self._get("image_size", kwargs).unbind(-1)
        scale = (torch.minimum(height, width) / 2)[:, None]
        centre = torch.stack([width, height], -1) / 2
        return focal / scale, (centre - principal) / scale


class PerspectiveCameras(_FocalCameras):
    """Pinhole cameras given by focal length (fx, fy) and principal point (px, py):

        K = [[fx, 0,  px, 0],
             [0,  fy, py, 0],
             [0,  0,  0,  1],
             [0,  0,  1,  0]]

    so w = Z, x_ndc = fx X / Z + px, y_ndc = fy Y / Z + py and z_ndc = 1 / Z.

    With ``in_ndc=False``, focal length and principal point are in pixels of an image of size
    (H, W), and convert to NDC first, so ``transform_points`` always returns NDC. With
    s = min(H, W) / 2,
        f_ndc = f / s,   p_ndc = (W / 2 - px, H / 2 - py) / s,
    the flip because pixel x, y grow right and down where NDC x, y grow left and up.

    Args:
        focal_length: number, (N,), (N, 1) or (N, 2). principal_point: (N, 2).
        R: (N, 3, 3), T: (N, 3): world-to-view rotation and translation.
        K: (N, 4, 4) NDC projection matrix to use instead of focal length and principal point.
        in_ndc: whether focal length and principal point are in NDC rather than pixels.
        image_size: (N, 2) as (H, W); needed when ``in_ndc=False``, and the default of
            ``transform_points_screen``.
    """

    def __init__(self, focal_length=1.0, principal_point=((0.0, 0.0),), R=_R, T=_T, K=None,
                 device="cpu", in_ndc=True, image_size=None):
        super().__init__(focal_length, principal_point, R, T, K, device, in_ndc, image_size)

    def _projection_matrix(self, kwargs):
        (fx, fy), (px, py) = (value.unbind(-1) for value in self._ndc_intrinsics(kwargs))
        return _stack_matrix([[fx, 0, px, 0], [0, fy, py, 0], [0, 0, 0, 1], [0, 0, 1, 0]])

    def is_perspective(self):
        return True


class OrthographicCameras(_FocalCameras):
    """Orthographic cameras given by scale (fx, fy) and offset (px, py):

        K = [[fx, 0,  0, px],
             [0,  fy, 0, py],
             [0,  0,  1, 0 ],
             [0,  0,  0, 1 ]]

    so w = 1, x_ndc = fx X + px, y_ndc = fy Y + py and z_ndc = Z. Arguments, and the conversion
    from pixels with ``in_ndc=False``, as for ``PerspectiveCameras``.
    """

    def __init__(self, focal_length=1.0, principal_point=((0.0, 0.0),), R=_R, T=_T, K=None,
                 device="cpu", in_ndc=True, image_size=None):
        super().__init__(focal_length, principal_point, R, T, K, device, in_ndc, image_size)

    def _projection_matrix(self, kwargs):
        (fx, fy), (px, py) = (value.unbind(-1) for value in self._ndc_intrinsics(kwargs))
        return _stack_matrix([[fx, 0, 0, px], [0, fy, 0, py], [0, 0, 1, 0], [0, 0, 0, 1]])

    def is_perspective(self):
        return False


def ndc_meshes(meshes_world, cameras, **kwargs):
    """The meshes with vertices in NDC (x, y) and view-space depth (z), as rasterization wants.

    ``kwargs`` override camera fields for this call (``R=``, ``T=``, ...).
    """
    verts_world = meshes_world.verts_padded()
    R = kwargs.get("R", cameras.R)
    if verts_world.dtype != R.dtype:
        raise TypeError(f"the mesh vertices are {verts_world.dtype} but the cameras are {R.dtype}: "
                        f"give both the same dtype")
    verts_view = cameras.get_world_to_view_transform(**kwargs).transform_points(verts_world)
    verts_ndc = cameras.transform_points(verts_world, eps=1e-8, **kwargs)
    # Keep the view-space depth: z-buffering and perspective correction use it.
    verts_ndc = torch.cat([verts_ndc[..., :2], verts_view[..., 2:]], dim=-1)
    return meshes_world.update_padded(verts_ndc)


def camera_overrides(kwargs):
    """The per-call keyword arguments that override camera fields (``R=``, ``T=``, ...), without
    the ones that name whole objects (``cameras=``, ``lights=``, ...)."""
    return {k: v for k, v in kwargs.items() if k not in (
        "cameras", "raster_settings", "lights", "materials", "blend_params", "znear", "zfar")}
