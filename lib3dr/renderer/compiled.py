"""Autograd functions over the compiled kernels of ``lib3dr._C``, and the checks before a CUDA launch.

The public functions (``rasterize_meshes``, ``soft_silhouette``, ``silhouette_from_dists``, and the
packed path of the soft shaders: ``rasterize_meshes_packed``, ``softmax_rgb_blend_packed``) choose
a backend and call these for ``"cpu"`` and ``"cuda"``; the ``"torch"`` backend needs none of them.
"""
import contextlib

import torch

from lib3dr import _backend
from lib3dr.renderer.memory import BYTES_PER_FRAGMENT

# The CUDA kernels keep a pixel's nearest faces in a list of fixed size, for the fragments and the
# fused silhouette alike (kMaxFacesPerPixel in extensions/csrc/rasterize_cuda.cu).
CUDA_MAX_FACES_PER_PIXEL = 128


def check_cuda_launch(first_face, num_faces, num_packed_faces, faces_per_pixel):
    """Raises ``ValueError`` before a CUDA launch on what the kernels assume without checking: at
    most ``CUDA_MAX_FACES_PER_PIXEL`` faces per pixel, and meshes whose face ranges ``[first,
    first + count)`` are sorted, disjoint and inside the packed faces (a face's mesh is found by a
    binary search over the first faces). ``Meshes`` packs them so."""
    if faces_per_pixel > CUDA_MAX_FACES_PER_PIXEL:
        raise ValueError(
            f"faces_per_pixel={faces_per_pixel}, but the CUDA kernels keep at most "
            f"{CUDA_MAX_FACES_PER_PIXEL} faces per pixel (the fragments and the fused "
            f"lib3dr.soft_silhouette alike). Use faces_per_pixel <= {CUDA_MAX_FACES_PER_PIXEL}, "
            f"or backend='torch' (no cap, {BYTES_PER_FRAGMENT} bytes per face per pixel), or CPU "
            f"tensors, where the 'cpu' backend and its fused lib3dr.soft_silhouette have no cap.")
    first, num = first_face.cpu(), num_faces.cpu()  # N numbers: one small copy
    end = first + num
    if ((first < 0) | (num < 0) | (end > num_packed_faces)).any() or (first[1:] < end[:-1]).any():
        raise ValueError(
            f"the CUDA kernels need the meshes' face ranges [first, first + count) sorted, "
            f"disjoint and within the {num_packed_faces} packed faces; got first faces "
            f"{first.tolist()} and counts {num.tolist()}")


def _stream(tensor):
    """The current CUDA stream of the tensor's device as an integer (the kernels take it so)."""
    return torch.cuda.current_stream(tensor.device).cuda_stream if tensor.is_cuda else 0


def _on_device(tensor):
    """Makes the tensor's GPU the current device for a kernel launch."""
    return torch.cuda.device(tensor.device) if tensor.is_cuda else contextlib.nullcontext()


class RasterizeFaces(torch.autograd.Function):
    @staticmethod
    def forward(ctx, face_verts, first_face, num_faces, H, W, K, blur_radius, perspective_correct,
                clip_barycentric, cull_backfaces):
        options = (H, W, K, blur_radius, perspective_correct, clip_barycentric, cull_backfaces)
        with _on_device(face_verts):
            pix_to_face, zbuf, bary, dists = _backend._C.rasterize_forward(
                face_verts, first_face, num_faces, *options, _stream(face_verts))
        ctx.save_for_backward(face_verts, pix_to_face)
        ctx.options = options
        ctx.mark_non_differentiable(pix_to_face)
        # Outputs the loss does not use get None, not (N, H, W, K) tensors of zeros.
        ctx.set_materialize_grads(False)
        return pix_to_face, zbuf, bary, dists

    @staticmethod
    def backward(ctx, _grad_pix_to_face, grad_zbuf, grad_bary, grad_dists):
        face_verts, pix_to_face = ctx.saved_tensors
        grads = [grad_zbuf, grad_bary, grad_dists]
        if all(grad is None for grad in grads):
            return (None,) * 10
        if face_verts.is_cuda:  # the CUDA kernel reads all three
            shapes = (pix_to_face.shape, pix_to_face.shape + (3,), pix_to_face.shape)
            grads = [face_verts.new_zeros(shape) if grad is None else grad
                     for grad, shape in zip(grads, shapes)]
        grads = [None if grad is None else grad.contiguous() for grad in grads]
        with _on_device(face_verts):
            grad_face_verts = _backend._C.rasterize_backward(
                face_verts, pix_to_face, *grads, *ctx.options, _stream(face_verts))
        return (grad_face_verts,) + (None,) * 9


class SoftSilhouette(torch.autograd.Function):
    @staticmethod
    def forward(ctx, face_verts, first_face, num_faces, H, W, K, blur_radius, perspective_correct,
                clip_barycentric, cull_backfaces, sigma):
        options = (H, W, K, blur_radius, perspective_correct, clip_barycentric, cull_backfaces,
                   sigma)
        with _on_device(face_verts):
            alpha, *state = _backend._C.soft_silhouette_forward(
                face_verts, first_face, num_faces, *options, _stream(face_verts))
        # No (N, H, W, K) fragments are kept: the state is per pixel (the CPU kernel's
        # transmittance and depth cut, nothing on CUDA) and the backward revisits the faces.
        ctx.save_for_backward(face_verts, first_face, num_faces, *state)
        ctx.options = options
        return alpha

    @staticmethod
    def backward(ctx, grad_alpha):
        face_verts, first_face, num_faces, *state = ctx.saved_tensors
        with _on_device(face_verts):
            grad_face_verts = _backend._C.soft_silhouette_backward(
                face_verts, first_face, num_faces, grad_alpha.contiguous(), state, *ctx.options,
                _stream(face_verts))
        return (grad_face_verts,) + (None,) * 10


class SilhouetteBlend(torch.autograd.Function):
    """``silhouette_from_dists`` by the compiled CPU kernel: one pass over the fragments, and a
    backward that writes ``d alpha / d dists_k = -transmittance * D_k / sigma`` directly."""

    @staticmethod
    def forward(ctx, pix_to_face, dists, sigma):
        pix_to_face, dists = pix_to_face.contiguous(), dists.contiguous()
        alpha, log_transmittance = _backend._C.silhouette_blend_forward(pix_to_face, dists, sigma)
        ctx.save_for_backward(pix_to_face, dists, log_transmittance)
        ctx.sigma = sigma
        return alpha

    @staticmethod
    def backward(ctx, grad_alpha):
        pix_to_face, dists, log_transmittance = ctx.saved_tensors
        grad_dists = _backend._C.silhouette_blend_backward(
            pix_to_face, dists, log_transmittance, grad_alpha.contiguous(), ctx.sigma)
        return None, grad_dists, None


class RasterizePacked(torch.autograd.Function):
    """``rasterize_meshes`` one image at a time, each image's covered slots packed before the
    next is rasterized into the same ``(1, H, W, K)`` buffers (``lib3dr.renderer.packed``): the
    ``(N, H, W, K)`` fragments never exist, and the backward takes the packed gradients. CPU
    only."""

    @staticmethod
    def forward(ctx, face_verts, first_face, num_faces, H, W, K, blur_radius, perspective_correct,
                clip_barycentric, cull_backfaces, max_fragments):
        options = (H, W, K, blur_radius, perspective_correct, clip_barycentric, cull_backfaces)
        faces, zbuf, bary, dists, pixel, pixel_start = _backend._C.rasterize_packed_forward(
            face_verts, first_face, num_faces, *options, max_fragments)
        ctx.save_for_backward(face_verts, pixel, faces)
        ctx.options = (H, W, blur_radius, perspective_correct, clip_barycentric, cull_backfaces)
        ctx.mark_non_differentiable(faces, pixel, pixel_start)
        ctx.set_materialize_grads(False)
        return faces, zbuf, bary, dists, pixel, pixel_start

    @staticmethod
    def backward(ctx, _grad_faces, grad_zbuf, grad_bary, grad_dists, _grad_pixel, _grad_start):
        face_verts, pixel, faces = ctx.saved_tensors
        if grad_zbuf is None and grad_bary is None and grad_dists is None:
            return (None,) * 11
        M = len(faces)
        zeros = lambda *shape: face_verts.new_zeros(shape)  # noqa: E731
        grads = [zeros(M) if grad_zbuf is None else grad_zbuf.contiguous(),
                 zeros(M, 3) if grad_bary is None else grad_bary.contiguous(),
                 zeros(M) if grad_dists is None else grad_dists.contiguous()]
        grad_face_verts = _backend._C.rasterize_packed_backward(face_verts, pixel, faces, *grads,
                                                                *ctx.options)
        return (grad_face_verts,) + (None,) * 10


class SoftmaxBlend(torch.autograd.Function):
    """``softmax_rgb_blend_packed`` by the compiled CPU kernels. The weights (``BlendWeights``,
    computed from zbuf and dists without autograd) make the forward a weighted sum of the
    colours; the backward differentiates them w.r.t. zbuf and dists itself."""

    @staticmethod
    def forward(ctx, colors, zbuf, dists, weights, background, image_pixels):
        kept, *arrays = (t.contiguous() for t in weights[:5])  # kept, then the weight arrays
        colors, background = colors.contiguous(), background.contiguous()
        rgba = _backend._C.softmax_blend_forward(weights.pixel_start, arrays, background, kept,
                                                 colors)
        ctx.save_for_backward(colors, zbuf.contiguous(), weights.pixel_start, weights.znear,
                              weights.zfar, background, kept, rgba, *arrays)
        ctx.options = (image_pixels, weights.sigma, weights.gamma)
        return rgba

    @staticmethod
    def backward(ctx, grad_rgba):
        colors, zbuf, pixel_start, znear, zfar, background, kept, rgba, *arrays = ctx.saved_tensors
        grad_colors, grad_zbuf, grad_dists = _backend._C.softmax_blend_backward(
            pixel_start, zbuf, znear, zfar, arrays, background, kept, colors, rgba,
            grad_rgba.contiguous(), *ctx.options)
        return (grad_colors, grad_zbuf, grad_dists) + (None,) * 3


class FaceInterpolate(torch.autograd.Function):
    """``interpolate_packed`` by the compiled CPU kernel: no ``(M, 3, D)`` gather of the face
    attributes, and a backward that adds into ``(F, 3, D)`` per thread."""

    @staticmethod
    def forward(ctx, faces, bary_coords, face_attributes):
        inputs = (faces.contiguous(), bary_coords.contiguous(), face_attributes.contiguous())
        ctx.save_for_backward(*inputs)
        return _backend._C.interpolate_forward(*inputs)

    @staticmethod
    def backward(ctx, grad_out):
        grad_bary, grad_attributes = _backend._C.interpolate_backward(
            *ctx.saved_tensors, grad_out.contiguous(), ctx.needs_input_grad[1],
            ctx.needs_input_grad[2])
        return None, grad_bary, grad_attributes


class PhongLighting(torch.autograd.Function):
    """The Phong colours of packed fragments by the compiled CPU kernel, one pass forward and one
    backward instead of some forty tensor operations each way (``shading._light_covered``)."""

    @staticmethod
    def forward(ctx, pixel, image_pixels, points, normals, texels, point_light, light, ambient,
                diffuse, specular, shininess, camera):
        inputs = [t.contiguous() for t in (pixel, points, normals, texels)]
        per_image = [t.contiguous() for t in (light, ambient, diffuse, specular, shininess, camera)]
        ctx.save_for_backward(*inputs, *per_image)
        ctx.options = (image_pixels, point_light)
        return _backend._C.phong_lighting_forward(inputs[0], image_pixels, *inputs[1:], per_image,
                                                  point_light)

    @staticmethod
    def backward(ctx, grad_colors):
        pixel, points, normals, texels, *per_image = ctx.saved_tensors
        image_pixels, point_light = ctx.options
        grads = _backend._C.phong_lighting_backward(pixel, image_pixels, points, normals, texels,
                                                    per_image, point_light,
                                                    grad_colors.contiguous(),
                                                    ctx.needs_input_grad[10])
        return (None, None, *grads[:3], None, *grads[3:])
