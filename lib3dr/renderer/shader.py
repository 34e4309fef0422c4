"""Shaders: ``nn.Module``s that turn ``Fragments`` into ``(N, H, W, 4)`` RGBA images.

Each combines a texture lookup, a shading function (lib3dr.renderer.shading) and a blend (lib3dr.renderer.blending),
with PyTorch3D's names. ``cameras=``, ``lights=``, ``materials=``, ``blend_params=`` given to the
constructor can be overridden per call, as can camera fields such as ``R=`` and ``T=``.
"""
import torch

from lib3dr.renderer.blending import (BlendParams, blended_fragments, hard_rgb_blend,
                                      sigmoid_alpha_blend, softmax_rgb_blend,
                                      softmax_rgb_blend_packed)
from lib3dr.renderer.lights import PointLights
from lib3dr.renderer.materials import Materials
from lib3dr.renderer.cameras import camera_overrides
from lib3dr.renderer.packed import PackedFragments
from lib3dr.renderer.shading import flat_shading, gouraud_shading, phong_shading


class ShaderBase(torch.nn.Module):
    def __init__(self, device="cpu", cameras=None, lights=None, materials=None, blend_params=None):
        super().__init__()
        self.lights = lights if lights is not None else PointLights(device=device)
        self.materials = materials if materials is not None else Materials(device=device)
        self.cameras = cameras
        self.blend_params = blend_params if blend_params is not None else BlendParams()

    def to(self, device):
        """Moves the cameras, lights and materials to ``device``, in place; returns self."""
        for name in ("cameras", "lights", "materials"):
            if getattr(self, name) is not None:
                setattr(self, name, getattr(self, name).to(device))
        return self

    def scene(self, kwargs):
        """The cameras, lights, materials and blend parameters of a call, after its overrides."""
        cameras = kwargs.get("cameras", self.cameras)
        if cameras is None:
            raise ValueError(f"{type(self).__name__} needs cameras to shade: pass cameras= to "
                             f"the constructor or to the call")
        return (cameras, kwargs.get("lights", self.lights), kwargs.get("materials", self.materials),
                kwargs.get("blend_params", self.blend_params))

    def colors(self, fragments, meshes, cameras, lights, materials, kwargs):
        raise NotImplementedError

    def blend(self, colors, fragments, cameras, blend_params, kwargs):
        raise NotImplementedError

    def forward(self, fragments, meshes, **kwargs):
        cameras, lights, materials, blend_params = self.scene(kwargs)
        colors = self.colors(fragments, meshes, cameras, lights, materials, kwargs)
        return self.blend(colors, fragments, cameras, blend_params, kwargs)


class _Phong:
    def colors(self, fragments, meshes, cameras, lights, materials, kwargs):
        return phong_shading(meshes, fragments, lights, cameras, materials,
                             meshes.sample_textures(fragments), **camera_overrides(kwargs))


class _Gouraud:
    def colors(self, fragments, meshes, cameras, lights, materials, kwargs):
        return gouraud_shading(meshes, fragments, lights, cameras, materials,
                               **camera_overrides(kwargs))


class _Flat:
    def colors(self, fragments, meshes, cameras, lights, materials, kwargs):
        return flat_shading(meshes, fragments, lights, cameras, materials,
                            meshes.sample_textures(fragments), **camera_overrides(kwargs))


class _Hard:
    def blend(self, colors, fragments, cameras, blend_params, kwargs):
        return hard_rgb_blend(colors, fragments, blend_params)


class _Soft:
    """Soft Rasterizer's blend. Given ``PackedFragments`` (what ``MeshRenderer`` passes on the
    CPU), the shader colours only the fragments the blend weighs (``blended_fragments``) and
    blends them with the compiled ``softmax_rgb_blend_packed``; given ``Fragments``, it colours
    every covered fragment and blends with ``softmax_rgb_blend``, the formula of chapter 2."""

    def depth_range(self, cameras, kwargs):
        return (kwargs.get("znear", getattr(cameras, "znear", 1.0)),
                kwargs.get("zfar", getattr(cameras, "zfar", 100.0)))

    def blend(self, colors, fragments, cameras, blend_params, kwargs):
        znear, zfar = self.depth_range(cameras, kwargs)
        return softmax_rgb_blend(colors, fragments, blend_params, znear=znear, zfar=zfar)

    def forward(self, fragments, meshes, **kwargs):
        if not isinstance(fragments, PackedFragments):
            return super().forward(fragments, meshes, **kwargs)
        if type(self).blend is not _Soft.blend:
            # Its blend takes every fragment; packed ones would reach it as a silently other input.
            raise ValueError(f"{type(self).__name__} overrides blend, which takes Fragments: pass "
                             "the rasterizer's Fragments (MeshRasterizer's forward), not PackedFragments")
        cameras, lights, materials, blend_params = self.scene(kwargs)
        znear, zfar = self.depth_range(cameras, kwargs)
        weights = blended_fragments(fragments, blend_params, znear=znear, zfar=zfar)
        colors = self.colors(fragments.select(weights.kept), meshes, cameras, lights, materials,
                             kwargs)
        return softmax_rgb_blend_packed(colors, weights, fragments, blend_params, znear=znear,
                                        zfar=zfar)


class HardPhongShader(_Phong, _Hard, ShaderBase):
    """Per-pixel Phong lighting, nearest face only: sharp edges, no gradient at the outline."""


class SoftPhongShader(_Phong, _Soft, ShaderBase):
    """Per-pixel Phong lighting, Soft Rasterizer's blend: gradients reach the outline."""


class HardGouraudShader(_Gouraud, _Hard, ShaderBase):
    """Per-vertex lighting interpolated over faces (needs ``TexturesVertex``), nearest face."""


class SoftGouraudShader(_Gouraud, _Soft, ShaderBase):
    """Per-vertex lighting interpolated over faces (needs ``TexturesVertex``), soft blend."""


class HardFlatShader(_Flat, _Hard, ShaderBase):
    """One lighting value per face, nearest face."""


class SoftSilhouetteShader(torch.nn.Module):
    """The soft silhouette: alpha ``1 - prod_k (1 - sigmoid(-dists_k / sigma))``, RGB 1.

    ``MeshRenderer`` with this shader skips the fragments and computes alpha with the fused
    kernel (``lib3dr.renderer.silhouette.soft_silhouette_ndc``) when a compiled backend is available.
    """

    def __init__(self, blend_params=None):
        super().__init__()
        self.blend_params = blend_params if blend_params is not None else BlendParams()

    def forward(self, fragments, meshes, **kwargs):
        blend_params = kwargs.get("blend_params", self.blend_params)
        colors = torch.ones(*fragments.pix_to_face.shape, 3, dtype=fragments.dists.dtype,
                            device=fragments.dists.device)
        return sigmoid_alpha_blend(colors, fragments, blend_params)
