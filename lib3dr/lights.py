"""Light sources and materials for Phong reflection (PyTorch3D's classes, arguments and defaults).

Each parameter is stored batched, ``(N, 3)`` (``shininess`` ``(N,)``); when lighting points of
shape ``(N, ..., 3)`` it is broadcast over the middle dimensions, so that light n lights mesh n.
Chapter 2 explains the reflection model: ambient + diffuse * max(0, n.l) + specular * max(0, r.v)^s.
"""
import torch
import torch.nn.functional as F


def _batched(value, device, name, width=3):
    """``value`` as a float tensor of shape (N, width) (or (N,) when width is None)."""
    tensor = torch.as_tensor(value, dtype=torch.float32, device=device) \
        if not torch.is_tensor(value) else value.to(device)
    if width is None:
        tensor = tensor.reshape(-1)
    elif tensor.dim() == 1:
        tensor = tensor[None]
    if width is not None and (tensor.dim() != 2 or tensor.shape[1] != width):
        raise ValueError(f"{name} must have shape (N, {width}) or ({width},), got {tuple(tensor.shape)}")
    return tensor


def broadcast_to_points(param, points):
    """(N, C) or (N,) parameters shaped to broadcast against points (N, ..., 3)."""
    if param.shape[0] not in (1, points.shape[0]):
        raise ValueError(f"a batch of {param.shape[0]} lights or materials cannot light "
                         f"{points.shape[0]} meshes")
    trailing = param.shape[1:] if param.dim() == 2 else ()
    return param.reshape(param.shape[0], *([1] * (points.dim() - 2)), *trailing)


class _Batched:
    """Shared batching behaviour: ``device``, ``to``, ``clone`` and ``len`` over the fields."""

    _fields = ()

    def __len__(self):
        return max(getattr(self, name).shape[0] for name in self._fields)

    def to(self, device):
        for name in self._fields:
            setattr(self, name, getattr(self, name).to(device))
        self.device = torch.device(device)
        return self

    def clone(self):
        other = object.__new__(type(self))
        other.__dict__.update({k: (v.clone() if torch.is_tensor(v) else v)
                               for k, v in self.__dict__.items()})
        return other


class _Lights(_Batched):
    _fields = ("ambient_color", "diffuse_color", "specular_color")

    def __init__(self, ambient_color, diffuse_color, specular_color, device):
        self.device = torch.device(device)
        self.ambient_color = _batched(ambient_color, device, "ambient_color")
        self.diffuse_color = _batched(diffuse_color, device, "diffuse_color")
        self.specular_color = _batched(specular_color, device, "specular_color")

    def _direction_to_light(self, points):
        raise NotImplementedError

    def _check_device(self, points):
        if points.device != self.device:
            raise ValueError(f"lights are on {self.device} but the points to light are on "
                             f"{points.device}: move them with lights.to(device)")

    def diffuse(self, normals, points):
        """Diffuse intensity ``diffuse_color * max(0, n . l)``: ``(N, ..., 3)``."""
        self._check_device(points)
        to_light = self._direction_to_light(points)
        cos = F.relu((F.normalize(normals, dim=-1, eps=1e-6) * to_light).sum(-1, keepdim=True))
        return broadcast_to_points(self.diffuse_color, points) * cos

    def specular(self, normals, points, camera_position, shininess):
        """Specular intensity ``specular_color * max(0, r . v)^shininess`` where the light faces
        the surface: ``(N, ..., 3)``. ``camera_position`` is ``(N, 3)``."""
        self._check_device(points)
        normals = F.normalize(normals, dim=-1, eps=1e-6)
        to_light = self._direction_to_light(points)
        cos = (normals * to_light).sum(-1, keepdim=True)
        reflected = -to_light + 2 * cos * normals
        to_camera = F.normalize(broadcast_to_points(camera_position, points) - points, dim=-1, eps=1e-6)
        highlight = F.relu((to_camera * reflected).sum(-1, keepdim=True)) * (cos > 0)
        # Clamping away from 0 keeps the gradient of x^s finite where the highlight vanishes.
        power = highlight.clamp_min(1e-12) ** broadcast_to_points(shininess, points)[..., None] * (highlight > 0)
        return broadcast_to_points(self.specular_color, points) * power


class PointLights(_Lights):
    """Lights at ``location`` (N, 3) in world space, shining in every direction."""

    _fields = _Lights._fields + ("location",)

    def __init__(self, ambient_color=((0.5, 0.5, 0.5),), diffuse_color=((0.3, 0.3, 0.3),),
                 specular_color=((0.2, 0.2, 0.2),), location=((0, 1, 0),), device="cpu"):
        super().__init__(ambient_color, diffuse_color, specular_color, device)
        self.location = _batched(location, device, "location")

    def _direction_to_light(self, points):
        return F.normalize(broadcast_to_points(self.location, points) - points, dim=-1, eps=1e-6)


class DirectionalLights(_Lights):
    """Lights infinitely far away, arriving from ``direction`` (N, 3) (pointing to the light)."""

    _fields = _Lights._fields + ("direction",)

    def __init__(self, ambient_color=((0.5, 0.5, 0.5),), diffuse_color=((0.3, 0.3, 0.3),),
                 specular_color=((0.2, 0.2, 0.2),), direction=((0, 1, 0),), device="cpu"):
        super().__init__(ambient_color, diffuse_color, specular_color, device)
        self.direction = _batched(direction, device, "direction")

    def _direction_to_light(self, points):
        return F.normalize(broadcast_to_points(self.direction, points), dim=-1, eps=1e-6).expand_as(points)


class AmbientLights(_Lights):
    """Uniform light from everywhere: no diffuse or specular term."""

    def __init__(self, ambient_color=((1.0, 1.0, 1.0),), device="cpu"):
        zeros = torch.zeros_like(_batched(ambient_color, device, "ambient_color"))
        super().__init__(ambient_color, zeros, zeros, device)

    def _direction_to_light(self, points):
        return torch.zeros_like(points)


class Materials(_Batched):
    """How a surface reflects light: colours ``(N, 3)`` and Phong ``shininess`` ``(N,)``."""

    _fields = ("ambient_color", "diffuse_color", "specular_color", "shininess")

    def __init__(self, ambient_color=((1, 1, 1),), diffuse_color=((1, 1, 1),),
                 specular_color=((1, 1, 1),), shininess=64, device="cpu"):
        self.device = torch.device(device)
        self.ambient_color = _batched(ambient_color, device, "ambient_color")
        self.diffuse_color = _batched(diffuse_color, device, "diffuse_color")
        self.specular_color = _batched(specular_color, device, "specular_color")
        self.shininess = _batched(shininess, device, "shininess", width=None)
