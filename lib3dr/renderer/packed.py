"""Packed fragments: the covered (pixel, face) fragments as flat lists, for the soft shaders.

``Fragments`` hold K slots per pixel, ``(N, H, W, K)``; with blur most are empty (on the cow at
256x256 and K = 50, 400k of 3.3M), and of the covered ones the soft blend gives most a negligible
weight. ``PackedFragments`` keep only the covered slots, pixel by pixel (row-major) and nearest
first, so that a shader can select the fragments the blend weighs and shade only those
(``MeshRenderer`` with ``SoftPhongShader`` or ``SoftGouraudShader`` on the CPU does).
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from lib3dr import _backend
from lib3dr.renderer.compiled import FaceInterpolate
from lib3dr.renderer.interpolate import interpolate_packed


@dataclass
class PackedFragments:
    """The covered fragments of ``(N, H, W, K)`` fragments, M of them (see ``Fragments``).

    pix_to_face: ``(M,)`` int64 packed face index.
    zbuf: ``(M,)`` view-space depth.
    bary_coords: ``(M, 3)`` barycentric coordinates.
    dists: ``(M,)`` signed squared NDC distance to the face's edges.
    pixel: ``(M,)`` int64 pixel of each fragment, ``n * H * W + y * W + x``, never decreasing.
    pixel_start: ``(N * H * W + 1,)`` int64, pixel p's fragments are
        ``[pixel_start[p], pixel_start[p + 1])``; ``None`` for a subset (``select``).
    shape: ``(N, H, W, K)`` of the fragments these come from.
    """

    pix_to_face: torch.Tensor
    zbuf: torch.Tensor
    bary_coords: torch.Tensor
    dists: torch.Tensor
    pixel: torch.Tensor
    pixel_start: Optional[torch.Tensor]
    shape: Tuple[int, int, int, int]

    def __len__(self):
        return len(self.pix_to_face)

    def select(self, index):
        """The fragments ``index`` (increasing int64 indices), as PackedFragments without
        ``pixel_start``: enough to shade them, not to blend."""
        return PackedFragments(self.pix_to_face[index], self.zbuf[index], self.bary_coords[index],
                               self.dists[index], self.pixel[index], None, self.shape)

    def image_starts(self):
        """``N + 1`` ints: image n's fragments are ``[starts[n], starts[n + 1])``."""
        N, H, W, _ = self.shape
        bounds = torch.arange(N + 1, device=self.pixel.device) * (H * W)
        return torch.searchsorted(self.pixel, bounds).tolist()

    def by_image(self):
        """``image (M,)``, ``slot (M,)``, ``width``: each fragment's image, its position among that
        image's fragments and the most fragments any image has, as ``covered_by_image`` gives
        for ``Fragments``: ``batch[image, slot] = packed`` fills an ``(N, width, D)`` batch."""
        N, H, W, _ = self.shape
        M, device = len(self.pixel), self.pixel.device
        # The fragments run image by image: image n's are [first[n], first[n + 1]).
        first = torch.searchsorted(self.pixel, torch.arange(N + 1, device=device) * (H * W))
        counts = first.diff()
        image = torch.repeat_interleave(torch.arange(N, device=device), counts, output_size=M)
        slot = torch.arange(M, device=device) - first[image]
        return image, slot, int(counts.max()) if M else 0

    def interpolate(self, face_attributes):
        """Per-vertex attributes of the faces ``(F, 3, D)`` interpolated at the fragments:
        ``(M, D)``, by the compiled kernel on the CPU (``interpolate_packed``'s formula)."""
        face_attributes = face_attributes.to(self.bary_coords.dtype)
        if (self.bary_coords.device.type == "cpu" and _backend._C is not None
                and self.bary_coords.dtype in (torch.float32, torch.float64)):
            return FaceInterpolate.apply(self.pix_to_face, self.bary_coords, face_attributes)
        return interpolate_packed(self.pix_to_face, self.bary_coords, face_attributes)


def pack_fragments(fragments):
    """``Fragments`` -> ``PackedFragments``, differentiable w.r.t. zbuf, bary_coords and dists.

    The rasterizer fills each pixel's slots nearest first and pads with -1, so the covered slots
    in row-major order are the packed order. ``rasterize_meshes_packed`` gives the same lists
    without ever holding all N images' fragments."""
    pix_to_face = fragments.pix_to_face
    N, H, W, K = pix_to_face.shape
    covered = (pix_to_face >= 0).reshape(-1)
    slots = covered.nonzero()[:, 0]
    counts = covered.reshape(-1, K).sum(dim=1)
    pixel_start = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    return PackedFragments(pix_to_face.reshape(-1)[slots], fragments.zbuf.reshape(-1)[slots],
                           fragments.bary_coords.reshape(-1, 3)[slots],
                           fragments.dists.reshape(-1)[slots], slots // K, pixel_start,
                           (N, H, W, K))
