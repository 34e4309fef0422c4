"""The memory guard: what an unfused rasterization needs, and the limit it must stay under.

Fragments cost ``BYTES_PER_FRAGMENT`` per face per pixel, forward and backward; a call that would
exceed the limit raises ``RasterMemoryError`` before allocating anything (chapter 2 explains why
the fused silhouette needs none of it).
"""
import os

import torch

# Bytes per face per pixel of the unfused path, forward and backward: pix_to_face (8), zbuf (4),
# bary_coords (12) and dists (4), plus the gradients of the last three (20), in float32.
BYTES_PER_FRAGMENT = 48
# Bytes per covered fragment of the packed path (lib3dr.renderer.packed) at its peak, the end of
# the forward: pix_to_face (8), zbuf (4), bary_coords (12), dists (4) and pixel (8), held twice
# while the images' lists are concatenated (the backward's 20 bytes of gradients come after).
BYTES_PER_PACKED_FRAGMENT = 72

class RasterMemoryError(MemoryError):
    """A rasterization would need more memory than the limit allows (see ``set_memory_limit``)."""


_memory_limit = None


def memory_estimate(N, H, W, K):
    """Bytes the unfused rasterization of N images of H x W with K faces per pixel needs,
    forward and backward: ``N * H * W * K * 48``."""
    return int(N) * int(H) * int(W) * int(K) * BYTES_PER_FRAGMENT


def set_memory_limit(limit_bytes):
    """Caps the memory a rasterization may plan to use; ``None`` restores the default, half of
    the memory available on the device when the call is made."""
    global _memory_limit
    if limit_bytes is not None and limit_bytes <= 0:
        raise ValueError(f"the memory limit must be positive, got {limit_bytes}")
    _memory_limit = limit_bytes


def memory_limit(device):
    """The limit in force for ``device``, in bytes."""
    if _memory_limit is not None:
        return _memory_limit
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    try:
        with open("/proc/meminfo") as meminfo:
            available_kb = next(int(line.split()[1]) for line in meminfo
                                if line.startswith("MemAvailable:"))
        return available_kb * 1024 // 2
    except (OSError, StopIteration):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2


def check_memory(N, H, W, K, device):
    """Raises ``RasterMemoryError`` before allocating when the estimate exceeds the limit; else
    returns the bytes the limit leaves beside it."""
    needed, limit = memory_estimate(N, H, W, K), memory_limit(device)
    if needed > limit:
        raise RasterMemoryError(
            f"rasterizing N={N} images of H x W = {H} x {W} with K={K} faces per pixel needs about "
            f"{needed / 2**30:.2f} GiB ({BYTES_PER_FRAGMENT} bytes per face per pixel, forward and "
            f"backward), more than the limit of {limit / 2**30:.2f} GiB on {device}. Reduce "
            f"faces_per_pixel (K) first, then the image size (H, W) or the batch (N); a silhouette "
            f"alone needs far less through lib3dr.soft_silhouette(); or raise the limit with "
            f"lib3dr.renderer.memory.set_memory_limit(bytes).")
    return limit - needed
