// The geometry of soft rasterization, written once for the C++ and the CUDA kernels.
//
// Every function is an inline template over the scalar type (float for rendering, double for
// gradcheck) and is __host__ __device__ under nvcc. Nothing here knows about torch.
//
// Conventions (PyTorch3D's): NDC +X left, +Y up; a face is 9 scalars, (x, y, z) of its three
// vertices, x and y in NDC and z the view-space depth. The pure-PyTorch reference
// (lib3dr/rasterize_torch.py) performs the same operations in the same order, so that both
// select exactly the same faces.
#pragma once

#include <cmath>

#ifdef __CUDACC__
#define LIB3DR_HD __host__ __device__ __forceinline__
#else
#define LIB3DR_HD inline
#endif

namespace lib3dr {

// Faces whose NDC area is below this are degenerate and never drawn.
constexpr double kAreaEpsilon = 1e-8;
// Floor of the denominators of perspective correction and barycentric clipping.
constexpr double kDenomEpsilon = 1e-10;

template <typename T>
struct Vec2 {
  T x, y;
};

template <typename T>
LIB3DR_HD T min3(T a, T b, T c) { return a < b ? (a < c ? a : c) : (b < c ? b : c); }
template <typename T>
LIB3DR_HD T max3(T a, T b, T c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }

// NDC coordinate of the centre of pixel `i` along an axis of `size` pixels. The axis spans
// [-range, range] (range is 1 for the shorter image side) and pixel 0 sits at +range: +X points
// left and +Y up, so pixel (0, 0) is the top-left.
LIB3DR_HD double pixel_center_ndc(int i, int size, double range) {
  return range * (1.0 - (2.0 * i + 1.0) / size);
}

// Twice the signed area of the triangle (a, b, p): positive when p lies on one side of the
// directed edge a->b, negative on the other, zero on the line.
template <typename T>
LIB3DR_HD T edge_function(Vec2<T> p, Vec2<T> a, Vec2<T> b) {
  return (p.x - a.x) * (b.y - a.y) - (p.y - a.y) * (b.x - a.x);
}

// Adds grad * d edge_function / d(p, a, b) to grad_p, grad_a, grad_b.
template <typename T>
LIB3DR_HD void edge_function_backward(Vec2<T> p, Vec2<T> a, Vec2<T> b, T grad, Vec2<T>& grad_p,
                                      Vec2<T>& grad_a, Vec2<T>& grad_b) {
  grad_p.x += grad * (b.y - a.y);
  grad_p.y -= grad * (b.x - a.x);
  grad_a.x += grad * (p.y - b.y);
  grad_a.y += grad * (b.x - p.x);
  grad_b.x -= grad * (p.y - a.y);
  grad_b.y += grad * (p.x - a.x);
}

// Squared distance from p to the segment a-b; `t` receives the position of the closest point
// q = a + t (b - a), t in [0, 1].
template <typename T>
LIB3DR_HD T point_segment_dist2(Vec2<T> p, Vec2<T> a, Vec2<T> b, T& t) {
  const T abx = b.x - a.x, aby = b.y - a.y;
  const T len2 = abx * abx + aby * aby;
  t = len2 > T(0) ? ((p.x - a.x) * abx + (p.y - a.y) * aby) / len2 : T(0);
  t = t < T(0) ? T(0) : (t > T(1) ? T(1) : t);
  const T dx = p.x - (a.x + t * abx), dy = p.y - (a.y + t * aby);
  return dx * dx + dy * dy;
}

// Adds grad * d dist2 / d(a, b). The closest point moves with t, but d dist2 / dt is zero where t
// is interior (it is a minimum) and t is constant where it is clamped, so t is held fixed.
template <typename T>
LIB3DR_HD void point_segment_dist2_backward(Vec2<T> p, Vec2<T> a, Vec2<T> b, T t, T grad,
                                            Vec2<T>& grad_a, Vec2<T>& grad_b) {
  const T dx = p.x - (a.x + t * (b.x - a.x)), dy = p.y - (a.y + t * (b.y - a.y));
  const T gx = T(-2) * grad * dx, gy = T(-2) * grad * dy;
  grad_a.x += gx * (T(1) - t);
  grad_a.y += gy * (T(1) - t);
  grad_b.x += gx * t;
  grad_b.y += gy * t;
}

// Squared distance from p to the nearest edge of the triangle; `edge` receives which edge
// (0: v0-v1, 1: v1-v2, 2: v2-v0; the first on ties) and `t` the position on it.
template <typename T>
LIB3DR_HD T point_triangle_dist2(Vec2<T> p, const Vec2<T> v[3], int& edge, T& t) {
  edge = 0;
  T best = point_segment_dist2(p, v[0], v[1], t);
  for (int e = 1; e < 3; ++e) {
    T te;
    const T d = point_segment_dist2(p, v[e], v[(e + 1) % 3], te);
    if (d < best) {
      best = d;
      edge = e;
      t = te;
    }
  }
  return best;
}

// How rasterization treats a face at a pixel (RasterizationSettings, minus the sizes).
template <typename T>
struct PixelFaceSettings {
  T blur_radius;             // squared NDC distance within which a face still covers a pixel
  bool perspective_correct;  // barycentrics in view space instead of screen space
  bool clip_barycentric;     // clamp barycentrics to the face (for points in the blur ring)
  bool cull_backfaces;       // skip faces that are clockwise on screen
};

// Everything the forward pass knows about one face at one pixel.
template <typename T>
struct PixelFace {
  T area;        // twice the signed NDC area of the face
  T bary_2d[3];  // screen-space barycentrics
  T bary_pc[3];  // after perspective correction (== bary_2d when off)
  T bary[3];     // after clipping: the barycentrics that rasterization outputs
  T z;           // interpolated view depth
  T dist;        // signed squared distance to the face's edges, negative inside
  int edge;      // nearest edge and the position on it, for the backward pass
  T edge_t;
  bool inside;
};

// Stage 1 of evaluating face `face` (x, y, z of three vertices) at pixel centre p: does it
// cover the pixel in 2D, and at what signed distance? False for degenerate faces, culled faces
// and pixels farther than the blur radius.
template <typename T>
LIB3DR_HD bool eval_coverage(Vec2<T> p, const T* face, const PixelFaceSettings<T>& s,
                             PixelFace<T>& out) {
  const Vec2<T> v[3] = {{face[0], face[1]}, {face[3], face[4]}, {face[6], face[7]}};
  out.area = edge_function(v[2], v[0], v[1]);
  if ((out.area < T(kAreaEpsilon)) && (out.area > -T(kAreaEpsilon))) return false;
  if (s.cull_backfaces && out.area < T(0)) return false;

  out.bary_2d[0] = edge_function(p, v[1], v[2]) / out.area;
  out.bary_2d[1] = edge_function(p, v[2], v[0]) / out.area;
  out.bary_2d[2] = edge_function(p, v[0], v[1]) / out.area;
  out.inside = out.bary_2d[0] > T(0) && out.bary_2d[1] > T(0) && out.bary_2d[2] > T(0);
  const T d2 = point_triangle_dist2(p, v, out.edge, out.edge_t);
  if (!out.inside && d2 >= s.blur_radius) return false;
  out.dist = out.inside ? -d2 : d2;
  return true;
}

// Stage 2, after eval_coverage accepted the face: its barycentrics (perspective-corrected and
// clipped as asked) and depth at the pixel. False where the depth is behind the camera.
template <typename T>
LIB3DR_HD bool eval_depth(const T* face, const PixelFaceSettings<T>& s, PixelFace<T>& out) {
  const T z0 = face[2], z1 = face[5], z2 = face[8];
  if (s.perspective_correct) {
    // Screen-space barycentrics weight 1/z; undo it so they interpolate in view space.
    const T w0 = out.bary_2d[0] * z1 * z2;
    const T w1 = out.bary_2d[1] * z0 * z2;
    const T w2 = out.bary_2d[2] * z0 * z1;
    T denom = w0 + w1 + w2;
    denom = denom > T(kDenomEpsilon) ? denom : T(kDenomEpsilon);
    out.bary_pc[0] = w0 / denom;
    out.bary_pc[1] = w1 / denom;
    out.bary_pc[2] = w2 / denom;
  } else {
    for (int i = 0; i < 3; ++i) out.bary_pc[i] = out.bary_2d[i];
  }
  if (s.clip_barycentric) {
    T c[3], sum = T(0);
    for (int i = 0; i < 3; ++i) {
      c[i] = out.bary_pc[i] > T(0) ? out.bary_pc[i] : T(0);
      sum += c[i];
    }
    sum = sum > T(kDenomEpsilon) ? sum : T(kDenomEpsilon);
    for (int i = 0; i < 3; ++i) out.bary[i] = c[i] / sum;
  } else {
    for (int i = 0; i < 3; ++i) out.bary[i] = out.bary_pc[i];
  }
  out.z = out.bary[0] * z0 + out.bary[1] * z1 + out.bary[2] * z2;
  return out.z >= T(0);
}

// Whether eval_depth can only accept a face that eval_coverage accepted: with no vertex behind
// the camera, barycentrics that are non-negative (inside, or clipped) give a depth >= 0. The
// soft silhouette needs no depth otherwise, so it skips stage 2 for such faces.
template <typename T>
LIB3DR_HD bool depth_surely_visible(const T* face, const PixelFaceSettings<T>& s,
                                    const PixelFace<T>& f) {
  return face[2] >= T(0) && face[5] >= T(0) && face[8] >= T(0) && (f.inside || s.clip_barycentric);
}

// Evaluates face `face` at pixel centre p: both stages. Returns false where the face does not
// cover the pixel: degenerate, culled, farther than the blur radius, or behind the camera there.
template <typename T>
LIB3DR_HD bool eval_pixel_face(Vec2<T> p, const T* face, const PixelFaceSettings<T>& s,
                               PixelFace<T>& out) {
  return eval_coverage(p, face, s, out) && eval_depth(face, s, out);
}

// Adds grad_dist * d dist / d(face) to grad_face: dist = -+ the squared distance to the nearest
// edge, which moves with that edge's two vertices only.
template <typename T, typename G>
LIB3DR_HD void eval_dist_backward(Vec2<T> p, const T* face, const PixelFace<T>& f, T grad_dist,
                                  G* grad_face) {
  const int a = f.edge, b = (f.edge + 1) % 3;
  Vec2<T> ga = {T(0), T(0)}, gb = {T(0), T(0)};
  point_segment_dist2_backward(p, Vec2<T>{face[3 * a], face[3 * a + 1]},
                               Vec2<T>{face[3 * b], face[3 * b + 1]}, f.edge_t,
                               f.inside ? -grad_dist : grad_dist, ga, gb);
  grad_face[3 * a] += G(ga.x);
  grad_face[3 * a + 1] += G(ga.y);
  grad_face[3 * b] += G(gb.x);
  grad_face[3 * b + 1] += G(gb.y);
}

// Adds to grad_face (9 values, like `face`) the gradient of grad_z * z + grad_bary . bary +
// grad_dist * dist, where `f` is the forward result eval_pixel_face gave for this pixel and face.
// The accumulator type G may be wider than T, so that sums do not depend on their order.
template <typename T, typename G>
LIB3DR_HD void eval_pixel_face_backward(Vec2<T> p, const T* face, const PixelFaceSettings<T>& s,
                                        const PixelFace<T>& f, T grad_z, const T* grad_bary,
                                        T grad_dist, G* grad_face) {
  const Vec2<T> v[3] = {{face[0], face[1]}, {face[3], face[4]}, {face[6], face[7]}};
  const T zs[3] = {face[2], face[5], face[8]};
  Vec2<T> gv[3] = {{T(0), T(0)}, {T(0), T(0)}, {T(0), T(0)}};
  T gz[3] = {T(0), T(0), T(0)};

  // z = sum_i bary_i z_i
  T g_bary[3];
  for (int i = 0; i < 3; ++i) {
    g_bary[i] = grad_bary[i] + grad_z * zs[i];
    gz[i] += grad_z * f.bary[i];
  }
  // bary = max(bary_pc, 0) / sum
  T g_pc[3] = {g_bary[0], g_bary[1], g_bary[2]};
  if (s.clip_barycentric) {
    T sum = T(0), dot = T(0);
    for (int i = 0; i < 3; ++i) {
      const T c = f.bary_pc[i] > T(0) ? f.bary_pc[i] : T(0);
      sum += c;
      dot += g_bary[i] * f.bary[i];
    }
    const bool floored = !(sum > T(kDenomEpsilon));
    sum = floored ? T(kDenomEpsilon) : sum;
    for (int i = 0; i < 3; ++i) {
      const T g_c = (g_bary[i] - (floored ? T(0) : dot)) / sum;
      g_pc[i] = f.bary_pc[i] > T(0) ? g_c : T(0);
    }
  }
  // bary_pc_i = w_i / sum_j w_j, with w_0 = bary_2d_0 z1 z2 and so on
  T g_2d[3] = {g_pc[0], g_pc[1], g_pc[2]};
  if (s.perspective_correct) {
    const T zz[3] = {zs[1] * zs[2], zs[0] * zs[2], zs[0] * zs[1]};
    T denom = f.bary_2d[0] * zz[0] + f.bary_2d[1] * zz[1] + f.bary_2d[2] * zz[2];
    const bool floored = !(denom > T(kDenomEpsilon));
    denom = floored ? T(kDenomEpsilon) : denom;
    T dot = T(0);
    for (int i = 0; i < 3; ++i) dot += g_pc[i] * f.bary_pc[i];
    T g_w[3];
    for (int i = 0; i < 3; ++i) {
      g_w[i] = (g_pc[i] - (floored ? T(0) : dot)) / denom;
      g_2d[i] = g_w[i] * zz[i];
    }
    gz[1] += g_w[0] * f.bary_2d[0] * zs[2] + g_w[2] * f.bary_2d[2] * zs[0];
    gz[2] += g_w[0] * f.bary_2d[0] * zs[1] + g_w[1] * f.bary_2d[1] * zs[0];
    gz[0] += g_w[1] * f.bary_2d[1] * zs[2] + g_w[2] * f.bary_2d[2] * zs[1];
  }
  // bary_2d_i = edge_i / area, and area = edge_function(v2, v0, v1)
  T g_area = T(0);
  Vec2<T> g_p = {T(0), T(0)};  // the pixel is fixed; its gradient is discarded
  for (int i = 0; i < 3; ++i) {
    const T g_edge = g_2d[i] / f.area;
    g_area -= g_2d[i] * f.bary_2d[i] / f.area;
    const int a = (i + 1) % 3, b = (i + 2) % 3;
    edge_function_backward(p, v[a], v[b], g_edge, g_p, gv[a], gv[b]);
  }
  edge_function_backward(v[2], v[0], v[1], g_area, gv[2], gv[0], gv[1]);
  for (int i = 0; i < 3; ++i) {
    grad_face[3 * i + 0] += G(gv[i].x);
    grad_face[3 * i + 1] += G(gv[i].y);
    grad_face[3 * i + 2] += G(gz[i]);
  }
  eval_dist_backward(p, face, f, grad_dist, grad_face);
}

// The soft silhouette's per-face coverage, D = sigmoid(-dist / sigma), written to saturate
// cleanly instead of overflowing exp for tiny sigma.
template <typename T>
LIB3DR_HD T coverage_probability(T dist, T sigma) {
  const T x = -dist / sigma;
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}

}  // namespace lib3dr
