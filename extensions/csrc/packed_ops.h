// The torch layer of the packed-fragment kernels (packed.h): checks, allocations, CPU calls.
// bindings.cpp includes this and binds each function with one m.def line. The forward functions
// check the values of index tensors (faces, pixels, kept); a backward takes the tensors its
// forward checked and checks only their shapes, as rasterize_backward does, but for the blend's
// pixel_start and kept, which the blend's backward checks again in full (O(P + M')).
#pragma once

#include <torch/extension.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace lib3dr {

// rasterize_forward's fragments of each image in turn, packed before the next image is
// rasterized into the same (1, H, W, K) buffers: {faces, zbuf, bary, dists, pixel, pixel_start}.
// Raises c10::OutOfMemoryError (torch.OutOfMemoryError) as soon as the images packed so far hold
// more than max_fragments fragments, before the next image's are kept.
std::vector<torch::Tensor> rasterize_packed_forward(
    const torch::Tensor& face_verts, const torch::Tensor& mesh_first_face,
    const torch::Tensor& mesh_num_faces, int64_t height, int64_t width, int64_t faces_per_pixel,
    double blur_radius, bool perspective_correct, bool clip_barycentric, bool cull_backfaces,
    int64_t max_fragments);

torch::Tensor rasterize_packed_backward(const torch::Tensor& face_verts,
                                        const torch::Tensor& pixel, const torch::Tensor& faces,
                                        const torch::Tensor& grad_zbuf,
                                        const torch::Tensor& grad_bary,
                                        const torch::Tensor& grad_dists, int64_t height,
                                        int64_t width, double blur_radius,
                                        bool perspective_correct, bool clip_barycentric,
                                        bool cull_backfaces);

// What the blend takes from the depths and distances: {kept (M',) increasing int64, then the
// weights: coverage (M,), share (M,), background_share (P,), transmittance (P,)}. `given` (M,)
// bool, when defined, says which fragments to keep instead of dropped_weight.
std::vector<torch::Tensor> softmax_blend_weights(
    const torch::Tensor& pixel_start, const torch::Tensor& zbuf, const torch::Tensor& dists,
    const torch::Tensor& znear, const torch::Tensor& zfar, const std::optional<torch::Tensor>& given,
    int64_t image_pixels, double sigma, double gamma, double dropped_weight);

// rgba (P, C + 1) from the kept fragments' colors (M', C) and the weights.
torch::Tensor softmax_blend_forward(const torch::Tensor& pixel_start,
                                    const std::vector<torch::Tensor>& weights,
                                    const torch::Tensor& background, const torch::Tensor& kept,
                                    const torch::Tensor& colors);

// {grad_colors, grad_zbuf, grad_dists}.
std::vector<torch::Tensor> softmax_blend_backward(
    const torch::Tensor& pixel_start, const torch::Tensor& zbuf, const torch::Tensor& znear,
    const torch::Tensor& zfar, const std::vector<torch::Tensor>& weights,
    const torch::Tensor& background, const torch::Tensor& kept, const torch::Tensor& colors,
    const torch::Tensor& rgba, const torch::Tensor& grad_rgba, int64_t image_pixels, double sigma,
    double gamma);

// Phong lighting of packed fragments (pixel (M,), images of image_pixels pixels): `per_image` is
// {light, ambient, diffuse, specular, shininess, camera} ((N, 3) each but shininess (N,)).
// Forward: colors (M, 3).
torch::Tensor phong_lighting_forward(const torch::Tensor& pixel, int64_t image_pixels,
                                     const torch::Tensor& points,
                                     const torch::Tensor& normals, const torch::Tensor& texels,
                                     const std::vector<torch::Tensor>& per_image,
                                     bool point_light);

// {grad_points, grad_normals, grad_texels, then one per per_image entry}.
std::vector<torch::Tensor> phong_lighting_backward(const torch::Tensor& pixel,
                                                   int64_t image_pixels,
                                                   const torch::Tensor& points,
                                                   const torch::Tensor& normals,
                                                   const torch::Tensor& texels,
                                                   const std::vector<torch::Tensor>& per_image,
                                                   bool point_light,
                                                   const torch::Tensor& grad_colors,
                                                   bool shininess_grad);

torch::Tensor interpolate_forward(const torch::Tensor& faces, const torch::Tensor& bary,
                                  const torch::Tensor& face_attrs);

// {grad_bary or undefined, grad_face_attrs or undefined}.
std::vector<torch::Tensor> interpolate_backward(const torch::Tensor& faces,
                                                const torch::Tensor& bary,
                                                const torch::Tensor& face_attrs,
                                                const torch::Tensor& grad_out, bool need_bary,
                                                bool need_face_attrs);

}  // namespace lib3dr
