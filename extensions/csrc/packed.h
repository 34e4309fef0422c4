// Kernels over packed fragments (packed_cpu.cpp, CPU only): the colour path of the soft shaders.
//
// Packed fragments are the covered slots of (N, H, W, K) fragments as flat lists, pixel by pixel
// in row-major order and, within a pixel, in slot order (nearest first). With P = N * H * W
// pixels and M covered slots:
//   pixel_start  (P + 1,) int64  pixel p's fragments are [pixel_start[p], pixel_start[p + 1])
//   pixel        (M,) int64      the pixel of each fragment, n * H * W + y * W + x
//   faces        (M,) int64      packed face index
//   zbuf, dists  (M,) scalar     view depth, signed squared NDC distance (as in the fragments)
//   bary         (M, 3) scalar   barycentric coordinates
// On the cow at 256x256 and K = 50, 400k of the 3.3M slots are covered: the packed lists are an
// eighth of the fragments, and shading touches only the fragments that the blend weighs.
#pragma once

#include <cstdint>

#include "rasterize.h"

namespace lib3dr {

// counts[p]: the number of covered slots of pixel p of one image's (H, W, K) pix_to_face (the
// rasterizer fills a prefix of the K slots); `pixels` is H * W.
void count_fragments_cpu(int64_t pixels, int K, const int64_t* pix_to_face, int64_t* counts);

// Copies the covered slots of one image's fragments into the packed lists, pixel p's from
// offset[p] on (the exclusive prefix sum of the counts); `first_pixel` is n * H * W.
template <typename T>
void pack_fragments_cpu(int64_t pixels, int K, int64_t first_pixel, const int64_t* pix_to_face,
                        const T* zbuf, const T* bary, const T* dists, const int64_t* offset,
                        int64_t* faces, T* zbuf_out, T* bary_out, T* dists_out, int64_t* pixel);

// The rasterizer's backward over packed fragments: grad_face_verts (F, 3, 3, overwritten) from
// the gradients of each fragment's zbuf, bary (M, 3) and dists (M,). A fragment whose zbuf and
// bary gradients are zero costs only its distance's gradient. Uses p's image size and
// rasterization settings (num_meshes and faces_per_pixel are not read).
template <typename T>
void rasterize_packed_backward_cpu(const RasterizeParams& p, const T* face_verts, int64_t count,
                                   const int64_t* pixel, const int64_t* faces, const T* grad_zbuf,
                                   const T* grad_bary, const T* grad_dists, T* grad_face_verts);

// Soft Rasterizer's colour aggregation (PyTorch3D's softmax_rgb_blend) over packed fragments.
// Fragment i of a pixel weighs w_i = D_i exp((z_i - z_max) / gamma), with D_i =
// sigmoid(-dist_i / sigma), z_i = (zfar - zbuf_i) / (zfar - znear) and z_max = max(eps, max_i z_i);
// the background weighs w_b = max(eps, exp((eps - z_max) / gamma)), eps = 1e-10.
struct SoftBlendParams {
  int64_t pixels;         // P = N * H * W
  int64_t image_pixels;   // H * W: pixel p belongs to image p / (H * W)
  int channels;           // C, colours per fragment (3 for RGB)
  double sigma;           // sharpness of the coverage D
  double gamma;           // sharpness of the depth weights
  double dropped_weight;  // tau: the selection drops at most this share of a pixel's weight
};

// What the blend takes from the depths and distances alone, before any colour is known.
template <typename T>
struct SoftBlendWeights {
  T* coverage;          // (M,) D_i
  T* share;             // (M,) w_i / (sum_kept w_j + w_b) for the kept fragments, 0 for the others
  T* background_share;  // (P,) w_b / (sum_kept w_j + w_b)
  T* transmittance;     // (P,) prod_i (1 - D_i) over all the pixel's fragments: alpha = 1 - it
};

// The weights, and keep (M,): which fragments are shaded and blended. With `given` (M,) those
// are kept; otherwise, with tau > 0, fragment i of a pixel with n fragments is dropped where
// w_i <= tau / n * (sum_j w_j + w_b): the dropped fragments carry at most tau of the pixel's total
// weight; with tau = 0 every fragment is kept. znear and zfar are (N,), one per image.
template <typename T>
void softmax_blend_weights_cpu(const SoftBlendParams& p, const int64_t* pixel_start, const T* zbuf,
                               const T* dists, const T* znear, const T* zfar, const bool* given,
                               bool* keep, SoftBlendWeights<T> out);

// The indices of the true entries of keep (M,), in increasing order; returns how many.
int64_t kept_indices_cpu(int64_t count, const bool* keep, int64_t* kept);

// rgba (P, C + 1): rgb = sum_kept share_i c_i + background_share background, alpha =
// 1 - transmittance. `kept` (kept_count,) lists the kept fragments in increasing order,
// `colors` (kept_count, C) their colours.
template <typename T>
void softmax_blend_forward_cpu(const SoftBlendParams& p, const int64_t* pixel_start,
                               SoftBlendWeights<const T> weights, const T* background,
                               int64_t kept_count, const int64_t* kept, const T* colors, T* rgba);

// The exact gradient of the blend: grad_colors (kept_count, C), grad_zbuf and grad_dists (M,),
// all overwritten, from the forward's rgba and the weights. z_max's gradient goes to the
// fragments that attain it (split evenly among ties, as torch's amax does), kept or not.
template <typename T>
void softmax_blend_backward_cpu(const SoftBlendParams& p, const int64_t* pixel_start,
                                const T* zbuf, const T* znear, const T* zfar,
                                SoftBlendWeights<const T> weights, const T* background,
                                int64_t kept_count, const int64_t* kept, const T* colors,
                                const T* rgba, const T* grad_rgba, T* grad_colors, T* grad_zbuf,
                                T* grad_dists);

// Phong reflection at packed fragments, lib3dr.renderer.lights' formulas for one light per image:
//   colour = (ambient + diffuse max(0, n.l)) * texel + specular max(0, v.r)^shininess [n.l > 0]
// with n, l, v the normalised normal, direction to the light and direction to the camera
// (F.normalize's: x / max(|x|, 1e-6)), r = 2 (n.l) n - l the reflected light and the highlight's
// base clamped below at 1e-12 where it is positive. The per-image arrays have one row per image:
//   light     (N, 3)  location of a point light, or direction towards a directional one
//   ambient, diffuse, specular (N, 3)  the light's colours times the material's
//   shininess (N,), camera (N, 3) the camera centre
struct PhongParams {
  int64_t count;         // M fragments
  int64_t images;        // N
  int64_t image_pixels;  // H * W: fragment i belongs to image pixel[i] / (H * W)
  bool point_light;      // light rows are locations (else directions)
  bool shininess_grad;   // the backward computes the shininess's gradient (else zero)
};

template <typename T>
struct PhongInputs {
  const int64_t* pixel;  // (M,) pixel of each fragment, in [0, N * H * W)
  const T* points;       // (M, 3) world position
  const T* normals;      // (M, 3) interpolated normal, not normalised
  const T* texels;       // (M, 3) texture colour
  const T* light;
  const T* ambient;
  const T* diffuse;
  const T* specular;
  const T* shininess;
  const T* camera;
};

// The gradients of every input but pixel, each overwritten: (M, 3) for the first three, the
// per-image arrays' shapes for the others.
template <typename T>
struct PhongGrads {
  T* points;
  T* normals;
  T* texels;
  T* light;
  T* ambient;
  T* diffuse;
  T* specular;
  T* shininess;
  T* camera;
};

// colors (M, 3).
template <typename T>
void phong_lighting_forward_cpu(const PhongParams& p, PhongInputs<T> in, T* colors);

template <typename T>
void phong_lighting_backward_cpu(const PhongParams& p, PhongInputs<T> in, const T* grad_colors,
                                 PhongGrads<T> grads);

// out (count, D) = sum_j bary[i, j] face_attrs[faces[i], j, :]: per-vertex attributes of the
// faces (F, 3, D), interpolated at packed fragments.
template <typename T>
void interpolate_forward_cpu(int64_t count, int dim, const int64_t* faces, const T* bary,
                             const T* face_attrs, T* out);

// Its backward: grad_bary (count, 3) and grad_face_attrs (F, 3, D), each overwritten unless null.
template <typename T>
void interpolate_backward_cpu(int64_t count, int dim, int64_t num_faces, const int64_t* faces,
                              const T* bary, const T* face_attrs, const T* grad_out,
                              T* grad_bary, T* grad_face_attrs);

}  // namespace lib3dr
