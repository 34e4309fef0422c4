// The rasterization kernels' interface: a params struct and raw-pointer entry points, one set for
// the CPU (rasterize_cpu.cpp) and one for CUDA (rasterize_cuda.cu). No torch types cross it, so
// the CUDA half compiles with nvcc alone.
//
// Shared layout of the arguments:
//   face_verts        (F, 3, 3) scalar   x, y in NDC and view z of each face's vertices (packed)
//   mesh_first_face   (N,) int64         index of mesh n's first face in face_verts
//   mesh_num_faces    (N,) int64         number of faces of mesh n
//   pix_to_face       (N, H, W, K) int64 packed face index, -1 where fewer than K faces
//   zbuf, dists       (N, H, W, K)       view depth / signed squared distance, -1 padding
//   bary              (N, H, W, K, 3)    barycentric coordinates, -1 padding
//   alpha             (N, H, W)          soft silhouette (fused kernels)
//   grad_face_verts   (F, 3, 3)          output of the backward kernels (overwritten)
#pragma once

#include <cstdint>

#include "geometry.h"

namespace lib3dr {

struct RasterizeParams {
  int num_meshes;            // N
  int num_faces;             // F, rows of face_verts
  int height;                // H, image rows
  int width;                 // W, image columns
  int faces_per_pixel;       // K, faces kept per pixel, nearest first
  double blur_radius;        // squared NDC distance within which a face still covers a pixel
  bool perspective_correct;  // barycentrics interpolate in view space
  bool clip_barycentric;     // barycentrics clamped to the face
  bool cull_backfaces;       // faces clockwise on screen are skipped
  double sigma;              // soft silhouette sharpness, D = sigmoid(-dist / sigma) (fused only)
};

// Which copies of the CPU row loops this build holds (LIB3DR_BASELINE_ONLY keeps one).
const char* row_kernel_copies();

template <typename T>
void rasterize_forward_cpu(const RasterizeParams& p, const T* face_verts,
                           const int64_t* mesh_first_face, const int64_t* mesh_num_faces,
                           int64_t* pix_to_face, T* zbuf, T* bary, T* dists);

// Null gradient pointers stand for zeros (outputs the loss did not use).
template <typename T>
void rasterize_backward_cpu(const RasterizeParams& p, const T* face_verts,
                            const int64_t* pix_to_face, const T* grad_zbuf, const T* grad_bary,
                            const T* grad_dists, T* grad_face_verts);

// The CPU fused forward also leaves, per pixel, what its backward needs to avoid recomputing
// products and depth orders (each (N, H, W)): the transmittance prod_k (1 - D_k) over the kept
// faces, and where more than K faces cover the pixel the cut, the depth and index of the K-th
// nearest (cut_face -1 elsewhere). O(N*H*W), unlike the (N, H, W, K) fragments.
template <typename T, typename Index = int64_t>
struct SilhouetteState {
  T* transmittance;
  T* cut_z;
  Index* cut_face;
};

template <typename T>
void soft_silhouette_forward_cpu(const RasterizeParams& p, const T* face_verts,
                                 const int64_t* mesh_first_face, const int64_t* mesh_num_faces,
                                 T* alpha, SilhouetteState<T> state);

template <typename T>
void soft_silhouette_backward_cpu(const RasterizeParams& p, const T* face_verts,
                                  const int64_t* mesh_first_face, const int64_t* mesh_num_faces,
                                  const T* grad_alpha,
                                  SilhouetteState<const T, const int64_t> state,
                                  T* grad_face_verts);

// The soft silhouette blended from (N, H, W, K) fragments, alpha = 1 - exp(sum_k log(1 - D_k))
// over the slots with a face (pix_to_face >= 0): the unfused path's blend in one pass. `pixels`
// is N * H * W; log_transmittance (per pixel) is what the backward needs besides the inputs.
template <typename T>
void silhouette_blend_forward_cpu(int64_t pixels, int K, double sigma, const int64_t* pix_to_face,
                                  const T* dists, T* alpha, T* log_transmittance);

// grad_dists (N, H, W, K), zero where there is no face.
template <typename T>
void silhouette_blend_backward_cpu(int64_t pixels, int K, double sigma, const int64_t* pix_to_face,
                                   const T* dists, const T* log_transmittance, const T* grad_alpha,
                                   T* grad_dists);

// CUDA launchers: same arguments, all pointers on the device, run on `stream` (a cudaStream_t
// passed as an integer). Return a CUDA error string, or nullptr on success.
template <typename T>
const char* rasterize_forward_cuda(const RasterizeParams& p, const T* face_verts,
                                   const int64_t* mesh_first_face, const int64_t* mesh_num_faces,
                                   int64_t* pix_to_face, T* zbuf, T* bary, T* dists,
                                   int64_t stream);

template <typename T>
const char* rasterize_backward_cuda(const RasterizeParams& p, const T* face_verts,
                                    const int64_t* pix_to_face, const T* grad_zbuf,
                                    const T* grad_bary, const T* grad_dists, T* grad_face_verts,
                                    int64_t stream);

template <typename T>
const char* soft_silhouette_forward_cuda(const RasterizeParams& p, const T* face_verts,
                                         const int64_t* mesh_first_face,
                                         const int64_t* mesh_num_faces, T* alpha, int64_t stream);

template <typename T>
const char* soft_silhouette_backward_cuda(const RasterizeParams& p, const T* face_verts,
                                          const int64_t* mesh_first_face,
                                          const int64_t* mesh_num_faces, const T* grad_alpha,
                                          T* grad_face_verts, int64_t stream);

// The settings eval_pixel_face needs, from the params.
template <typename T>
LIB3DR_HD PixelFaceSettings<T> pixel_face_settings(const RasterizeParams& p) {
  return {T(p.blur_radius), p.perspective_correct, p.clip_barycentric, p.cull_backfaces};
}

// NDC half-extent of each image axis: 1 for the shorter side, longer/shorter for the other.
LIB3DR_HD double ndc_range_x(const RasterizeParams& p) {
  return p.width > p.height ? double(p.width) / p.height : 1.0;
}
LIB3DR_HD double ndc_range_y(const RasterizeParams& p) {
  return p.height > p.width ? double(p.height) / p.width : 1.0;
}

// Pixel indices [lo, hi] whose centres may lie in the NDC interval [lo_ndc, hi_ndc] along an
// axis of `size` pixels spanning [-range, range]; centres decrease with the index (+X left, +Y up).
// Empty (lo > hi) when the interval misses the axis.
struct PixelSpan {
  int lo, hi;
};
LIB3DR_HD PixelSpan pixel_span(double lo_ndc, double hi_ndc, int size, double range) {
  // The pixels whose centres lie in the interval, and a tenth of a pixel more: the exact test is
  // done per pixel, in T, and this margin absorbs its rounding at the interval's ends. (With a
  // whole pixel of margin the kernels would test 1.8 times as many of the cow's pixels.)
  constexpr double kMargin = 0.1;
  const double first = (size * (1.0 - hi_ndc / range) - 1.0) / 2.0 - kMargin;
  const double last = (size * (1.0 - lo_ndc / range) - 1.0) / 2.0 + kMargin;
  // Clamped while still double: converting an out-of-range double to int is undefined.
  const double lo = std::fmin(std::fmax(std::ceil(first), 0.0), double(size));
  const double hi = std::fmax(std::fmin(std::floor(last), size - 1.0), -1.0);
  return {int(lo), int(hi)};
}

// The pixels a face may cover: x0..x1, y0..y1 inclusive.
struct PixelBox {
  int x0, x1, y0, y1;
};

// Pixel box of the face's blur-expanded NDC bounding box; empty (x0 > x1) for a face entirely
// behind the camera or with non-finite x, y.
template <typename T>
LIB3DR_HD PixelBox face_pixel_box(const RasterizeParams& p, const T* v) {
  if (max3(v[2], v[5], v[8]) < T(kAreaEpsilon) ||
      !std::isfinite(double(v[0] + v[1] + v[3] + v[4] + v[6] + v[7])))
    return {1, 0, 1, 0};
  const double blur = std::sqrt(p.blur_radius);
  const PixelSpan xs = pixel_span(min3(v[0], v[3], v[6]) - blur, max3(v[0], v[3], v[6]) + blur,
                                  p.width, ndc_range_x(p));
  const PixelSpan ys = pixel_span(min3(v[1], v[4], v[7]) - blur, max3(v[1], v[4], v[7]) + blur,
                                  p.height, ndc_range_y(p));
  return {xs.lo, xs.hi, ys.lo, ys.hi};
}

// The image is cut into square tiles of kTile pixels: the unit of work of the CPU kernels and a
// CUDA thread block (a thread per pixel). Each face is listed in the (mesh, tile) bins its pixel
// box touches, bin = mesh * tiles + tile row * tiles_x + tile column.
constexpr int kTile = 16;

// How many tiles cover an axis of `size` pixels.
LIB3DR_HD int tiles_along(int size) { return (size + kTile - 1) / kTile; }

// Calls visit(bin) for each bin of mesh n that the pixel box touches (none for an empty box),
// with tiles_x tiles per row and `tiles` per image.
template <typename Visit>
LIB3DR_HD void for_each_bin_of_box(const PixelBox& b, int64_t n, int tiles_x, int64_t tiles,
                                   const Visit& visit) {
  if (b.x0 > b.x1 || b.y0 > b.y1) return;
  for (int ty = b.y0 / kTile; ty <= b.y1 / kTile; ++ty)
    for (int tx = b.x0 / kTile; tx <= b.x1 / kTile; ++tx)
      visit(n * tiles + int64_t(ty) * tiles_x + tx);
}

// Where bin `bin` lies: its mesh and the pixel at its tile's top-left corner.
struct BinOrigin {
  int64_t mesh;
  int x0, y0;
};
LIB3DR_HD BinOrigin bin_origin(int64_t bin, int tiles_x, int64_t tiles) {
  const int64_t tile = bin % tiles;
  return {bin / tiles, int(tile % tiles_x) * kTile, int(tile / tiles_x) * kTile};
}

// Index of pixel (x, y) of mesh n in the (N, H, W) images.
LIB3DR_HD int64_t pixel_index(const RasterizeParams& p, int64_t n, int x, int y) {
  return (n * p.height + y) * p.width + x;
}

// Depth order of faces at a pixel: ascending z, the face index breaking ties, so that the K
// nearest do not depend on the order in which faces arrive.
template <typename T>
LIB3DR_HD bool nearer(T za, int64_t fa, T zb, int64_t fb) {
  return za < zb || (za == zb && fa < fb);
}

// Keeps the K nearest faces of a pixel in `zs`/`faces`, sorted in depth order.
template <typename T>
LIB3DR_HD void insert_nearest(T z, int64_t face, T* zs, int64_t* faces, int& count, int K) {
  if (count == K && !nearer(z, face, zs[K - 1], faces[K - 1])) return;
  int i = count < K ? count++ : K - 1;
  for (; i > 0 && nearer(z, face, zs[i - 1], faces[i - 1]); --i) {
    zs[i] = zs[i - 1];
    faces[i] = faces[i - 1];
  }
  zs[i] = z;
  faces[i] = face;
}

}  // namespace lib3dr
