"""Memory soak: N forward+backward iterations of chapter 3's fit (the teapot's soft silhouette at
256x256, K = 100, through MeshRenderer and SoftSilhouetteShader) must not grow the resident memory
after warm-up.

    python benchmarks/soak.py [--iterations 1000]

Prints the resident set size (from /proc/self/statm) after the warm-up and every 100 iterations.
"""
import argparse
import math
import os
import time

import torch

from lib3dr.io import load_objs_as_meshes
from lib3dr.pose import camera_from_position
from lib3dr.renderer import (BlendParams, FoVPerspectiveCameras, MeshRasterizer, MeshRenderer,
                             RasterizationSettings, SoftSilhouetteShader, look_at_view_transform)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def resident_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()
    mesh = load_objs_as_meshes([os.path.join(ROOT, "data", "teapot.obj")], load_textures=False)
    cameras = FoVPerspectiveCameras()
    sigma = 1e-4
    renderer = MeshRenderer(
        MeshRasterizer(cameras, RasterizationSettings(image_size=256, blur_radius=math.log(1 / 1e-4 - 1) * sigma,
                                                      faces_per_pixel=100)),
        SoftSilhouetteShader(blend_params=BlendParams(sigma=sigma, gamma=1e-4)))
    with torch.no_grad():
        R, T = look_at_view_transform(3, 50, 0)
        target = renderer(mesh, R=R, T=T)[..., 3]
    position = torch.nn.Parameter(torch.tensor([3.0, 6.9, 2.5]))
    optimizer = torch.optim.Adam([position], lr=0.05)
    start, readings = time.perf_counter(), []
    for i in range(1, args.iterations + 1):
        R, T = camera_from_position(position)
        loss = ((renderer(mesh, R=R, T=T)[..., 3] - target) ** 2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if i == args.warmup or i % 100 == 0:
            readings.append((i, resident_mb()))
            print(f"iteration {i:5d}: resident {readings[-1][1]:7.1f} MB, loss {loss.item():9.1f}, "
                  f"{time.perf_counter() - start:6.1f} s", flush=True)
    growth = readings[-1][1] - readings[0][1]
    print(f"growth after warm-up (iteration {readings[0][0]} to {readings[-1][0]}): {growth:+.1f} MB")


if __name__ == "__main__":
    main()
