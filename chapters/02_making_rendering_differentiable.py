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
# # Chapter 2 — Making rendering differentiable
#
# Chapter 1 showed what a hard rasteriser's gradient misses. Inside a face a shaded pixel does
# vary smoothly with the vertices, but which surface a pixel shows changes in jumps, and there
# is no gradient for *where* an outline or an occlusion boundary falls. Soft Rasterizer (Liu et
# al., ICCV 2019) makes coverage itself smooth. This chapter opens the soft rasteriser up:
#
# 1. what the rasteriser tells about each pixel: the **fragments** `pix_to_face`, `zbuf`,
#    `bary_coords` and `dists`, and what `blur_radius` and `faces_per_pixel` change;
# 2. how fragments become a soft silhouette — the coverage probability
#    $D = \operatorname{sigmoid}(-d/\sigma)$ and $\alpha = 1 - \prod_k (1 - D_k)$ — and soft
#    colours, with depth weights sharpened by $\gamma$;
# 3. how lib3dr's readable reference implementation computes the fragments in two steps, one
#    discrete and one smooth;
# 4. the three implementations side by side, how closely float32 lets them agree, and what the
#    fragments cost in memory;
# 5. two traps found while building the library, both caused by keeping only the $K$ nearest
#    faces of each pixel.

# %%
import inspect
import math
import time

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display
from tqdm.auto import tqdm

import lib3dr
import lib3dr.renderer.rasterize_torch
from lib3dr.renderer.blending import coverage_probability
from lib3dr_book.exercises import chapter02
from lib3dr.io import load_objs_as_meshes
from lib3dr_book.paths import data_path
from lib3dr_book.plotting import image_grid, save_figure
from lib3dr.renderer.blending import silhouette_from_dists
from lib3dr.renderer.memory import memory_estimate, RasterMemoryError, set_memory_limit
from lib3dr.renderer.rasterizer import default_blur_radius
from lib3dr.renderer import (BlendParams, FoVPerspectiveCameras, HardPhongShader, MeshRasterizer,
                             MeshRenderer, PointLights, RasterizationSettings, SoftPhongShader,
                             look_at_view_transform)
from lib3dr.structures import Meshes
from lib3dr.utils import ico_sphere

torch.manual_seed(0)
print("backends available here:", lib3dr.backends())

# %% [markdown]
# ## 1. The cow and its fragments
#
# Our subject is the textured cow that PyTorch3D's tutorials use (the cell prints its size),
# seen from distance 2.7, elevation 10° and azimuth 150°.

# %%
cow = load_objs_as_meshes([data_path("cow_mesh", "cow.obj")])
R, T = look_at_view_transform(2.7, 10, 150)
cameras = FoVPerspectiveCameras(R=R, T=T)
lights = PointLights(location=((2.0, 2.0, -2.0),))
verts, faces = cow.verts_packed(), cow.faces_packed()
print(f"{len(verts)} vertices, {len(faces)} faces")

# %%
IMAGE_SIZE = 128
COW = (slice(12, 102), slice(30, 100))   # rows and columns of the 128 x 128 images that hold the cow
hard_renderer = MeshRenderer(
    MeshRasterizer(cameras=cameras, raster_settings=RasterizationSettings(image_size=IMAGE_SIZE)),
    HardPhongShader(cameras=cameras, lights=lights))
hard_image = hard_renderer(cow)[0]
fig = image_grid([hard_image[COW]], titles=["hard Phong render (cropped)"], size=3.5)
save_figure(fig, "02_cow");

# %% [markdown]
# A rasteriser answers, for every pixel, *which faces are there and where*. lib3dr (like
# PyTorch3D) returns `Fragments` with the $K$ = `faces_per_pixel` faces nearest to the camera
# among those that cover the pixel, nearest first:
#
# | field | shape | meaning |
# | --- | --- | --- |
# | `pix_to_face` | $(N, H, W, K)$ int64 | index of the face, $-1$ if fewer than $K$ faces cover the pixel |
# | `zbuf` | $(N, H, W, K)$ | view-space depth of the face at the pixel |
# | `bary_coords` | $(N, H, W, K, 3)$ | barycentric coordinates of the pixel centre in the face |
# | `dists` | $(N, H, W, K)$ | signed **squared** distance (NDC) from the pixel centre to the face's edges, negative inside |
#
# A face *covers* a pixel when the pixel centre is inside it, or — with a blur — when its squared
# distance to the face is less than `blur_radius`. Note the units: like PyTorch3D, `blur_radius`
# is compared with the squared distance. We rasterise with $\sigma = 10^{-4}$ and the blur radius
# that goes with it (section 2 explains the choice), keeping $K = 50$ faces per pixel (section 5
# shows why so many).

# %%
sigma = 1e-4
gamma = 1e-4
blur_radius = default_blur_radius(sigma)
K = 50
settings = RasterizationSettings(image_size=IMAGE_SIZE, blur_radius=blur_radius, faces_per_pixel=K)
rasterizer = MeshRasterizer(cameras=cameras, raster_settings=settings)
fragments = rasterizer(cow)
print(f"blur_radius = {blur_radius:.2e} (squared NDC), i.e. {math.sqrt(blur_radius) * IMAGE_SIZE / 2:.1f} pixels")
for name in ["pix_to_face", "zbuf", "bary_coords", "dists"]:
    print(f"{name:12s}", tuple(getattr(fragments, name).shape), getattr(fragments, name).dtype)


# %% [markdown]
# The nearest fragment ($k = 0$) of each pixel, as images, first without blur and with $K = 1$
# (what a hard rasteriser sees), then with the blur. Face indices are shown in random colours
# (neighbouring faces have unrelated indices); the barycentric coordinates as RGB, so each
# triangle shows its three corners as red, green and blue; `dists` in a diverging colour map:
# blue inside the face, red outside it. For this figure only we rasterise at $256 \times 256$,
# where a face spans a few pixels, and crop to the cow.

# %%
hard_fragments = rasterizer(cow, raster_settings=RasterizationSettings(image_size=IMAGE_SIZE))
figure_fragments = [rasterizer(cow, raster_settings=RasterizationSettings(image_size=256, blur_radius=radius,
                                                                           faces_per_pixel=k))
                    for radius, k in [(0.0, 1), (blur_radius, K)]]


def face_colours(pix_to_face, seed=0):
    """A random RGB colour per face index, black where there is no face: (H, W, 3)."""
    palette = torch.rand(int(pix_to_face.max()) + 2, 3, generator=torch.Generator().manual_seed(seed))
    palette[0] = 0.0
    return palette[pix_to_face + 1]


def show_fragments(rows, box=(24, 204, 60, 200)):
    """One row of four images (k = 0) per (fragments, label) in rows, cropped to box = (top, bottom, left, right)."""
    top, bottom, left, right = box
    fig, axes = plt.subplots(len(rows), 4, figsize=(15, 3.9 * len(rows)), squeeze=False)
    for row_axes, (frags, label) in zip(axes, rows):
        crop = (0, slice(top, bottom), slice(left, right), 0)
        covered = frags.pix_to_face[crop] >= 0
        zbuf = torch.where(covered, frags.zbuf[crop], torch.nan)
        dists = torch.where(covered, frags.dists[crop], torch.nan)
        limit = float(dists[covered].abs().quantile(0.99))
        panels = [(face_colours(frags.pix_to_face[crop]), "pix_to_face (random colours)", {}),
                  (zbuf, "zbuf: depth", dict(cmap="viridis")),
                  (frags.bary_coords[crop].clamp(0, 1), "bary_coords as RGB", {}),
                  (dists, "dists: signed squared distance", dict(cmap="coolwarm", vmin=-limit, vmax=limit))]
        for ax, (image, title, style) in zip(row_axes, panels):
            shown = ax.imshow(image.numpy(), extent=(left, right, bottom, top), **style)
            ax.set(title=f"{label}\n{title}", xlabel="pixel column", ylabel="pixel row")
            if style:
                fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(f"Fragments of the nearest face (k = 0), {rows[0][0].zbuf.shape[2]} x {rows[0][0].zbuf.shape[1]}")
    fig.tight_layout()
    return fig


fig = show_fragments([(figure_fragments[0], "no blur, K = 1"),
                      (figure_fragments[1], f"blur_radius {blur_radius:.1e}, K = {K}")])
save_figure(fig, "02_fragments");

# %% [markdown]
# Without blur, `dists` is negative everywhere: the only face a pixel sees is one that contains
# it, and $-d$ is its squared distance to that face's nearest edge (pale along the edges). With
# the blur, the nearest face is a *neighbour* almost everywhere, and `dists` is positive. Its
# depth is taken at its point nearest the pixel (the barycentrics are clipped to the face, which
# is why the colours of the bary image are saturated), and on a surface that slopes away from the
# camera some neighbour within the blur radius is always nearer than the face under the pixel.
# Section 5 shows what that means for $K$.

# %%
inside_slot = (fragments.dists < 0) & (fragments.pix_to_face >= 0)
hit = fragments.pix_to_face[..., 0] >= 0
no_blur_inside = (hard_fragments.dists[..., 0] < 0)[hit].float().mean()
blur_inside = inside_slot[..., 0][hit].float().mean()
print(f"no blur: dists < 0 at {100 * no_blur_inside:.1f}% of the covered pixels")
print(f"blur:    the nearest face contains the pixel at {100 * blur_inside:.1f}% of the covered pixels")
assert (hard_fragments.dists[hard_fragments.pix_to_face >= 0] <= 0).all()
assert inside_slot[..., 0][hit].float().mean() < 0.05

# %% [markdown]
# What the figure shows, checked:
#
# * the padding is consistent: where `pix_to_face` is $-1$, `zbuf`, `bary_coords` and `dists`
#   are $-1$ too — **a padded slot has `dists` = $-1$, which looks like "deep inside a face"**;
#   every function that uses `dists` must mask the padding out (exercise 2.1 is about this);
# * the $K$ faces are sorted by depth, nearest first;
# * barycentric coordinates sum to one (they are clipped to the face with a blur, so they stay in
#   $[0, 1]$ even in the blur band);
# * `dists` is negative for faces that contain the pixel centre and below `blur_radius` for all
#   the others.

# %%
p2f, zbuf, bary, dists = (fragments.pix_to_face, fragments.zbuf, fragments.bary_coords,
                          fragments.dists)
covered = p2f >= 0
assert ((zbuf == -1) & (dists == -1) & (bary == -1).all(-1))[~covered].all()
assert (zbuf[..., 1:] >= zbuf[..., :-1])[covered[..., 1:]].all(), "nearest first"
# Clipped barycentrics are c_i / (c_0 + c_1 + c_2): two additions, three divisions and the sum here,
# each one rounding of at most u = 2^-24 relative to numbers at most 1.
assert ((bary.sum(-1)[covered] - 1).abs() <= 8 * 2.0**-24).all() and (bary[covered] >= 0).all()
assert (dists[covered] < blur_radius).all() and (dists[covered] < 0).any() and (dists[covered] > 0).any()
print("covered slots: %.1f%% of the %d" % (100 * covered.float().mean(), covered.numel()))

# %% [markdown]
# ### What `blur_radius` and `faces_per_pixel` do
#
# Without blur a pixel is covered only by faces that contain its centre: on a closed mesh such as
# the cow, the front and the back of the body, and more where legs or ears overlap (the cell
# prints the median count). A blur lets each face reach pixels up to $\sqrt{\text{blur\_radius}}$ away from it, so
# near every edge of the mesh a pixel sees the faces on both sides, and around the outline it
# sees faces it is not inside. `faces_per_pixel` ($K$) then keeps only the nearest $K$ of them.
# With a large $K$ we can count how many faces lie within the blur radius of each pixel:

# %%
counts = {}
for radius in [0.0, default_blur_radius(1e-5), default_blur_radius(1e-4)]:
    many = RasterizationSettings(image_size=IMAGE_SIZE, blur_radius=radius, faces_per_pixel=100)
    counts[radius] = (rasterizer(cow, raster_settings=many).pix_to_face[0] >= 0).sum(-1)
fig = image_grid([c[COW] for c in counts.values()], columns=3, size=3.6, cmap="magma", colorbar=True, vmin=0,
                 titles=[f"blur_radius = {r:.1e}: max {int(c.max())}" for r, c in counts.items()],
                 suptitle="Number of faces covering each pixel (K = 100, cropped to the cow)")
save_figure(fig, "02_faces_per_pixel");
totals = [int(c.sum()) for c in counts.values()]
assert counts[0.0].max() < 20 and totals == sorted(totals) and totals[0] < totals[1] < totals[2]
print("median faces per covered pixel:", [int(c[c > 0].median()) for c in counts.values()])

# %% [markdown]
# Many pixels lie within the blur radius of tens of faces. $K$ decides how many of those reach
# the blending step. Where, among the nearest faces, is the one that actually contains the pixel?

# %%
rank = torch.where(inside_slot.any(-1), inside_slot.float().argmax(-1), -1)[0]
ranks = rank[rank >= 0]
fig, ax = plt.subplots(figsize=(6.5, 3.5))
ax.bar(*torch.unique(ranks, return_counts=True), color="tab:blue")
ax.axvline(7.5, color="k", ls=":", label="K = 8 keeps ranks 0-7")
ax.set(title=f"Rank of the face containing the pixel among the K = {K} nearest",
       xlabel="rank (0 = nearest)", ylabel="number of pixels")
ax.legend()
fig.tight_layout()
save_figure(fig, "02_rank_of_containing_face");
print(f"median rank {int(ranks.median())}, {int((ranks >= 8).sum())} pixels beyond rank 7, max {int(ranks.max())}")
assert (ranks >= 8).sum() > 100

# %% [markdown]
# With $K = 8$ every pixel whose face ranks beyond 7 loses it — too small a $K$ silently drops
# faces, which section 5 shows is not harmless.
#
# ## 2. From distances to a soft silhouette
#
# Soft Rasterizer turns the signed squared distance $d$ of a face into the probability that the
# face covers the pixel,
#
# $$ D = \operatorname{sigmoid}\!\left(-\frac{d}{\sigma}\right) = \frac{1}{1 + e^{d/\sigma}}. $$
#
# On the face's edge ($d = 0$) $D = \tfrac12$; inside it rises to 1, outside it falls to 0, over a
# band of squared distance about $\sigma$. Since $D$ never reaches exactly zero, the rasteriser
# must decide where to stop looking: PyTorch3D's recipe, `default_blur_radius(sigma)`, is the
# distance at which $D$ has fallen to $10^{-4}$,
#
# $$ \text{blur\_radius} = \sigma \ln\!\left(\frac{1}{10^{-4}} - 1\right) \approx 9.2\,\sigma. $$

# %%
d = torch.linspace(-5e-3, 5e-3, 1001)
fig, ax = plt.subplots(figsize=(6.5, 3.5))
for s in [1e-5, 1e-4, 5e-4]:
    line, = ax.plot(d.numpy(), torch.sigmoid(-d / s).numpy(), label=f"σ = {s:g}")
    ax.axvline(default_blur_radius(s), color=line.get_color(), ls=":", lw=1)
ax.set(title="Coverage probability D = sigmoid(-d / σ); dotted: blur radius",
       xlabel="signed squared distance d (NDC²), negative inside", ylabel="D")
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()
save_figure(fig, "02_sigmoid");
# Exact by construction: checked in float64, where ln and sigmoid are a few ulps (2^-53) off.
assert abs(torch.sigmoid(torch.tensor(-default_blur_radius(sigma) / sigma, dtype=torch.float64)) - 1e-4) < 1e-4 * 1e-13

# %% [markdown]
# A pixel near an edge is covered by several faces with partial probabilities. Treating them as
# independent, the probability that *at least one* covers the pixel is
#
# $$ \alpha = 1 - \prod_{k=1}^{K} (1 - D_k), $$
#
# the soft silhouette. Padded slots must contribute $D = 0$. `lib3dr.renderer.blending.coverage_probability`
# computes $D$ from the fragments and `lib3dr.renderer.blending.silhouette_from_dists` computes
# $\alpha$; the `SoftSilhouetteShader` returns $\alpha$ as its alpha channel.

# %%
D = coverage_probability(fragments, sigma)
alpha = silhouette_from_dists(fragments.pix_to_face, fragments.dists, sigma)
fig = image_grid([D[0, ..., 0][COW], D[0].amax(-1)[COW], alpha[0][COW]], columns=3, size=3.6, colorbar=True,
                 vmin=0, vmax=1, titles=["$D_0$ (nearest face)", "$\\max_k D_k$", "α = 1 - Π(1 - $D_k$)"],
                 suptitle=f"Coverage probabilities and soft silhouette, σ = {sigma:g} (cropped to the cow)")
save_figure(fig, "02_probability_alpha");

# %% [markdown]
# $D_0$ is small almost everywhere: the nearest face is usually a neighbour the pixel is outside
# of (section 1). Even the face that contains the pixel is far from certain: $\max_k D_k$ is only
# a little above $\frac12$, brighter near the centres of faces. The faces are small on screen,
# their edges a couple of pixels long (printed below), so the squared distance from a pixel
# centre to the nearest edge stays below $\sigma$. No single
# face makes the pixel certain; the product over all $K$ — the face under the pixel and its
# neighbours in the blur band, each with a partial probability — does: $\alpha$ is 1 inside the
# cow and falls smoothly to 0 across its outline. The fused kernel behind `lib3dr.soft_silhouette`
# (used in chapter 1) computes the same $\alpha$ without storing fragments — section 4 explains
# why.
#
# "The same" means: equal up to float32 rounding, and how large that may be follows from the
# arithmetic. A float32 operation rounds its result to within a relative $u = 2^{-24} \approx
# 6 \cdot 10^{-8}$. A distance $d = |p - q|^2$ comes from the pixel centre $p$ and a point $q$ of
# the face in NDC, numbers of size about 1 that carry a few roundings each (the camera's and the
# kernel's; we allow $c = 8$), so $p - q$ is off by up to $c\,u$ and $d$ by
# $\delta d = 2 c\,u \sqrt{|d|}$. The blend divides that by $\sigma$: $\log(1 - D_k)$ moves by
# $D_k\,\delta d_k / \sigma$. Adding the $K$ logarithms (each within $c\,u$) in some order costs
# up to $K u \sum_k |\log(1 - D_k)|$, and $\alpha = 1 - T$ with $T = \prod_k (1 - D_k)$ feels
# all of it times $T$:
#
# $$ |\delta\alpha| \le T \Big( \sum_k \frac{D_k\,\delta d_k}{\sigma} + (K + c)\,u \sum_k |\log(1 - D_k)| \Big) + c\,u. $$
#
# Two computations that each satisfy this may differ by twice as much.

# %%
u = 2.0**-24          # float32's unit roundoff
c = 8                 # roundings carried by an input of a fragment (the camera's and the kernel's)


def silhouette_rounding(frags, sigma):
    """The bound above on float32 rounding in alpha, per pixel (N, H, W), from the fragments."""
    valid = frags.pix_to_face >= 0
    d = frags.dists.double()
    D = torch.sigmoid(-d / sigma) * valid
    log_terms = torch.nn.functional.logsigmoid(d / sigma) * valid      # log(1 - D_k)
    delta_d = 2 * c * u * (d.abs().sqrt() + d.abs())                     # + |d|: d's own rounding
    T = log_terms.sum(-1).exp()
    return T * ((D * delta_d).sum(-1) / sigma + (d.shape[-1] + c) * u * log_terms.abs().sum(-1)) + c * u


fused = lib3dr.soft_silhouette(cow, cameras, image_size=IMAGE_SIZE, sigma=sigma, faces_per_pixel=K)
alpha_bound = 2 * silhouette_rounding(fragments, sigma)     # two computations, each within the bound
print(f"max |fused - fragments| = {(fused - alpha).abs().max():.1e}, at most "
      f"{((fused - alpha).abs() / alpha_bound).max():.2f} of the rounding bound (largest {alpha_bound.max():.1e})")
assert ((fused - alpha).abs() <= alpha_bound).all()
inside = hard_image[..., 3] > 0
print("mean alpha on the hard silhouette %.3f, off it %.3f" % (alpha[0][inside].mean(), alpha[0][~inside].mean()))
assert alpha[0][inside].min() > 0.5 and alpha[0][inside].mean() > 0.99 and alpha[0][~inside].mean() < 0.05
print("median of max_k D_k on the cow: %.2f" % D[0].amax(-1)[inside].median())
ndc_xy = rasterizer.transform(cow).verts_packed()[:, :2]
edges = (ndc_xy[faces[:, [1, 2, 0]]] - ndc_xy[faces]).norm(dim=-1) * IMAGE_SIZE / 2     # in pixels
print(f"median edge on screen {edges.median():.1f} pixels; "
      f"sqrt(sigma) = {math.sqrt(sigma) * IMAGE_SIZE / 2:.2f} pixels")
assert D[0, ..., 0][inside].median() < 0.1 and 0.5 < D[0].amax(-1)[inside].median() < 0.8

# %% [markdown]
# ### Soft colours: depth weights sharpened by $\gamma$
#
# For colour images the $K$ faces at a pixel also have to agree on *which colour* wins. The hard
# shader takes the nearest. Soft Rasterizer blends all of them, weighting each by its coverage
# probability and by how near it is. `softmax_rgb_blend` (PyTorch3D's formula, which lib3dr
# keeps) maps depth to a *normalised* depth in $[0, 1]$, reversed so that the nearest face gets
# the largest value,
#
# $$ z_k = \frac{z_\text{far} - \text{zbuf}_k}{z_\text{far} - z_\text{near}}. $$
#
# PyTorch3D's code (and lib3dr's, which follows it) names this `z_inv`, but it is linear in the
# depth, not an inverse depth. Soft Rasterizer's paper describes its $z_k$ as a normalised
# *inverse* depth, which would be $(1/\text{zbuf}_k - 1/z_\text{far}) / (1/z_\text{near} -
# 1/z_\text{far})$; the code released with the paper normalises linearly, as here. The difference
# is discussed after the weights.
#
# and gives face $k$ and the background the weights
#
# $$ w_k = D_k \exp\!\left(\frac{z_k - z_\text{max}}{\gamma}\right), \qquad
#    w_b = \exp\!\left(\frac{\varepsilon - z_\text{max}}{\gamma}\right), \qquad
#    \text{rgb} = \frac{\sum_k w_k c_k + w_b\, c_b}{\sum_k w_k + w_b}, $$
#
# with $z_\text{max} = \max_k z_k$ the nearest face and $\varepsilon = 10^{-10}$. Subtracting
# $z_\text{max}$ changes nothing mathematically (numerator and denominator are scaled alike) but
# keeps the exponentials finite when $\gamma$ is tiny. Small $\gamma$ lets the nearest face take
# (almost) all the weight, which is the hard z-buffer; large $\gamma$ lets faces behind show
# through. The background weight is $e^{-z_\text{max}/\gamma}$: for the cow, whose nearest face
# has $z_\text{max}$ close to 1 (printed below), it is negligible unless $\gamma$ is large, so
# **the background colour enters the soft RGB mainly where the nearest face is far, and the
# outline is carried by $\alpha$**.
#
# Here are the weights at one pixel near the cow's outline:

# %%
row, col = (int(v) for v in ((alpha[0] > 0.3) & (alpha[0] < 0.7)).nonzero()[0])
znear, zfar = 1.0, 100.0    # the camera's defaults
z_norm = (zfar - zbuf[0, row, col]) / (zfar - znear) * covered[0, row, col]   # PyTorch3D's z_inv
z_max = z_norm.max()
here = covered[0, row, col].clone()
print(f"pixel ({row}, {col}), alpha = {alpha[0, row, col]:.3f}, z_max = {z_max:.4f}, "
      f"{int(here.sum())} faces; the nearest 8:")
here[8:] = False
print("  depth  ", zbuf[0, row, col][here].numpy().round(3))
print("  D      ", D[0, row, col][here].numpy().round(3))
for g in [gamma, 1e-2]:
    w = D[0, row, col] * torch.exp((z_norm - z_max) / g)
    w_b = torch.exp((1e-10 - z_max) / g).clamp_min(1e-10)
    print(f"  gamma = {g:g}: weights", w[here].numpy().round(3), f"background {w_b:.1e}")

# %% [markdown]
# Linear or inverse depth decides what $\gamma$ means. Two faces whose normalised depths differ by
# $\delta$ have weights in the ratio $(D_j / D_k)\, e^{\delta / \gamma}$. With the linear
# normalisation a depth gap $\Delta$ gives $\delta = \Delta / (z_\text{far} - z_\text{near})$
# at every depth: a gap counts as much far from the camera as near it. With the inverse depth,
# $\delta \approx \Delta / (z^2 (1/z_\text{near} - 1/z_\text{far}))$ at depth $z$: a gap near
# the camera counts more and one far away less, so the nearest surface wins more sharply where it
# is close. The exponent $\delta / \gamma$ for a gap of 0.01 at a few depths (with the camera's
# $z_\text{near} = 1$, $z_\text{far} = 100$ and our $\gamma$):

# %%
gap = 0.01
depths = torch.tensor([1.5, 2.7, 10.0, 50.0], dtype=torch.float64)
linear = gap / (zfar - znear) / gamma
inverse = (1 / depths - 1 / (depths + gap)) / (1 / znear - 1 / zfar) / gamma
print("depth                             ", depths.tolist())
print("linear (lib3dr, PyTorch3D):        ", [round(linear, 2)] * len(depths))
print("inverse (as the paper describes):  ", inverse.numpy().round(2).tolist())
assert (inverse[:-1] > inverse[1:]).all() and inverse[0] > linear > inverse[-1]

# %% [markdown]
# And the effect on whole images, with `SoftPhongShader` (given fragments, it shades each of the
# $K$ and calls `softmax_rgb_blend`; `MeshRenderer` on the CPU gives it packed fragments instead,
# and it shades only those this blend weighs, the same image to within
# `BlendParams.dropped_weight`):

# %%
def soft_render(sigma, gamma, K, blur_radius, image_size=IMAGE_SIZE):
    settings = RasterizationSettings(image_size=image_size, blur_radius=blur_radius, faces_per_pixel=K)
    renderer = MeshRenderer(MeshRasterizer(cameras=cameras, raster_settings=settings),
                            SoftPhongShader(cameras=cameras, lights=lights,
                                            blend_params=BlendParams(sigma=sigma, gamma=gamma)))
    return renderer(cow)[0]


gammas = [gamma, 1e-2, 1e-1]
soft_images = [soft_render(sigma, g, K, blur_radius) for g in gammas]
fig = image_grid([image[COW] for image in soft_images], columns=3, size=3.6, titles=[f"γ = {g:g}" for g in gammas],
                 suptitle=f"SoftPhongShader, σ = {sigma:g}, K = {K}")
save_figure(fig, "02_gamma");
hard_rgb = hard_image[..., :3]
errors = [float((image[..., :3] - hard_rgb)[inside].abs().mean()) for image in soft_images]
print("mean |soft - hard| on the cow:", np.round(errors, 4))
assert errors[0] < errors[1] < errors[2], "larger gamma mixes in more of the faces behind"

# %% [markdown]
# ## 3. Inside the reference implementation: which faces, then what values
#
# `lib3dr.renderer.rasterize_torch` is the readable reference: pure PyTorch, the same arithmetic as the
# C++ and CUDA kernels. Its docstring states the idea:

# %%
print(lib3dr.renderer.rasterize_torch.__doc__)


# %% [markdown]
# Both steps call one function, `eval_pixel_faces`, that evaluates faces at pixel centres. Its
# core is the edge function: twice the signed area of the triangle $(a, b, p)$, whose sign tells
# on which side of the edge $a \to b$ the point $p$ lies. Divided by the face's area, the three
# edge functions are the barycentric coordinates:

# %%
def quote(function, first, last):
    """Prints the lines of function's source from the one containing `first` to the one containing
    `last` (the whole function if the library's code has changed and they are not found)."""
    lines = inspect.getsource(function).splitlines()
    start = next((i for i, line in enumerate(lines) if first in line), 0)
    stop = next((i for i, line in enumerate(lines) if i >= start and last in line), len(lines) - 1)
    print("\n".join(lines[start:stop + 1]))


quote(lib3dr.renderer.rasterize_torch.eval_pixel_faces, "# Barycentrics", "dist = torch.where")

# %% [markdown]
# **Step 1, which faces** (`_select_faces`): for each tile of pixels it gathers the faces whose
# blur-expanded bounding box overlaps the tile, evaluates them, and keeps the $K$ nearest
# covering faces. Sorting and choosing are discrete: a small move of a vertex either changes the
# choice or it does not, and there is no derivative to take. So this step runs under
# `torch.no_grad()`, on detached vertices:

# %%
quote(lib3dr.renderer.rasterize_torch._select_faces, "covers, z, _, _ = eval_pixel_faces", "chosen[~z_sorted")
quote(lib3dr.renderer.rasterize_torch.rasterize_faces_torch, "with torch.no_grad()", "tile)")

# %% [markdown]
# **Step 2, what values**: with the choice fixed, the depth, barycentrics and distance of each
# chosen (pixel, face) pair are smooth functions of the face's vertices. They are evaluated
# again, this time with autograd recording, only for the chosen pairs:

# %%
quote(lib3dr.renderer.rasterize_torch.rasterize_faces_torch, "# Step 2", "face_verts[pix_to_face[chosen]]")

# %% [markdown]
# Two consequences, checked below on a tiny scene of two triangles in NDC. The face indices carry
# no gradient, while the other three outputs do; and as long as no face enters or leaves a
# pixel's list, the outputs are smooth functions of the vertices, so autograd's gradient agrees
# with finite differences (`torch.autograd.gradcheck`, in float64).

# %%
tiny_verts = torch.tensor([[-0.6, -0.5, 2.0], [0.7, -0.4, 2.5], [0.0, 0.6, 3.0],
                           [0.3, 0.2, 1.5], [-0.2, 0.8, 2.2], [0.5, 0.9, 2.0]], dtype=torch.float64)
tiny_faces = torch.tensor([[0, 1, 2], [3, 4, 5]])


def tiny_fragments(v, backend="torch"):
    return lib3dr.rasterize_meshes(Meshes(verts=[v], faces=[tiny_faces]), image_size=8,
                                   blur_radius=0.01, faces_per_pixel=2, backend=backend)


out = tiny_fragments(tiny_verts.clone().requires_grad_(True))
print("requires_grad:", [t.requires_grad for t in out])
assert [t.requires_grad for t in out] == [False, True, True, True]
# float64 central differences with step 1e-6: rounding ~2^-53 |f| / 1e-6 ~ 1e-10 and truncation
# ~1e-12 |f'''| on these order-1 triangles; atol 1e-6 is far above both, far below a wrong term.
assert torch.autograd.gradcheck(lambda v: tiny_fragments(v)[1:], (tiny_verts.clone().requires_grad_(True),),
                                eps=1e-6, atol=1e-6, fast_mode=True)

# %% [markdown]
# ## 4. Three implementations, one image
#
# The same two steps exist three times: `"torch"` (the reference above), `"cpu"` (multi-threaded
# C++ in `lib3dr._C`) and `"cuda"` (CUDA kernels in `lib3dr._C`, when built and a GPU is present).
# Every rasterising function takes `backend=`; `"auto"` picks CUDA for CUDA tensors, else the C++
# kernels. They make the same choices (same arithmetic, in the same order, with the same tie
# breaks), so they keep the same faces, and their fragments and gradients agree up to rounding
# (how closely is worked out below). A small workload keeps the reference fast
# enough: the cow at $64 \times 64$ with $K = 50$. The timings are from this run, on whatever
# machine executes the notebook.

# %%
def fragments_and_grad(backend, image_size=64, K=50):
    device = "cuda" if backend == "cuda" else "cpu"
    cow_verts = verts.to(device).clone().requires_grad_(True)
    mesh = Meshes(verts=[cow_verts], faces=[faces.to(device)])
    settings = RasterizationSettings(image_size=image_size, blur_radius=blur_radius, faces_per_pixel=K, backend=backend)
    start = time.perf_counter()
    frags = MeshRasterizer(cameras=cameras.clone().to(device), raster_settings=settings)(mesh)
    forward = time.perf_counter() - start
    silhouette_from_dists(frags.pix_to_face, frags.dists, sigma).sum().backward()
    total = time.perf_counter() - start
    return frags.detach(), cow_verts.grad.cpu(), forward, total


results = {backend: fragments_and_grad(backend) for backend in tqdm(lib3dr.backends(), desc="backends")}
table = "| backend | forward (ms) | forward + backward (ms) |\n| --- | --- | --- |\n"
table += "\n".join(f"| {b} | {r[2] * 1e3:.1f} | {r[3] * 1e3:.1f} |" for b, r in results.items())
display(Markdown(table))

# %%
reference, reference_grad = results["torch"][:2]
for backend, (frags, grad, _, _) in results.items():
    assert torch.equal(frags.pix_to_face.cpu(), reference.pix_to_face), backend
silhouettes = [silhouette_from_dists(r[0].pix_to_face, r[0].dists, sigma)[0].cpu() for r in results.values()]
difference = silhouettes[-1] - silhouettes[0]
fig = image_grid(silhouettes + [difference], columns=len(silhouettes) + 1, size=3.0,
                 titles=[f"backend '{b}'" for b in results]
                 + [f"last - torch (max |·| = {difference.abs().max():.0e})"],
                 colorbar=True, suptitle="The soft silhouette from each backend's fragments")
save_figure(fig, "02_backends");

# %% [markdown]
# ### How close is close enough?
#
# The faces agree exactly; the numbers need not. Two implementations of one formula round
# differently (another compiler, fused multiply-adds, another order of additions, another
# `exp`), and how far apart that can put them depends on how sensitive each result is to
# rounding. That we can compute: evaluate the reference's choice of faces once more in float64
# (step 2 of section 3) and measure, with $u$ and $c$ of section 2.
#
# * A fragment's output $f$ (depth, barycentric coordinate, distance) comes from the face's
#   corners in NDC and the pixel centre, inputs $x_i$ that each carry up to $c$ roundings of
#   relative size $u$ (absolute for coordinates below 1). So $f$ may be off by
#   $c\,u\,(s_f + |f|)$ with the sensitivity $s_f = \sum_i |\partial f / \partial x_i| \max(|x_i|, 1)$.
#   A barycentric coordinate in a sliver face seen edge-on is very sensitive: its area is tiny.
# * A vertex gradient is a sum of $n_v$ terms $t_s = G_s\,\partial d_s / \partial v$, one per
#   covered slot $s$ whose face has the vertex as a corner, with
#   $G_s = \partial (\sum \alpha) / \partial d_s$. Adding them in another order changes the sum
#   by up to $n_v u \sum_s |t_s|$, where $|t_s|$ is the slot's largest derivative (the
#   derivatives of one slot share their operands, so they round alike).
# * Each term inherits the rounding of the distances, divided by $\sigma$ as in section 2: its
#   $D_s$ moves by the relative amount $\delta d_s / \sigma$, and its pixel's transmittance by
#   $\sum_k D_k\,\delta d_k / \sigma$, with $\delta d = 2 c\,u \sqrt{|d|}$.
#
# Per vertex coordinate (carried from NDC to world coordinates through the camera's Jacobian), a
# float32 gradient is therefore within
#
# $$ u \sum_s |t_s| \Big( n_v + 2c\, \frac{\sqrt{|d_s|} + \sum_k D_k \sqrt{|d_k|}}{\sigma} \Big) $$
#
# of the exact one, and two backends within twice that of each other. At $\sigma = 10^{-4}$ the
# second part dominates: float32 knows this gradient to a few digits only (printed below).

# %%
def rounding_bounds(frags):
    """The bounds above, from the reference's choice of faces evaluated in float64: per covered
    slot c u (s_f + |f|) for zbuf, bary_coords and dists; per world vertex coordinate the bound on
    the gradient of sum(alpha)."""
    world = verts.double().requires_grad_(True)
    cameras64 = FoVPerspectiveCameras(R=R.double(), T=T.double())
    ndc = rasterizer.transform(Meshes(verts=[world], faces=[faces]), cameras=cameras64).verts_packed()
    # d ndc / d world, (V, 3, 3): each vertex is mapped on its own.
    jacobian = torch.stack([torch.autograd.grad(ndc[:, i].sum(), world, retain_graph=True)[0]
                            for i in range(3)], dim=1)
    covered = frags.pix_to_face >= 0
    slot = covered.nonzero(as_tuple=True)                      # (n, y, x, k) of every covered slot
    H, W = covered.shape[1:3]
    px = lib3dr.renderer.rasterize_torch.pixel_centers_ndc(W, 1.0, torch.float64, "cpu")[slot[2]].requires_grad_()
    py = lib3dr.renderer.rasterize_torch.pixel_centers_ndc(H, 1.0, torch.float64, "cpu")[slot[1]].requires_grad_()
    corners = faces[frags.pix_to_face[covered]]                # (M, 3) vertices of each slot's face
    face_ndc = ndc.detach()[corners].requires_grad_()
    _, z, bary, dist = lib3dr.renderer.rasterize_torch.eval_pixel_faces(px, py, face_ndc, blur_radius, True, True, False)

    def bound(f):   # c u (s_f + |f|), per slot; the pixel centres are below 1
        g_face, g_x, g_y = torch.autograd.grad(f.sum(), (face_ndc, px, py), retain_graph=True)
        s_f = (g_face * face_ndc.detach().abs().clamp_min(1)).abs().sum((1, 2)) + g_x.abs() + g_y.abs()
        return c * u * (s_f + f.detach().abs())

    slot_bounds = {"zbuf": bound(z), "bary_coords": torch.stack([bound(b) for b in bary.unbind(-1)], -1),
                   "dists": bound(dist)}
    # The blend in float64: G_s, and each slot's share of the distances' rounding.
    d = dist.detach().requires_grad_()
    alpha64 = silhouette_from_dists(frags.pix_to_face, torch.full(covered.shape, -1.0, dtype=torch.float64)
                                    .index_put(slot, d), sigma, backend="torch")
    G, = torch.autograd.grad(alpha64.sum(), d)
    root = d.detach().abs().sqrt()
    D_root = torch.zeros(covered.shape, dtype=torch.float64).index_put(
        slot, torch.sigmoid(-d.detach() / sigma) * root)
    spread = (root + D_root.sum(-1)[slot[:3]]) / sigma
    terms, = torch.autograd.grad((dist * G).sum(), face_ndc)    # (M, 3, 3): every t_s, before the sums
    size = terms.abs().amax((1, 2))                             # |t_s|

    def per_vertex(values):   # the sum over the slots whose face has the vertex as a corner
        return torch.zeros(len(verts), dtype=torch.float64).index_add_(0, corners.flatten(),
                                                                         values.repeat_interleave(3))

    n_v = per_vertex(torch.ones_like(size))
    ndc_bound = u * (n_v * per_vertex(size) + 2 * c * per_vertex(size * spread))
    return slot_bounds, torch.einsum("vij,v->vj", jacobian.abs(), ndc_bound)


slot_bounds, grad_bound = rounding_bounds(reference)
covered = reference.pix_to_face >= 0
worst = {}
for backend, (frags, grad, _, _) in results.items():
    for name, bound in slot_bounds.items():
        ours, theirs = getattr(frags, name).cpu(), getattr(reference, name)
        assert torch.equal(ours[~covered], theirs[~covered]), (backend, name)     # the padding, -1
        # Both sides round: twice the bound.
        assert ((ours[covered] - theirs[covered]).double().abs() <= 2 * bound).all(), (backend, name)
    difference = (grad - reference_grad).double().abs()
    assert (difference <= 2 * grad_bound).all(), backend
    share = (difference / (2 * grad_bound)).nan_to_num().max()       # 0 / 0 where no term reaches
    worst[backend] = f"max |grad - reference| {difference.max():.1e} = {share:.3f} of the bound"
largest = reference_grad.abs().argmax()
print(f"largest gradient entry {reference_grad.flatten()[largest]:.1f}, its bound {grad_bound.flatten()[largest]:.1e} "
      f"({grad_bound.flatten()[largest] / reference_grad.abs().flatten()[largest]:.0e} relative)")
for backend, line in worst.items():
    print(f"  {backend}: {line}")

# %% [markdown]
# Strict enough? A real mistake must not pass: we make the gradient of one face 1% wrong (its three
# corners' rows scaled by 1.01) and check again.

# %%
face = int(reference_grad[faces].norm(dim=-1).sum(-1).argmax())         # the face with the largest gradient
tampered = results[list(results)[-1]][1].clone()
tampered[faces[face]] *= 1.01
excess = ((tampered - reference_grad).double().abs() / (2 * grad_bound))[faces[face]].max()
caught = ((0.01 * reference_grad[faces]).double().abs() > 2 * grad_bound[faces]).flatten(1).any(1)
reached = (reference_grad[faces] != 0).flatten(1).any(1)
print(f"1% on face {face}: {excess:.0f} times the bound; 1% would be caught on {int(caught.sum())} "
      f"of the {int(reached.sum())} faces that the loss reaches")
assert not ((tampered - reference_grad).double().abs() <= 2 * grad_bound).all()

# %% [markdown]
# ### The memory bill, and the fused silhouette
#
# Fragments are big. Each of the $N \cdot H \cdot W \cdot K$ slots holds `pix_to_face` (8 bytes),
# `zbuf` (4), `bary_coords` (12) and `dists` (4), and the backward pass needs gradients for the
# last three (20): **48 bytes per face per pixel**. `lib3dr.renderer.memory.memory_estimate(N, H, W, K)`
# computes the bill:

# %%
def human(nbytes):
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


rows = [(N, S, K) for N in (1, 8) for S in (128, 256, 512) for K in (1, 10, 50, 100)]
table = ("| N | H = W | K | fragments (forward + backward) | fused silhouette (N·H·W floats) |\n"
         "| --- | --- | --- | --- | --- |\n")
table += "\n".join(f"| {N} | {S} | {K} | {human(memory_estimate(N, S, S, K))} | {human(4 * N * S * S)} |"
                   for N, S, K in rows)
display(Markdown(table))
assert memory_estimate(1, 256, 256, 100) == 48 * 256 * 256 * 100
print(f"8 silhouettes at 512 x 512, K = 100: {human(memory_estimate(8, 512, 512, 100))} of fragments")
assert memory_estimate(8, 512, 512, 100) > 9 * 2**30

# %% [markdown]
# A batch of 8 silhouettes at $512 \times 512$ with $K = 100$ — the settings of PyTorch3D's
# tutorials at a larger size — needs more than 9 GiB (printed above). Yet a silhouette only needs $\alpha$, one
# number per pixel. `lib3dr.soft_silhouette` **fuses** rasterisation and blending in the compiled
# backends: each pixel finds its $K$ nearest faces, accumulates $\prod_k (1 - D_k)$ and forgets
# the faces; the backward pass finds them again. Memory is $O(N \cdot H \cdot W)$, and the result
# equals the fragments path (checked above at $K = 50$; here at $K = 100$).
#
# Before allocating fragments, the rasteriser compares `memory_estimate` with a limit (by default
# half the available memory) and raises `RasterMemoryError` — a `MemoryError` that says what to
# reduce — instead of letting the machine swap or the process be killed. We lower the limit to
# 64 MiB to see it:

# %%
set_memory_limit(64 * 2**20)
try:
    big = RasterizationSettings(image_size=256, blur_radius=blur_radius, faces_per_pixel=100)
    try:
        rasterizer(cow, raster_settings=big)
        raise AssertionError("expected RasterMemoryError")
    except RasterMemoryError as error:
        print("RasterMemoryError:", str(error)[:300], "...")
    fused_alpha = lib3dr.soft_silhouette(cow, cameras, image_size=256, sigma=sigma, faces_per_pixel=100)
    print("the fused silhouette under the same limit:", tuple(fused_alpha.shape))
finally:
    set_memory_limit(None)

# %%
frags_100 = rasterizer(cow, raster_settings=big)     # the default limit again
alpha_100 = silhouette_from_dists(frags_100.pix_to_face, frags_100.dists, sigma)
# Two computations, each within section 2's rounding bound.
assert ((fused_alpha - alpha_100).abs() <= 2 * silhouette_rounding(frags_100, sigma)).all()
print(f"fragments at 256 x 256, K = 100: {human(memory_estimate(1, 256, 256, 100))}; "
      f"fused: {human(fused_alpha.numel() * 4)}")

# %% [markdown]
# ## 5. Two traps of the K nearest faces
#
# Step 1 keeps the $K$ faces *nearest the camera* among those within the blur radius. Both traps
# below come from that cut.
#
# ### (a) Too small a K makes holes
#
# With a blur, a face that does *not* contain the pixel still covers it, and its depth is taken
# at the face's point nearest to the pixel (the barycentrics are clipped to the face). Take a
# vertex that is nearer the camera than its surroundings — every vertex of a convex mesh seen
# head-on — and a pixel close to it. The faces on the other side of the vertex are nearest to the
# pixel at (or next to) the vertex, so their clipped depth is the vertex's depth: nearer than
# the face under the pixel, which slopes away from the vertex. If $K$ is small, those neighbours
# fill all $K$ slots, the face that contains the pixel is cut, and the pixel is left with faces
# it is outside of: $\alpha \approx 0$ in the middle of the object.

# %%
sphere = ico_sphere(1)
R_sphere, T_sphere = look_at_view_transform(2.7, 0, 0)
sphere_camera = FoVPerspectiveCameras(R=R_sphere, T=T_sphere)
holes = {K: lib3dr.soft_silhouette(sphere, sphere_camera, image_size=64, sigma=1e-3, faces_per_pixel=K)[0]
         for K in (4, 20)}
centre = holes[4][24:40, 24:40]
hole = tuple(int(i) + 24 for i in divmod(int(centre.argmin()), 16))
print(f"K = 4: alpha {holes[4][hole]:.3f} at pixel {hole}; K = 20: {holes[20][hole]:.3f}")
assert holes[4][hole] < 0.05 and holes[20][24:40, 24:40].min() > 0.9

# %% [markdown]
# The fragments of that pixel with $K = 20$ show why: the faces that contain it ($d < 0$) are not
# among the four nearest.

# %%
sphere_settings = RasterizationSettings(image_size=64, blur_radius=default_blur_radius(1e-3), faces_per_pixel=20)
sphere_fragments = MeshRasterizer(cameras=sphere_camera, raster_settings=sphere_settings)(sphere)
listed = sphere_fragments.pix_to_face[0][hole] >= 0
table = "| rank | face | depth | d | D |\n| --- | --- | --- | --- | --- |\n" + "\n".join(
    f"| {k} | {int(sphere_fragments.pix_to_face[0][hole][k])} | {sphere_fragments.zbuf[0][hole][k]:.4f} | "
    f"{sphere_fragments.dists[0][hole][k]:.2e} | {torch.sigmoid(-sphere_fragments.dists[0][hole][k] / 1e-3):.3f} |"
    for k in range(int(listed.sum())))
display(Markdown(table))
first_inside = int((sphere_fragments.dists[0][hole][listed] < 0).nonzero()[0])
assert first_inside >= 4, "the face containing the pixel is beyond the 4 nearest"

# %%
cow_holes = {K_cow: lib3dr.soft_silhouette(cow, cameras, image_size=IMAGE_SIZE, sigma=sigma,
                                           faces_per_pixel=K_cow)[0] for K_cow in (8, 50)}
hole_counts = {K_cow: int((image[inside] < 0.5).sum()) for K_cow, image in cow_holes.items()}
print("cow pixels on the hard silhouette with alpha < 0.5:", hole_counts)
assert hole_counts[8] > 100 and hole_counts[50] == 0


# %%
def plot_holes():
    fig, axes = plt.subplots(2, 2, figsize=(9.5, 9))
    for ax, (K_sphere, image) in zip(axes[0], holes.items()):
        shown = ax.imshow(image.numpy(), cmap="gray", vmin=0, vmax=1)
        ax.plot(hole[1], hole[0], "o", mfc="none", mec="red", ms=10)
        ax.set(title=f"sphere, K = {K_sphere}: α = {image[hole]:.3f} at the circle", xlabel="pixel column",
               ylabel="pixel row")
    rows, cols = COW
    for ax, (K_cow, image) in zip(axes[1], cow_holes.items()):
        ax.imshow(image[COW].numpy(), cmap="gray", vmin=0, vmax=1,
                  extent=(cols.start, cols.stop, rows.stop, rows.start))
        ax.set(title=f"cow, K = {K_cow}: {hole_counts[K_cow]} pixels with α < 0.5", xlabel="pixel column",
               ylabel="pixel row")
    fig.colorbar(shown, ax=axes, fraction=0.03, label="α")
    fig.suptitle("Soft silhouettes with too few faces per pixel (top σ = 1e-3, bottom σ = 1e-4)")
    return fig


save_figure(plot_holes(), "02_holes_small_k");

# %% [markdown]
# On the sphere the holes sit at the vertices, where the most faces meet. The cow of section 1 —
# at $128 \times 128$, $\sigma = 10^{-4}$ — is riddled with them at $K = 8$ and needs
# $K \approx 50$, which is why we used that. Raising $K$ until it holds every face within the blur
# radius removes the holes; a smaller $\sigma$ (hence blur radius) also helps, as fewer
# neighbours are within reach.
#
# ### (b) Too small a K makes the image jump
#
# When more than $K$ faces lie within the blur radius of a pixel, which of them are the $K$
# nearest changes as the object moves: a face swaps in, another out, and the pixel's value jumps.
# This happens easily for a small, far object, where a blur radius of a pixel spans many faces.
# We move the cow, seen from distance 8 at $64 \times 64$, by tiny steps along the world $x$
# axis and watch the sum of its soft silhouette, together with the autograd gradient of that
# sum.

# %%
far_R, far_T = look_at_view_transform(8.0, 10, 150)
far_camera = FoVPerspectiveCameras(R=far_R, T=far_T)
shifts = np.linspace(0.0, 4e-3, 41)
wide_blur = sigma * math.log(1 / 1e-6 - 1)      # D falls to 1e-6 instead of 1e-4
variants = {"K = 10": (10, blur_radius), "K = 50": (50, blur_radius), "K = 200": (200, blur_radius),
            "K = 500, wider blur": (500, wide_blur)}
jumps = {}
for label, (K_far, radius) in tqdm(variants.items(), desc="K"):
    values, gradients = [], []
    for shift in shifts:
        dx = torch.tensor(float(shift), requires_grad=True)
        moved = cow.offset_verts(torch.stack([dx, torch.zeros(()), torch.zeros(())]))
        total = lib3dr.soft_silhouette(moved, far_camera, image_size=64, sigma=sigma,
                                       faces_per_pixel=K_far, blur_radius=radius).sum()
        gradient, = torch.autograd.grad(total, dx)
        values.append(total.item())
        gradients.append(gradient.item())
    jumps[label] = (np.array(values), np.array(gradients))


# %%
def plot_jumps():
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for label, (values, gradients) in jumps.items():
        width = 3.5 if label == "K = 200" else 1.5      # K = 500 lies on top of K = 200
        line, = axes[0].plot(shifts * 1e3, values - values[0], ".-", lw=width, label=label)
        axes[1].plot(shifts[:-1] * 1e3, np.diff(values) / np.diff(shifts), ".-", color=line.get_color(),
                     label=f"{label}: finite differences")
        axes[1].plot(shifts * 1e3, gradients, "--", lw=width, color=line.get_color(), label=f"{label}: autograd")
    axes[0].set(title="Σ α as the cow moves (minus its start)", xlabel="shift along world x (10⁻³ units)",
                ylabel="change of Σ α")
    axes[1].set(title="Its slope: finite differences vs autograd", xlabel="shift along world x (10⁻³ units)",
                ylabel="d Σ α / d x")
    axes[1].set_ylim(-400, 400)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"A far cow (distance 8, 64 x 64, σ = {sigma:g}): the K-nearest cut makes jumps")
    fig.tight_layout()
    return fig


save_figure(plot_jumps(), "02_k_jumps");

# %% [markdown]
# With $K = 10$ and $K = 50$ the value jumps at unpredictable places; finite differences across a
# jump measure the jump, not the slope, and disagree wildly with the gradient. The gradient itself
# is exact — it is the derivative of the smooth piece that the current choice of faces defines —
# but the gradient of a function with jumps is a poor guide for an optimiser. With $K = 200$ every
# face within the blur radius is kept and the value is smooth to the eye. Note also how much the
# silhouette itself changes with $K$: a far object is all edges, and trap (a) strikes everywhere.
#
# A closer look at $K = 200$ still finds small wiggles. They come from the blur radius itself:
# a face entering it starts at $D = 10^{-4}$, not 0, so the value jumps by about $10^{-4}$ per
# face and pixel. Widening the blur radius to where $D = 10^{-6}$ (and raising $K$ to keep every
# face) makes them a hundred times smaller:

# %%
def finite_difference_error(label):
    """Worst |finite difference - gradient at the midpoint|, relative to the largest gradient."""
    values, gradients = jumps[label]
    slope = np.diff(values) / np.diff(shifts)
    mid = (gradients[:-1] + gradients[1:]) / 2
    return np.abs(slope - mid).max() / np.abs(mid).max()


for label, (values, _) in jumps.items():
    print(f"{label:20s} Σ α = {values[0]:6.2f}, worst |finite difference - gradient| / |gradient| = "
          f"{finite_difference_error(label):.3f}")
# Claims about the jumps, not about rounding: with K = 10 and 50 whole faces swap in and out,
# errors many times the slope; with K = 200 only the 1e-4 steps of faces entering the blur radius
# remain, and the wider blur shrinks those.
assert finite_difference_error("K = 10") > 5 and finite_difference_error("K = 50") > 5
assert finite_difference_error("K = 200") < 0.5 and finite_difference_error("K = 500, wider blur") < 0.05
assert jumps["K = 10"][0][0] < jumps["K = 50"][0][0] < jumps["K = 200"][0][0]

# %% [markdown]
# ## 6. Try it: σ, γ, K and the blur radius
#
# In a live notebook the sliders below re-render the cow (RGB and $\alpha$) as you move them. The
# blur radius slider is in units of the default for the chosen $\sigma$ (1 = $D$ falls to
# $10^{-4}$ at the blur radius). The same cell also renders a fixed grid of settings, so that
# the notebook shows something when run without a browser.

# %%
def show_settings(sigma_value, gamma_value, K, blur_factor, ax_rgb=None, ax_alpha=None):
    image = soft_render(sigma_value, gamma_value, K, blur_factor * default_blur_radius(sigma_value))
    if ax_rgb is None:
        fig, (ax_rgb, ax_alpha) = plt.subplots(1, 2, figsize=(7, 3.5))
    ax_rgb.imshow(image[..., :3].clamp(0, 1).numpy())
    ax_alpha.imshow(image[..., 3].numpy(), cmap="gray", vmin=0, vmax=1)
    ax_rgb.set_title(f"σ={sigma_value:.0e} γ={gamma_value:.0e} K={K} blur×{blur_factor:g}", fontsize=9)
    ax_alpha.set_title("α", fontsize=9)
    for ax in (ax_rgb, ax_alpha):
        ax.axis("off")
    return image


controls = dict(
    sigma_value=widgets.FloatLogSlider(value=1e-4, base=10, min=-6, max=-2, description="σ"),
    gamma_value=widgets.FloatLogSlider(value=1e-4, base=10, min=-5, max=0, description="γ"),
    K=widgets.IntSlider(value=50, min=1, max=100, description="K"),
    blur_factor=widgets.FloatSlider(value=1.0, min=0.0, max=2.0, step=0.1, description="blur ×"),
)
panel = widgets.interactive_output(show_settings, controls)
display(widgets.VBox([widgets.HBox(list(controls.values())[:2]), widgets.HBox(list(controls.values())[2:]), panel]))

grid = [(1e-5, 1e-4, 50, 1.0), (1e-4, 1e-4, 50, 1.0), (1e-3, 1e-4, 50, 1.0),
        (1e-4, 1e-1, 50, 1.0), (1e-4, 1e-4, 4, 1.0), (1e-4, 1e-4, 50, 0.0)]
fig, axes = plt.subplots(3, 4, figsize=(12, 9.5))
grid_images = [show_settings(s, g, k, b, *pair) for (s, g, k, b), pair in zip(grid, axes.reshape(-1, 2))]
fig.suptitle("Soft renders of the cow (RGB, α) for six settings of σ, γ, K and blur radius")
fig.tight_layout()
save_figure(fig, "02_settings_grid")
mean_alpha = [float(image[..., 3][inside].mean()) for image in grid_images]
print("mean α on the hard silhouette:", np.round(mean_alpha, 3))
print(f"blur radius at σ = 1e-3: {math.sqrt(default_blur_radius(1e-3)) * IMAGE_SIZE / 2:.1f} pixels")
assert mean_alpha[1] > 0.99 and mean_alpha[4] < 0.9 and mean_alpha[5] < 0.95

# %% [markdown]
# Things to look for in the grid:
#
# * $\sigma = 10^{-3}$ blurs the outline over several pixels — and the RGB cow looks *fatter*
#   than its $\alpha$: the soft RGB is the colour of whatever faces are within the blur radius,
#   the background weight being negligible (section 2), so images are meant to be read together
#   with their $\alpha$. Its $\alpha$ also shows a dark seam where the head overlaps the body:
#   with a blur radius of several pixels (printed above), $K = 50$ is too small there (section 5).
# * $\gamma = 0.1$ lets the faces behind bleed through: the far side of the head shows.
# * $K = 4$ leaves the silhouette full of holes (section 5).
# * Without blur the RGB is the hard image, but $\alpha$ is *not* 1 inside the cow: each pixel
#   keeps only the faces that contain it, and on faces this small (section 2) the squared
#   distance to the nearest edge stays below $\sigma$, so $D_k$ is only a little above $\frac12$. The
#   blur is what lets the neighbouring faces fill it in.
#
# ## Summary
#
# * The rasteriser returns, per pixel, the $K$ nearest faces within the blur radius:
#   `pix_to_face`, `zbuf`, `bary_coords` and `dists` (signed **squared** NDC distance, $-1$ in
#   padded slots).
# * $D = \operatorname{sigmoid}(-d/\sigma)$ turns distance into coverage probability;
#   $\alpha = 1 - \prod_k (1 - D_k)$ is the soft silhouette; colours are blended with weights
#   $D_k e^{(z_k - z_\text{max})/\gamma}$ plus a background weight, $z_k$ the depth normalised
#   linearly (PyTorch3D's `z_inv`, not an inverse depth).
# * Rasterisation is two steps: choosing the faces (discrete, under `no_grad`) and evaluating
#   them (smooth, differentiated by autograd). The torch, C++ and CUDA backends make the same
#   choices, and their fragments and gradients agree within bounds that follow from float32
#   rounding; the blend divides the distances' rounding by $\sigma$, so at small $\sigma$ float32
#   knows the gradient to a few digits only.
# * Fragments cost 48 bytes per face per pixel; the fused `soft_silhouette` needs
#   $O(N \cdot H \cdot W)$ and the memory guard raises `RasterMemoryError` before allocating too
#   much.
# * Too small a $K$ drops faces: holes in the silhouette (a neighbour's clipped depth can beat the
#   face under the pixel) and jumps in the image (faces swapping in and out of the $K$ nearest),
#   where finite differences and gradients disagree although the gradient is exact.
#
# ## Exercises
#
# Each exercise has a cell for your answer (replace the line that raises `NotImplementedError`)
# and a test cell below it, which checks your answer and tells you what it expected and what came.
# When the notebook is graded, hidden tests in the same test cells decide the points. The tests
# compare with the library's own functions and block them while your function runs: calling
# `coverage_probability`, `silhouette_from_dists` or `softmax_rgb_blend` does not count.
#
# **Exercise 2.1 — $D$ and $\alpha$ from the fragments.** Write `soft_silhouette_from_fragments(
# fragments, sigma)` returning `(D, alpha)`, $D$ of shape $(N, H, W, K)$ and $\alpha$ of shape
# $(N, H, W)$, using only `fragments.pix_to_face`, `fragments.dists` and torch. (Mind the padding.)

# %% nbgrader={"grade": false, "grade_id": "ex2_1_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def soft_silhouette_from_fragments(fragments, sigma):
    """(D (N, H, W, K), alpha (N, H, W)) from the fragments, differentiable in fragments.dists."""
    ### BEGIN SOLUTION
    covered = fragments.pix_to_face >= 0
    D = torch.where(covered, torch.sigmoid(-fragments.dists / sigma), torch.zeros_like(fragments.dists))
    alpha = 1 - torch.prod(1 - D, dim=-1)
    return D, alpha
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex2_1_tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
assert chapter02.check_coverage_and_alpha(soft_silhouette_from_fragments)
### BEGIN HIDDEN TESTS
import importlib
from lib3dr_book.exercises import shortcuts
shortcuts = importlib.reload(shortcuts)  # as shipped, whatever the notebook did to it
_blocked = ("lib3dr.renderer.blending.coverage_probability", "lib3dr.renderer.blending.silhouette_from_dists",
            "lib3dr.renderer.blending.sigmoid_alpha_blend", "lib3dr.renderer.blending.softmax_rgb_blend",
            "lib3dr.renderer.compiled.SilhouetteBlend.apply", "lib3dr._C.silhouette_blend_forward")
for _sigma, _K, _size, _dtype in [(5e-4, 4, 20, torch.float64), (2e-3, 9, 16, torch.float32)]:
    _fragments = chapter02.sample_fragments(_sigma, _K, _size, dtype=_dtype)
    _in = _fragments.pix_to_face >= 0
    _D_ref = torch.sigmoid(-_fragments.dists / _sigma).masked_fill(~_in, 0.0)
    _alpha_ref = 1 - (1 - _D_ref).prod(-1)
    _D, _alpha = shortcuts.call_honestly(soft_silhouette_from_fragments, (_fragments, _sigma),
                                         targets=_blocked, why="compute D and alpha yourself")
    _tolerance = 1e-6 if _dtype == torch.float64 else 1e-5
    assert torch.allclose(_D.detach().double(), _D_ref.detach().double(), atol=_tolerance), "hidden test: wrong D"
    assert torch.allclose(_alpha.detach().double(), _alpha_ref.detach().double(), atol=_tolerance), "hidden test: wrong alpha"
    _grad, = torch.autograd.grad(_alpha.sum(), _fragments.dists)
    _grad_ref, = torch.autograd.grad(_alpha_ref.sum(), _fragments.dists)
    assert torch.allclose(_grad.double(), _grad_ref.double(), rtol=1e-3, atol=_tolerance), "hidden test: wrong gradient"
### END HIDDEN TESTS

# %% [markdown]
# **Exercise 2.2 — the soft colour blend.** Write `soft_rgb(colors, fragments, sigma, gamma,
# background, znear, zfar)` returning the $(N, H, W, 3)$ RGB of `softmax_rgb_blend`, from the
# formula in section 2 (your `soft_silhouette_from_fragments` may compute $D$). The test tries
# $\gamma$ down to $10^{-6}$.

# %% nbgrader={"grade": false, "grade_id": "ex2_2_answer", "locked": false, "schema_version": 3, "solution": true, "task": false}
def soft_rgb(colors, fragments, sigma, gamma, background, znear=1.0, zfar=100.0):
    """Soft Rasterizer's colour (N, H, W, 3) of colors (N, H, W, K, 3) blended over the K faces."""
    ### BEGIN SOLUTION
    eps = 1e-10
    covered = fragments.pix_to_face >= 0
    D = torch.where(covered, torch.sigmoid(-fragments.dists / sigma), torch.zeros_like(fragments.dists))
    z = torch.where(covered, (zfar - fragments.zbuf) / (zfar - znear), torch.zeros_like(fragments.zbuf))
    z_max = z.amax(dim=-1, keepdim=True).clamp_min(eps)
    weights = D * torch.exp((z - z_max) / gamma)
    w_background = torch.exp((eps - z_max) / gamma).clamp_min(eps)
    background = torch.as_tensor(background, dtype=colors.dtype)
    numerator = (weights[..., None] * colors).sum(dim=-2) + w_background * background
    return numerator / (weights.sum(dim=-1, keepdim=True) + w_background)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "ex2_2_tests", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
assert chapter02.check_soft_rgb(soft_rgb)
### BEGIN HIDDEN TESTS
import importlib
from lib3dr_book.exercises import shortcuts
shortcuts = importlib.reload(shortcuts)  # as shipped, whatever the notebook did to it


def _soft_rgb_reference(colors, fragments, sigma, gamma, background, znear, zfar):
    eps = 1e-10
    inside = fragments.pix_to_face >= 0
    D = torch.sigmoid(-fragments.dists / sigma).masked_fill(~inside, 0.0)
    depth = ((zfar - fragments.zbuf) / (zfar - znear)).masked_fill(~inside, 0.0)
    nearest = depth.max(dim=-1, keepdim=True).values.clamp(min=eps)
    w = D * torch.exp((depth - nearest) / gamma)
    w_b = torch.exp((eps - nearest) / gamma).clamp(min=eps)
    total = w.sum(-1, keepdim=True) + w_b
    return (torch.einsum("nhwk,nhwkc->nhwc", w, colors) + w_b * torch.tensor(background, dtype=colors.dtype)) / total


_g = torch.Generator().manual_seed(22)
for _sigma, _K, _gamma, _znear, _zfar in [(5e-4, 5, 3e-2, 0.5, 20.0), (2e-3, 8, 1e-5, 1.0, 100.0)]:
    _fragments = chapter02.sample_fragments(_sigma, _K, 18).detach()
    _colors = torch.rand(*_fragments.pix_to_face.shape, 3, generator=_g, dtype=torch.float64)
    _colors = _colors * (_fragments.pix_to_face >= 0)[..., None]
    _background = (0.7, 0.1, 0.4)
    _args = (_colors, _fragments, _sigma, _gamma, _background, _znear, _zfar)
    _rgb = shortcuts.call_honestly(soft_rgb, _args, why="write the blend yourself",
                                   targets=("lib3dr.renderer.blending.softmax_rgb_blend",
                                            "lib3dr.renderer.blending.coverage_probability"))
    assert torch.allclose(_rgb.detach().double(), _soft_rgb_reference(*_args), atol=1e-6), "hidden test: wrong colour"
### END HIDDEN TESTS
