"""``MeshRenderer``: rasterizer + shader, and PyTorch3D's ``pytorch3d.renderer`` namespace.

Code written for PyTorch3D imports from here unchanged: ``from lib3dr.renderer import
FoVPerspectiveCameras, MeshRenderer, MeshRasterizer, SoftSilhouetteShader, ...``.
"""
import torch

from lib3dr import _backend
from lib3dr.blending import BlendParams, hard_rgb_blend, sigmoid_alpha_blend, softmax_rgb_blend
from lib3dr.cameras import (FoVOrthographicCameras, FoVPerspectiveCameras, OrthographicCameras,
                            PerspectiveCameras)
from lib3dr.interpolate import interpolate_face_attributes
from lib3dr.lights import AmbientLights, DirectionalLights, Materials, PointLights
from lib3dr.rasterizer import (Fragments, MeshRasterizer, RasterizationSettings, rasterize_meshes,
                               resolved_settings, soft_silhouette, soft_silhouette_ndc)
from lib3dr.shader import (HardFlatShader, HardGouraudShader, HardPhongShader, SoftGouraudShader,
                           SoftPhongShader, SoftSilhouetteShader)
from lib3dr.shading import flat_shading, gouraud_shading, phong_shading
from lib3dr.textures import TexturesUV, TexturesVertex
from lib3dr.transforms import (camera_position_from_spherical_angles, look_at_rotation,
                               look_at_view_transform)


class MeshRendererWithFragments(torch.nn.Module):
    """``forward(meshes_world, **kwargs)`` -> ``(images (N, H, W, 4), fragments)``; ``kwargs``
    (``R=``, ``T=``, ``cameras=``, ``lights=``, ...) reach both the rasterizer and the shader."""

    def __init__(self, rasterizer, shader):
        super().__init__()
        self.rasterizer = rasterizer
        self.shader = shader

    def to(self, device):
        self.rasterizer.to(device)
        self.shader.to(device)
        return self

    def forward(self, meshes_world, **kwargs):
        fragments = self.rasterizer(meshes_world, **kwargs)
        return self.shader(fragments, meshes_world, **kwargs), fragments


class MeshRenderer(MeshRendererWithFragments):
    """``forward(meshes_world, **kwargs)`` -> images ``(N, H, W, 4)``.

    With a ``SoftSilhouetteShader`` and a compiled backend, the silhouette is computed by the
    fused kernel: the same image, without the ``(N, H, W, K)`` fragments in memory.
    """

    def forward(self, meshes_world, **kwargs):
        if isinstance(self.shader, SoftSilhouetteShader):
            cameras, settings = self.rasterizer.scene(kwargs)
            options = resolved_settings(settings, cameras)
            device = meshes_world.verts_packed().device
            if _backend.resolve(options["backend"], device) != "torch":
                sigma = kwargs.get("blend_params", self.shader.blend_params).sigma
                alpha = soft_silhouette_ndc(self.rasterizer.transform(meshes_world, **kwargs),
                                            sigma, **options)
                return torch.cat([torch.ones(*alpha.shape, 3, dtype=alpha.dtype,
                                             device=alpha.device), alpha[..., None]], dim=-1)
        return super().forward(meshes_world, **kwargs)[0]


__all__ = [
    "AmbientLights", "BlendParams", "DirectionalLights", "FoVOrthographicCameras",
    "FoVPerspectiveCameras", "Fragments", "HardFlatShader", "HardGouraudShader", "HardPhongShader",
    "Materials", "MeshRasterizer", "MeshRenderer", "MeshRendererWithFragments",
    "OrthographicCameras", "PerspectiveCameras", "PointLights", "RasterizationSettings",
    "SoftGouraudShader", "SoftPhongShader", "SoftSilhouetteShader", "TexturesUV", "TexturesVertex",
    "camera_position_from_spherical_angles", "flat_shading", "gouraud_shading", "hard_rgb_blend",
    "interpolate_face_attributes", "look_at_rotation", "look_at_view_transform", "phong_shading",
    "rasterize_meshes", "sigmoid_alpha_blend", "soft_silhouette", "softmax_rgb_blend",
]
