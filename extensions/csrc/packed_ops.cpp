// The torch layer of the packed-fragment kernels: every tensor is checked (messages name the
// argument) before a raw pointer reaches packed_cpu.cpp. CPU tensors only: on CUDA the soft
// shaders keep the fragments and the torch formulas.
#include "packed_ops.h"

#include <algorithm>

#include "packed.h"
#include "torch_layer.h"

namespace lib3dr {
namespace {

void check_cpu(const torch::Tensor& t, const char* name, int64_t dim) {
  TORCH_CHECK(t.defined(), name, " is missing");
  TORCH_CHECK(t.is_cpu(), name, " must be a CPU tensor: the packed-fragment kernels run on the CPU");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
  TORCH_CHECK(t.dim() == dim, name, " must have ", dim, " dimensions, got shape ", t.sizes());
}

void check_float(const torch::Tensor& t, const char* name, int64_t dim,
                 const torch::Tensor& like) {
  check_cpu(t, name, dim);
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), name, " must be ", like.scalar_type(),
              " like the other inputs, got ", t.scalar_type());
}

// An int64 (count,) tensor; with `values`, also every entry in [0, limit).
void check_index(const torch::Tensor& t, const char* name, int64_t count, int64_t limit,
                 bool values = true) {
  check_cpu(t, name, 1);
  TORCH_CHECK(t.scalar_type() == torch::kLong, name, " must be int64, got ", t.scalar_type());
  TORCH_CHECK(t.size(0) == count, name, " must have ", count, " entries, got ", t.size(0));
  if (values && count > 0) {  // one plain pass: cheaper than a parallel reduction's wake-up
    const int64_t* v = t.data_ptr<int64_t>();
    int64_t lo = v[0], hi = v[0];
    for (int64_t i = 1; i < count; ++i) {
      lo = std::min(lo, v[i]);
      hi = std::max(hi, v[i]);
    }
    TORCH_CHECK(lo >= 0 && hi < limit, name, " must lie in [0, ", limit, "), got [", lo, ", ", hi,
                "]");
  }
}

// pixel_start (P + 1,) int64 from 0 to M, never decreasing: the blend kernels walk it with raw
// pointers, forward and backward, so every entry is checked each time (O(P), next to the
// kernels' O(P + M) work); a backward cannot trust it, as it need not be the forward's tensor.
void check_pixel_start(const torch::Tensor& pixel_start, int64_t M) {
  check_cpu(pixel_start, "pixel_start", 1);
  TORCH_CHECK(pixel_start.scalar_type() == torch::kLong, "pixel_start must be int64, got ",
              pixel_start.scalar_type());
  TORCH_CHECK(pixel_start.size(0) >= 1, "pixel_start must have P + 1 >= 1 entries, got none");
  const int64_t* start = pixel_start.data_ptr<int64_t>();
  const int64_t pixels = pixel_start.size(0) - 1;
  TORCH_CHECK(start[0] == 0 && start[pixels] == M, "pixel_start must run from 0 to ", M,
              " (the number of fragments), got ", start[0], " to ", start[pixels]);
  for (int64_t q = 0; q < pixels; ++q)
    TORCH_CHECK(start[q] <= start[q + 1], "pixel_start must never decrease, got ", start[q],
                " then ", start[q + 1], " at pixel ", q);
}

// The packed fragments of a blend: pixel_start (P + 1) from 0 to M, never decreasing; zbuf and
// dists (M,); znear and zfar (N,) with P = N * image_pixels.
void check_packed(const torch::Tensor& pixel_start, const torch::Tensor& zbuf,
                  const torch::Tensor& dists, const torch::Tensor& znear,
                  const torch::Tensor& zfar, int64_t image_pixels) {
  TORCH_CHECK(zbuf.scalar_type() == torch::kFloat || zbuf.scalar_type() == torch::kDouble,
              "zbuf must be float32 or float64, got ", zbuf.scalar_type());
  check_float(zbuf, "zbuf", 1, zbuf);
  check_float(dists, "dists", 1, zbuf);
  TORCH_CHECK(dists.size(0) == zbuf.size(0), "dists must have the ", zbuf.size(0),
              " entries of zbuf, got ", dists.size(0));
  check_pixel_start(pixel_start, zbuf.size(0));
  TORCH_CHECK(image_pixels > 0, "image_pixels must be > 0, got ", image_pixels);
  check_float(znear, "znear", 1, zbuf);
  check_float(zfar, "zfar", 1, zbuf);
  TORCH_CHECK(zfar.size(0) == znear.size(0), "znear and zfar must have one entry per image");
  TORCH_CHECK(pixel_start.size(0) - 1 == znear.size(0) * image_pixels,
              "pixel_start must have N * H * W + 1 = ", znear.size(0) * image_pixels + 1,
              " entries, got ", pixel_start.size(0));
}

// kept (M',) increasing fragment indices, walked alongside pixel_start: checked forward and
// backward for the same reason.
void check_kept(const torch::Tensor& kept, int64_t fragments) {
  check_cpu(kept, "kept", 1);
  TORCH_CHECK(kept.scalar_type() == torch::kLong, "kept must be int64, got ", kept.scalar_type());
  const int64_t* k = kept.data_ptr<int64_t>();
  for (int64_t i = 0; i < kept.size(0); ++i)
    TORCH_CHECK(k[i] >= 0 && k[i] < fragments && (i == 0 || k[i - 1] < k[i]),
                "kept must be increasing fragment indices in [0, ", fragments, ")");
}

SoftBlendParams blend_params(const torch::Tensor& pixel_start, int64_t image_pixels, int channels,
                             double sigma, double gamma, double dropped_weight) {
  TORCH_CHECK(sigma > 0 && gamma > 0, "sigma and gamma must be > 0, got ", sigma, " and ", gamma);
  SoftBlendParams p;
  p.pixels = pixel_start.size(0) - 1;
  p.image_pixels = image_pixels;
  p.channels = channels;
  p.sigma = sigma;
  p.gamma = gamma;
  p.dropped_weight = dropped_weight;
  return p;
}

// One image's (1, H, W, K) fragments -> {faces, zbuf, bary, dists, pixel, counts (H * W)}.
std::vector<torch::Tensor> pack_fragments(const torch::Tensor& pix_to_face,
                                          const torch::Tensor& zbuf, const torch::Tensor& bary,
                                          const torch::Tensor& dists, int64_t first_pixel) {
  check_cpu(pix_to_face, "pix_to_face", 4);
  TORCH_CHECK(pix_to_face.scalar_type() == torch::kLong, "pix_to_face must be int64");
  TORCH_CHECK(zbuf.scalar_type() == torch::kFloat || zbuf.scalar_type() == torch::kDouble,
              "zbuf must be float32 or float64, got ", zbuf.scalar_type());
  check_float(zbuf, "zbuf", 4, zbuf);
  check_float(dists, "dists", 4, zbuf);
  check_float(bary, "bary", 5, zbuf);
  TORCH_CHECK(zbuf.sizes() == pix_to_face.sizes() && dists.sizes() == pix_to_face.sizes() &&
                  bary.sizes().slice(0, 4) == pix_to_face.sizes() && bary.size(4) == 3,
              "zbuf, dists (N, H, W, K) and bary (N, H, W, K, 3) must match pix_to_face ",
              pix_to_face.sizes());
  const int64_t pixels = pix_to_face.numel() / std::max<int64_t>(1, pix_to_face.size(3));
  const int K = int(pix_to_face.size(3));
  auto counts = torch::empty({pixels}, pix_to_face.options());
  count_fragments_cpu(pixels, K, pix_to_face.data_ptr<int64_t>(), counts.data_ptr<int64_t>());
  const auto ends = counts.cumsum(0);
  const auto offset = ends - counts;
  const int64_t M = pixels ? ends[pixels - 1].item<int64_t>() : 0;
  auto faces = torch::empty({M}, pix_to_face.options());
  auto pixel = torch::empty({M}, pix_to_face.options());
  auto zbuf_out = torch::empty({M}, zbuf.options());
  auto dists_out = torch::empty({M}, zbuf.options());
  auto bary_out = torch::empty({M, 3}, zbuf.options());
  AT_DISPATCH_FLOATING_TYPES(zbuf.scalar_type(), "pack_fragments", [&] {
    pack_fragments_cpu<scalar_t>(pixels, K, first_pixel, pix_to_face.data_ptr<int64_t>(),
                                 zbuf.data_ptr<scalar_t>(), bary.data_ptr<scalar_t>(),
                                 dists.data_ptr<scalar_t>(), offset.data_ptr<int64_t>(),
                                 faces.data_ptr<int64_t>(), zbuf_out.data_ptr<scalar_t>(),
                                 bary_out.data_ptr<scalar_t>(), dists_out.data_ptr<scalar_t>(),
                                 pixel.data_ptr<int64_t>());
  });
  return {faces, zbuf_out, bary_out, dists_out, pixel, counts};
}

}  // namespace

std::vector<torch::Tensor> rasterize_packed_forward(
    const torch::Tensor& face_verts, const torch::Tensor& mesh_first_face,
    const torch::Tensor& mesh_num_faces, int64_t height, int64_t width, int64_t faces_per_pixel,
    double blur_radius, bool perspective_correct, bool clip_barycentric, bool cull_backfaces,
    int64_t max_fragments) {
  check_cpu(face_verts, "face_verts", 3);
  const int64_t N = mesh_first_face.size(0);
  RasterizeParams p = make_params(face_verts, N, height, width, faces_per_pixel, blur_radius,
                                  perspective_correct, clip_barycentric, cull_backfaces, 0.0);
  check_inputs(p, face_verts, mesh_first_face, mesh_num_faces);
  p.num_meshes = 1;  // one image at a time
  const int64_t* first = mesh_first_face.data_ptr<int64_t>();
  const int64_t* num = mesh_num_faces.data_ptr<int64_t>();
  const int64_t pixels = height * width, slots = pixels * faces_per_pixel;
  // One image's fragments, rewritten for each image.
  const auto options = face_verts.options();
  const std::vector<int64_t> sizes = {slots, slots, 3 * slots, slots};
  std::vector<torch::Tensor> buffers;
  for (size_t k = 0; k < 4; ++k) {
    buffers.push_back(torch::empty({sizes[k]}, options.dtype(k == 0 ? torch::kLong
                                                                     : face_verts.scalar_type())));
    advise_huge_pages(buffers.back());
  }
  std::vector<std::vector<torch::Tensor>> parts;
  int64_t packed = 0;
  auto counts = torch::empty({N * pixels}, mesh_first_face.options());
  for (int64_t n = 0; n < N; ++n) {
    const auto view = [&](int k) {  // this image's scratch as (1, H, W, K[, 3]) fragments
      return k == 2 ? buffers[k].view({1, height, width, faces_per_pixel, 3})
                    : buffers[k].view({1, height, width, faces_per_pixel});
    };
    AT_DISPATCH_FLOATING_TYPES(face_verts.scalar_type(), "rasterize_packed_forward", [&] {
      rasterize_forward_cpu<scalar_t>(p, face_verts.data_ptr<scalar_t>(), first + n, num + n,
                                      buffers[0].data_ptr<int64_t>(),
                                      buffers[1].data_ptr<scalar_t>(),
                                      buffers[2].data_ptr<scalar_t>(),
                                      buffers[3].data_ptr<scalar_t>());
    });
    auto part = pack_fragments(view(0), view(1), view(2), view(3), n * pixels);
    counts.slice(0, n * pixels, (n + 1) * pixels).copy_(part[5]);
    part.pop_back();
    packed += part[0].size(0);
    TORCH_CHECK_WITH(OutOfMemoryError, packed <= max_fragments, "the packed fragments of images 0 to ",
                     n, " number ", packed, ", more than the ", max_fragments,
                     " that the memory limit allows");
    parts.push_back(std::move(part));
  }
  std::vector<torch::Tensor> out;
  for (size_t k = 0; k < 5; ++k) {
    std::vector<torch::Tensor> pieces;
    for (const auto& part : parts) pieces.push_back(part[k]);
    out.push_back(N == 1 ? pieces[0] : torch::cat(pieces));
  }
  out.push_back(torch::cat({torch::zeros({1}, counts.options()), counts.cumsum(0)}));
  return out;
}

torch::Tensor rasterize_packed_backward(const torch::Tensor& face_verts,
                                        const torch::Tensor& pixel, const torch::Tensor& faces,
                                        const torch::Tensor& grad_zbuf,
                                        const torch::Tensor& grad_bary,
                                        const torch::Tensor& grad_dists, int64_t height,
                                        int64_t width, double blur_radius,
                                        bool perspective_correct, bool clip_barycentric,
                                        bool cull_backfaces) {
  TORCH_CHECK(face_verts.scalar_type() == torch::kFloat || face_verts.scalar_type() == torch::kDouble,
              "face_verts must be float32 or float64, got ", face_verts.scalar_type());
  check_float(face_verts, "face_verts", 3, face_verts);
  TORCH_CHECK(face_verts.size(1) == 3 && face_verts.size(2) == 3,
              "face_verts must have shape (F, 3, 3), got ", face_verts.sizes());
  TORCH_CHECK(height > 0 && width > 0, "image size must be positive, got (", height, ", ", width, ")");
  const int64_t M = faces.size(0);
  check_index(faces, "faces", M, face_verts.size(0), false);
  check_index(pixel, "pixel", M, 0, false);
  check_float(grad_zbuf, "grad_zbuf", 1, face_verts);
  check_float(grad_dists, "grad_dists", 1, face_verts);
  check_float(grad_bary, "grad_bary", 2, face_verts);
  TORCH_CHECK(grad_zbuf.size(0) == M && grad_dists.size(0) == M && grad_bary.size(0) == M &&
                  grad_bary.size(1) == 3,
              "grad_zbuf, grad_dists (M,) and grad_bary (M, 3) must match the ", M, " fragments");
  const RasterizeParams p = make_params(face_verts, 0, height, width, 0, blur_radius,
                                        perspective_correct, clip_barycentric, cull_backfaces, 0.0);
  auto grad_face_verts = torch::empty_like(face_verts);
  AT_DISPATCH_FLOATING_TYPES(face_verts.scalar_type(), "rasterize_packed_backward", [&] {
    rasterize_packed_backward_cpu<scalar_t>(
        p, face_verts.data_ptr<scalar_t>(), M, pixel.data_ptr<int64_t>(), faces.data_ptr<int64_t>(),
        grad_zbuf.data_ptr<scalar_t>(), grad_bary.data_ptr<scalar_t>(),
        grad_dists.data_ptr<scalar_t>(), grad_face_verts.data_ptr<scalar_t>());
  });
  return grad_face_verts;
}

namespace {

// The blend's weights: coverage and share (M,) like zbuf, background_share and transmittance
// (P,), all of zbuf's dtype.
template <typename T>
SoftBlendWeights<const T> check_weights(const std::vector<torch::Tensor>& weights,
                                        const torch::Tensor& zbuf, int64_t pixels) {
  TORCH_CHECK(weights.size() == 4,
              "weights must be (coverage, share, background_share, transmittance)");
  const char* names[4] = {"coverage", "share", "background_share", "transmittance"};
  for (int k = 0; k < 4; ++k) {
    check_float(weights[k], names[k], 1, zbuf);
    TORCH_CHECK(weights[k].size(0) == (k < 2 ? zbuf.size(0) : pixels), names[k], " must have ",
                k < 2 ? zbuf.size(0) : pixels, " entries, got ", weights[k].size(0));
  }
  return {weights[0].data_ptr<T>(), weights[1].data_ptr<T>(), weights[2].data_ptr<T>(),
          weights[3].data_ptr<T>()};
}

void check_colors(const torch::Tensor& colors, const torch::Tensor& background,
                  const torch::Tensor& kept, const torch::Tensor& like) {
  check_float(colors, "colors", 2, like);
  check_float(background, "background", 1, like);
  TORCH_CHECK(colors.size(0) == kept.size(0) && background.size(0) == colors.size(1),
              "colors must be (kept, C) with C the ", background.size(0),
              " channels of background, got ", colors.sizes());
}

}  // namespace

std::vector<torch::Tensor> softmax_blend_weights(
    const torch::Tensor& pixel_start, const torch::Tensor& zbuf, const torch::Tensor& dists,
    const torch::Tensor& znear, const torch::Tensor& zfar, const std::optional<torch::Tensor>& given,
    int64_t image_pixels, double sigma, double gamma, double dropped_weight) {
  check_packed(pixel_start, zbuf, dists, znear, zfar, image_pixels);
  TORCH_CHECK(dropped_weight >= 0 && dropped_weight < 1, "dropped_weight must be in [0, 1), got ",
              dropped_weight);
  const int64_t M = zbuf.size(0);
  if (given.has_value()) {
    check_cpu(*given, "given", 1);
    TORCH_CHECK(given->scalar_type() == torch::kBool && given->size(0) == M,
                "given must be a bool (M,) tensor, M = ", M);
  }
  const SoftBlendParams p = blend_params(pixel_start, image_pixels, 0, sigma, gamma, dropped_weight);
  auto keep = torch::empty({M}, zbuf.options().dtype(torch::kBool));
  std::vector<torch::Tensor> weights = {torch::empty_like(zbuf), torch::empty_like(zbuf),
                                        torch::empty({p.pixels}, zbuf.options()),
                                        torch::empty({p.pixels}, zbuf.options())};
  AT_DISPATCH_FLOATING_TYPES(zbuf.scalar_type(), "softmax_blend_weights", [&] {
    softmax_blend_weights_cpu<scalar_t>(
        p, pixel_start.data_ptr<int64_t>(), zbuf.data_ptr<scalar_t>(), dists.data_ptr<scalar_t>(),
        znear.data_ptr<scalar_t>(), zfar.data_ptr<scalar_t>(),
        given.has_value() ? given->data_ptr<bool>() : nullptr, keep.data_ptr<bool>(),
        {weights[0].data_ptr<scalar_t>(), weights[1].data_ptr<scalar_t>(),
         weights[2].data_ptr<scalar_t>(), weights[3].data_ptr<scalar_t>()});
  });
  auto kept = torch::empty({M}, pixel_start.options());
  const int64_t count = kept_indices_cpu(M, keep.data_ptr<bool>(), kept.data_ptr<int64_t>());
  weights.insert(weights.begin(), kept.slice(0, 0, count).clone());
  return weights;
}

torch::Tensor softmax_blend_forward(const torch::Tensor& pixel_start,
                                    const std::vector<torch::Tensor>& weights,
                                    const torch::Tensor& background, const torch::Tensor& kept,
                                    const torch::Tensor& colors) {
  TORCH_CHECK(!weights.empty() && (weights[0].scalar_type() == torch::kFloat ||
                                   weights[0].scalar_type() == torch::kDouble),
              "weights must be float32 or float64 tensors");
  const torch::Tensor& like = weights[0];
  const int64_t M = like.size(0);
  check_pixel_start(pixel_start, M);
  const int64_t pixels = pixel_start.size(0) - 1;
  check_kept(kept, M);
  check_colors(colors, background, kept, like);
  SoftBlendParams p = blend_params(pixel_start, 1, int(colors.size(1)), 1.0, 1.0, 0.0);
  auto rgba = torch::empty({pixels, colors.size(1) + 1}, like.options());
  AT_DISPATCH_FLOATING_TYPES(like.scalar_type(), "softmax_blend_forward", [&] {
    softmax_blend_forward_cpu<scalar_t>(
        p, pixel_start.data_ptr<int64_t>(), check_weights<scalar_t>(weights, like, pixels),
        background.data_ptr<scalar_t>(), kept.size(0), kept.data_ptr<int64_t>(),
        colors.data_ptr<scalar_t>(), rgba.data_ptr<scalar_t>());
  });
  return rgba;
}

std::vector<torch::Tensor> softmax_blend_backward(
    const torch::Tensor& pixel_start, const torch::Tensor& zbuf, const torch::Tensor& znear,
    const torch::Tensor& zfar, const std::vector<torch::Tensor>& weights,
    const torch::Tensor& background, const torch::Tensor& kept, const torch::Tensor& colors,
    const torch::Tensor& rgba, const torch::Tensor& grad_rgba, int64_t image_pixels, double sigma,
    double gamma) {
  check_packed(pixel_start, zbuf, zbuf, znear, zfar, image_pixels);
  check_kept(kept, zbuf.size(0));
  check_colors(colors, background, kept, zbuf);
  const SoftBlendParams p =
      blend_params(pixel_start, image_pixels, int(colors.size(1)), sigma, gamma, 0.0);
  for (const auto* t : {&rgba, &grad_rgba}) {
    check_float(*t, t == &rgba ? "rgba" : "grad_rgba", 2, zbuf);
    TORCH_CHECK(t->size(0) == p.pixels && t->size(1) == colors.size(1) + 1,
                "rgba and grad_rgba must have shape (", p.pixels, ", ", colors.size(1) + 1,
                "), got ", t->sizes());
  }
  auto grad_colors = torch::empty_like(colors);
  auto grad_zbuf = torch::empty_like(zbuf);
  auto grad_dists = torch::empty_like(zbuf);
  AT_DISPATCH_FLOATING_TYPES(zbuf.scalar_type(), "softmax_blend_backward", [&] {
    softmax_blend_backward_cpu<scalar_t>(
        p, pixel_start.data_ptr<int64_t>(), zbuf.data_ptr<scalar_t>(), znear.data_ptr<scalar_t>(),
        zfar.data_ptr<scalar_t>(), check_weights<scalar_t>(weights, zbuf, p.pixels),
        background.data_ptr<scalar_t>(), kept.size(0), kept.data_ptr<int64_t>(),
        colors.data_ptr<scalar_t>(), rgba.data_ptr<scalar_t>(), grad_rgba.data_ptr<scalar_t>(),
        grad_colors.data_ptr<scalar_t>(), grad_zbuf.data_ptr<scalar_t>(),
        grad_dists.data_ptr<scalar_t>());
  });
  return {grad_colors, grad_zbuf, grad_dists};
}

namespace {

PhongParams check_phong(const torch::Tensor& pixel, int64_t image_pixels,
                        const torch::Tensor& points, const torch::Tensor& normals,
                        const torch::Tensor& texels, const std::vector<torch::Tensor>& per_image,
                        bool point_light, bool values) {
  TORCH_CHECK(points.scalar_type() == torch::kFloat || points.scalar_type() == torch::kDouble,
              "points must be float32 or float64, got ", points.scalar_type());
  check_float(points, "points", 2, points);
  check_float(normals, "normals", 2, points);
  check_float(texels, "texels", 2, points);
  const int64_t M = points.size(0);
  TORCH_CHECK(points.size(1) == 3 && normals.sizes() == points.sizes() &&
                  texels.sizes() == points.sizes(),
              "points, normals and texels must have shape (M, 3), got ", points.sizes(), ", ",
              normals.sizes(), " and ", texels.sizes());
  TORCH_CHECK(per_image.size() == 6,
              "per_image must be (light, ambient, diffuse, specular, shininess, camera)");
  const int64_t N = per_image[0].size(0);
  const char* names[6] = {"light", "ambient", "diffuse", "specular", "shininess", "camera"};
  for (int k = 0; k < 6; ++k) {
    check_float(per_image[k], names[k], k == 4 ? 1 : 2, points);
    TORCH_CHECK(per_image[k].size(0) == N && (k == 4 || per_image[k].size(1) == 3), names[k],
                " must have shape (N", k == 4 ? "" : ", 3", ") with N = ", N, ", got ",
                per_image[k].sizes());
  }
  TORCH_CHECK(image_pixels > 0, "image_pixels must be > 0, got ", image_pixels);
  check_index(pixel, "pixel", M, N * image_pixels, values);
  PhongParams p;
  p.count = M;
  p.images = N;
  p.image_pixels = image_pixels;
  p.point_light = point_light;
  p.shininess_grad = false;
  return p;
}

template <typename T>
PhongInputs<T> phong_inputs(const torch::Tensor& pixel, const torch::Tensor& points,
                            const torch::Tensor& normals, const torch::Tensor& texels,
                            const std::vector<torch::Tensor>& v) {
  return {pixel.data_ptr<int64_t>(), points.data_ptr<T>(), normals.data_ptr<T>(),
          texels.data_ptr<T>(),      v[0].data_ptr<T>(),   v[1].data_ptr<T>(),
          v[2].data_ptr<T>(),        v[3].data_ptr<T>(),   v[4].data_ptr<T>(),
          v[5].data_ptr<T>()};
}

}  // namespace

torch::Tensor phong_lighting_forward(const torch::Tensor& pixel, int64_t image_pixels,
                                     const torch::Tensor& points,
                                     const torch::Tensor& normals, const torch::Tensor& texels,
                                     const std::vector<torch::Tensor>& per_image,
                                     bool point_light) {
  const PhongParams p =
      check_phong(pixel, image_pixels, points, normals, texels, per_image, point_light, true);
  auto colors = torch::empty_like(points);
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "phong_lighting_forward", [&] {
    phong_lighting_forward_cpu<scalar_t>(
        p, phong_inputs<scalar_t>(pixel, points, normals, texels, per_image),
        colors.data_ptr<scalar_t>());
  });
  return colors;
}

std::vector<torch::Tensor> phong_lighting_backward(const torch::Tensor& pixel,
                                                   int64_t image_pixels,
                                                   const torch::Tensor& points,
                                                   const torch::Tensor& normals,
                                                   const torch::Tensor& texels,
                                                   const std::vector<torch::Tensor>& per_image,
                                                   bool point_light,
                                                   const torch::Tensor& grad_colors,
                                                   bool shininess_grad) {
  PhongParams p =
      check_phong(pixel, image_pixels, points, normals, texels, per_image, point_light, false);
  p.shininess_grad = shininess_grad;
  check_float(grad_colors, "grad_colors", 2, points);
  TORCH_CHECK(grad_colors.sizes() == points.sizes(), "grad_colors must have shape ",
              points.sizes(), ", got ", grad_colors.sizes());
  std::vector<torch::Tensor> grads = {torch::empty_like(points), torch::empty_like(normals),
                                      torch::empty_like(texels)};
  for (const auto& t : per_image) grads.push_back(torch::empty_like(t));
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "phong_lighting_backward", [&] {
    PhongGrads<scalar_t> g;
    scalar_t** outs[9] = {&g.points, &g.normals,  &g.texels,    &g.light, &g.ambient,
                          &g.diffuse, &g.specular, &g.shininess, &g.camera};
    for (int k = 0; k < 9; ++k) *outs[k] = grads[k].data_ptr<scalar_t>();
    phong_lighting_backward_cpu<scalar_t>(
        p, phong_inputs<scalar_t>(pixel, points, normals, texels, per_image),
        grad_colors.data_ptr<scalar_t>(), g);
  });
  return grads;
}

torch::Tensor interpolate_forward(const torch::Tensor& faces, const torch::Tensor& bary,
                                  const torch::Tensor& face_attrs) {
  TORCH_CHECK(face_attrs.scalar_type() == torch::kFloat || face_attrs.scalar_type() == torch::kDouble,
              "face_attrs must be float32 or float64, got ", face_attrs.scalar_type());
  check_float(face_attrs, "face_attrs", 3, face_attrs);
  TORCH_CHECK(face_attrs.size(1) == 3, "face_attrs must have shape (F, 3, D), got ", face_attrs.sizes());
  check_float(bary, "bary", 2, face_attrs);
  TORCH_CHECK(bary.size(1) == 3, "bary must have shape (M, 3), got ", bary.sizes());
  check_index(faces, "faces", bary.size(0), face_attrs.size(0));
  const int dim = int(face_attrs.size(2));
  auto out = torch::empty({bary.size(0), dim}, face_attrs.options());
  AT_DISPATCH_FLOATING_TYPES(face_attrs.scalar_type(), "interpolate_forward", [&] {
    interpolate_forward_cpu<scalar_t>(bary.size(0), dim, faces.data_ptr<int64_t>(),
                                      bary.data_ptr<scalar_t>(), face_attrs.data_ptr<scalar_t>(),
                                      out.data_ptr<scalar_t>());
  });
  return out;
}

std::vector<torch::Tensor> interpolate_backward(const torch::Tensor& faces,
                                                const torch::Tensor& bary,
                                                const torch::Tensor& face_attrs,
                                                const torch::Tensor& grad_out, bool need_bary,
                                                bool need_face_attrs) {
  TORCH_CHECK(face_attrs.scalar_type() == torch::kFloat || face_attrs.scalar_type() == torch::kDouble,
              "face_attrs must be float32 or float64, got ", face_attrs.scalar_type());
  check_float(face_attrs, "face_attrs", 3, face_attrs);
  TORCH_CHECK(face_attrs.size(1) == 3, "face_attrs must have shape (F, 3, D), got ", face_attrs.sizes());
  check_float(bary, "bary", 2, face_attrs);
  TORCH_CHECK(bary.size(1) == 3, "bary must have shape (M, 3), got ", bary.sizes());
  check_index(faces, "faces", bary.size(0), face_attrs.size(0), false);
  check_float(grad_out, "grad_out", 2, face_attrs);
  TORCH_CHECK(grad_out.size(0) == bary.size(0) && grad_out.size(1) == face_attrs.size(2),
              "grad_out must have shape (M, D) = (", bary.size(0), ", ", face_attrs.size(2),
              "), got ", grad_out.sizes());
  torch::Tensor grad_bary, grad_face_attrs;
  if (need_bary) grad_bary = torch::empty_like(bary);
  if (need_face_attrs) grad_face_attrs = torch::empty_like(face_attrs);
  AT_DISPATCH_FLOATING_TYPES(face_attrs.scalar_type(), "interpolate_backward", [&] {
    interpolate_backward_cpu<scalar_t>(
        bary.size(0), int(face_attrs.size(2)), face_attrs.size(0), faces.data_ptr<int64_t>(),
        bary.data_ptr<scalar_t>(), face_attrs.data_ptr<scalar_t>(), grad_out.data_ptr<scalar_t>(),
        need_bary ? grad_bary.data_ptr<scalar_t>() : nullptr,
        need_face_attrs ? grad_face_attrs.data_ptr<scalar_t>() : nullptr);
  });
  return {grad_bary, grad_face_attrs};
}

}  // namespace lib3dr
