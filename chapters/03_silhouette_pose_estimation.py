# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 3 — Finding the camera from a silhouette
#
# The soft rasterizer of the previous chapters turns a mesh and a camera into an image whose
# pixels change smoothly with the camera. This chapter puts that to its first use, the one of
# chapter 4 of *3D Deep Learning with Python*: a teapot has been photographed from an unknown
# viewpoint, all we keep of the photograph is its **silhouette** (which pixels are teapot), and we
# know the teapot's shape. Where was the camera?
#
# We answer by gradient descent: render the teapot's soft silhouette from a guessed camera,
# compare it with the observed one, and move the camera downhill. The fit works, but it stops for
# a reason the textbook does not tell, and reading its loss carefully teaches more about soft
# rasterization than the fit itself.
#
# The chapter runs in under a minute on two CPU cores.

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from lib3dr.exercises import chapter03
from lib3dr.io import load_obj
from lib3dr.plotting import data_path, image_grid, plot_curves, save_figure, write_gif
from lib3dr.pose import fit_pose
from lib3dr.posefit import (camera_centre_distance, camera_from_position, rotation_error_degrees,
                            viewing_angle_degrees)
from lib3dr.renderer import (BlendParams, FoVPerspectiveCameras, HardPhongShader, MeshRasterizer,
                             MeshRenderer, PointLights, RasterizationSettings, SoftSilhouetteShader,
                             TexturesVertex, look_at_rotation, look_at_view_transform)
from lib3dr.structures import Meshes

torch.manual_seed(0)
device = torch.device("cpu")

# %% [markdown]
# ## The camera as three numbers
#
# A camera has six degrees of freedom, three for where it is and three for where it looks. The
# textbook keeps only three: the camera centre $C \in \mathbb{R}^3$, with the camera always
# looking at the origin (where the teapot is) and its "up" as close to $+Y$ as it can be. The
# camera's axes in world coordinates are then
#
# $$
# z = \frac{-C}{\lVert C \rVert}, \qquad
# x = \frac{u \times z}{\lVert u \times z \rVert}, \qquad
# y = z \times x, \qquad u = (0, 1, 0),
# $$
#
# ($z$ points from the camera to the origin, $x$ to the camera's left, $y$ up), and with PyTorch3D's
# row-vector convention $X_\text{view} = X_\text{world} R + T$ they are the columns of $R$:
#
# $$
# R = \begin{bmatrix} x & y & z \end{bmatrix}, \qquad T = -C R ,
# $$
#
# so that the camera centre lands at the view-space origin. `look_at_rotation` computes $R$;
# every step is differentiable, so a loss on the rendered image has a gradient with respect to
# the three numbers of $C$. `lib3dr.posefit.camera_from_position` packs the two lines; the textbook
# writes them inline, and we check that both agree with `look_at_view_transform`.

# %%
C_check = torch.tensor([1.0, 2.0, -0.5])
R_check = look_at_rotation(C_check[None, :], device=device)
T_check = -torch.bmm(R_check.transpose(1, 2), C_check[None, :, None])[:, :, 0]  # the textbook's line
R_eye, T_eye = look_at_view_transform(eye=C_check[None])
assert torch.allclose(R_check, R_eye) and torch.allclose(T_check, T_eye, atol=1e-6)
assert all(torch.allclose(a, b) for a, b in zip(camera_from_position(C_check), (R_eye, T_eye)))
print("camera centre maps to the view-space origin:", (C_check @ R_check[0] + T_check[0]).tolist())

# %% [markdown]
# ## The observation
#
# The teapot (2464 triangles) is white; a Phong renderer with one point light draws it from the
# camera that we will pretend not to know: `look_at_view_transform(3, 50, 0)`, at distance 3 from
# the origin, 50° above the horizontal plane. The observed silhouette `image_ref` is the set of
# pixels where the teapot is: the textbook takes the pixels that are not pure white, which here
# are exactly those with alpha 1 in the hard render.

# %%
verts, faces_idx, _ = load_obj(data_path("teapot.obj"))
faces = faces_idx.verts_idx
textures = TexturesVertex(verts_features=torch.ones_like(verts)[None])
teapot_mesh = Meshes(verts=[verts], faces=[faces], textures=textures)

image_size = 256
cameras = FoVPerspectiveCameras(device=device)
sigma, gamma = 1e-4, 1e-4
blend_params = BlendParams(sigma=sigma, gamma=gamma)
silhouette_renderer = MeshRenderer(
    rasterizer=MeshRasterizer(cameras=cameras, raster_settings=RasterizationSettings(
        image_size=image_size, blur_radius=np.log(1.0 / 1e-4 - 1.0) * sigma, faces_per_pixel=100)),
    shader=SoftSilhouetteShader(blend_params=blend_params))
lights = PointLights(device=device, location=((2.0, 2.0, -2.0),))
phong_renderer = MeshRenderer(
    rasterizer=MeshRasterizer(cameras=cameras, raster_settings=RasterizationSettings(
        image_size=image_size, blur_radius=0.0, faces_per_pixel=1)),
    shader=HardPhongShader(device=device, cameras=cameras, lights=lights))

R_true, T_true = look_at_view_transform(3, 50, 0, device=device)
C_true = cameras.get_camera_center(R=R_true, T=T_true)[0]
with torch.no_grad():
    phong_true = phong_renderer(meshes_world=teapot_mesh, R=R_true, T=T_true)[0]
    alpha_true = silhouette_renderer(meshes_world=teapot_mesh, R=R_true, T=T_true)[0, ..., 3]
image_ref = (phong_true[..., :3].max(-1).values != 1).float()  # the textbook's silhouette
assert torch.equal(image_ref, phong_true[..., 3])
print("true camera centre:", [round(x, 4) for x in C_true.tolist()],
      f"| teapot pixels: {int(image_ref.sum())} of {image_size ** 2}")

# %% [markdown]
# ## The loss
#
# For a guessed camera $C$, the soft rasterizer gives each pixel $p$ an alpha
#
# $$
# \alpha_p(C) = 1 - \prod_{k=1}^{K} \bigl(1 - D_{k,p}\bigr), \qquad
# D_{k,p} = \operatorname{sigmoid}\!\left(-\frac{d_{k,p}}{\sigma}\right),
# $$
#
# where $d_{k,p}$ is the signed squared distance (in NDC units, negative inside) from the pixel
# centre to the $k$-th nearest face that comes within the blur radius
# $r = \sigma \ln(1/10^{-4} - 1)$ of it, beyond which $D < 10^{-4}$ and the face is ignored. The loss
# is the squared difference with the observed mask $m$, summed over the pixels:
#
# $$
# L(C) = \sum_p \bigl(\alpha_p(C) - m_p\bigr)^2 .
# $$
#
# With $\sigma = 10^{-4}$, $D$ falls from $\tfrac12$ on a face's edge to $0.27$ at
# $\sqrt{\sigma} = 0.01$ NDC (1.3 pixels at 256 × 256) outside it, and the blur radius is
# $\sqrt{9.2\,\sigma} \approx 0.03$ NDC, about 4 pixels. Inside the outline several overlapping faces
# each have $D > \tfrac12$, so $\alpha$ is 1 there.
#
# ## The textbook's model
#
# The textbook wraps the camera position in an `nn.Module` whose forward pass renders and
# returns the loss; this is its code with only the import line changed (and the mask computed
# above instead of inside).

# %%
class Model(nn.Module):
    def __init__(self, meshes, renderer, image_ref, start=(3.0, 6.9, +2.5)):
        super().__init__()
        self.meshes = meshes
        self.device = meshes.device
        self.renderer = renderer
        self.register_buffer("image_ref", image_ref)
        self.camera_position = nn.Parameter(torch.tensor(start, dtype=torch.float32, device=self.device))

    def forward(self):
        R = look_at_rotation(self.camera_position[None, :], device=self.device)
        T = -torch.bmm(R.transpose(1, 2), self.camera_position[None, :, None])[:, :, 0]
        image = self.renderer(meshes_world=self.meshes.clone(), R=R, T=T)
        loss = torch.sum((image[..., 3] - self.image_ref) ** 2)
        return loss, image


model = Model(meshes=teapot_mesh, renderer=silhouette_renderer, image_ref=image_ref).to(device)
C_start = model.camera_position.detach().clone()


def pose_errors(position):
    """(camera-centre distance, rotation error in degrees, viewing-angle error in degrees)."""
    R, _ = camera_from_position(position)
    return (camera_centre_distance(position, C_true).item(),
            rotation_error_degrees(R, R_true).item(), viewing_angle_degrees(position, C_true).item())


with torch.no_grad():
    loss_start, image_start = model()
print(f"start {C_start.tolist()}: loss {loss_start.item():.0f}, "
      "distance {:.2f}, rotation error {:.1f} deg, viewing angle {:.1f} deg".format(*pose_errors(C_start)))
def overlay(alpha, mask):
    """Red: observed mask, green: rendered silhouette; yellow where they agree."""
    return torch.stack([mask, alpha.clamp(0, 1), torch.zeros_like(mask)], -1)


fig = image_grid([image_start[0, ..., 3], image_ref, overlay(image_start[0, ..., 3], image_ref)],
                 ["soft silhouette from the start", "observed silhouette (image_ref)",
                  "red: observed, green: start"], suptitle="Before the fit")
save_figure(fig, "03_start_vs_reference")
plt.show()

# %% [markdown]
# The start is 7.9 units away; its viewing direction is 30° from the true one, and its orientation
# 51° off (a look-at camera that moves sideways around the teapot also turns about its viewing
# axis, so the rotation error is larger than the angle between the viewing directions; we report
# both). From there the teapot is a small blob seen from above, lying inside the observed
# silhouette. Only pixels within the blur radius of the rendered outline
# contribute to the gradient; there the observed mask says "teapot", so the loss asks the blob to
# grow, and the camera to come closer, and as it comes closer its outline meets the observed one.
#
# ## The fit
#
# Adam with learning rate 0.05, as in the textbook, and the textbook's stopping rule: stop as soon
# as the loss drops under 500, or after 200 iterations. We record the camera at every iteration
# to draw the fit afterwards.

# %%
def adam_fit(start, lr, iterations, desc, stop_below=None):
    """The textbook's loop: Adam on the model's camera position from ``start``, stopping early
    once the loss is under ``stop_below``. Returns the loss at each iteration and the camera
    before the first and after each step."""
    with torch.no_grad():
        model.camera_position.copy_(start)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses, positions = [], [start.clone()]
    for _ in tqdm(range(iterations), desc=desc):
        optimizer.zero_grad()
        loss, _ = model()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        positions.append(model.camera_position.detach().clone())
        if stop_below is not None and loss.item() < stop_below:
            break
    return losses, positions


start_time = time.perf_counter()
losses, positions = adam_fit(C_start, lr=0.05, iterations=200, desc="textbook fit", stop_below=500)
seconds = time.perf_counter() - start_time
# The loss below 500 was that of the camera *before* the last step: that camera is the answer.
C_stop = positions[-2]
distance_stop, angle_stop, viewing_stop = pose_errors(C_stop)
print(f"stopped after {len(losses)} iterations ({seconds:.1f} s, {seconds / len(losses) * 1e3:.0f} ms each) "
      f"with loss {losses[-1]:.0f}")
print(f"camera {[round(x, 3) for x in C_stop.tolist()]} vs true {[round(x, 3) for x in C_true.tolist()]}: "
      f"distance {distance_stop:.3f}, rotation error {angle_stop:.2f} deg, viewing angle {viewing_stop:.2f} deg, "
      f"|C| = {C_stop.norm():.3f} (true 3)")
assert losses[-1] < 500 and len(losses) < 200
assert distance_stop < 0.15 and angle_stop < 2.0

# %% [markdown]
# The fit reaches the threshold in well under a hundred iterations and lands within a tenth of a
# unit and about a degree of the true camera. Two things stand out in the output: the final
# camera is *farther* from the teapot than the true one ($\lVert C \rVert > 3$), and the loss at
# the stop is still in the hundreds. To see why, we compute the loss of the **true** camera, the
# one the fit is looking for.

# %%
loss_true = ((alpha_true - image_ref) ** 2).sum().item()
print(f"loss at the exact pose: {loss_true:.0f} (PyTorch3D: about 840); textbook threshold: 500")
print(f"sum of the soft silhouette {alpha_true.sum():.0f} vs {image_ref.sum():.0f} pixels in the hard mask")
assert 700 < loss_true < 1000 and loss_true > 500
assert alpha_true.sum() > image_ref.sum() + 500
assert (alpha_true - image_ref)[image_ref > 0].min() > -0.1  # inside: alpha is 1 within a few percent

difference = (alpha_true - image_ref).numpy()
box = (slice(50, 114), slice(166, 230))  # a 64 x 64 pixel window on the spout
fig, axes = plt.subplots(1, 3, figsize=(12, 4.4), layout="constrained")
axes[0].imshow(image_ref, cmap="gray")
axes[0].add_patch(plt.Rectangle((box[1].start, box[0].start), 64, 64, fill=False, color="red"))
axes[0].set_title("observed mask (red box: zoom)")
shown = axes[1].imshow(difference, cmap="RdBu_r", vmin=-1, vmax=1)
axes[1].set_title("soft alpha at the exact pose - mask")
axes[2].imshow(difference[box], cmap="RdBu_r", vmin=-1, vmax=1)
axes[2].set_title("the same, zoomed on the spout")
for ax in axes:
    ax.axis("off")
fig.colorbar(shown, ax=axes, fraction=0.02, pad=0.02, label="alpha - mask")
fig.suptitle(f"At the true camera the soft silhouette is wider than the mask (loss {loss_true:.0f})")
save_figure(fig, "03_halo_at_exact_pose")
plt.show()

# %% [markdown]
# The soft silhouette is a **halo** wider than the hard mask: outside each edge $D$ decays over a
# pixel or two, and near the outline several faces are within the blur radius, each adding its
# own probability of covering the pixel, so $\alpha$ is close to 1 in the first pixel outside the
# outline and fades over the next one or two. (Inside, $\alpha$ is 1 to within a few percent.)
# Summed over the outline of the teapot, the halo costs about 840: lib3dr measures the same value
# as PyTorch3D, and it is **above the textbook's threshold of 500**. The exact pose would
# never pass the stopping rule.
#
# So why does the fit stop? A camera slightly *farther* away sees a slightly smaller teapot, and a
# smaller soft silhouette fits the smaller hard mask better. We walk the camera along the true
# viewing direction, $C = d\,C_\text{true}/3$, and measure the loss at each distance $d$, with the
# textbook's $\sigma = 10^{-4}$ and a ten times sharper $\sigma = 10^{-5}$ (whose blur radius
# shrinks with it).

# %%
def silhouette_renderer_for(sigma_value):
    return MeshRenderer(
        rasterizer=MeshRasterizer(cameras=cameras, raster_settings=RasterizationSettings(
            image_size=image_size, blur_radius=np.log(1.0 / 1e-4 - 1.0) * sigma_value,
            faces_per_pixel=100)),
        shader=SoftSilhouetteShader(blend_params=BlendParams(sigma=sigma_value, gamma=gamma)))


sharp_sigma = 1e-5
sharp_renderer = silhouette_renderer_for(sharp_sigma)
distances = np.round(np.arange(2.90, 3.201, 0.01), 3)
sweep = {}
with torch.no_grad():
    for name, renderer in [(f"sigma = {sigma:g}", silhouette_renderer),
                           (f"sigma = {sharp_sigma:g}", sharp_renderer)]:
        values = []
        for d in distances:
            R, T = camera_from_position(C_true * (d / 3.0))
            values.append(((renderer(teapot_mesh, R=R, T=T)[0, ..., 3] - image_ref) ** 2).sum().item())
        sweep[name] = np.array(values)
best = {name: distances[np.argmin(values)] for name, values in sweep.items()}
below = distances[sweep[f"sigma = {sigma:g}"] < 500]
print("distance of the smallest loss:", best)
print(f"with sigma = {sigma:g} the loss is under 500 only for {below.min():.2f} <= d <= {below.max():.2f}")

fig, ax = plt.subplots(figsize=(7, 4))
for name, values in sweep.items():
    ax.plot(distances, values, marker=".", label=f"{name} (smallest at d = {best[name]:.2f})")
ax.axhline(500, color="gray", linestyle="--", label="textbook threshold (500)")
ax.axvline(3.0, color="black", linewidth=0.8, label="true distance (3)")
ax.axvline(C_stop.norm().item(), color="tab:red", linestyle=":", label="|C| where the fit stopped")
ax.set(title="Silhouette loss along the true viewing direction", xlabel="camera distance d",
       ylabel="loss (sum of squared differences)")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
fig.tight_layout()
save_figure(fig, "03_loss_vs_distance")
plt.show()

assert best[f"sigma = {sigma:g}"] > 3.05       # the textbook's loss prefers a farther camera
assert below.min() > 3.0                       # and is under 500 only beyond the true one
assert 3.0 <= best[f"sigma = {sharp_sigma:g}"] < best[f"sigma = {sigma:g}"]  # less so when sharper
assert C_stop.norm() > 3.0

# %% [markdown]
# With the textbook's $\sigma$, the loss along the true direction is smallest about 3 % behind the
# true camera, and it is under 500 only in a narrow band of distances that does not contain the
# true one. A fit that approaches from far away enters that band and stops. The stopping rule
# "works" on this teapot only because of that bias; a mesh with a longer outline, or a larger
# image, would have a larger halo and a loss that never drops under 500 at all. A rule that needs
# no threshold stops when the loss stops falling (exercise 3.3).
#
# The sharper $\sigma$ shrinks the halo and moves the minimum towards the true distance. Here is
# the fit's loss, with the loss of the exact pose for comparison:

# %%
fig = plot_curves({"loss": losses}, title="Textbook fit: silhouette loss per iteration",
                  xlabel="iteration", ylabel="loss (sum of squared differences)", log=True)
fig.axes[0].axhline(500, color="gray", linestyle="--", label="threshold 500")
fig.axes[0].axhline(loss_true, color="tab:red", linestyle=":", label=f"loss at the exact pose ({loss_true:.0f})")
fig.axes[0].legend()
save_figure(fig, "03_loss_curve")
plt.show()

# %% [markdown]
# ## How close can it get?
#
# We continue from where the textbook stopped, with the sharper $\sigma = 10^{-5}$ and a smaller
# step (learning rate 0.01), for 60 more iterations.

# %%
model.renderer = sharp_renderer
refine_losses, refine_positions = adam_fit(C_stop, lr=0.01, iterations=60, desc="refinement")
C_final = refine_positions[-1]
distance_final, angle_final, viewing_final = pose_errors(C_final)
print(f"refined camera {[round(x, 3) for x in C_final.tolist()]}: distance {distance_final:.3f}, "
      f"rotation error {angle_final:.2f} deg, viewing angle {viewing_final:.2f} deg, |C| = {C_final.norm():.3f}")
assert angle_final < 1.0 and distance_final < 0.05
assert abs(C_final.norm() - 3.0) < abs(C_stop.norm() - 3.0)  # less of the farther-camera bias

# %% [markdown]
# The refined camera is well within a degree of the truth, and its distance error has shrunk by
# more than half, to the bias that the sharper halo still has: it is still a little farther from
# the teapot than the true camera. The errors along the whole fit:

# %%
all_positions = positions[:-1] + refine_positions  # drop the step taken after the stopping loss
errors = np.array([pose_errors(p) for p in all_positions])
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for ax, column, label in [(axes[0], 0, "camera-centre distance"), (axes[1], 1, "rotation error (degrees)")]:
    ax.semilogy(errors[:, column])
    ax.axvline(len(positions) - 2, color="gray", linestyle="--", label="textbook stop; sigma 1e-4 -> 1e-5")
    ax.set(title=label.capitalize() + " to the true camera", xlabel="iteration", ylabel=label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
fig.tight_layout()
save_figure(fig, "03_pose_error")
plt.show()

# %% [markdown]
# And the silhouettes, from the start to the refined camera:

# %%
with torch.no_grad():
    def silhouette_at(position):
        R, T = camera_from_position(position)
        return silhouette_renderer(teapot_mesh, R=R, T=T)[0, ..., 3]

    shown = [silhouette_at(C_start), silhouette_at(C_stop), silhouette_at(C_final)]
fig = image_grid([overlay(alpha, image_ref) for alpha in shown],
                 [f"start ({pose_errors(C_start)[1]:.0f} deg off)",
                  f"textbook stop ({angle_stop:.2f} deg off)", f"refined ({angle_final:.2f} deg off)"],
                 suptitle="Red: observed silhouette, green: soft silhouette (sigma 1e-4), yellow: both")
save_figure(fig, "03_silhouettes")
plt.show()

# %% [markdown]
# Finally the fit as an animation: each frame is a Phong render from the current camera, with the
# outline of the observed silhouette in red.

# %%
outline = (image_ref - (-F.max_pool2d(-image_ref[None, None], 3, stride=1, padding=1))[0, 0]) > 0
frames = []
with torch.no_grad():
    for position in all_positions[::2] + [all_positions[-1]] * 5:
        R, T = camera_from_position(position)
        frame = phong_renderer(teapot_mesh, R=R, T=T)[0, ..., :3].clone()
        frame[outline] = torch.tensor([1.0, 0.0, 0.0])
        frames.append(frame)
print(write_gif(frames, "03_fit", fps=10))

# %% [markdown]
# ![the fit](../build/figures/03_fit.gif)
#
# ## A start from the wrong side, and `lib3dr.pose.fit_pose`
#
# The textbook's start was chosen for this teapot: above it, on the side of the true camera. Start
# the same fit below and behind the teapot, and the silhouette loss leads somewhere else: the
# loss has other valleys, views from which a teapot-shaped blob covers much of the observed one.
#
# `lib3dr.pose.fit_pose` does not need a start. It renders hard silhouettes (one z-buffer pass,
# no gradient) from 100 viewing directions spread evenly over a sphere, each at the distance whose
# silhouette has the observed area, and turns each image through 12 in-plane rolls: 1,200
# candidate views at 64 × 64 pixels, scored by IoU with the observation in about a second. The
# three best are refined together (one batch) by Adam on a soft IoU of the fused soft silhouette;
# the best of them goes on at 128 and 256 pixels with a narrower blur (the halo above biases the
# distance, less so as it narrows) and a smaller step, each level stopping when the loss stops
# falling. Its pose is a full 6-DoF one (a rotation in the continuous 6D representation and a
# translation), so it also finds cameras that roll.

# %%
C_wrong = torch.tensor([0.5, -3.0, -3.0])
model.renderer = silhouette_renderer
wrong_losses, wrong_positions = adam_fit(C_wrong, lr=0.05, iterations=200, desc="textbook fit, wrong side",
                                         stop_below=500)
C_wrong_end = wrong_positions[-1]
wrong_distance, wrong_angle, _ = pose_errors(C_wrong_end)
print(f"textbook fit from {C_wrong.tolist()}: {len(wrong_losses)} iterations, loss {wrong_losses[-1]:.0f}, "
      f"rotation error {wrong_angle:.1f} deg")

start_time = time.perf_counter()
fit = fit_pose(teapot_mesh, image_ref, cameras)
fit_seconds = time.perf_counter() - start_time
fit_angle = rotation_error_degrees(fit.R, R_true).item()
print(f"fit_pose: {fit_seconds:.1f} s, {len(fit.history)} iterations after {fit.candidates} candidate views, "
      f"rotation error {fit_angle:.2f} deg, silhouette IoU {fit.iou:.4f}")
assert wrong_angle > 20 and fit_angle < 2.0 and fit.iou > 0.98

with torch.no_grad():
    R_wrong, T_wrong = camera_from_position(C_wrong_end)
    shown = [silhouette_renderer(teapot_mesh, R=R_wrong, T=T_wrong)[0, ..., 3],
             silhouette_renderer(teapot_mesh, R=fit.R[None], T=fit.T[None])[0, ..., 3]]
fig = image_grid([overlay(alpha, image_ref) for alpha in shown],
                 [f"textbook fit from below\n{wrong_angle:.0f} deg off",
                  f"fit_pose\n{fit_angle:.2f} deg off, IoU {fit.iou:.3f}"],
                 suptitle="Red: observed silhouette, green: fitted soft silhouette, yellow: both")
save_figure(fig, "03_fit_pose")
plt.show()

# %% [markdown]
# On 50 random poses of the teapot (`benchmarks/bench_pose.py`, table in `benchmarks/README.md`;
# success means within 2° and a silhouette IoU above 0.98), the textbook's fit from its fixed
# start succeeds on none: 8 of its 50 ends are within 2°, but the halo bias keeps their IoU
# below 0.94. `fit_pose` succeeds on 34 of 50, in a median of 3.0 s per fit on two CPU cores. Of
# its 16 failures, 5 ended in another valley even after three rounds of candidate views (IoU
# about 0.9); the other 11 are 1° to 7° off (one 38°) with IoUs of 0.94 to 0.99: views where the
# teapot's outline barely changes as it turns, which a silhouette alone cannot pin down. The cow,
# fitted with its colours as well, succeeds 50 times out of 50 (chapter 4).
#
# ## Summary
#
# - With the camera reduced to its centre $C$ (looking at the origin, +Y up), $R$ and $T$ are
#   differentiable functions of three numbers, and Adam on the soft-silhouette loss walks a camera
#   from 51° off to within a degree of the true one in under a hundred iterations.
# - The soft silhouette is wider than the hard mask it is compared with, so the **exact pose does
#   not have zero loss**: lib3dr measures about 840 for the teapot, as PyTorch3D does, above the
#   textbook's threshold of 500.
# - The textbook's fit stops only because a slightly farther camera shrinks the halo: along the
#   true direction the loss is smallest about 3 % behind the true camera. The sharper the
#   silhouette, the smaller that bias; continuing with $\sigma = 10^{-5}$ brings the camera within
#   a few hundredths of a unit and well under a degree.
# - From a start on the wrong side the same fit fails; `lib3dr.pose.fit_pose` needs no start
#   (candidate views scored at low resolution, the best refined coarse to fine).
#
# ## Exercises
#
# **3.1** Write `camera_from_position(position)` returning `R (1, 3, 3)` and `T (1, 3)` for a
# camera at `position` (a `(3,)` tensor) looking at the origin, differentiable with respect to
# `position`. Check it with `chapter03.check_camera_from_position(camera_from_position)`.

# %%
def my_camera_from_position(position):
    R = look_at_rotation(position[None, :], device=position.device)
    T = -torch.bmm(R.transpose(1, 2), position[None, :, None])[:, :, 0]
    return R, T


assert chapter03.check_camera_from_position(my_camera_from_position)

# %% [markdown]
# **3.2** Repeat the walk along the true viewing direction with $\sigma = 3\cdot10^{-5}$ (blur radius
# $\sigma \ln(1/10^{-4} - 1)$, 256 × 256, $K = 100$), in steps of 0.005 between 2.95 and 3.15. At
# what distance is the loss smallest? Check with `chapter03.check_best_distance(d)`. Where would you
# expect it for $\sigma = 10^{-6}$? (How wide, in pixels, is the halo then?)

# %%
renderer_3e5 = silhouette_renderer_for(3e-5)
walk = np.round(np.arange(2.95, 3.1501, 0.005), 3)
with torch.no_grad():
    walk_losses = [((renderer_3e5(teapot_mesh, R=R, T=T)[0, ..., 3] - image_ref) ** 2).sum().item()
                   for R, T in (camera_from_position(C_true * (d / 3.0)) for d in walk)]
print("smallest loss at d =", walk[np.argmin(walk_losses)])
assert chapter03.check_best_distance(walk[np.argmin(walk_losses)])

# %% [markdown]
# **3.3** Replace the threshold by a rule that needs no knowledge of the loss at the exact pose:
# `should_stop(losses)` returns True when the best loss of the last 10 iterations is less than
# 0.1 % below the best loss before them (False while there are fewer than 11 losses). Check it with
# `chapter03.check_plateau_rule(should_stop)`, then run the refinement above with it.

# %%
def should_stop(losses):
    if len(losses) < 11:
        return False
    return min(losses[-10:]) > (1 - 1e-3) * min(losses[:-10])


assert chapter03.check_plateau_rule(should_stop)
