"""Numerical edges and concurrency: no NaN or Inf out of awkward geometry, clear errors for
unsupported dtypes, the same images from several Python threads, kernels that release the GIL."""
import threading
import time

import pytest
import torch
from helpers import BACKENDS, data_path, DEVICE

from lib3dr.renderer.blending import BlendParams, softmax_rgb_blend
from lib3dr.io import load_objs_as_meshes
from lib3dr.renderer.rasterizer import Fragments, rasterize_meshes
from lib3dr.renderer.silhouette import soft_silhouette, soft_silhouette_ndc
from lib3dr.renderer import FoVPerspectiveCameras, look_at_view_transform
from lib3dr.structures import Meshes

FACE = torch.tensor([[0, 1, 2]])


def pixel_centre(i, size=8):
    return 1 - (2 * i + 1) / size


# Each is three vertices (x, y in NDC, view z) of one awkward face on an 8x8 image.
AWKWARD = {
    "sliver": [[-0.9, -0.9, 1.0], [0.9, 0.9, 1.0], [0.9, 0.9 + 1e-7, 1.0]],
    "zero area": [[-0.5, 0.0, 1.0], [0.0, 0.0, 1.0], [0.5, 0.0, 1.0]],
    "vertices on pixel centres": [[pixel_centre(1), pixel_centre(1), 1.0], [pixel_centre(6), pixel_centre(1), 1.0],
                                  [pixel_centre(1), pixel_centre(6), 1.0]],
    "edge through pixel centres": [[pixel_centre(0), pixel_centre(3), 1.0], [pixel_centre(7), pixel_centre(3), 1.0],
                                   [0.0, -0.9, 1.0]],
    "nearly edge-on": [[-0.5, 0.0, 0.5], [0.5, 0.0, 5.0], [0.0, 1e-6, 2.0]],
    "huge": [[-1e6, -1e6, 1.0], [1e6, -1e6, 1.0], [0.0, 1e6, 1.0]],
    "one vertex behind the camera": [[-0.5, -0.5, 1.0], [0.5, -0.5, 1.0], [0.0, 0.5, -1.0]],
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(AWKWARD))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_awkward_faces_give_finite_outputs_and_gradients(name, backend, dtype):
    verts = torch.tensor(AWKWARD[name], dtype=dtype, device=DEVICE[backend], requires_grad=True)
    mesh = Meshes(verts=[verts], faces=[FACE.to(verts.device)])
    for blur, perspective in [(0.0, False), (1e-3, True)]:
        p2f, zbuf, bary, dists = rasterize_meshes(mesh, image_size=8, faces_per_pixel=2, blur_radius=blur,
                                                  perspective_correct=perspective, backend=backend)
        for t in (zbuf, bary, dists):
            assert torch.isfinite(t).all()
        loss = zbuf.sum() + bary.sum() + dists.sum()
        if loss.requires_grad:
            grad, = torch.autograd.grad(loss, verts)
            assert torch.isfinite(grad).all()
    for sigma in (1e-6, 1e-4):
        alpha = soft_silhouette_ndc(mesh, sigma, image_size=8, faces_per_pixel=3, backend=backend)
        assert torch.isfinite(alpha).all() and (0 <= alpha).all() and (alpha <= 1).all()
        grad, = torch.autograd.grad(alpha.sum(), verts, allow_unused=True)
        assert grad is None or torch.isfinite(grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_refused_clearly(dtype):
    mesh = Meshes(verts=[torch.tensor(AWKWARD["sliver"], dtype=dtype)], faces=[FACE])
    with pytest.raises(TypeError, match="float32 or float64"):
        rasterize_meshes(mesh, image_size=8)


@pytest.mark.parametrize("gamma", [1e-6, 1e-4])
def test_softmax_blend_with_tiny_sigma_and_gamma_is_finite(gamma):
    verts = torch.tensor([[-0.5, -0.5, 1.0], [0.5, -0.5, 1.0], [0.0, 0.5, 1.0],
                          [-0.4, -0.6, 2.0], [0.6, -0.4, 2.0], [0.1, 0.6, 2.0]], requires_grad=True)
    mesh = Meshes(verts=[verts], faces=[torch.tensor([[0, 1, 2], [3, 4, 5]])])
    fragments = Fragments(*rasterize_meshes(mesh, image_size=16, faces_per_pixel=2, blur_radius=1e-3,
                                            clip_barycentric_coords=True))
    colors = fragments.bary_coords.clamp(0, 1)
    image = softmax_rgb_blend(colors, fragments, BlendParams(sigma=1e-6, gamma=gamma))
    grad, = torch.autograd.grad(image.sum(), verts)
    assert torch.isfinite(image).all() and torch.isfinite(grad).all()


@pytest.fixture(scope="module")
def cow_scene():
    mesh = load_objs_as_meshes([data_path("cow_mesh/cow.obj")])
    R, T = look_at_view_transform(torch.tensor([2.5, 2.7, 2.9, 3.1]), 30.0, torch.tensor([0.0, 40.0, 80.0, 120.0]))
    return mesh, FoVPerspectiveCameras(), R, T


def test_threads_render_what_sequential_calls_render(cow_scene):
    mesh, cameras, R, T = cow_scene

    def render(i):
        alpha = soft_silhouette(mesh, cameras, image_size=64, R=R[i:i + 1], T=T[i:i + 1])
        fragments = rasterize_meshes(mesh.update_padded(mesh.verts_padded() * (1 + 0.1 * i)), image_size=64,
                                     faces_per_pixel=3, blur_radius=1e-4)
        return alpha, fragments

    sequential = [render(i) for i in range(4)]
    results = [None] * 4
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, render(i))) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for (alpha, fragments), (alpha_seq, fragments_seq) in zip(results, sequential):
        assert torch.equal(alpha, alpha_seq)
        for a, b in zip(fragments, fragments_seq):
            assert torch.equal(a, b)


def test_kernels_release_the_gil(cow_scene):
    # While a long render runs in one thread, Python code must keep running in another. Held,
    # the GIL would stop the main loop for the whole kernel call; released, the loop's longest
    # pause is a scheduling slice. Half the call's duration separates the two on any machine.
    mesh, cameras, R, T = cow_scene
    batch = mesh.extend(4)
    batch.textures = None
    done = threading.Event()
    span = {}

    def render():
        span["start"] = time.perf_counter()
        soft_silhouette(batch, cameras, image_size=512, R=R, T=T)
        span["end"] = time.perf_counter()
        done.set()

    thread = threading.Thread(target=render)
    ticks = []
    thread.start()
    while not done.is_set():
        ticks.append(time.perf_counter())
    thread.join()
    inside = [t for t in ticks if span["start"] <= t <= span["end"]]
    bounds = [span["start"]] + inside + [span["end"]]
    longest_pause = max(b - a for a, b in zip(bounds, bounds[1:]))
    duration = span["end"] - span["start"]
    assert longest_pause < 0.5 * duration, (
        f"the main thread stopped for {longest_pause:.3f} s of a {duration:.3f} s kernel call")


def test_gradients_stay_finite_for_a_mesh_seen_edge_on_at_every_distance():
    # A square in the plane x = 0 seen from +X: every face is edge-on, with zero area on screen.
    verts = torch.tensor([[0.0, -1, -1], [0.0, 1, -1], [0.0, 1, 1], [0.0, -1, 1]], requires_grad=True)
    mesh = Meshes(verts=[verts], faces=[torch.tensor([[0, 1, 2], [0, 2, 3]])])
    for distance in (0.5, 3.0, 1e4):
        R, T = look_at_view_transform(distance, 0.0, 90.0)
        alpha = soft_silhouette(mesh, FoVPerspectiveCameras(R=R, T=T), image_size=16, sigma=1e-5)
        grad, = torch.autograd.grad(alpha.sum(), verts, allow_unused=True)
        assert torch.isfinite(alpha).all() and (grad is None or torch.isfinite(grad).all())
