"""Light sources for Phong reflection (PyTorch3D's classes, arguments and defaults).

Each parameter is stored batched, ``(N, 3)``; when lighting points of shape ``(N, ..., 3)`` it is
broadcast over the middle dimensions, so that light n lights mesh n. Chapter 2 explains the
reflection model: ambient + diffuse * max(0, n.l) + specular * max(0, r.v)^s.
"""
import torch
import torch.nn.functional as F

from lib3dr.renderer.properties import BatchedProperties, batched, broadcast_to_points


class _Lights(BatchedProperties):
    _fields = ("ambient_color", "diffuse_color", "specular_color")

    def __init__(self, ambient_color, diffuse_color, specular_color, device):
        self.device = torch.device(device)
        self.ambient_color = batched(ambient_color, device, "ambient_color")
        self.diffuse_color = batched(diffuse_color, device, "diffuse_color")
        self.specular_color = batched(specular_color, device, "specular_color")

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
        self.location = batched(location, device, "location")

    def _direction_to_light(self, points):
        return F.normalize(broadcast_to_points(self.location, points) - points, dim=-1, eps=1e-6)


class DirectionalLights(_Lights):
    """Lights infinitely far away, arriving from ``direction`` (N, 3) (pointing to the light)."""

    _fields = _Lights._fields + ("direction",)

    def __init__(self, ambient_color=((0.5, 0.5, 0.5),), diffuse_color=((0.3, 0.3, 0.3),),
                 specular_color=((0.2, 0.2, 0.2),), direction=((0, 1, 0),), device="cpu"):
        super().__init__(ambient_color, diffuse_color, specular_color, device)
        self.direction = batched(direction, device, "direction")

    def _direction_to_light(self, points):
        return F.normalize(broadcast_to_points(self.direction, points), dim=-1, eps=1e-6).expand_as(points)


class AmbientLights(_Lights):
    """Uniform light from everywhere: no diffuse or specular term."""

    def __init__(self, ambient_color=((1.0, 1.0, 1.0),), device="cpu"):
        zeros = torch.zeros_like(batched(ambient_color, device, "ambient_color"))
        super().__init__(ambient_color, zeros, zeros, device)

    def _direction_to_light(self, points):
        return torch.zeros_like(points)
