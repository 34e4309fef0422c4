"""Surface materials for Phong reflection (PyTorch3D's ``Materials``): colours and shininess."""
import torch

from lib3dr.renderer.properties import BatchedProperties, batched


class Materials(BatchedProperties):
    """How a surface reflects light: colours ``(N, 3)`` and Phong ``shininess`` ``(N,)``."""

    _fields = ("ambient_color", "diffuse_color", "specular_color", "shininess")

    def __init__(self, ambient_color=((1, 1, 1),), diffuse_color=((1, 1, 1),),
                 specular_color=((1, 1, 1),), shininess=64, device="cpu"):
        self.device = torch.device(device)
        self.ambient_color = batched(ambient_color, device, "ambient_color")
        self.diffuse_color = batched(diffuse_color, device, "diffuse_color")
        self.specular_color = batched(specular_color, device, "specular_color")
        self.shininess = batched(shininess, device, "shininess", width=None)
