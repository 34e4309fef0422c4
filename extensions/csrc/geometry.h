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

// Squared distance from p to the segment a-b, given `inv_len2` = 1 / |b - a|^2 (0 when a == b);
// `t` receives the position of the closest point q = a + t (b - a), t in [0, 1].
template <typename T>
LIB3DR_HD T point_segment_dist2(Vec2<T> p, Vec2<T> a, Vec2<T> b, T inv_len2, T& t) {
  const T abx = b.x - a.x, aby = b.y - a.y;
  const T along = ((p.x - a.x) * abx + (p.y - a.y) * aby) * inv_len2;
  const T clamped = along < T(0) ? T(0) : (along > T(1) ? T(1) : along);
  const T dx = p.x - (a.x + clamped * abx), dy = p.y - (a.y + clamped * aby);
  t = clamped;
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

// A face prepared for evaluation at many pixels: everything that does not depend on the pixel.
template <typename T>
struct FaceSetup {
  Vec2<T> v[3];     // corners, NDC
  T z[3];           // corners' view depths
  T area;           // twice the signed NDC area
  T inv_area;       // 1 / area
  T inv_len2[3];    // 1 / squared length of edges v0-v1, v1-v2, v2-v0 (0 for a point)
  bool drawable;    // neither degenerate nor culled
};

template <typename T>
LIB3DR_HD FaceSetup<T> prepare_face(const T* face, const PixelFaceSettings<T>& s) {
  FaceSetup<T> f;
  for (int i = 0; i < 3; ++i) {
    f.v[i] = {face[3 * i], face[3 * i + 1]};
    f.z[i] = face[3 * i + 2];
  }
  f.area = edge_function(f.v[2], f.v[0], f.v[1]);
  f.drawable = !((f.area < T(kAreaEpsilon)) && (f.area > -T(kAreaEpsilon))) &&
               !(s.cull_backfaces && f.area < T(0));
  f.inv_area = T(1) / f.area;
  for (int e = 0; e < 3; ++e) {
    const Vec2<T> a = f.v[e], b = f.v[(e + 1) % 3];
    const T len2 = (b.x - a.x) * (b.x - a.x) + (b.y - a.y) * (b.y - a.y);
    f.inv_len2[e] = len2 > T(0) ? T(1) / len2 : T(0);
  }
  return f;
}

// What the gradient of a face's signed distance at a pixel depends on: the nearest edge, the
// position on it, and whether the pixel is inside (a compact copy of PixelFace's fields).
template <typename T>
struct DistanceHit {
  T dist;
  T edge_t;
  int edge;
  bool inside;
  LIB3DR_HD static DistanceHit of(const PixelFace<T>& f) {
    return {f.dist, f.edge_t, f.edge, f.inside};
  }
};

// Whether p is strictly inside the face, from its screen-space barycentrics.
template <typename T>
LIB3DR_HD bool inside_face(const T bary_2d[3]) {
  return (bary_2d[0] > T(0)) & (bary_2d[1] > T(0)) & (bary_2d[2] > T(0));
}

// Squared distance from p to the face's nearest edge (the first on ties), which edge, and where
// on it. Selections rather than branches, so that a loop over pixels vectorizes.
template <typename T>
LIB3DR_HD T nearest_edge(Vec2<T> p, const FaceSetup<T>& f, int& edge, T& t) {
  T t0, t1, t2;
  const T d0 = point_segment_dist2(p, f.v[0], f.v[1], f.inv_len2[0], t0);
  const T d1 = point_segment_dist2(p, f.v[1], f.v[2], f.inv_len2[1], t1);
  const T d2 = point_segment_dist2(p, f.v[2], f.v[0], f.inv_len2[2], t2);
  const bool second = d1 < d0;
  const T d01 = second ? d1 : d0;
  const bool third = d2 < d01;
  edge = third ? 2 : (second ? 1 : 0);
  t = third ? t2 : (second ? t1 : t0);
  return third ? d2 : d01;
}

// The screen-space barycentrics of p in the face.
template <typename T>
LIB3DR_HD void barycentrics_2d(Vec2<T> p, const FaceSetup<T>& f, T bary_2d[3]) {
  bary_2d[0] = edge_function(p, f.v[1], f.v[2]) * f.inv_area;
  bary_2d[1] = edge_function(p, f.v[2], f.v[0]) * f.inv_area;
  bary_2d[2] = edge_function(p, f.v[0], f.v[1]) * f.inv_area;
}

// Stage 1 of evaluating a face at pixel centre p: does it cover the pixel in 2D, and at what
// signed distance? False for faces that are not drawable and pixels beyond the blur radius.
template <typename T>
LIB3DR_HD bool eval_coverage(Vec2<T> p, const FaceSetup<T>& f, const PixelFaceSettings<T>& s,
                             PixelFace<T>& out) {
  if (!f.drawable) return false;
  out.area = f.area;
  barycentrics_2d(p, f, out.bary_2d);
  out.inside = inside_face(out.bary_2d);
  if (!out.inside) {
    // Quick rejection: a point outside an edge's line is at least as far from the face as from
    // that line, |edge_function| / |edge|. The margin keeps rounding from rejecting a true hit.
    for (int i = 0; i < 3; ++i) {
      const T e = out.bary_2d[i] * f.area;  // edge function of the edge opposite vertex i
      if (out.bary_2d[i] < T(0) && e * e * f.inv_len2[(i + 1) % 3] >= s.blur_radius * T(1.001))
        return false;
    }
  }
  const T d2 = nearest_edge(p, f, out.edge, out.edge_t);
  if (!out.inside && d2 >= s.blur_radius) return false;
  out.dist = out.inside ? -d2 : d2;
  return true;
}

// eval_coverage's test and distance alone (the same operations, so the same answer), for loops
// over many pixels: returns whether the face covers p and sets `hit` for the backward pass.
template <typename T>
LIB3DR_HD bool coverage_distance(Vec2<T> p, const FaceSetup<T>& f, T blur_radius,
                                 DistanceHit<T>& hit) {
  T bary_2d[3];
  barycentrics_2d(p, f, bary_2d);
  hit.inside = inside_face(bary_2d);
  const T d2 = nearest_edge(p, f, hit.edge, hit.edge_t);
  hit.dist = hit.inside ? -d2 : d2;
  return hit.inside | (d2 < blur_radius);
}

// Stage 2, after eval_coverage accepted the face: its barycentrics (perspective-corrected and
// clipped as asked) and depth at the pixel. False where the depth is behind the camera.
template <typename T>
LIB3DR_HD bool eval_depth(const FaceSetup<T>& f, const PixelFaceSettings<T>& s, PixelFace<T>& out) {
  const T z0 = f.z[0], z1 = f.z[1], z2 = f.z[2];
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

// Stage 2 for a pixel that coverage_distance accepted: the screen-space barycentrics that
// eval_coverage would have left in `out`, then eval_depth. Only bary_2d, bary_pc, bary and z are set.
template <typename T>
LIB3DR_HD bool eval_depth_at(Vec2<T> p, const FaceSetup<T>& f, const PixelFaceSettings<T>& s,
                             PixelFace<T>& out) {
  barycentrics_2d(p, f, out.bary_2d);
  return eval_depth(f, s, out);
}

// Whether eval_depth can only accept a face that eval_coverage accepted: with no vertex behind
// the camera, barycentrics that are non-negative (inside, or clipped) give a depth >= 0. The
// soft silhouette needs no depth otherwise, so it skips stage 2 for such faces.
template <typename T>
LIB3DR_HD bool depth_surely_visible(const FaceSetup<T>& f, const PixelFaceSettings<T>& s,
                                    bool inside) {
  return f.z[0] >= T(0) && f.z[1] >= T(0) && f.z[2] >= T(0) && (inside || s.clip_barycentric);
}

// Bounds of the depth eval_depth gives a face at any pixel where depth_surely_visible holds: the
// barycentrics are then non-negative and sum to 1, so the depth lies between the vertices'
// depths, give or take rounding (the relative margin, far above float's).
template <typename T>
struct DepthRange {
  T lo, hi;
};
template <typename T>
LIB3DR_HD DepthRange<T> depth_range(const FaceSetup<T>& f) {
  return {min3(f.z[0], f.z[1], f.z[2]) * T(1 - 1e-5), max3(f.z[0], f.z[1], f.z[2]) * T(1 + 1e-5)};
}

// Evaluates face `face` at pixel centre p: both stages. Returns false where the face does not
// cover the pixel: degenerate, culled, farther than the blur radius, or behind the camera there.
template <typename T>
LIB3DR_HD bool eval_pixel_face(Vec2<T> p, const T* face, const PixelFaceSettings<T>& s,
                               PixelFace<T>& out) {
  const FaceSetup<T> f = prepare_face(face, s);
  return eval_coverage(p, f, s, out) && eval_depth(f, s, out);
}

// The corners of edge e, from corner e to corner e + 1 (mod 3), selected rather than indexed: a
// loop over pixels whose nearest edge varies per pixel vectorizes only so.
template <typename T>
LIB3DR_HD void edge_corners(const Vec2<T> v[3], int e, Vec2<T>& a, Vec2<T>& b) {
  a = {e == 0 ? v[0].x : (e == 1 ? v[1].x : v[2].x), e == 0 ? v[0].y : (e == 1 ? v[1].y : v[2].y)};
  b = {e == 0 ? v[1].x : (e == 1 ? v[2].x : v[0].x), e == 0 ? v[1].y : (e == 1 ? v[2].y : v[0].y)};
}

// grad_dist * d dist / d(x, y) of each corner, into grad_v: dist = -+ the squared distance to the
// nearest edge, which moves with that edge's two corners only. Corner i starts edge i and ends
// edge i - 1 (mod 3); weights of 0 and 1 route the edge's gradient to them, with no branch and
// no index, so that the CPU's loops over pixels vectorize with it.
template <typename T>
LIB3DR_HD void nearest_edge_backward(Vec2<T> p, const Vec2<T> v[3], const DistanceHit<T>& hit,
                                     T grad_dist, Vec2<T> grad_v[3]) {
  const int e = hit.edge;
  Vec2<T> a, b, ga = {T(0), T(0)}, gb = {T(0), T(0)};
  edge_corners(v, e, a, b);
  point_segment_dist2_backward(p, a, b, hit.edge_t, hit.inside ? -grad_dist : grad_dist, ga, gb);
  const T on_edge[3] = {T(e == 0), T(e == 1), T(e == 2)};
  for (int i = 0; i < 3; ++i) {
    grad_v[i] = {on_edge[i] * ga.x + on_edge[(i + 2) % 3] * gb.x,
                 on_edge[i] * ga.y + on_edge[(i + 2) % 3] * gb.y};
  }
}

// Adds grad_dist * d dist / d(face) to grad_face (nearest_edge_backward; z has no gradient).
template <typename T, typename G>
LIB3DR_HD void eval_dist_backward(Vec2<T> p, const T* face, const DistanceHit<T>& hit,
                                  T grad_dist, G* grad_face) {
  const Vec2<T> v[3] = {{face[0], face[1]}, {face[3], face[4]}, {face[6], face[7]}};
  Vec2<T> gv[3];
  nearest_edge_backward(p, v, hit, grad_dist, gv);
  for (int i = 0; i < 3; ++i) {
    grad_face[3 * i] += G(gv[i].x);
    grad_face[3 * i + 1] += G(gv[i].y);
  }
}

// The backward of eval_pixel_face, one stage of eval_depth and eval_coverage at a time, last
// first. Each takes the gradient of the stage's output and gives that of its input.

// z = sum_i bary_i z_i: the gradient of bary into g_bary (with grad_bary's own), of z_i into gz.
template <typename T>
LIB3DR_HD void depth_backward(const T zs[3], const T bary[3], T grad_z, const T grad_bary[3],
                              T g_bary[3], T gz[3]) {
  for (int i = 0; i < 3; ++i) {
    g_bary[i] = grad_bary[i] + grad_z * zs[i];
    gz[i] += grad_z * bary[i];
  }
}

// bary = max(bary_pc, 0) / sum (clip_barycentric): the gradient of bary_pc into g_pc.
template <typename T>
LIB3DR_HD void clip_barycentric_backward(const PixelFace<T>& f, const T g_bary[3], T g_pc[3]) {
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

// bary_pc_i = w_i / sum_j w_j, with w_0 = bary_2d_0 z1 z2 and so on (perspective_correct): the
// gradient of bary_2d into g_2d, and of the z_i added to gz.
template <typename T>
LIB3DR_HD void perspective_correct_backward(const T zs[3], const PixelFace<T>& f,
                                            const T g_pc[3], T g_2d[3], T gz[3]) {
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

// bary_2d_i = edge_i / area, and area = edge_function(v2, v0, v1) (barycentrics_2d): the
// gradient of the corners' (x, y) added to gv. The pixel is fixed; its gradient is discarded.
template <typename T>
LIB3DR_HD void barycentrics_2d_backward(Vec2<T> p, const Vec2<T> v[3], const PixelFace<T>& f,
                                        const T g_2d[3], Vec2<T> gv[3]) {
  T g_area = T(0);
  Vec2<T> g_p = {T(0), T(0)};
  for (int i = 0; i < 3; ++i) {
    const T g_edge = g_2d[i] / f.area;
    g_area -= g_2d[i] * f.bary_2d[i] / f.area;
    const int a = (i + 1) % 3, b = (i + 2) % 3;
    edge_function_backward(p, v[a], v[b], g_edge, g_p, gv[a], gv[b]);
  }
  edge_function_backward(v[2], v[0], v[1], g_area, gv[2], gv[0], gv[1]);
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
  T g_bary[3];
  depth_backward(zs, f.bary, grad_z, grad_bary, g_bary, gz);
  T g_pc[3] = {g_bary[0], g_bary[1], g_bary[2]};  // the identity unless clipped
  if (s.clip_barycentric) clip_barycentric_backward(f, g_bary, g_pc);
  T g_2d[3] = {g_pc[0], g_pc[1], g_pc[2]};  // the identity unless perspective-corrected
  if (s.perspective_correct) perspective_correct_backward(zs, f, g_pc, g_2d, gz);
  barycentrics_2d_backward(p, v, f, g_2d, gv);
  for (int i = 0; i < 3; ++i) {
    grad_face[3 * i + 0] += G(gv[i].x);
    grad_face[3 * i + 1] += G(gv[i].y);
    grad_face[3 * i + 2] += G(gz[i]);
  }
  eval_dist_backward(p, face, DistanceHit<T>::of(f), grad_dist, grad_face);
}

// The soft silhouette's per-face coverage D = sigmoid(x), x = -dist / sigma, given
// e = exp(-|x|): the exponential of a number <= 0 never overflows, even for tiny sigma. The CPU
// kernels pass an exp of their own that vectorizes.
template <typename T>
LIB3DR_HD T coverage_from_exp(T x, T e) {
  return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

template <typename T>
LIB3DR_HD T coverage_probability(T dist, T sigma) {
  const T x = -dist / sigma;
  return coverage_from_exp(x, std::exp(x >= T(0) ? -x : x));
}

// log(1 - D) = log sigmoid(dist / sigma), finite even where D rounds to 1; given x and e as
// coverage_from_exp takes them, so that D and log(1 - D) share one exponential.
template <typename T>
LIB3DR_HD T log_one_minus_coverage_from_exp(T x, T e) {
  return x >= T(0) ? -x - std::log1p(e) : -std::log1p(e);
}

template <typename T>
LIB3DR_HD T log_one_minus_coverage(T dist, T sigma) {
  const T x = -dist / sigma;
  return log_one_minus_coverage_from_exp(x, std::exp(x >= T(0) ? -x : x));
}

// The soft silhouette alpha = 1 - T, with the transmittance T = prod_k (1 - D_k) over the faces
// kept at a pixel. As dD / d dist = -D (1 - D) / sigma and d alpha / d D_k = T / (1 - D_k), one
// face's distance has d alpha / d dist_k = -T D_k / sigma: nothing of the other faces but T, and
// no division by 1 - D_k (0 for a fully covering face). Given weight = grad_alpha * T and
// coverage = D_k, returns grad_alpha * d alpha / d dist_k.
template <typename T>
LIB3DR_HD T silhouette_dist_grad(T weight, T coverage, T sigma) {
  return -weight * coverage / sigma;
}

}  // namespace lib3dr
