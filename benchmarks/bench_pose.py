"""Pose benchmark: how often the textbook's single-start fit and lib3dr's fit_pose find the pose.

    python benchmarks/bench_pose.py [--targets 50] [--meshes teapot,cow] [--methods textbook,fit_pose]
    python benchmarks/bench_pose.py --tracking

Targets (seeded): cameras looking at the object's origin with +Y up from directions uniform on the
sphere, at distances uniform in [2.5, 4], rendered at 256x256: the hard silhouette (teapot), the
silhouette and a HardPhong image (cow). Methods:
  textbook  the textbook's fit: camera centre starting at (3.0, 6.9, 2.5), Adam lr 0.05, loss
            sum((alpha - target)^2) of the soft silhouette (sigma 1e-4, K 100), at most 200
            iterations (it stops earlier once the loss changes by less than 0.1% over 10);
  fit_pose  lib3dr.pose.fit_pose with the 6-DoF parameterisation (it does not know the targets
            have no roll) and, for the cow, the colour image.
With --roll the cameras also turn about their axes by a random angle (the 6-DoF case); only
fit_pose runs, and its rows are named "fit_pose (rolled)".
Success: rotation error under 2 degrees and silhouette IoU (hard renders, 256x256) above 0.98.
The teapot is mirror-symmetric about its z = 0 plane, so the camera R' = M R F (M = F =
diag(1, 1, -1): the object mirrored, the view depth mirrored) sees almost the same silhouette as
R (exactly the same for an orthographic camera); "success up to symmetry" accepts either.

--tracking runs lib3dr.pose.track on three 60-frame cow sequences (chapter 5's path; the same path
three times faster; chapter 5's path with the cow hidden for frames 25-29) and reports mean and
max rotation error, frames per second and re-initialisations.

Prints a table and writes build/bench_pose.json (with every fit) and build/bench_pose.md; rows of
an earlier run in build/bench_pose.json are kept unless this run measures them again. It also
updates the committed summary benchmarks/results/bench_pose.json (--tracking:
benchmarks/results/bench_tracking.json) the same way: one row per mesh and method with its
figures, when and on what it was measured. The chapters read their numbers from there; --results
PATH writes it elsewhere (for a quick trial with few targets).
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from lib3dr.io import load_objs_as_meshes  # noqa: E402
from machine import machine_info  # noqa: E402
from lib3dr.pose import LookAtPose, _roll, fit_pose, hard_silhouette, silhouette_iou, track  # noqa: E402
from lib3dr.pose import camera_from_position, rotation_error_degrees  # noqa: E402
from lib3dr.renderer import (BlendParams, FoVPerspectiveCameras, HardPhongShader,  # noqa: E402
                             MeshRasterizer, MeshRenderer, PointLights, RasterizationSettings,
                             SoftSilhouetteShader, camera_position_from_spherical_angles)

SIZE = 256
SUCCESS_DEGREES, SUCCESS_IOU = 2.0, 0.98  # a fit succeeds: rotation error below, IoU above
OTHER_VALLEY_DEGREES = 45.0               # a failure this far off ended in another valley
MESHES = {"teapot": "data/teapot.obj", "cow": "data/cow_mesh/cow.obj"}
MIRROR = torch.diag(torch.tensor([1.0, 1.0, -1.0]))


def make_targets(n, seed, roll=False):
    generator = torch.Generator().manual_seed(seed)
    directions = torch.randn(n, 3, generator=generator)
    directions = directions / directions.norm(dim=1, keepdim=True)
    distances = 2.5 + 1.5 * torch.rand(n, generator=generator)
    R, T = camera_from_position(distances[:, None] * directions)
    if roll:  # the 6-DoF case: the camera also turns about its axis
        R, T = _roll(R, T, 2 * math.pi * torch.rand(n, generator=generator))
    return R, T


def rgb_renderer(cameras):
    lights = PointLights(location=[[0.0, 0.0, -3.0]])
    return MeshRenderer(MeshRasterizer(cameras, RasterizationSettings(image_size=SIZE, faces_per_pixel=1)),
                        HardPhongShader(cameras=cameras, lights=lights))


def textbook_fit(mesh, target, cameras):
    """The textbook's loop, with lib3dr's renderer in place of PyTorch3D's."""
    sigma = 1e-4
    blend = BlendParams(sigma=sigma, gamma=1e-4)
    settings = RasterizationSettings(image_size=SIZE, blur_radius=math.log(1 / 1e-4 - 1) * sigma,
                                     faces_per_pixel=100)
    renderer = MeshRenderer(MeshRasterizer(cameras, settings), SoftSilhouetteShader(blend_params=blend))
    pose = LookAtPose(torch.tensor([[3.0, 6.9, 2.5]]))
    optimizer = torch.optim.Adam(pose.parameters(), lr=0.05)
    losses = []
    for _ in range(200):
        R, T = pose()
        loss = ((renderer(mesh, R=R, T=T)[..., 3] - target) ** 2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if len(losses) > 10 and abs(losses[-11] - losses[-1]) <= 1e-3 * losses[-11]:
            break
    with torch.no_grad():
        return pose()


def run_fits(mesh_name, method, n, seed, roll=False):
    mesh = load_objs_as_meshes([os.path.join(ROOT, MESHES[mesh_name])])
    cameras = FoVPerspectiveCameras()
    renderer = rgb_renderer(cameras) if mesh_name == "cow" else None
    R_true, T_true = make_targets(n, seed, roll)
    rows = []
    for i in range(n):
        target = hard_silhouette(mesh, cameras, SIZE, R_true[i:i + 1], T_true[i:i + 1])[0]
        start = time.perf_counter()
        if method == "textbook":
            R, T = textbook_fit(mesh, target, cameras)
        else:
            rgb = renderer(mesh, R=R_true[i:i + 1], T=T_true[i:i + 1])[0, ..., :3] if renderer else None
            fit = fit_pose(mesh, target, cameras, target_rgb=rgb, rgb_renderer=renderer)
            R, T = fit.R[None], fit.T[None]
        seconds = time.perf_counter() - start
        iou = silhouette_iou(hard_silhouette(mesh, cameras, SIZE, R, T), target[None]).item()
        error = rotation_error_degrees(R, R_true[i]).item()
        error_sym = min(error, rotation_error_degrees(R, MIRROR @ R_true[i] @ MIRROR).item())
        centre = cameras.get_camera_center(R=R, T=T)[0]
        centre_true = cameras.get_camera_center(R=R_true[i:i + 1], T=T_true[i:i + 1])[0]
        rows.append({"rotation_error": error, "rotation_error_sym": error_sym, "iou": iou, "seconds": seconds,
                     "centre_error": (centre - centre_true).norm().item()})
        print(f"  {mesh_name} {method} {i + 1}/{n}: {error:6.2f} deg (sym {error_sym:6.2f}), IoU {iou:.4f}, "
              f"{seconds:5.1f} s", flush=True)
    return rows


def summarise(rows):
    ok = [r["iou"] > SUCCESS_IOU and r["rotation_error"] < SUCCESS_DEGREES for r in rows]
    ok_sym = [r["iou"] > SUCCESS_IOU and r["rotation_error_sym"] < SUCCESS_DEGREES for r in rows]
    median = lambda key: statistics.median(r[key] for r in rows)  # noqa: E731
    span = lambda values: [min(values), max(values)] if values else None  # noqa: E731
    close = [r for r in rows if r["rotation_error"] < SUCCESS_DEGREES]
    failed = [r for r, good in zip(rows, ok) if not good]
    far = [r for r in failed if r["rotation_error"] > OTHER_VALLEY_DEGREES]
    near = [r for r in failed if r["rotation_error"] <= OTHER_VALLEY_DEGREES]
    return {"fits": len(rows), "success": sum(ok) / len(rows), "success_sym": sum(ok_sym) / len(rows),
            "median_rotation_error": median("rotation_error"), "median_centre_error": median("centre_error"),
            "median_iou": median("iou"), "median_seconds": median("seconds"),
            "max_seconds": max(r["seconds"] for r in rows),
            # fits within SUCCESS_DEGREES whatever their IoU, and the best IoU among them
            "within_degrees": len(close), "best_iou_within_degrees": max((r["iou"] for r in close), default=None),
            # failures more than OTHER_VALLEY_DEGREES off, and the others
            "failures_other_valley": len(far), "other_valley_degrees": span([r["rotation_error"] for r in far]),
            "other_valley_iou": span([r["iou"] for r in far]),
            "failures_near": len(near), "near_failure_degrees": span([r["rotation_error"] for r in near]),
            "near_failure_iou": span([r["iou"] for r in near])}


def update_results(path, rows, about):
    """Merges ``rows`` (name -> figures) into the committed results file at ``path``."""
    results = {}
    if os.path.exists(path):
        with open(path) as f:
            results = json.load(f)["results"]
    results.update(rows)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"about": about, "success": {"max_rotation_error_degrees": SUCCESS_DEGREES, "min_iou": SUCCESS_IOU,
                                              "other_valley_degrees": OTHER_VALLEY_DEGREES},
                   "results": dict(sorted(results.items()))}, f, indent=1)
        f.write("\n")


def chapter5_path(num_frames, speed=1.0):
    s = torch.linspace(0, 1, num_frames) * speed
    distance = 2.7 + 0.2 * torch.sin(2 * math.pi * s)
    elevation = 25 + 15 * torch.sin(1.5 * math.pi * s)
    azimuth = 20 + 100 * s
    return camera_from_position(camera_position_from_spherical_angles(distance, elevation, azimuth))


def run_tracking(size=128):
    mesh = load_objs_as_meshes([os.path.join(ROOT, MESHES["cow"])])
    cameras = FoVPerspectiveCameras()
    results = {}
    for name, speed, hidden in [("chapter 5 path", 1.0, ()), ("3x faster", 3.0, ()),
                                ("hidden for frames 25-29", 1.0, range(25, 30))]:
        R_true, T_true = chapter5_path(60, speed)
        frames = hard_silhouette(mesh.extend(60), cameras, size, R_true, T_true)
        frames[list(hidden)] = 0
        start = time.perf_counter()
        result = track(mesh, frames, cameras, init=(R_true[0], T_true[0]))
        seconds = time.perf_counter() - start
        errors = rotation_error_degrees(result.R, R_true)
        results[name] = {"frames": 60, "mean_rotation_error": errors.mean().item(),
                         "max_rotation_error": errors.max().item(), "fps": 60 / seconds,
                         "reinitialisations": len(result.reinitialised)}
        print(f"  {name}: {results[name]}", flush=True)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=50)
    parser.add_argument("--meshes", default="teapot,cow")
    parser.add_argument("--methods", default="textbook,fit_pose")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--roll", action="store_true",
                        help="targets with a random in-plane roll (6-DoF); fit_pose only")
    parser.add_argument("--tracking", action="store_true", help="run the tracking benchmark instead")
    parser.add_argument("--results", default=None,
                        help="summary file to update (default benchmarks/results/bench_pose.json, or "
                             "bench_tracking.json with --tracking)")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    info = machine_info()
    machine = f"{info['cpu']}, {info['cores']} cores, torch {info['torch']}"
    measured = time.strftime("%Y-%m-%d %H:%M")
    os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
    if args.tracking:
        results = run_tracking()
        lines = ["| sequence | frames | mean rot. error (deg) | max rot. error (deg) | frames/s | re-inits |",
                 "| --- | --: | --: | --: | --: | --: |"]
        lines += [f"| {k} | {v['frames']} | {v['mean_rotation_error']:.2f} | {v['max_rotation_error']:.2f} | "
                  f"{v['fps']:.1f} | {v['reinitialisations']} |" for k, v in results.items()]
        name = "bench_tracking"
        summary = {key: {**value, "measured": measured, "machine": info} for key, value in results.items()}
        about = ("lib3dr.pose.track on 60-frame cow sequences at 128x128 from the true first pose "
                 "(benchmarks/bench_pose.py --tracking)")
    else:
        # Rows of earlier runs stay unless this run measures them again (--methods fit_pose
        # reruns one method and keeps the other's rows).
        previous = os.path.join(ROOT, "build", "bench_pose.json")
        results = json.load(open(previous))["results"] if os.path.exists(previous) else {}
        summary = {}  # the rows of this run, for the committed results file
        for mesh_name in args.meshes.split(","):
            for method in args.methods.split(","):
                if args.roll and method == "textbook":
                    continue  # the textbook's look-at camera cannot roll
                rows = run_fits(mesh_name, method, args.targets, args.seed, args.roll)
                key = f"{mesh_name}/{method}{' (rolled)' if args.roll else ''}"
                results[key] = {"summary": summarise(rows), "fits": rows, "measured": measured, "machine": info}
                summary[key] = {**results[key]["summary"], "measured": measured, "machine": info}
        lines = ["| mesh | method | fits | success | success up to symmetry | median rot. error (deg) | "
                 "median centre error | median IoU | median s per fit |",
                 "| --- | --- | --: | --: | --: | --: | --: | --: | --: |"]
        for key, value in sorted(results.items()):
            s = value["summary"]
            mesh_name, method = key.split("/")
            sym = f"{100 * s['success_sym']:.0f}%" if mesh_name == "teapot" else "-"
            lines.append(f"| {mesh_name} | {method} | {s['fits']} | {100 * s['success']:.0f}% | {sym} | "
                         f"{s['median_rotation_error']:.2f} | {s['median_centre_error']:.3f} | "
                         f"{s['median_iou']:.4f} | {s['median_seconds']:.1f} |")
        name = "bench_pose"
        about = (f"seeded look-at targets at {SIZE}x{SIZE}: the textbook's fit and lib3dr.pose.fit_pose "
                 "(benchmarks/bench_pose.py)")
    table = "\n".join([f"{machine}, {time.strftime('%Y-%m-%d %H:%M')}", ""] + lines)
    print(table)
    with open(os.path.join(ROOT, "build", f"{name}.json"), "w") as f:
        json.dump({"machine": machine, "results": results}, f, indent=1)
    with open(os.path.join(ROOT, "build", f"{name}.md"), "w") as f:
        f.write(table + "\n")
    results_path = args.results or os.path.join(ROOT, "benchmarks", "results", f"{name}.json")
    update_results(results_path, summary, about)
    print(f"wrote {results_path}")


if __name__ == "__main__":
    main()
