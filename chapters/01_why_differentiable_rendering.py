# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 1 — Why differentiable rendering?
#
# A renderer is a function. It takes a description of a 3D scene (meshes, their positions, a
# camera, lights) and returns an image:
#
# $$ I = f(\theta), \qquad \theta = \text{scene parameters}, \quad I \in [0, 1]^{H \times W}. $$
#
# Computer graphics is about evaluating $f$ fast and well. Many problems in vision run it
# backwards: given an observed image $I_\text{ref}$, which scene produced it? Where is the
# object, how is it posed, what shape is it? Written as an optimisation,
#
# $$ \theta^\star = \arg\min_\theta \; L(\theta), \qquad L(\theta) = \frac{1}{HW} \sum_{\text{pixels}} \big(f(\theta) - I_\text{ref}\big)^2, $$
#
# and the tool of choice for such problems is gradient descent, which needs
# $\partial L / \partial \theta$, hence $\partial f / \partial \theta$: how each pixel changes when
# the scene moves a little.
#
# This chapter shows, on the smallest scene that makes the point (two spheres):
#
# 1. rendering as a function from scene parameters to an image;
# 2. an inverse problem solved by gradient descent through a *soft* renderer;
# 3. why the ordinary (*hard*) rasteriser cannot do this. Inside a face, a hard-rendered pixel
#    does change smoothly with the geometry when it is shaded (its normal, its position and its
#    colour are interpolated from the vertices). What changes in jumps is *which* surface the
#    pixel shows: at an object's outline, and where one object passes behind another. Image
#    formation is smooth except at these occlusion boundaries, and autograd has no gradient for
#    where they fall — yet that is where the information about the objects' positions is.
#
# Chapter 2 opens the soft rasteriser up and shows how it makes every pixel a smooth function of
# the geometry, outlines included.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

import lib3dr
from lib3dr_book.exercises import chapter01
from lib3dr_book.paths import data_path
from lib3dr_book.plotting import image_grid, plot_curves, save_figure, write_gif
from lib3dr.renderer import (AmbientLights, BlendParams, FoVPerspectiveCameras, HardPhongShader,
                             MeshRasterizer, MeshRenderer, PointLights, RasterizationSettings,
                             SoftPhongShader, TexturesVertex, look_at_view_transform)
from lib3dr.renderer.rasterizer import default_blur_radius
from lib3dr.structures import Meshes
from lib3dr.utils import ico_sphere

torch.manual_seed(0)
print("lib3dr", lib3dr.__version__, "backends:", lib3dr.backends())

# %% [markdown]
# ## 1. Rendering is a function
#
# Our scene is two spheres. `ico_sphere(2)` is a unit sphere made of triangles; a sphere of
# radius $r$ centred at $c$ has the vertices $r\,v + c$. Both spheres go into *one* mesh, so that
# the rasteriser sees all their faces together and resolves which one is in front at each pixel.
# The scene parameters $\theta$ are the two centres; the radii and colours stay fixed.

# %%
SPHERE = ico_sphere(2)
print(f"ico_sphere(2): {len(SPHERE.verts_packed())} vertices, {len(SPHERE.faces_packed())} triangles")
RADII = (0.5, 0.3)
RED, BLUE = (1.0, 0.25, 0.2), (0.2, 0.45, 1.0)


def two_spheres(centres, radii=RADII, colours=(RED, BLUE)):
    """One mesh holding a sphere of radius radii[i] at centres[i] (a (2, 3) tensor) each."""
    v, f = SPHERE.verts_packed(), SPHERE.faces_packed()
    verts = torch.cat([r * v + c for r, c in zip(radii, centres)])
    faces = torch.cat([f + i * len(v) for i in range(len(radii))])
    rgb = torch.cat([torch.tensor(c).expand(len(v), 3) for c in colours])
    return Meshes(verts=[verts], faces=[faces], textures=TexturesVertex([rgb]))


# %% [markdown]
# The camera sits at distance 3 on the $+Z$ axis and looks at the origin
# (`look_at_view_transform(3, 0, 0)`). lib3dr uses PyTorch3D's conventions: a world point $X$
# (a row vector) goes to view space as $X_\text{view} = X R + T$, where view $+X$ points left,
# $+Y$ up and $+Z$ into the screen. This camera looks down the world's $-Z$ axis, so its $R$ flips
# $X$ and $Z$: world $+X$ appears on the *right* of the image and the world's $-Z$ is further
# away.

# %%
R, T = look_at_view_transform(3.0, 0.0, 0.0)
cameras = FoVPerspectiveCameras(R=R, T=T)
print("R =", R[0].tolist(), "\nT =", T[0].tolist())
# Entries 0 and ±1, each from a few float32 roundings of numbers at most 1 (u = 2^-24 each).
assert torch.allclose(R[0], torch.diag(torch.tensor([-1.0, 1.0, -1.0])), rtol=0.0, atol=8 * 2.0**-24)

# %%
renderer = MeshRenderer(
    rasterizer=MeshRasterizer(cameras=cameras, raster_settings=RasterizationSettings(image_size=128)),
    shader=HardPhongShader(cameras=cameras, lights=PointLights(location=((2.0, 2.0, 3.0),))),
)
config_a = torch.tensor([[0.45, 0.15, 0.0], [-0.55, -0.25, -0.4]])
config_b = torch.tensor([[-0.3, -0.2, -0.5], [-0.1, 0.0, 0.6]])
image_a, image_b = renderer(two_spheres(config_a)), renderer(two_spheres(config_b))
fig = image_grid([image_a[0], image_b[0]], columns=2, size=3.5,
                 titles=["configuration A", "configuration B"],
                 suptitle="The same renderer, two sets of scene parameters")
save_figure(fig, "01_two_configurations");


# %% [markdown]
# In configuration A the large red sphere is on the right (world $+X$) and the blue one, further
# away, on the left. In configuration B the blue sphere is nearer the camera than the red one and
# hides part of it. Let us check the geometry with the camera's projection rather than by eye:
# `transform_points_screen` maps a world point to pixel coordinates (origin at the top-left), so
# the pixel under each sphere's centre must show that sphere's colour.

# %%
def pixel_of(point, image_size):
    """(row, column) of the pixel that the world point (3,) projects into."""
    xy = cameras.transform_points_screen(torch.as_tensor(point)[None], image_size=(image_size, image_size))
    return int(xy[0, 1]), int(xy[0, 0])


for name, image, centres in [("A", image_a, config_a), ("B", image_b, config_b)]:
    red_pixel = image[0][pixel_of(centres[0], 128)][:3]
    blue_pixel = image[0][pixel_of(centres[1], 128)][:3]
    print(f"config {name}: pixel under the red centre {red_pixel.numpy().round(2)}, "
          f"under the blue centre {blue_pixel.numpy().round(2)}")
    assert blue_pixel[2] > blue_pixel[0], "the blue sphere's centre is blue"
assert image_a[0][pixel_of(config_a[0], 128)][0] > 0.5      # red sphere visible in A
assert pixel_of(config_a[0], 128)[1] > 64                    # world +X lands on the right
assert image_b[0][pixel_of(config_b[0], 128)][2] > 0.5      # B: the blue sphere hides the red centre

# %% [markdown]
# ## 2. An inverse problem: where are the spheres?
#
# Now suppose we only *observe* a silhouette (which pixels the spheres cover) of configuration A,
# and want to recover the centres. The unknowns are six numbers; the data are $64 \times 64$
# pixels.
#
# We render silhouettes with `lib3dr.soft_silhouette`, Soft Rasterizer's silhouette
# (Liu et al., ICCV 2019). Instead of asking "is this pixel inside a triangle?" (yes or no), it
# asks "how far is the pixel from the triangle?" and turns the signed squared distance $d$ into a
# probability of coverage with a sigmoid of width $\sigma$,
#
# $$ D = \operatorname{sigmoid}\!\left(-\frac{d}{\sigma}\right), \qquad \alpha = 1 - \prod_{\text{faces } k} (1 - D_k). $$
#
# The pixel value $\alpha$ is the probability that at least one face covers the pixel. Far inside
# a sphere it is 1, far outside 0, and in a band of width about $\sqrt{\sigma}$ (in NDC units,
# where the image spans $[-1, 1]$) around the outline it changes smoothly. Chapter 2 derives it.

# %%
sigma = 1e-4
IMAGE_SIZE = 64
image_ref = lib3dr.soft_silhouette(two_spheres(config_a), cameras, image_size=IMAGE_SIZE, sigma=sigma)
print("observed silhouette:", tuple(image_ref.shape), "covered fraction %.3f" % image_ref.mean())
print(f"sqrt(sigma) = {math.sqrt(sigma):.3f} NDC units = {math.sqrt(sigma) * IMAGE_SIZE / 2:.2f} pixels")

# %% [markdown]
# The optimisation starts from a wrong guess and runs Adam on the mean squared difference between
# the rendered and the observed silhouette. Autograd differentiates through
# `soft_silhouette`: its backward pass returns how each vertex should move to reduce the loss,
# and the vertices depend on the centres through $r\,v + c$.

# %%
def silhouette_loss(centres):
    image = lib3dr.soft_silhouette(two_spheres(centres), cameras, image_size=IMAGE_SIZE, sigma=sigma)
    return ((image - image_ref) ** 2).mean(), image


start = torch.tensor([[0.1, -0.2, 0.3], [-0.35, 0.1, 0.0]])
centres = start.clone().requires_grad_(True)
optimizer = torch.optim.Adam([centres], lr=0.02)
losses, images = [], []
for step in tqdm(range(150), desc="fitting the centres"):
    optimizer.zero_grad()
    loss, image = silhouette_loss(centres)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
    if step % 5 == 0:
        images.append(image[0].detach())

# %% [markdown]
# The loss falls by several orders of magnitude, and the centres land on the true ones in all
# three coordinates, depth included: the radii are known, so with a perspective camera a
# sphere's apparent size tells how far away it is.

# %%
fig = plot_curves({"soft silhouette loss": losses}, title="Fitting the two centres with Adam",
                  xlabel="Adam step", ylabel="mean squared pixel error", log=True)
save_figure(fig, "01_fit_loss");
error = (centres.detach() - config_a).norm(dim=1)
# A pixel at depth 3 spans 2 * 3 tan(30°) / 64 world units (the camera's field of view is 60°).
pixel_size = 2 * 3.0 * math.tan(math.radians(30)) / IMAGE_SIZE
print("final loss %.2e (start %.2e); centre errors" % (losses[-1], losses[0]), error.numpy().round(4),
      f"= {(error / pixel_size).numpy().round(3)} pixels")
assert losses[-1] < 1e-3 * losses[0]
assert (error < 0.4 * pixel_size).all()      # the claim: the centres are found to within a fraction of a pixel


# %% [markdown]
# The figure below overlays the current silhouette (red) on the observed one (cyan): where they
# agree the pixel is white. The GIF `build/figures/01_fit.gif` shows every fifth step.

# %%
def overlay(current, target):
    """RGB image: current silhouette in the red channel, target in green and blue."""
    return torch.stack([current, target[0], target[0]], dim=-1)


fig = image_grid([overlay(images[0], image_ref), overlay(images[len(images) // 4], image_ref),
                  overlay(images[-1], image_ref)], columns=3, size=3.0,
                 titles=["start", f"step {5 * (len(images) // 4)}", f"step {5 * (len(images) - 1)}"],
                 suptitle="Current silhouette (red) over the observed one (cyan)")
save_figure(fig, "01_fit_before_after")
# The GIF is scaled up 4 times (nearest neighbour), so that the pixels stay visible.
write_gif([overlay(image, image_ref).repeat_interleave(4, 0).repeat_interleave(4, 1) for image in images],
          "01_fit", fps=8);

# %% [markdown]
# Gradients only reach as far as the soft outlines. If the small sphere starts where its
# silhouette does not overlap its target at all, the loss has no gradient that would pull it
# there: the pixels it wrongly covers push it away, while the pixels of its target are too far
# from any of its faces to feel them. The large sphere still converges; the small one settles in a
# local minimum, hidden behind the large sphere's silhouette.

# %%
far_start = torch.tensor([[0.0, -0.3, 0.3], [-0.2, 0.35, 0.0]])
centres = far_start.clone().requires_grad_(True)
optimizer = torch.optim.Adam([centres], lr=0.02)
for step in tqdm(range(150), desc="fitting from a far start"):
    optimizer.zero_grad()
    loss, stuck_image = silhouette_loss(centres)
    loss.backward()
    optimizer.step()
far_error = (centres.detach() - config_a).norm(dim=1)
print("loss %.2e; centre errors" % loss.item(), far_error.numpy().round(3))
# The claim: the large sphere lands within a fraction of a pixel, the small one stays far (> its radius).
assert far_error[0] < 0.4 * pixel_size and far_error[1] > RADII[1]
fig = image_grid([overlay(silhouette_loss(far_start)[1][0].detach(), image_ref),
                  overlay(stuck_image[0].detach(), image_ref)], columns=2, size=3.0,
                 titles=["far start", "after 150 steps"],
                 suptitle="A start outside the basin: the small sphere gets stuck")
save_figure(fig, "01_fit_far_start");

# %% [markdown]
# The silhouette of two spheres of *different* radii determines their centres. Had we given
# both the same radius, swapping them would fit the image just as well, and which sphere ends up
# where would depend on the starting point: the data, not the optimiser, decide what can be
# recovered.
#
# ## 3. The hard rasteriser has no useful gradient
#
# What if we had used the ordinary renderer? A hard rasteriser decides for each pixel which
# triangle is nearest among those that contain the pixel centre, and colours the pixel with it.
# The silhouette is then a comparison: `pix_to_face >= 0`, "some face covers this pixel". A
# comparison has no derivative, and autograd knows it: the loss is not even connected to the
# centres.

# %%
hard_rasterizer = MeshRasterizer(cameras=cameras, raster_settings=RasterizationSettings(image_size=IMAGE_SIZE))
centres = start.clone().requires_grad_(True)
fragments = hard_rasterizer(two_spheres(centres))
hard_silhouette = (fragments.pix_to_face[..., 0] >= 0).float()
hard_loss = ((hard_silhouette - image_ref) ** 2).mean()
print("hard silhouette loss %.4f, requires_grad = %s" % (hard_loss, hard_loss.requires_grad))
assert not hard_loss.requires_grad

# %% [markdown]
# The *colour* of a hard-rendered pixel, on the other hand, is connected to the geometry: the
# shader interpolates the normal, the position and the colour at the pixel from the vertices of
# its face, with the pixel's barycentric coordinates, and those move smoothly with the vertices.
# With Phong shading under a point light, a pixel *inside* a sphere changes its shade as the
# sphere moves, and autograd follows the change. What the hard rasteriser cannot follow is
# *where* the outline falls: a pixel just outside it shows the background until the outline
# crosses it, then jumps to the sphere's colour.
#
# We slide the red sphere of configuration A to the right (world $+X$), render it with the hard
# Phong shader ($K = 1$, no blur) and watch two pixels: $P_\text{in}$ under its centre and
# $P_\text{out}$ just right of its outline. Each pixel's value is the mean of its RGB.

# %%
def value_and_grad(value, x):
    gradient, = torch.autograd.grad(value, x, retain_graph=True)
    return value.item(), gradient.item()


def shifted(shift):
    """Configuration A with the red sphere moved by shift (a scalar tensor) along world x."""
    return config_a + torch.stack([shift, torch.zeros(()), torch.zeros(())]) * torch.tensor([[1.0], [0.0]])


phong_renderer = MeshRenderer(
    MeshRasterizer(cameras=cameras, raster_settings=RasterizationSettings(image_size=IMAGE_SIZE)),
    HardPhongShader(cameras=cameras, lights=PointLights(location=((2.0, 2.0, 3.0),)),
                    blend_params=BlendParams(background_color=(0.0, 0.0, 0.0))))
phong_start = phong_renderer(two_spheres(config_a))[0]
P_in = pixel_of(config_a[0], IMAGE_SIZE)
row_covered = phong_start[P_in[0], :, 3].nonzero()[:, 0]
P_out = (P_in[0], int(row_covered.max()) + 1)       # the first background pixel right of the outline
shifts = np.linspace(0.0, 2.5 * pixel_size, 16)
phong = {key: [] for key in ["in", "out", "outline"]}
phong_grads = {key: [] for key in phong}
for shift_value in shifts:
    shift = torch.tensor(float(shift_value), requires_grad=True)
    image = phong_renderer(two_spheres(shifted(shift)))[0]
    # "outline": the hard silhouette (alpha) weighted by the column index, which grows as the
    # outline moves right.
    for key, value in [("in", image[P_in][:3].mean()), ("out", image[P_out][:3].mean()),
                       ("outline", (image[..., 3] * torch.arange(IMAGE_SIZE)).sum())]:
        v, g = value_and_grad(value, shift)
        phong[key].append(v)
        phong_grads[key].append(g)
phong, phong_grads = {k: np.array(v) for k, v in phong.items()}, {k: np.array(v) for k, v in phong_grads.items()}
print("P_in =", P_in, "P_out =", P_out, f"; the sphere moves by {shifts[-1] / pixel_size:.1f} pixels")

# %% [markdown]
# And with respect to the vertices themselves: the gradient of $P_\text{in}$'s colour reaches the
# vertices of the face under the pixel and, through the vertex normals that Phong shading
# interpolates, the vertices around it.

# %%
verts_a = two_spheres(config_a).verts_packed().clone().requires_grad_(True)
mesh_a = Meshes(verts=[verts_a], faces=[two_spheres(config_a).faces_packed()],
                textures=two_spheres(config_a).textures)
vertex_grad, = torch.autograd.grad(phong_renderer(mesh_a)[0][P_in][:3].mean(), verts_a)
moved = vertex_grad.norm(dim=1) > 0
print(f"d P_in / d vertices: non-zero for {int(moved.sum())} of {len(verts_a)} vertices, "
      f"largest norm {vertex_grad.norm(dim=1).max():.3f}")
# The claim: the face's three corners and their neighbours (vertex normals), not the whole mesh.
assert 3 <= moved.sum() < 50


# %%
def plot_phong():
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    rows, cols = slice(P_in[0] - 14, P_in[0] + 15), slice(P_in[1] - 14, P_in[1] + 15)
    axes[0].imshow(phong_start[rows, cols, :3].clamp(0, 1).numpy(),
                   extent=(cols.start, cols.stop, rows.stop, rows.start))
    for name, (row, col) in [("$P_{in}$", P_in), ("$P_{out}$", P_out)]:
        axes[0].plot(col + 0.5, row + 0.5, "o", mfc="none", mec="yellow", ms=9, mew=2)
        axes[0].annotate(name, (col + 0.5, row - 1.5), color="yellow", ha="center", fontsize=11)
    axes[0].set(title="Hard Phong render (crop)", xlabel="pixel column", ylabel="pixel row")
    steps = shifts / pixel_size
    for key, label in [("in", "$P_{in}$"), ("out", "$P_{out}$")]:
        line, = axes[1].plot(steps, phong[key], ".-", label=label)
        axes[2].plot(steps, phong_grads[key], "-", lw=2, color=line.get_color(), label=f"{label}: autograd")
        axes[2].plot(steps, np.gradient(phong[key], shifts), ":", color=line.get_color(),
                     label=f"{label}: finite differences")
    axes[1].set(title="Pixel value (mean RGB)", xlabel="shift of the red sphere (pixels)", ylabel="value")
    axes[2].set(title="Its derivative with respect to the shift", xlabel="shift of the red sphere (pixels)",
                ylabel="d value / d shift")
    axes[2].set_ylim(-3, 3)
    for ax in axes[1:]:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Hard rasteriser, Phong shading: smooth inside a face, no gradient for the outline")
    fig.tight_layout()
    return fig


save_figure(plot_phong(), "01_phong_inside_and_edge");

# %% [markdown]
# Inside the sphere, the hard pixel slopes smoothly and autograd's derivative matches the finite
# differences. At $P_\text{out}$ the value jumps from the black background to the sphere's shade
# when the outline crosses the pixel; autograd reports 0 before the jump (the background does not
# depend on the sphere) and only the shading slope after it, never the jump. The same holds for
# the whole silhouette: it moves right with the sphere, yet its gradient is 0.

# %%
h = shifts[1] - shifts[0]
background = phong["out"] == 0.0
jump = np.diff(phong["out"]).max()
# The slope's integral (trapezoid rule) against the change of the value; the rule's error is about
# (h / 12) * sum |second differences of the slope| (its h^2 f''/12 per step), doubled as a margin.
rise = np.trapezoid(phong_grads["in"], shifts)
trapezoid_error = h / 12 * np.abs(np.diff(phong_grads["in"], 2)).sum()
print(f"P_in: slope in [{phong_grads['in'].min():.2f}, {phong_grads['in'].max():.2f}], integrates to "
      f"{rise:.4f}, value changes by {phong['in'][-1] - phong['in'][0]:.4f} (rule error ~{trapezoid_error:.1e})")
print(f"P_out: background for {int(background.sum())} shifts, gradient there "
      f"{np.abs(phong_grads['out'][background]).max()}, then a jump of {jump:.3f}")
print(f"silhouette: sum of alpha x column {phong['outline'][0]:.0f} -> {phong['outline'][-1]:.0f}, "
      f"gradient {np.abs(phong_grads['outline']).max()}")
assert (np.abs(phong_grads["in"]) > 0.05).all()                      # the shading slope: far from 0
assert abs(rise - (phong["in"][-1] - phong["in"][0])) <= 2 * trapezoid_error
# Exactly 0, not rounding: the background and the coverage mask do not depend on the vertices.
assert background[0] and not background[-1] and (phong_grads["out"][background] == 0).all()
# The outline crossed P_out: black to at least the ambient shade, 0.5 x the colour's mean 0.48.
assert jump > 0.2
assert phong["outline"][-1] > phong["outline"][0] and (phong_grads["outline"] == 0).all()

# %% [markdown]
# To watch the outlines and occlusions alone, we now turn shading off. We move the red sphere
# along the world $X$ axis, in front of a static blue sphere, and watch two pixels:
#
# * pixel $P_1$ lies on the red sphere's path over empty background: it sees the red sphere's
#   **outline** cross it twice;
# * pixel $P_2$ lies on the blue sphere: it sees the red sphere pass in front of the blue one,
#   i.e. the blue sphere disappear behind the red one and reappear — an **occlusion boundary**
#   crosses the pixel twice.
#
# Only ambient light is used, so each sphere has one flat colour and any change of a pixel comes
# from where the outlines fall, not from shading. The background is black.

# %%
blue_centre = torch.tensor([0.5, 0.0, -1.0])
SWEEP_SIZE = 64


def sweep_scene(x):
    """Red sphere (radius 0.35) at (x, 0, 0.5) in front of the blue one (radius 0.6)."""
    red_centre = torch.stack([x, torch.zeros(()), torch.tensor(0.5)])
    return two_spheres([red_centre, blue_centre], radii=(0.35, 0.6))


P1 = pixel_of([-0.5, 0.0, 0.5], SWEEP_SIZE)   # on the red path, left of the blue sphere
P2 = pixel_of(blue_centre, SWEEP_SIZE)        # on the red path, in front of the blue centre
print("P1 =", P1, "P2 =", P2)

# %% [markdown]
# For the soft side we need a colour renderer as well as the silhouette: `SoftPhongShader`
# blends the colours of the $K$ nearest faces at each pixel with weights that favour the nearest
# (sharpness $\gamma$), so a face that is only *partly* covering the pixel contributes part of
# its colour. Chapter 2 explains $\gamma$, $K$ and the blur radius; here they are simply set so
# that the blend is smooth ($K = 40$ faces per pixel, back faces culled).

# %%
gamma = 3e-3
sweep_sigma = 2e-3
ambient, black = AmbientLights(), BlendParams(sigma=sweep_sigma, gamma=gamma, background_color=(0.0, 0.0, 0.0))
hard_renderer = MeshRenderer(
    MeshRasterizer(cameras=cameras, raster_settings=RasterizationSettings(image_size=SWEEP_SIZE)),
    HardPhongShader(cameras=cameras, lights=ambient, blend_params=black))
soft_settings = RasterizationSettings(image_size=SWEEP_SIZE, blur_radius=default_blur_radius(sweep_sigma),
                                      faces_per_pixel=40, cull_backfaces=True)
soft_renderer = MeshRenderer(MeshRasterizer(cameras=cameras, raster_settings=soft_settings),
                             SoftPhongShader(cameras=cameras, lights=ambient, blend_params=black))


# %% [markdown]
# The scene at one position of the sweep, with the two pixels and the red sphere's path:

# %%
def show_sweep_scene(image):
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.imshow(image[..., :3].clamp(0, 1).numpy(), extent=(0, SWEEP_SIZE, SWEEP_SIZE, 0))
    ax.axhline(P1[0] + 0.5, color="white", ls="--", lw=0.8, label="red sphere's path")
    for name, (row, col) in [("$P_1$", P1), ("$P_2$", P2)]:
        ax.plot(col + 0.5, row + 0.5, "o", mfc="none", mec="yellow", ms=9, mew=2)
        ax.annotate(name, (col + 0.5, row - 2), color="yellow", ha="center", fontsize=12)
    ax.annotate("", xy=(30, 12), xytext=(8, 12), arrowprops=dict(arrowstyle="->", color="white"))
    ax.text(19, 10, "x grows", color="white", ha="center")
    ax.set(title="Sweep scene, red centre at x = -0.9", xlabel="pixel column",
           ylabel="pixel row")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


fig = show_sweep_scene(hard_renderer(sweep_scene(torch.tensor(-0.9)))[0])
save_figure(fig, "01_sweep_scene");

# %% [markdown]
# Now the sweep. At each position $x$ of the red centre we render, read the two pixels and ask
# autograd for $\partial\,\text{pixel} / \partial x$. For $P_1$ the soft value is the soft
# silhouette $\alpha$ (with a black background the outline is exactly what changes there); for
# $P_2$ it is the red channel of the soft colour image, since the silhouette is 1 throughout
# (either sphere covers $P_2$). The hard value at both pixels is the red channel of the hard
# image: 0 on the background, 0.2 on the blue sphere, 1 on the red one.

# %%
xs = np.linspace(-1.2, 1.4, 81)
sweep = {key: [] for key in ["hard P1", "hard P2", "soft P1", "soft P2"]}
grads = {key: [] for key in sweep}
# For each hard pixel, sum_i |d b_i / d x| over its three barycentric coordinates: the size of the
# terms that its gradient adds up (see below).
bary_terms = {key: [] for key in ["hard P1", "hard P2"]}
for x_value in tqdm(xs, desc="moving the red sphere"):
    x = torch.tensor(float(x_value), requires_grad=True)
    scene = sweep_scene(x)
    hard_fragments = hard_renderer.rasterizer(scene)
    hard = hard_renderer.shader(hard_fragments, scene)[0]
    soft_alpha = lib3dr.soft_silhouette(scene, cameras, image_size=SWEEP_SIZE, sigma=sweep_sigma)[0]
    soft_rgb = soft_renderer(scene)[0]
    for key, value in [("hard P1", hard[P1][0]), ("hard P2", hard[P2][0]),
                       ("soft P1", soft_alpha[P1]), ("soft P2", soft_rgb[P2][0])]:
        v, g = value_and_grad(value, x)
        sweep[key].append(v)
        grads[key].append(g)
    for key, pixel in [("hard P1", P1), ("hard P2", P2)]:
        bary = hard_fragments.bary_coords[0][pixel][0]
        size = sum(abs(value_and_grad(b, x)[1]) for b in bary) if bary.requires_grad else 0.0
        bary_terms[key].append(size)
sweep, grads = {k: np.array(v) for k, v in sweep.items()}, {k: np.array(v) for k, v in grads.items()}
bary_terms = {k: np.array(v) for k, v in bary_terms.items()}


# %%
def plot_sweep():
    fig, axes = plt.subplots(2, 2, figsize=(10, 6), sharex=True)
    titles = {"P1": "$P_1$: the red outline crosses the pixel", "P2": "$P_2$: red passes in front of blue"}
    for column, pixel in enumerate(["P1", "P2"]):
        top, bottom = axes[0, column], axes[1, column]
        top.plot(xs, sweep[f"hard {pixel}"], label="hard rasteriser", lw=2)
        top.plot(xs, sweep[f"soft {pixel}"], label="soft rasteriser", lw=2)
        bottom.plot(xs, grads[f"hard {pixel}"], label="hard: autograd", lw=2)
        bottom.plot(xs, grads[f"soft {pixel}"], label="soft: autograd", lw=2)
        bottom.plot(xs, np.gradient(sweep[f"soft {pixel}"], xs), "k:", label="soft: finite differences")
        top.set(title=titles[pixel], ylabel="pixel value")
        bottom.set(xlabel="red sphere centre x (world units)", ylabel="d pixel / d x")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    axes[1, 0].legend(fontsize=8)
    fig.suptitle("A pixel's value and its gradient as the red sphere moves")
    fig.tight_layout()
    return fig


save_figure(plot_sweep(), "01_pixel_sweep");

# %% [markdown]
# With flat colours the hard curves are steps: the value is constant while the same surface
# covers the pixel and jumps when an outline or an occlusion boundary crosses it. Autograd
# differentiates each constant piece correctly — and the derivative of a constant is zero. (With
# shading the pieces would slope, as $P_\text{in}$ did above, but the steps would stay.) The
# jumps, which carry the information about where the sphere is, have no derivative at all. An
# optimiser that fits outlines through the hard renderer sees a flat landscape and never moves.
#
# The soft curves change over a band of width about $\sqrt{\sigma}$: the pixel "feels" the
# sphere before the outline reaches it. Their gradient is non-zero exactly around the events,
# positive while the sphere arrives (the pixel gets redder as $x$ grows) and negative while it
# leaves, and it agrees with finite differences of the soft value: it is the true derivative of
# a smooth function.

# %% [markdown]
# The hard gradient is zero only up to rounding. With ambient light a hard pixel's colour is
# $\sum_i b_i c$, the same colour $c$ at the three corners, and its derivative
# $c \sum_i \partial b_i / \partial x$ vanishes because $\sum_i b_i = 1$. In float32 the three
# terms are each off by a few dozen roundings of their own size, so what is left is at most about
# $32\,u \sum_i |c\, \partial b_i/\partial x|$, with $u = 2^{-24}$ — and $c \le 1$ here.

# %%
u = 2.0**-24                     # float32's unit roundoff
for pixel in ["P1", "P2"]:
    hard_values, hard_grads = sweep[f"hard {pixel}"], grads[f"hard {pixel}"]
    soft_values, soft_grads = sweep[f"soft {pixel}"], grads[f"soft {pixel}"]
    # Flat colours 0, 0.2 and 1, each from a handful of roundings: far below the 1e-4 of round(4).
    assert len(np.unique(hard_values.round(4))) == 2, "the hard pixel takes exactly two values"
    # Zero up to the rounding of sum_i c db_i/dx (32 roundings per term, see above).
    assert (np.abs(hard_grads) <= 32 * u * bary_terms[f"hard {pixel}"]).all(), "the hard gradient is zero"
    red = hard_values > hard_values.min()                 # where the hard pixel is red
    arrive, leave = xs < xs[red].min(), xs > xs[red].max()
    # Signs, not rounding: 1e-3 is below 1e-4 of the peak slopes (10 to 20).
    assert soft_grads[arrive].max() > 1.0 and soft_grads[arrive].min() > -1e-3, "arriving: d/dx > 0"
    assert soft_grads[leave].min() < -1.0 and soft_grads[leave].max() < 1e-3, "leaving: d/dx < 0"
    # The gradient is the slope of the soft curve: on each side of the hard edge it integrates
    # (trapezoid rule, step h) to the change of the value, up to the rule's error, about
    # (h / 12) * sum |second differences of the slope|, doubled as a margin.
    h = xs[1] - xs[0]
    for side in (arrive, leave):
        change = soft_values[side][-1] - soft_values[side][0]
        integral = np.trapezoid(soft_grads[side], xs[side])
        rule_error = h / 12 * np.abs(np.diff(soft_grads[side], 2)).sum()
        assert abs(integral - change) <= 2 * rule_error, (pixel, integral, change, rule_error)
    rise = np.trapezoid(soft_grads[arrive], xs[arrive])
    print(f"{pixel}: hard |grad| <= {np.abs(hard_grads).max():.1e} "
          f"(rounding bound {(32 * u * bary_terms[f'hard {pixel}']).max():.1e}); soft grad in "
          f"[{soft_grads.min():.1f}, {soft_grads.max():.1f}], integrates to {rise:.2f} before the hard edge")

# %% [markdown]
# The soft pixel is not "exact" any more: its outline is blurred by an amount we choose with
# $\sigma$. Small $\sigma$ gives an image close to the hard one and a gradient concentrated in a
# thin band at the outline; large $\sigma$ gives a blurry image whose gradient reaches pixels
# further away. The reference silhouette above used $\sigma = 10^{-4}$, whose band $\sqrt{\sigma}$
# is a fraction of a pixel at $64 \times 64$ (printed where it was rendered).

# %%
sigmas = [1e-5, 1e-4, 1e-3, 1e-2]
alphas = [lib3dr.soft_silhouette(two_spheres(config_a), cameras, image_size=128, sigma=s)[0] for s in sigmas]
fig = image_grid(alphas, titles=[f"σ = {s:g}" for s in sigmas], columns=4, size=2.6,
                 suptitle="Soft silhouettes of configuration A for four values of σ")
save_figure(fig, "01_sigma");

# %% [markdown]
# Two details are visible. The soft silhouette spreads *outside* the hard one, more with larger
# $\sigma$: near the outline several faces each add a partial probability. And at
# $\sigma = 10^{-4}$ the triangles' edges show faintly inside the spheres: a pixel centre right
# on the edge between two faces is only half inside each, so those two alone give
# $\alpha = 1 - \frac12 \cdot \frac12 = \frac34$ there, and the faces around make up only part of
# the rest. Chapter 2 explains both.

# %%
hard_mask = hard_rasterizer(two_spheres(config_a), raster_settings=RasterizationSettings(image_size=128))
hard_mask = hard_mask.pix_to_face[0, ..., 0] >= 0
spread = [int(((a > 0.01) & ~hard_mask).sum()) for a in alphas]
print("pixels outside the hard silhouette with alpha > 0.01:", spread)
assert spread == sorted(spread) and spread[0] < spread[-1]
assert alphas[1][hard_mask].min() < 0.99 < alphas[2][hard_mask].min()

# %% [markdown]
# ## Summary
#
# * Rendering is a function $f(\theta)$ from scene parameters to pixels; inverse graphics
#   minimises $\lVert f(\theta) - I_\text{ref} \rVert^2$ over $\theta$ and needs
#   $\partial f / \partial \theta$.
# * With the soft silhouette, Adam recovers the two sphere centres — depth included — from a
#   $64 \times 64$ silhouette in 150 steps.
# * A hard rasteriser's pixels do vary smoothly with the geometry inside a face, through shading
#   and interpolated attributes. What it has no gradient for is *where* an outline or an
#   occlusion boundary falls: there the pixel jumps, and the gradient on either side says nothing
#   about the jump. The hard silhouette is not even connected to the geometry in the autograd
#   graph.
# * The soft rasteriser replaces "is the pixel inside?" by a smooth probability controlled by
#   $\sigma$ (and, for colours, a depth weighting controlled by $\gamma$): the pixel values become
#   smooth, and their gradients point the right way.
#
# ## Exercises
#
# Each exercise has a cell for your answer (replace the line that raises `NotImplementedError`)
# and a test cell below it, which checks your answer and tells you what it expected and what came.
# When the notebook is graded, hidden tests in the same test cells decide the points.
#
# **Exercise 1.1 — the gradient of a soft edge, by hand.** In one dimension, a disk of radius
# $r$ centred at $c$ covers the point $p$ with the soft value
# $a(c) = \operatorname{sigmoid}\big((r - |p - c|)/s\big)$. Derive $\partial a / \partial c$ and
# write it as a function `soft_edge_gradient(c, p, r, s)` of tensors, elementwise, with torch
# operations (autograd is what the test compares with, so it is blocked while your function runs).
# Where is the gradient largest, and what happens to it as $s \to 0$?

# %% nbgrader={"grade": false, "grade_id": "ex1_1_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def soft_edge_gradient(c, p, r, s):
    """d/dc sigmoid((r - |p - c|) / s), elementwise: tensors in, a tensor of their shape out."""
    ### BEGIN SOLUTION
    a = torch.sigmoid((r - (p - c).abs()) / s)
    return a * (1 - a) * torch.sign(p - c) / s
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex1_1_tests", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
assert chapter01.check_soft_edge_gradient(soft_edge_gradient)
### BEGIN HIDDEN TESTS
import importlib
from lib3dr_book.exercises import shortcuts
shortcuts = importlib.reload(shortcuts)  # as shipped, whatever the notebook did to it


def _soft_edge_gradient_reference(c, p, r, s):
    u = (r - (p - c).abs()) / s
    return torch.sigmoid(u) * torch.sigmoid(-u) * torch.sign(p - c) / s


_g = torch.Generator().manual_seed(7)
_c, _u, _v, _w = (torch.rand(4, 16, generator=_g, dtype=torch.float64) for _ in range(4))
_r, _s = 0.2 + 0.4 * _u, 10 ** (-0.5 - 2 * _v)
_p = _c + torch.where(_w < 0.5, 1.0, -1.0) * (_r + (_w - 0.5) * 4 * _s)  # near the edge
_p[0] = _c[0] + 2 * _w[0] - 1                                             # anywhere
_answer = shortcuts.call_honestly(soft_edge_gradient, (_c, _p, _r, _s), targets=shortcuts.AUTOGRAD,
                                  names=shortcuts.AUTOGRAD_NAMES, why="write the derivative by hand")
assert torch.is_tensor(_answer) and _answer.shape == _c.shape, "hidden test: not elementwise on (4, 16) tensors"
assert torch.allclose(_answer.detach().double(), _soft_edge_gradient_reference(_c, _p, _r, _s),
                      rtol=1e-6, atol=1e-9), "hidden test: wrong gradient on other inputs"
### END HIDDEN TESTS

# %% [markdown]
# **Exercise 1.2 — recover a sphere's size and position.** `mystery` below is the $64 \times 64$
# soft silhouette ($\sigma = 10^{-4}$, the camera of this chapter) of one `ico_sphere(2)` of
# unknown radius, whose centre lies somewhere in the plane $z = 0$. Write `fit_sphere(image_ref)`
# that fits the centre's $x$, $y$ and the radius with Adam, starting from radius 0.5 at the
# origin (`chapter01.sphere_silhouette(centre, radius)` renders a candidate, differentiably), and
# returns the centre (a `(3,)` tensor) and the radius. Then let $z$ free as well: why does the fit
# no longer find the right sphere, although its silhouette matches?

# %%
mystery = torch.from_numpy(np.load(data_path("exercises", "mystery_sphere.npy")))
print("observed silhouette:", tuple(mystery.shape), "covered fraction %.3f" % mystery.mean())


# %% nbgrader={"grade": false, "grade_id": "ex1_2_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def fit_sphere(image_ref, steps=150):
    """(centre (3,) with z = 0, radius) of the sphere whose silhouette is image_ref (1, 64, 64)."""
    ### BEGIN SOLUTION
    xy = torch.zeros(2, requires_grad=True)
    radius = torch.tensor(0.5, requires_grad=True)
    optimizer = torch.optim.Adam([xy, radius], lr=0.02)
    for _ in range(steps):
        optimizer.zero_grad()
        centre = torch.cat([xy, torch.zeros(1)])
        loss = ((chapter01.sphere_silhouette(centre, radius) - image_ref) ** 2).mean()
        loss.backward()
        optimizer.step()
    return torch.cat([xy, torch.zeros(1)]).detach(), float(radius.detach())
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex1_2_tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
fitted_centre, fitted_radius = fit_sphere(mystery)
print("fitted centre", np.round(np.asarray(fitted_centre, dtype=float), 3), "radius %.3f" % float(fitted_radius))
assert chapter01.check_sphere_fit(fitted_centre, fitted_radius, mystery)
### BEGIN HIDDEN TESTS
# The sphere that made data/exercises/mystery_sphere.npy, and the check that it did.
_true_centre, _true_radius = torch.tensor([0.25, -0.3, 0.0]), 0.35
_observed = torch.from_numpy(np.load(data_path("exercises", "mystery_sphere.npy")))
assert torch.allclose(chapter01.sphere_silhouette(_true_centre, _true_radius), _observed, atol=1e-4)
_centre = torch.as_tensor(fitted_centre, dtype=torch.float32).detach().reshape(-1)
assert (_centre - _true_centre).norm() <= 0.02 and abs(float(fitted_radius) - _true_radius) <= 0.02, (
    "hidden test: this is not the sphere that made the image")
### END HIDDEN TESTS
