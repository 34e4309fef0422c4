"""Pose estimation and tracking: find the camera that makes a render match an observed image.

The chapters fit the textbook's way, one start and Adam, and show where that fails: silhouette
losses have local minima, and a symmetric object has look-alike views. ``fit_pose`` is the
version to take to your own images:

1. *multi-start*: candidate views (a Fibonacci sphere of viewing directions times in-plane rolls),
   each at the distance that gives the observed silhouette its area, are scored by the IoU of
   their hard silhouettes with the target at low resolution (and, given a colour image, by their
   colours); the best few are refined, all in one batch, and if the result's silhouette IoU is
   poor, the next few;
2. *coarse to fine*: the refinement runs at 64, 128 and 256 pixels, with the soft silhouette's
   sigma shrinking with the pixel so that its blur stays about two pixels wide (wide enough to
   see, cheap enough to render);
3. each level stops when the loss stops falling, not after a fixed count.

``track`` follows a video: the previous pose extrapolated at constant velocity starts each frame,
a few iterations refine it, and a frame whose silhouette IoU drops below a threshold is fitted
again from scratch with ``fit_pose``.

Two parameterisations: ``LookAtPose`` is the textbook's camera centre looking at the origin
(+Y up, no roll); ``ObjectPose`` is a full 6-DoF pose, the object's rotation (continuous 6D
representation) and translation in the frame of a fixed camera. Both give the world-to-view
``R, T`` (``X_view = X_world @ R + T``) that renderers take.
"""
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from lib3dr.renderer.cameras import camera_centers
from lib3dr.renderer.rasterizer import MeshRasterizer, RasterizationSettings
from lib3dr.renderer.silhouette import soft_silhouette
from lib3dr.structures import Meshes
from lib3dr.transforms import (look_at_rotation, matrix_to_rotation_6d, rotation_6d_to_matrix,
                               so3_relative_angle)

__all__ = ["LookAtPose", "ObjectPose", "PoseFit", "Track", "camera_centre_distance",
           "camera_from_position", "fibonacci_directions", "fit_pose", "hard_silhouette", "rgb_loss",
           "rotation_error_degrees", "silhouette_iou", "silhouette_mse", "soft_iou_loss", "track",
           "viewing_angle_degrees"]


# ---------------------------------------------------------------------------------------------
# The textbook's camera, and how far one camera is from another (chapter 3 explains them: the
# textbook parametrises a camera by its centre alone, looking at the origin with +Y up; a fit is
# judged by the distance between centres, the rotation between orientations and the angle
# between viewing directions)

def camera_from_position(position):
    """World-to-view ``R, T`` of cameras at ``position`` looking at the origin, +Y up.

    ``R = look_at_rotation(C)`` and ``T = -C R`` (so that the centre lands at the view-space
    origin), differentiable with respect to ``position`` (chapter 3).

    Args:
        position: (3,) or (N, 3) camera centres C in world space.
    Returns:
        R: (N, 3, 3), T: (N, 3), in the dtype and on the device of ``position``.
    """
    C = position.reshape(-1, 3)
    R = look_at_rotation(C, device=C.device).to(C.dtype)
    T = -(C[:, None, :] @ R)[:, 0]
    return R, T


def camera_centre_distance(position, reference):
    """Euclidean distance between camera centres, ``(N,)`` (or a 0-d tensor for (3,) inputs)."""
    return (torch.as_tensor(position) - torch.as_tensor(reference)).norm(dim=-1)


def rotation_error_degrees(R, R_ref):
    """Angle in degrees of the rotation that takes the camera orientation ``R_ref`` to ``R``.

    It is at least the angle between the two viewing directions (``viewing_angle_degrees``), and
    larger when the cameras also roll relative to each other: two look-at cameras at elevation 50
    degrees whose azimuths differ by 10 degrees view directions 6.4 degrees apart, but one is the
    other turned by 10 degrees about +Y (chapter 3).

    Args:
        R, R_ref: (N, 3, 3) or (3, 3) rotation matrices.
    Returns:
        (N,) angles in degrees.
    """
    R, R_ref = R.reshape(-1, 3, 3), R_ref.reshape(-1, 3, 3).to(R.dtype)
    return so3_relative_angle(R, R_ref.expand_as(R)) * (180.0 / math.pi)


def viewing_angle_degrees(position, reference):
    """Angle in degrees between the directions from the origin to two camera centres: for cameras
    looking at the origin, the angle between their viewing directions (chapter 3)."""
    a, b = torch.as_tensor(position), torch.as_tensor(reference)
    a, b = torch.broadcast_tensors(a, b.to(a.dtype))
    # atan2(|a x b|, a . b) stays accurate for small angles, where acos of the cosine does not.
    return torch.atan2(torch.cross(a, b, dim=-1).norm(dim=-1), (a * b).sum(-1)) * (180.0 / math.pi)


# ---------------------------------------------------------------------------------------------
# Parameterisations

class LookAtPose(torch.nn.Module):
    """The textbook's camera: centre ``position (B, 3)`` looking at the origin, +Y up."""

    # A step of the centre turns the view by step / distance: at the usual distance of about 3,
    # three times the step of ObjectPose's rotation entries turns it about as much.
    lr_scale = 3.0

    def __init__(self, position):
        super().__init__()
        self.position = torch.nn.Parameter(position.detach().reshape(-1, 3).clone())

    @classmethod
    def from_RT(cls, R, T):
        return cls(camera_centers(R, T))

    def forward(self):
        """World-to-view ``R (B, 3, 3), T (B, 3)``."""
        return camera_from_position(self.position)


class ObjectPose(torch.nn.Module):
    """A 6-DoF pose: rotation ``R (B, 3, 3)`` as its continuous 6D representation (Zhou et al.,
    CVPR 2019; no singularities, unlike Euler angles) and translation ``T (B, 3)``."""

    lr_scale = 1.0

    def __init__(self, R, T):
        super().__init__()
        self.rotation_6d = torch.nn.Parameter(matrix_to_rotation_6d(R.detach()).clone())
        self.translation = torch.nn.Parameter(T.detach().clone())

    @classmethod
    def from_RT(cls, R, T):
        return cls(R, T)

    def forward(self):
        return rotation_6d_to_matrix(self.rotation_6d), self.translation


PARAMETERISATIONS = {"look_at": LookAtPose, "object": ObjectPose}


# ---------------------------------------------------------------------------------------------
# Losses, one value per image of the batch: (B,)

def silhouette_mse(alpha, target):
    """The textbook's ``sum((alpha - target)^2)`` per image."""
    return ((alpha - target) ** 2).flatten(1).sum(1)


def soft_iou_loss(alpha, target):
    """``1 - sum(alpha target) / sum(alpha + target - alpha target)``: scale-free, in [0, 1]."""
    intersection = (alpha * target).flatten(1).sum(1)
    union = (alpha + target - alpha * target).flatten(1).sum(1)
    return 1 - intersection / union.clamp_min(1e-12)


def rgb_loss(image, target_rgb, mask, p=1):
    """Mean L1 (``p=1``) or squared (``p=2``) colour difference over the pixels of ``mask (B, H, W)``."""
    diff = (image - target_rgb).abs() if p == 1 else (image - target_rgb) ** 2
    weight = mask[..., None]
    return (diff * weight).flatten(1).sum(1) / (3 * weight.flatten(1).sum(1)).clamp_min(1)


def silhouette_iou(mask, target):
    """IoU of two binary masks ``(B, H, W)`` (thresholded at 0.5): ``(B,)``."""
    a, b = mask > 0.5, target > 0.5
    return (a & b).flatten(1).sum(1) / (a | b).flatten(1).sum(1).clamp_min(1)


# ---------------------------------------------------------------------------------------------
# Rendering helpers

def hard_silhouette(meshes, cameras, image_size, R, T):
    """Binary silhouettes ``(B, S, S)`` of ``meshes`` (one per pose) from one z-buffer pass."""
    settings = RasterizationSettings(image_size=image_size, faces_per_pixel=1, blur_radius=0.0)
    with torch.no_grad():
        fragments = MeshRasterizer(cameras, settings)(meshes, R=R, T=T)
    return (fragments.pix_to_face[..., 0] >= 0).to(R.dtype)


def fibonacci_directions(n, dtype=torch.float32, device="cpu"):
    """``n`` unit vectors spread evenly over the sphere (a Fibonacci lattice): ``(n, 3)``."""
    i = torch.arange(n, dtype=torch.float64, device=device) + 0.5
    y = 1 - 2 * i / n
    r = (1 - y ** 2).sqrt()
    phi = i * math.pi * (3 - math.sqrt(5))
    return torch.stack([r * torch.cos(phi), y, r * torch.sin(phi)], dim=-1).to(dtype)


def _roll(R, T, angles):
    """Turns cameras about their viewing axis: ``X_view' = X_view @ Rz(angle)``."""
    c, s = torch.cos(angles), torch.sin(angles)
    o, i = torch.zeros_like(c), torch.ones_like(c)
    Rz = torch.stack([c, -s, o, s, c, o, o, o, i], dim=-1).reshape(-1, 3, 3).to(R.dtype)
    return R @ Rz, (T[:, None, :] @ Rz)[:, 0]


def _shape_of(mesh):
    """The mesh without its textures: silhouettes need only the shape, and a batch of hypotheses
    then does not carry a texture per pose."""
    return Meshes(verts=mesh.verts_list(), faces=mesh.faces_list())


def _downsample(image, size):
    """Area-averaged ``(B, H, W)`` -> ``(B, size, size)``."""
    return F.adaptive_avg_pool2d(image[:, None], size)[:, 0] if image.shape[-1] != size else image


# ---------------------------------------------------------------------------------------------
# Checks

def _check_target(name, image, device, channels=None):
    if not torch.is_tensor(image) or not image.is_floating_point():
        raise TypeError(f"{name} must be a float tensor, got {type(image).__name__}"
                        f"{'' if not torch.is_tensor(image) else ' of ' + str(image.dtype)}")
    want = "(H, W)" if channels is None else "(H, W, 3)"
    shape_ok = image.dim() == 2 if channels is None else (image.dim() == 3 and image.shape[-1] == 3)
    if not shape_ok or image.shape[0] != image.shape[1]:
        raise ValueError(f"{name} must be a square {want} image, got shape {tuple(image.shape)}")
    if image.device != device:
        raise ValueError(f"{name} is on {image.device} but the mesh is on {device}: move one of them")
    if not torch.isfinite(image).all():
        raise ValueError(f"{name} contains NaN or Inf")
    if image.min() < 0 or image.max() > 1:
        raise ValueError(f"{name} must hold values in [0, 1], got [{image.min():.3g}, {image.max():.3g}]")


# ---------------------------------------------------------------------------------------------
# Fitting

@dataclass
class PoseFit:
    """What ``fit_pose`` found: the pose, its world-to-view ``R (3, 3)``, ``T (3,)``, the final
    loss, the silhouette IoU of its hard render with the target at full size, the loss after
    each iteration, how many candidate views were scored, and (if asked) ``(level, iteration, R, T)``
    snapshots for plotting. ``score`` is what chose among the refined views (-IoU, plus the colour
    error when there is a colour target), ``attempts`` how many rounds of views were refined.
    ``diverged`` is True when a NaN loss stopped the fit early (the pose is then the last good
    one)."""
    pose: torch.nn.Module
    R: torch.Tensor
    T: torch.Tensor
    loss: float
    iou: float
    history: list = field(default_factory=list)
    candidates: int = 0
    snapshots: list = field(default_factory=list)
    diverged: bool = False
    score: float = math.inf
    attempts: int = 0


def _level_sigma(size, blur_pixels=2.0):
    """The sigma whose blur radius (``log(1e4) sigma`` in squared NDC) is ``blur_pixels`` wide."""
    return (blur_pixels * 2.0 / size) ** 2 / math.log(1 / 1e-4 - 1)


def _candidate_views(mesh, cameras, target, parameterisation, directions, rolls, size,
                     reference_distance=3.0):
    """Every candidate view's ``R, T`` at the distance that matches the target's silhouette area,
    and its IoU with the target at ``size`` pixels."""
    dtype, device = mesh.verts_packed().dtype, mesh.device
    views = fibonacci_directions(directions, dtype, device)
    R0, T0 = camera_from_position(reference_distance * views)
    area = hard_silhouette(mesh.extend(len(views)), cameras, size, R0, T0).flatten(1).sum(1)
    small_target = _downsample(target[None], size)
    target_area = (small_target > 0.5).sum()
    # Perspective: the area falls as 1 / distance^2.
    distance = reference_distance * (area.clamp_min(1) / target_area.clamp_min(1)).sqrt()
    R, T = camera_from_position(distance[:, None] * views)
    masks = hard_silhouette(mesh.extend(len(views)), cameras, size, R, T)
    if parameterisation == "object" and rolls > 1:
        # Rolling the camera about its axis rotates the image about its centre: each view is
        # rendered once and rotated, not rendered once per roll.
        angles = torch.arange(rolls, dtype=dtype, device=device) * (2 * math.pi / rolls)
        c, s, o = torch.cos(angles), torch.sin(angles), torch.zeros_like(angles)
        theta = torch.stack([c, -s, o, s, c, o], dim=-1).reshape(rolls, 2, 3).repeat(len(views), 1, 1)
        grid = F.affine_grid(theta, (len(theta), 1, size, size), align_corners=False)
        masks = F.grid_sample(masks.repeat_interleave(rolls, 0)[:, None], grid, align_corners=False)[:, 0]
        R, T = _roll(R.repeat_interleave(rolls, 0), T.repeat_interleave(rolls, 0), angles.repeat(len(views)))
    iou = silhouette_iou(masks, small_target.expand(len(R), -1, -1))
    return R, T, iou


def _mismatch(mesh, geometry, cameras, R, T, target, target_rgb, rgb_renderer, rgb_weight, size):
    """How badly each pose ``R (B, 3, 3), T (B, 3)`` explains the target, from hard renders at
    ``size`` pixels: ``-IoU`` of the silhouettes, plus ``rgb_weight`` times the mean colour error
    inside the target's silhouette when there is a colour target. Also returns the IoU."""
    with torch.no_grad():
        small_target = _downsample(target[None], size).expand(len(R), -1, -1)
        iou = silhouette_iou(hard_silhouette(geometry.extend(len(R)), cameras, size, R, T), small_target)
        score = -iou
        if target_rgb is not None:
            rgb = rgb_renderer(mesh.extend(len(R)), cameras=cameras, R=R, T=T)[..., :3]
            rgb = F.adaptive_avg_pool2d(rgb.permute(0, 3, 1, 2), size).permute(0, 2, 3, 1)
            small_rgb = F.adaptive_avg_pool2d(target_rgb.permute(2, 0, 1)[None], size)[0].permute(1, 2, 0)
            score = score + rgb_weight * rgb_loss(rgb, small_rgb, small_target)
    return score, iou


def fit_pose(mesh, target, cameras, target_rgb=None, rgb_renderer=None, parameterisation="object",
             directions=100, rolls=12, candidates=3, attempts=3, good_iou=0.97, levels=(64, 128, 256),
             max_iterations=40, lr=0.02, rgb_weight=1.0, tolerance=1e-3, faces_per_pixel=100,
             snapshots=False, progress=False):
    """Finds the pose whose render matches ``target``, robustly (see the module's docstring).

    Args:
        mesh: a ``Meshes`` with one mesh.
        target: (S, S) silhouette in [0, 1].
        cameras: the camera whose intrinsics the target was taken with (its R, T are ignored).
        target_rgb: optional (S, S, 3) colour image in [0, 1]; with ``rgb_renderer`` (a
            ``MeshRenderer`` with a hard shader, taking ``cameras=, R=, T=``) it helps choose
            among views whose silhouettes look alike.
        parameterisation: "object" (6-DoF) or "look_at" (camera centre, the textbook's).
        directions, rolls: the candidate views (rolls only for "object").
        candidates: how many of the best views are refined (in one batch) at the first level;
            the best of them goes on alone.
        attempts, good_iou: while the refined pose's silhouette IoU is below ``good_iou``, the
            next ``candidates`` views are refined, up to ``attempts`` rounds; the best is kept.
        levels: image sizes of the coarse-to-fine refinement (the target's size is the last).
        max_iterations: per level; a level stops earlier once the best loss changes by less
            than ``tolerance`` (relative) over 5 iterations.
        lr: Adam's learning rate at the first level, halved at each next one (a smaller step
            for a finer image).
        snapshots: keep ``(level size, iteration, R, T)`` every 5 iterations.
        progress: show a progress bar.
    Returns:
        a ``PoseFit``.
    """
    target, target_rgb = _checked_fit_inputs(mesh, target, target_rgb, rgb_renderer, parameterisation)
    geometry = _shape_of(mesh)
    size = target.shape[-1]
    levels = [s for s in levels if s < size] + [size]
    mismatch = lambda R, T, at: _mismatch(mesh, geometry, cameras, R, T, target, target_rgb,  # noqa: E731
                                          rgb_renderer, rgb_weight, at)
    R, T, ranked = _ranked_views(geometry, cameras, target, target_rgb is not None, parameterisation,
                                 directions, rolls, candidates * attempts, levels[0], mismatch)
    result = PoseFit(None, None, None, math.inf, 0.0, candidates=len(ranked))
    bar = tqdm(total=attempts * len(levels) * max_iterations, desc="fit_pose", disable=not progress)
    for attempt in range(attempts):
        chosen = ranked[attempt * candidates:(attempt + 1) * candidates]
        if len(chosen) == 0:
            break
        pose = _refine(PARAMETERISATIONS[parameterisation].from_RT(R[chosen], T[chosen]), result, geometry,
                       cameras, target, levels, parameterisation, mismatch, max_iterations, lr, tolerance,
                       faces_per_pixel, snapshots, bar)
        result.attempts = attempt + 1
        _keep_if_better(result, pose, mismatch, size)
        if result.iou >= good_iou or result.diverged:
            break
    bar.close()
    return result


def _checked_fit_inputs(mesh, target, target_rgb, rgb_renderer, parameterisation):
    """fit_pose's arguments checked, and the targets in the mesh's dtype."""
    if parameterisation not in PARAMETERISATIONS:
        raise ValueError(f"parameterisation must be one of {sorted(PARAMETERISATIONS)}, got {parameterisation!r}")
    if len(mesh) != 1:
        raise ValueError(f"fit_pose fits one mesh, got a batch of {len(mesh)}")
    device, dtype = mesh.device, mesh.verts_packed().dtype
    _check_target("target", target, device)
    if (target > 0.5).sum() == 0:
        raise ValueError("target is empty: no pixel above 0.5, so there is no silhouette to fit")
    if target_rgb is not None:
        _check_target("target_rgb", target_rgb, device, channels=3)
        if target_rgb.shape[0] != target.shape[0]:
            raise ValueError(f"target_rgb is {target_rgb.shape[0]} pixels wide but target {target.shape[0]}")
        if rgb_renderer is None:
            raise ValueError("target_rgb needs an rgb_renderer (a MeshRenderer with a hard shader)")
        target_rgb = target_rgb.to(dtype)
    return target.to(dtype), target_rgb


def _ranked_views(geometry, cameras, target, with_rgb, parameterisation, directions, rolls, wanted,
                  size, mismatch):
    """The candidate views ``R, T`` and their indices from best to worst match at ``size``."""
    R, T, score = _candidate_views(geometry, cameras, target, parameterisation, directions, rolls, size)
    if with_rgb:
        # Colours tell apart views whose silhouettes are mirror images of each other.
        shortlist = score.topk(min(4 * wanted, len(score))).indices
        R, T = R[shortlist], T[shortlist]
        score = -mismatch(R, T, size)[0]
    return R, T, score.argsort(descending=True)


def _keep_if_better(result, pose, mismatch, size):
    """Makes the best pose of a refined batch the result if it beats the result's score.
    (_refine keeps a batch when it has one level or stops early.)"""
    with torch.no_grad():
        R_b, T_b = pose()
        scores, ious = mismatch(R_b, T_b, size)
        best = int(scores.argmin())
    if scores[best].item() < result.score:
        if len(R_b) > 1:
            pose = type(pose).from_RT(R_b[best:best + 1], T_b[best:best + 1])
        result.pose, result.R, result.T = pose, R_b[best].detach(), T_b[best].detach()
        result.score, result.iou = scores[best].item(), ious[best].item()
        result.loss = result.history[-1] if result.history else math.inf


def _refine(pose, result, geometry, cameras, target, levels, parameterisation, mismatch,
            max_iterations, lr, tolerance, faces_per_pixel, snapshots, bar):
    """fit_pose's coarse-to-fine refinement of a batch of poses; after the first level only the
    best goes on. Records the loss history in ``result`` and returns the refined pose."""
    for level, level_size in enumerate(levels):
        if level == 1 and len(pose()[0]) > 1:
            with torch.no_grad():
                R_b, T_b = pose()
                winner = int(mismatch(R_b, T_b, level_size)[0].argmin())
            pose = PARAMETERISATIONS[parameterisation].from_RT(R_b[winner:winner + 1], T_b[winner:winner + 1])
        batch = geometry.extend(len(pose()[0]))
        level_target = _downsample(target[None], level_size).expand(len(batch), -1, -1)
        optimizer = torch.optim.Adam(pose.parameters(), lr=lr * pose.lr_scale * 0.5 ** level)
        # The soft silhouette is wider than the hard one (its blur reaches outwards), which biases
        # the pose (the object moves away to shrink it): the blur narrows level by level.
        sigma = _level_sigma(level_size, blur_pixels=2.0 if level == 0 else 1.0 if level < len(levels) - 1 else 0.5)
        recent = []
        last_good = [p.detach().clone() for p in pose.parameters()]
        for iteration in range(max_iterations):
            R_b, T_b = pose()
            alpha = soft_silhouette(batch, cameras, image_size=level_size, sigma=sigma,
                                    faces_per_pixel=faces_per_pixel, R=R_b, T=T_b)
            losses = soft_iou_loss(alpha, level_target)
            if not torch.isfinite(losses).all():
                with torch.no_grad():
                    for p, good in zip(pose.parameters(), last_good):
                        p.copy_(good)
                result.diverged = True
                return pose
            last_good = [p.detach().clone() for p in pose.parameters()]
            optimizer.zero_grad()
            losses.sum().backward()
            optimizer.step()
            recent.append(losses.min().item())
            result.history.append(recent[-1])
            if snapshots and iteration % 5 == 0:
                result.snapshots.append((level_size, iteration, R_b.detach().clone(), T_b.detach().clone()))
            bar.update(1)
            if len(recent) > 5 and abs(recent[-6] - recent[-1]) <= tolerance * abs(recent[-6]):
                break
    return pose


# ---------------------------------------------------------------------------------------------
# Tracking

@dataclass
class Track:
    """What ``track`` found: per frame ``R (F, 3, 3)``, ``T (F, 3)``, the silhouette IoU, and the
    frames where ``fit_pose`` re-initialised the track. Frames with an empty silhouette (the
    object hidden or out of view) keep the constant-velocity prediction and an IoU of NaN."""
    R: torch.Tensor
    T: torch.Tensor
    iou: torch.Tensor
    reinitialised: list


def _predict(history):
    """The next pose from the last two: constant velocity, the last motion applied once more."""
    (R, T), previous = history[-1], history[-2] if len(history) > 1 else None
    if previous is None:
        return R, T
    R_prev, T_prev = previous
    return R @ (R_prev.transpose(-1, -2) @ R), T + (T - T_prev)


def track(mesh, frames, cameras, init=None, parameterisation="object", iterations=8, lr=0.005,
          iou_threshold=0.9, image_size=None, faces_per_pixel=100, progress=False, **fit_kwargs):
    """Follows the pose through a sequence of silhouettes ``frames (F, S, S)``.

    Args:
        init: ``(R, T)`` of frame 0 (each ``(3, 3)``/``(3,)``), or None to find it with ``fit_pose``.
        iterations: Adam iterations per frame, at ``image_size`` (default: the frames' size).
        iou_threshold: below this silhouette IoU after refinement, the frame is fitted again with
            ``fit_pose`` (``fit_kwargs`` go to it).
    Returns:
        a ``Track``.
    """
    if not torch.is_tensor(frames) or frames.dim() != 3:
        raise ValueError(f"frames must be an (F, S, S) tensor of silhouettes, got "
                         f"{tuple(frames.shape) if torch.is_tensor(frames) else type(frames).__name__}")
    for t, frame in enumerate(frames):
        _check_target(f"frames[{t}]", frame, mesh.device)
    size = image_size or frames.shape[-1]
    sigma = _level_sigma(size, blur_pixels=1.0)
    geometry = _shape_of(mesh)
    dtype = geometry.verts_packed().dtype
    if init is None:
        fit = fit_pose(mesh, frames[0], cameras, parameterisation=parameterisation, **fit_kwargs)
        history, reinitialised = [(fit.R, fit.T)], [0]
    else:
        history, reinitialised = [(init[0].to(dtype), init[1].to(dtype))], []
    Rs, Ts, ious = [], [], []
    for t in tqdm(range(len(frames)), desc="track", disable=not progress):
        R_pred, T_pred = _predict(history)
        if not (frames[t] > 0.5).any():
            # Nothing to see (occluded, or out of the image): coast at constant velocity.
            history.append((R_pred, T_pred))
            Rs.append(R_pred), Ts.append(T_pred), ious.append(float("nan"))
            continue
        target = _downsample(frames[t][None].to(dtype), size)
        pose = PARAMETERISATIONS[parameterisation].from_RT(R_pred[None], T_pred[None])
        optimizer = torch.optim.Adam(pose.parameters(), lr=lr * pose.lr_scale)
        for _ in range(iterations):
            R_b, T_b = pose()
            alpha = soft_silhouette(geometry, cameras, image_size=size, sigma=sigma,
                                    faces_per_pixel=faces_per_pixel, R=R_b, T=T_b)
            loss = soft_iou_loss(alpha, target).sum()
            if not torch.isfinite(loss):
                break
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            R_new, T_new = (x[0].detach() for x in pose())
            iou = silhouette_iou(hard_silhouette(geometry, cameras, frames.shape[-1], R_new[None], T_new[None]),
                                 frames[t][None].to(dtype)).item()
        if iou < iou_threshold:
            fit = fit_pose(mesh, frames[t], cameras, parameterisation=parameterisation, **fit_kwargs)
            R_new, T_new, iou = fit.R, fit.T, fit.iou
            reinitialised.append(t)
            history = []  # the velocity across a re-initialisation means nothing
        history.append((R_new, T_new))
        Rs.append(R_new), Ts.append(T_new), ious.append(iou)
    return Track(torch.stack(Rs), torch.stack(Ts), torch.tensor(ious), sorted(set(reinitialised)))
