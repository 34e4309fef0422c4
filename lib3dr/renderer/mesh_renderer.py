"""``MeshRenderer``: a rasterizer and a shader, one call from meshes to images ``(N, H, W, 4)``."""
import torch

from lib3dr import _backend
from lib3dr.renderer.rasterizer import MeshRasterizer, resolved_settings
from lib3dr.renderer.shader import SoftGouraudShader, SoftPhongShader, SoftSilhouetteShader
from lib3dr.renderer.silhouette import soft_silhouette_ndc
from lib3dr.renderer.textures import TexturesUV, TexturesVertex


class MeshRendererWithFragments(torch.nn.Module):
    """``forward(meshes_world, **kwargs)`` -> ``(images (N, H, W, 4), fragments)``; ``kwargs``
    (``R=``, ``T=``, ``cameras=``, ``lights=``, ...) reach both the rasterizer and the shader."""

    def __init__(self, rasterizer, shader):
        super().__init__()
        self.rasterizer = rasterizer
        self.shader = shader

    def to(self, device):
        """Moves the rasterizer's and the shader's cameras, lights and materials, in place."""
        self.rasterizer.to(device)
        self.shader.to(device)
        return self

    def forward(self, meshes_world, **kwargs):
        fragments = self.rasterizer(meshes_world, **kwargs)
        return self.shader(fragments, meshes_world, **kwargs), fragments


class MeshRenderer(MeshRendererWithFragments):
    """``forward(meshes_world, **kwargs)`` -> images ``(N, H, W, 4)``.

    With a ``SoftSilhouetteShader`` and a compiled backend, the silhouette is computed by the
    fused kernel: the same image, without the ``(N, H, W, K)`` fragments in memory. With a soft
    colour shader (``SoftPhongShader``, ``SoftGouraudShader``) and the ``"cpu"`` backend, the
    rasterizer packs the covered fragments image by image (``MeshRasterizer.rasterize_packed``)
    and the shader colours only those the blend weighs (``BlendParams.dropped_weight``); CUDA
    tensors and the ``"torch"`` backend go through the fragments and the formulas of chapter 2.
    These fast paths replace the rasterizer's and the shader's ``forward`` (and the shader's
    ``colors`` and ``blend``), so they are taken only for exactly ``MeshRasterizer``, these
    shaders and textures whose sampling they implement, never for subclasses, which may override
    them; anything else goes through the fragments.
    """

    def forward(self, meshes_world, **kwargs):
        if type(self.rasterizer) is not MeshRasterizer:
            return super().forward(meshes_world, **kwargs)[0]
        cameras, settings = self.rasterizer.scene(kwargs)
        options = resolved_settings(settings, cameras)
        backend = _backend.resolve(options["backend"], meshes_world.verts_packed().device)
        if type(self.shader) is SoftSilhouetteShader and backend != "torch":
            sigma = kwargs.get("blend_params", self.shader.blend_params).sigma
            alpha = soft_silhouette_ndc(self.rasterizer.transform(meshes_world, **kwargs), sigma, **options)
            return torch.cat([torch.ones(*alpha.shape, 3, dtype=alpha.dtype, device=alpha.device),
                              alpha[..., None]], dim=-1)
        if (type(self.shader) in (SoftPhongShader, SoftGouraudShader)
                and type(meshes_world.textures) in (TexturesVertex, TexturesUV) and backend == "cpu"):
            return self.shader(self.rasterizer.rasterize_packed(meshes_world, **kwargs), meshes_world,
                               **kwargs)
        return super().forward(meshes_world, **kwargs)[0]
