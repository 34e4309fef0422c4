"""From cameras to pixels: PyTorch3D's ``pytorch3d.renderer`` namespace.

Code written for PyTorch3D imports from here unchanged: ``from lib3dr.renderer import
FoVPerspectiveCameras, MeshRenderer, MeshRasterizer, SoftSilhouetteShader, ...``. One module per
job, each importing only those below it:

    cameras, rasterize_torch, memory, compiled, interpolate  (the bottom: no other renderer module)
    packed             PackedFragments: the covered fragments as flat lists (for the soft shaders)
    rasterizer         settings, Fragments, rasterize_meshes, MeshRasterizer
    textures, properties, lights, materials, shading, blending
    silhouette         the fused soft silhouette (above the rasterizer and the blending)
    shader, mesh_renderer
"""
from lib3dr.renderer.blending import (BlendParams, hard_rgb_blend, sigmoid_alpha_blend,
                                      softmax_rgb_blend)
from lib3dr.renderer.cameras import (FoVOrthographicCameras, FoVPerspectiveCameras,
                                     OrthographicCameras, PerspectiveCameras)
from lib3dr.renderer.interpolate import interpolate_face_attributes
from lib3dr.renderer.lights import AmbientLights, DirectionalLights, PointLights
from lib3dr.renderer.materials import Materials
from lib3dr.renderer.mesh_renderer import MeshRenderer, MeshRendererWithFragments
from lib3dr.renderer.rasterizer import (Fragments, MeshRasterizer, RasterizationSettings,
                                        rasterize_meshes)
from lib3dr.renderer.shader import (HardFlatShader, HardGouraudShader, HardPhongShader,
                                    SoftGouraudShader, SoftPhongShader, SoftSilhouetteShader)
from lib3dr.renderer.shading import flat_shading, gouraud_shading, phong_shading
from lib3dr.renderer.silhouette import soft_silhouette
from lib3dr.renderer.textures import TexturesUV, TexturesVertex
from lib3dr.transforms import (camera_position_from_spherical_angles, look_at_rotation,
                               look_at_view_transform)

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
