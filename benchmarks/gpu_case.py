"""A small forward+backward of every CUDA kernel, for compute-sanitizer (make gpu-check).

    compute-sanitizer --tool memcheck python benchmarks/gpu_case.py [--device cpu]

The cow at 64x64 through the fragments (K = 8 with blur, then the z-buffer, K = 1) and through the
fused soft silhouette, batch 2, with gradients. Exits non-zero if a result is not finite.
"""
import argparse
import math
import os

import torch

from lib3dr.renderer.cameras import FoVPerspectiveCameras
from lib3dr.io import load_objs_as_meshes
from lib3dr.renderer.rasterizer import MeshRasterizer, RasterizationSettings
from lib3dr.renderer.silhouette import soft_silhouette
from lib3dr.transforms import look_at_view_transform

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIGMA = 1e-4


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    device = torch.device(parser.parse_args().device)
    cow = load_objs_as_meshes([os.path.join(ROOT, "data", "cow_mesh", "cow.obj")], device=device)
    meshes = cow.extend(2)
    R, T = look_at_view_transform(2.7, torch.tensor([10.0, 30.0]), torch.tensor([0.0, 150.0]), device=device)
    cameras = FoVPerspectiveCameras(device=device, R=R, T=T)
    verts = meshes.verts_padded().detach().clone().requires_grad_()
    meshes = meshes.update_padded(verts)
    blur = math.log(1.0 / SIGMA - 1.0) * SIGMA
    for K, blur_radius in ((8, blur), (1, 0.0)):
        settings = RasterizationSettings(image_size=64, blur_radius=blur_radius, faces_per_pixel=K)
        fragments = MeshRasterizer(cameras=cameras, raster_settings=settings)(meshes)
        loss = fragments.dists.clamp(max=1).sum() + fragments.bary_coords.sum() + fragments.zbuf.sum()
        grad, = torch.autograd.grad(loss, verts)
        assert torch.isfinite(grad).all(), f"non-finite gradient through the fragments, K = {K}"
        print(f"fragments K={K}: {int((fragments.pix_to_face >= 0).sum())} fragments, |grad| {grad.abs().sum():.4g}")
    alpha = soft_silhouette(meshes, cameras, image_size=64, faces_per_pixel=8, sigma=SIGMA)
    grad, = torch.autograd.grad(alpha.sum(), verts)
    assert torch.isfinite(alpha).all() and torch.isfinite(grad).all(), "non-finite fused silhouette"
    print(f"fused silhouette: alpha sum {alpha.sum():.4g}, |grad| {grad.abs().sum():.4g}")
    if device.type == "cuda":
        torch.cuda.synchronize()


if __name__ == "__main__":
    main()
