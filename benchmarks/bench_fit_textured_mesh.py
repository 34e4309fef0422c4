"""PyTorch3D's tutorial ``fit_textured_mesh``, its two optimisation loops in full, on lib3dr.

    python benchmarks/bench_fit_textured_mesh.py [--iterations 2000] [--image-size 128]

The tutorial's settings: the cow of data/cow_mesh, 20 views at distance 2.7, targets at 128 x 128;
``ico_sphere(4)`` deformed by per-vertex offsets; sigma = 1e-4 with its blur radius, K = 50 faces
per pixel; 2 random views per iteration; SGD (learning rate 1, momentum 0.9); the weights
silhouette 1, edge 1, normal consistency 0.01, Laplacian 1 (and rgb 1). The first loop fits the
shape to the soft silhouettes (``MeshRenderer`` with ``SoftSilhouetteShader``, which lib3dr
computes with the fused kernel), the second the shape and per-vertex colours together through
``SoftPhongShader``. 2000 iterations each by default, as in the tutorial; ``--iterations``
shortens both.

Prints a table (seconds per iteration, mean and median, and the phase's total, per phase; the
total with the data set's rendering) next to PyTorch3D's CPU build measured on the 2-core
machine of issue 16 (12.0 s per silhouette iteration, 10.7 s per colour iteration), and writes
benchmarks/results/bench_fit_textured_mesh.json (chapter 6 reads it; --output writes elsewhere).
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

from machine import machine_info

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # the lib3dr of this checkout, not whichever one the environment installed
PYTORCH3D_CPU_SECONDS = {"silhouette": 12.0, "textured": 10.7}  # per iteration, issue 16


def run(iterations, image_size, seed=0):
    """Runs the tutorial's set-up and both loops; returns the timings and final losses."""
    from lib3dr.io import load_objs_as_meshes
    from lib3dr.loss import mesh_edge_loss, mesh_laplacian_smoothing, mesh_normal_consistency
    from lib3dr.renderer import (FoVPerspectiveCameras, MeshRasterizer, MeshRenderer, PointLights,
                                 RasterizationSettings, SoftPhongShader, SoftSilhouetteShader,
                                 TexturesVertex, look_at_view_transform)
    from lib3dr.utils import ico_sphere

    np.random.seed(seed)
    torch.manual_seed(seed)
    device = torch.device("cpu")
    start = time.perf_counter()
    mesh = load_objs_as_meshes([os.path.join(ROOT, "data", "cow_mesh", "cow.obj")], device=device)
    verts = mesh.verts_packed()
    center = verts.mean(0)
    scale = max((verts - center).abs().max(0)[0])
    mesh.offset_verts_(-center)
    mesh.scale_verts_((1.0 / float(scale)))

    num_views = 20
    elev = torch.linspace(0, 360, num_views)
    azim = torch.linspace(-180, 180, num_views)
    lights = PointLights(device=device, location=[[0.0, 0.0, -3.0]])
    R, T = look_at_view_transform(dist=2.7, elev=elev, azim=azim)
    cameras = FoVPerspectiveCameras(device=device, R=R, T=T)
    camera = FoVPerspectiveCameras(device=device, R=R[None, 1, ...], T=T[None, 1, ...])
    renderer = MeshRenderer(
        rasterizer=MeshRasterizer(cameras=camera, raster_settings=RasterizationSettings(
            image_size=image_size, blur_radius=0.0, faces_per_pixel=1)),
        shader=SoftPhongShader(device=device, cameras=camera, lights=lights))
    meshes = mesh.extend(num_views)
    with torch.no_grad():
        target_images = renderer(meshes, cameras=cameras, lights=lights)
    target_rgb = [target_images[i, ..., :3] for i in range(num_views)]
    target_cameras = [FoVPerspectiveCameras(device=device, R=R[None, i, ...], T=T[None, i, ...])
                      for i in range(num_views)]
    sigma = 1e-4
    raster_settings_soft = RasterizationSettings(
        image_size=image_size, blur_radius=np.log(1. / 1e-4 - 1.) * sigma, faces_per_pixel=50)
    renderer_silhouette = MeshRenderer(
        rasterizer=MeshRasterizer(cameras=camera, raster_settings=raster_settings_soft),
        shader=SoftSilhouetteShader())
    with torch.no_grad():
        silhouette_images = renderer_silhouette(meshes, cameras=cameras, lights=lights)
    target_silhouette = [silhouette_images[i, ..., 3] for i in range(num_views)]
    setup_seconds = time.perf_counter() - start

    def update_mesh_shape_prior_losses(mesh, loss):
        loss["edge"] = mesh_edge_loss(mesh)
        loss["normal"] = mesh_normal_consistency(mesh)
        loss["laplacian"] = mesh_laplacian_smoothing(mesh, method="uniform")

    renderer_textured = MeshRenderer(
        rasterizer=MeshRasterizer(cameras=camera, raster_settings=RasterizationSettings(
            image_size=image_size, blur_radius=np.log(1. / 1e-4 - 1.) * sigma, faces_per_pixel=50,
            perspective_correct=False)),
        shader=SoftPhongShader(device=device, cameras=camera, lights=lights))

    phases = {}
    for phase in ("silhouette", "textured"):
        textured = phase == "textured"
        src_mesh = ico_sphere(4, device)
        weights = {"silhouette": 1.0, "edge": 1.0, "normal": 0.01, "laplacian": 1.0}
        if textured:
            weights = {"rgb": 1.0, **weights}
        deform_verts = torch.full(src_mesh.verts_packed().shape, 0.0, device=device, requires_grad=True)
        sphere_verts_rgb = torch.full([1, len(src_mesh.verts_packed()), 3], 0.5, device=device,
                                      requires_grad=True)
        parameters = [deform_verts, sphere_verts_rgb] if textured else [deform_verts]
        optimizer = torch.optim.SGD(parameters, lr=1.0, momentum=0.9)
        step_renderer = renderer_textured if textured else renderer_silhouette
        seconds, totals = [], []
        for _ in range(iterations):
            tick = time.perf_counter()
            optimizer.zero_grad()
            new_src_mesh = src_mesh.offset_verts(deform_verts)
            if textured:
                new_src_mesh.textures = TexturesVertex(verts_features=sphere_verts_rgb)
            loss = {k: torch.tensor(0.0, device=device) for k in weights}
            update_mesh_shape_prior_losses(new_src_mesh, loss)
            for j in np.random.permutation(num_views).tolist()[:2]:
                images_predicted = step_renderer(new_src_mesh, cameras=target_cameras[j], lights=lights)
                loss["silhouette"] += ((images_predicted[..., 3] - target_silhouette[j]) ** 2).mean() / 2
                if textured:
                    loss["rgb"] += ((images_predicted[..., :3] - target_rgb[j]) ** 2).mean() / 2
            sum_loss = torch.tensor(0.0, device=device)
            for k, l in loss.items():
                sum_loss += l * weights[k]
            sum_loss.backward()
            optimizer.step()
            seconds.append(time.perf_counter() - tick)
            totals.append(sum_loss.item())
        window = max(1, min(10, iterations // 4))
        phases[phase] = {"iterations": iterations, "mean_seconds": statistics.fmean(seconds),
                         "median_seconds": statistics.median(seconds), "total_seconds": sum(seconds),
                         "loss_first": statistics.fmean(totals[:window]),
                         "loss_last": statistics.fmean(totals[-window:])}
    return {"setup_seconds": setup_seconds, "phases": phases,
            "total_seconds": setup_seconds + sum(p["total_seconds"] for p in phases.values())}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=2000, help="iterations of each loop (default 2000)")
    parser.add_argument("--image-size", type=int, default=128, help="pixels per side (default 128)")
    parser.add_argument("--output", default=os.path.join(ROOT, "benchmarks", "results", "bench_fit_textured_mesh.json"))
    args = parser.parse_args()
    if args.iterations < 1:
        parser.error("--iterations must be at least 1")

    result = run(args.iterations, args.image_size)
    machine = machine_info()
    print(f"fit_textured_mesh on lib3dr: {args.image_size} x {args.image_size}, K = 50, 2 views per iteration, "
          f"{args.iterations} iterations per loop; {machine['cpu']}, {machine['cores']} cores, "
          f"{machine['torch_threads']} torch threads, load average {machine['load_average_1min']:.1f}")
    print(f"{'phase':12s} {'iterations':>10s} {'mean s/it':>10s} {'median s/it':>12s} {'total s':>9s} "
          f"{'PyTorch3D CPU s/it':>19s} {'ratio':>7s} {'loss first -> last':>22s}")
    for phase, row in result["phases"].items():
        reference = PYTORCH3D_CPU_SECONDS[phase]
        print(f"{phase:12s} {row['iterations']:10d} {row['mean_seconds']:10.3f} {row['median_seconds']:12.3f} "
              f"{row['total_seconds']:9.1f} {reference:19.1f} {reference / row['median_seconds']:6.0f}x "
              f"{row['loss_first']:10.4f} -> {row['loss_last']:.4f}")
    reference_total = sum(PYTORCH3D_CPU_SECONDS[p] * r["iterations"] for p, r in result["phases"].items())
    print(f"{'setup':12s} {'':10s} {'':10s} {'':12s} {result['setup_seconds']:9.1f}")
    print(f"{'total':12s} {'':10s} {'':10s} {'':12s} {result['total_seconds']:9.1f} "
          f"(PyTorch3D CPU, loops only: about {reference_total:.0f} s)")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump({"about": "benchmarks/bench_fit_textured_mesh.py", "image_size": args.image_size,
                   "machine": machine, "pytorch3d_cpu_seconds_per_iteration": PYTORCH3D_CPU_SECONDS,
                   "measured": time.strftime("%Y-%m-%d %H:%M"), **result}, f, indent=1)
        f.write("\n")
    print(f"wrote {os.path.relpath(args.output, ROOT)}")


if __name__ == "__main__":
    main()
