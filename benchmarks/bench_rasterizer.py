"""Rasterizer benchmark: forward and forward+backward times and peak memory, per workload and backend.

    python benchmarks/bench_rasterizer.py [--repeats 7] [--backends torch,cpu] [--only cow]

Each row runs in a fresh process, so that its peak memory is its own: the peak resident (CPU) or
allocated (CUDA) memory of one forward+backward above what the process held before it. Times are
medians of --repeats runs after a warm-up. Scene: 256x256, `look_at_view_transform(3, 50, 0)`,
`FoVPerspectiveCameras`; batch 8 mixes four teapots and four cows; the "sphere" rows are a step
of PyTorch3D's fit_textured_mesh tutorial (ico_sphere(4), two views at 128x128).
"""
import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # the lib3dr of this checkout, not whichever one the environment installed
SIGMA = 1e-4
BLUR = math.log(1.0 / SIGMA - 1.0) * SIGMA

# (mesh, batch, K, kind, image size): kind "unfused" is the soft silhouette blended from the
# fragments (the z-buffer for K = 1), "fused" the fused soft silhouette, "softphong"/"hardphong"
# the textured cow through MeshRenderer with that shader. "sphere" is the mesh PyTorch3D's
# fit_textured_mesh tutorial deforms and colours: ico_sphere(4) with per-vertex colours, two
# views per step at 128x128, lit from (0, 0, -3).
WORKLOADS = [
    (mesh, batch, K, kind, 256)
    for batch in (1, 8)
    for mesh in (("teapot", "cow") if batch == 1 else ("mixed",))
    for K, kind in ((1, "unfused"), (50, "unfused"), (100, "unfused"), (50, "fused"), (100, "fused"))
] + [("cow", 1, 1, "hardphong", 256), ("cow", 1, 50, "softphong", 256),
     ("cow", 8, 50, "softphong", 256), ("sphere", 2, 50, "softphong", 128),
     ("cow", 2, 50, "softphong", 128)]


def scene(mesh_name, batch, device):
    import torch
    from lib3dr.renderer.cameras import FoVPerspectiveCameras
    from lib3dr.io import load_objs_as_meshes
    from lib3dr.structures import Meshes, join_meshes_as_batch
    from lib3dr.transforms import look_at_view_transform

    if mesh_name == "sphere":
        from lib3dr.renderer import TexturesVertex
        from lib3dr.utils import ico_sphere
        sphere = ico_sphere(4, device)
        verts = sphere.verts_packed()
        meshes = Meshes(verts=[verts] * batch, faces=[sphere.faces_packed()] * batch,
                        textures=TexturesVertex([torch.full_like(verts, 0.5)] * batch))
        R, T = look_at_view_transform(2.7, torch.linspace(0, 360, batch + 1)[:-1],
                                      torch.linspace(-180, 180, batch + 1)[:-1], device=device)
        return meshes, FoVPerspectiveCameras(device=device, R=R, T=T), torch
    teapot = load_objs_as_meshes([os.path.join(ROOT, "data", "teapot.obj")], device=device)
    cow = load_objs_as_meshes([os.path.join(ROOT, "data", "cow_mesh", "cow.obj")], device=device)
    if mesh_name == "mixed":
        meshes = join_meshes_as_batch([teapot, cow] * (batch // 2), include_textures=False)
    else:
        meshes = {"teapot": teapot, "cow": cow}[mesh_name].extend(batch)
    R, T = look_at_view_transform(3.0, 50.0, 0.0, device=device)
    cameras = FoVPerspectiveCameras(device=device, R=R.expand(batch, 3, 3), T=T.expand(batch, 3))
    return meshes, cameras, torch


def make_step(mesh_name, batch, K, kind, backend, device, size=256):
    """Returns forward() -> loss tensor for one workload."""
    meshes, cameras, torch = scene(mesh_name, batch, device)
    verts = meshes.verts_padded().detach().clone().requires_grad_()
    blur = 0.0 if K == 1 else BLUR
    from lib3dr.renderer.blending import silhouette_from_dists
    from lib3dr.renderer.rasterizer import MeshRasterizer, RasterizationSettings
    from lib3dr.renderer.silhouette import soft_silhouette

    if kind == "unfused":
        rasterizer = MeshRasterizer(cameras, RasterizationSettings(
            image_size=size, blur_radius=blur, faces_per_pixel=K, backend=backend))

        def forward():
            fragments = rasterizer(meshes.update_padded(verts))
            if K == 1:
                return fragments.zbuf.sum()
            return silhouette_from_dists(fragments.pix_to_face, fragments.dists, SIGMA,
                                         backend=backend).sum()
    elif kind == "fused":
        def forward():
            return soft_silhouette(meshes.update_padded(verts), cameras, image_size=size,
                                   sigma=SIGMA, blur_radius=blur, faces_per_pixel=K,
                                   backend=backend).sum()
    else:
        from lib3dr.renderer import (BlendParams, HardPhongShader, MeshRenderer, PointLights,
                                     SoftPhongShader)
        light = (0.0, 0.0, -3.0) if mesh_name == "sphere" else (2.0, 2.0, -2.0)
        shader = {"softphong": SoftPhongShader, "hardphong": HardPhongShader}[kind](
            cameras=cameras, lights=PointLights(location=(light,)),
            blend_params=BlendParams(sigma=SIGMA, gamma=SIGMA))
        # The tutorial rasterizes its Soft Phong renders without perspective correction.
        renderer = MeshRenderer(MeshRasterizer(cameras, RasterizationSettings(
            image_size=size, blur_radius=blur, faces_per_pixel=K, backend=backend,
            perspective_correct=False if mesh_name == "sphere" else None)), shader)

        def forward():
            return renderer(meshes.update_padded(verts)).sum()
    return forward, verts, torch


def rss_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_row(mesh_name, batch, K, kind, backend, repeats, size=256):
    device = "cuda" if backend == "cuda" else "cpu"
    forward, verts, torch = make_step(mesh_name, batch, K, kind, backend, device, size)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    # Peak memory of the first forward+backward, above the baseline.
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = rss_bytes()
    forward().backward()
    sync()
    peak = (torch.cuda.max_memory_allocated() if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) - base

    def timed(fn):
        times = []
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times.append(1000 * (time.perf_counter() - start))
        return statistics.median(times)

    with torch.no_grad():
        forward()  # warm-up
        fwd = timed(forward)
    verts.grad = None
    fwd_bwd = timed(lambda: forward().backward())
    return dict(mesh=mesh_name, batch=batch, K=K, kind=kind, size=size, backend=backend,
                forward_ms=fwd, forward_backward_ms=fwd_bwd, peak_mb=max(peak, 0) / 2**20)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--backends", default=None, help="comma-separated (default: all available)")
    parser.add_argument("--only", default=None, help="run rows whose mesh or kind matches")
    parser.add_argument("--json", default=os.path.join(ROOT, "build", "bench_rasterizer.json"))
    parser.add_argument("--row", default=None, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()

    if args.row:
        mesh_name, batch, K, kind, backend, *size = json.loads(args.row)
        print(json.dumps(run_row(mesh_name, batch, K, kind, backend, args.repeats, *size)))
        return

    import torch

    from machine import machine_info
    import lib3dr
    backends = args.backends.split(",") if args.backends else lib3dr.backends()
    rows = []
    print(f"{'mesh':8} {'N':>2} {'K':>4} {'kind':12} {'size':>4} {'backend':7} {'fwd ms':>9} "
          f"{'fwd+bwd ms':>11} {'peak MB':>8}")
    for mesh_name, batch, K, kind, size in WORKLOADS:
        for backend in backends:
            if args.only and args.only not in (mesh_name, kind):
                continue
            if backend == "torch" and batch > 1:  # the reference is slow; batch 1 shows the ratio
                continue
            spec = json.dumps([mesh_name, batch, K, kind, backend, size])
            done = subprocess.run([sys.executable, __file__, "--row", spec, "--repeats",
                                   str(args.repeats)], capture_output=True, text=True, cwd=ROOT)
            label = f"{mesh_name:8} {batch:>2} {K:>4} {kind:12} {size:>4} {backend:7}"
            if done.returncode != 0:
                print(f"{label} failed: {done.stderr.strip().splitlines()[-1]}")
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"{label} {row['forward_ms']:9.1f} {row['forward_backward_ms']:11.1f} "
                  f"{row['peak_mb']:8.0f}", flush=True)
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    machine = machine_info()
    with open(args.json, "w") as out:
        json.dump(dict(machine=machine, rows=rows), out, indent=1)
    table = ["| mesh | N | K | kind | size | backend | forward ms | forward+backward ms | peak MB |",
             "| --- | --: | --: | --- | --: | --- | --: | --: | --: |"]
    table += [f"| {r['mesh']} | {r['batch']} | {r['K']} | {r['kind']} | {r['size']} | {r['backend']} | "
              f"{r['forward_ms']:.1f} | {r['forward_backward_ms']:.1f} | {r['peak_mb']:.0f} |" for r in rows]
    with open(args.json.replace(".json", ".md"), "w") as out:
        out.write("\n".join(table) + "\n")
    print(f"machine: {machine}\nwritten to {args.json} and {args.json.replace('.json', '.md')}")


if __name__ == "__main__":
    main()
