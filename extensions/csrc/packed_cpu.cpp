// The soft shaders' kernels over packed fragments (packed.h): packing, the rasterizer's backward
// from packed gradients, the softmax colour blend, Phong lighting and barycentric interpolation.
//
// Work is split into one contiguous range of pixels or fragments per thread; gradients that many
// fragments add into (faces, face attributes) go to one double buffer per thread, summed in
// thread order, so results do not depend on scheduling.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu_threads.h"
#include "packed.h"

namespace lib3dr {
namespace {

constexpr double kBlendEpsilon = 1e-10;  // softmax_rgb_blend's eps

// What a pixel's weights share: z_max, the background weight, and whether each has a gradient.
template <typename T>
struct PixelWeights {
  T znear, zfar;
  T z_max;          // max(eps, max_i z_i)
  bool z_max_free;  // max_i z_i >= eps: z_max moves with the fragments that attain it
  int ties;         // how many fragments attain z_max (when free and counted)
  T w_b;            // max(eps, exp((eps - z_max) / gamma))
  bool w_b_free;    // the exponential >= eps: w_b moves with z_max
};

template <typename T>
inline T normalised_depth(T zbuf, T znear, T zfar) {
  return (zfar - zbuf) / (zfar - znear);
}

template <typename T>
PixelWeights<T> pixel_weights(const SoftBlendParams& p, int64_t pixel, int64_t begin, int64_t end,
                              const T* zbuf, const T* znear, const T* zfar, bool count_ties) {
  PixelWeights<T> w;
  const int64_t image = pixel / p.image_pixels;
  w.znear = znear[image];
  w.zfar = zfar[image];
  const T eps = T(kBlendEpsilon);
  T z_max = -std::numeric_limits<T>::infinity();
  for (int64_t i = begin; i < end; ++i) z_max = std::max(z_max, normalised_depth(zbuf[i], w.znear, w.zfar));
  w.z_max_free = z_max >= eps;
  w.z_max = w.z_max_free ? z_max : eps;
  w.ties = 0;
  if (w.z_max_free && count_ties)
    for (int64_t i = begin; i < end; ++i) w.ties += normalised_depth(zbuf[i], w.znear, w.zfar) == z_max;
  const T background = std::exp((eps - w.z_max) / T(p.gamma));
  w.w_b_free = background >= eps;
  w.w_b = w.w_b_free ? background : eps;
  return w;
}

// A fragment's depth factor exp((z_i - z_max) / gamma); its weight is D_i times this.
template <typename T>
inline T depth_factor(const SoftBlendParams& p, const PixelWeights<T>& w, T zbuf) {
  return std::exp((normalised_depth(zbuf, w.znear, w.zfar) - w.z_max) / T(p.gamma));
}


// The kept fragments of the pixels in [begin, end) start at kept[first_kept(begin)].
inline int64_t first_kept(const int64_t* kept, int64_t kept_count, int64_t fragment) {
  return std::lower_bound(kept, kept + kept_count, fragment) - kept;
}

// Phong's vectors: three components, and F.normalize's eps.
constexpr double kNormalizeEpsilon = 1e-6;
constexpr double kHighlightFloor = 1e-12;

template <typename T>
struct Vec3 {
  T x, y, z;
  Vec3 operator+(Vec3 o) const { return {x + o.x, y + o.y, z + o.z}; }
  Vec3 operator-(Vec3 o) const { return {x - o.x, y - o.y, z - o.z}; }
  Vec3 operator*(T s) const { return {x * s, y * s, z * s}; }
  Vec3 operator/(T s) const { return {x / s, y / s, z / s}; }
  Vec3 operator-() const { return {-x, -y, -z}; }
  T dot(Vec3 o) const { return x * o.x + y * o.y + z * o.z; }
  static Vec3 at(const T* v) { return {v[0], v[1], v[2]}; }
  void store(T* v) const {
    v[0] = x;
    v[1] = y;
    v[2] = z;
  }
  template <typename G>
  void add_to(G* v) const {
    v[0] += G(x);
    v[1] += G(y);
    v[2] += G(z);
  }
};

// x / max(|x|, eps), keeping |x| for the backward. (Multiplied by the reciprocal: a rounding
// away from F.normalize's division, and a third of the divisions.)
template <typename T>
struct Normalized {
  Vec3<T> x, unit;
  T length, inverse;  // |x|, 1 / max(|x|, eps)
  explicit Normalized(Vec3<T> v) : x(v) {
    length = std::sqrt(v.dot(v));
    inverse = T(1) / (length >= T(kNormalizeEpsilon) ? length : T(kNormalizeEpsilon));
    unit = v * inverse;
  }
  // The gradient of x given that of unit: through the norm only where it was not clamped.
  Vec3<T> backward(Vec3<T> grad_unit) const {
    Vec3<T> grad = grad_unit * inverse;
    if (length >= T(kNormalizeEpsilon)) grad = grad - x * (x.dot(grad_unit) * inverse * inverse * inverse);
    return grad;
  }
};

// Everything the forward computes at one fragment, for its colour and for the backward.
template <typename T>
struct PhongFragment {
  int64_t image;
  Normalized<T> normal, to_light, to_camera;
  T cos, diffuse_factor, highlight_base, highlight;
  T clamped, power_less_one, power;  // max(h, floor), its shininess - 1 and shininess powers
  Vec3<T> reflected;
  PhongFragment(const PhongParams& p, const PhongInputs<T>& in, int64_t i)
      : image(in.pixel[i] / p.image_pixels),
        normal(Vec3<T>::at(in.normals + 3 * i)),
        to_light(p.point_light ? Vec3<T>::at(in.light + 3 * image) - Vec3<T>::at(in.points + 3 * i)
                               : Vec3<T>::at(in.light + 3 * image)),
        to_camera(Vec3<T>::at(in.camera + 3 * image) - Vec3<T>::at(in.points + 3 * i)) {
    cos = normal.unit.dot(to_light.unit);
    diffuse_factor = cos > T(0) ? cos : T(0);
    reflected = -to_light.unit + normal.unit * (T(2) * cos);
    highlight_base = to_camera.unit.dot(reflected);
    highlight = highlight_base > T(0) && cos > T(0) ? highlight_base : T(0);
    clamped = highlight > T(kHighlightFloor) ? highlight : T(kHighlightFloor);
    // One pow for the power and its derivative: x^s = x^(s - 1) x.
    power_less_one = highlight > T(0) ? std::pow(clamped, in.shininess[image] - T(1)) : T(0);
    power = power_less_one * clamped;
  }
};

}  // namespace

template <typename T>
void phong_lighting_forward_cpu(const PhongParams& p, PhongInputs<T> in, T* colors) {
  parallel_ranges(p.count, 4096, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const PhongFragment<T> f(p, in, i);
      for (int c = 0; c < 3; ++c) {
        const int64_t o = 3 * f.image + c;
        colors[3 * i + c] = (in.ambient[o] + in.diffuse[o] * f.diffuse_factor) * in.texels[3 * i + c] +
                            in.specular[o] * f.power;
      }
    }
  });
}

template <typename T>
void phong_lighting_backward_cpu(const PhongParams& p, PhongInputs<T> in, const T* grad_colors,
                                 PhongGrads<T> grads) {
  // Per image: light 3, ambient 3, diffuse 3, specular 3, shininess 1, camera 3.
  constexpr int kPerImage = 16;
  ThreadSums sums(p.images * kPerImage);
  parallel_ranges(p.count, 4096, [&](int64_t thread, int64_t begin, int64_t end) {
    double* acc = sums.of(thread);
    // The fragments come image by image: sum each run of one image here, then add it to acc.
    double a[kPerImage] = {};
    int64_t run_image = begin < end ? in.pixel[begin] / p.image_pixels : 0;
    const auto flush = [&] {
      for (int k = 0; k < kPerImage; ++k) {
        acc[run_image * kPerImage + k] += a[k];
        a[k] = 0.0;
      }
    };
    for (int64_t i = begin; i < end; ++i) {
      const PhongFragment<T> f(p, in, i);
      if (f.image != run_image) {
        flush();
        run_image = f.image;
      }
      const T* g = grad_colors + 3 * i;
      T grad_diffuse_factor = T(0), grad_power = T(0);
      for (int c = 0; c < 3; ++c) {
        const int64_t o = 3 * f.image + c;
        const T texel = in.texels[3 * i + c];
        grads.texels[3 * i + c] = g[c] * (in.ambient[o] + in.diffuse[o] * f.diffuse_factor);
        a[3 + c] += double(g[c] * texel);
        a[6 + c] += double(g[c] * texel * f.diffuse_factor);
        a[9 + c] += double(g[c] * f.power);
        grad_diffuse_factor += g[c] * texel * in.diffuse[o];
        grad_power += g[c] * in.specular[o];
      }
      T grad_cos = f.cos > T(0) ? grad_diffuse_factor : T(0);
      // power = max(h, floor)^s where h > 0 (0 elsewhere); h = max(0, v.r) where n.l > 0.
      T grad_highlight = T(0);
      if (f.highlight > T(0)) {
        if (p.shininess_grad) a[12] += double(grad_power * f.power * std::log(f.clamped));
        if (f.highlight >= T(kHighlightFloor))
          grad_highlight = grad_power * in.shininess[f.image] * f.power_less_one;
      }
      Vec3<T> grad_to_camera = {T(0), T(0), T(0)}, grad_normal = {T(0), T(0), T(0)};
      Vec3<T> grad_to_light = {T(0), T(0), T(0)};
      if (grad_highlight != T(0)) {  // f.highlight > 0: v.r > 0 and n.l > 0
        const Vec3<T> grad_reflected = f.to_camera.unit * grad_highlight;
        grad_to_camera = f.reflected * grad_highlight;
        grad_to_light = -grad_reflected;
        grad_cos += T(2) * grad_reflected.dot(f.normal.unit);
        grad_normal = grad_reflected * (T(2) * f.cos);
      }
      grad_normal = grad_normal + f.to_light.unit * grad_cos;
      grad_to_light = grad_to_light + f.normal.unit * grad_cos;
      const Vec3<T> gn = f.normal.backward(grad_normal);
      const Vec3<T> gl = f.to_light.backward(grad_to_light);
      const Vec3<T> gv = f.to_camera.backward(grad_to_camera);
      const Vec3<T> gp = p.point_light ? -gv - gl : -gv;
      gn.store(grads.normals + 3 * i);
      gp.store(grads.points + 3 * i);
      gl.add_to(a);
      gv.add_to(a + 13);
    }
    if (begin < end) flush();
  }, sums.slots());
  std::vector<double> total(size_t(p.images) * kPerImage);
  sums.reduce(total.data());
  for (int64_t n = 0; n < p.images; ++n) {
    const double* t = total.data() + n * kPerImage;
    for (int c = 0; c < 3; ++c) {
      grads.light[3 * n + c] = T(t[c]);
      grads.ambient[3 * n + c] = T(t[3 + c]);
      grads.diffuse[3 * n + c] = T(t[6 + c]);
      grads.specular[3 * n + c] = T(t[9 + c]);
      grads.camera[3 * n + c] = T(t[13 + c]);
    }
    grads.shininess[n] = T(t[12]);
  }
}

void count_fragments_cpu(int64_t pixels, int K, const int64_t* pix_to_face, int64_t* counts) {
  parallel_ranges(pixels, 1024, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t q = begin; q < end; ++q) {
      int k = 0;
      while (k < K && pix_to_face[q * K + k] >= 0) ++k;
      counts[q] = k;
    }
  });
}

template <typename T>
void pack_fragments_cpu(int64_t pixels, int K, int64_t first_pixel, const int64_t* pix_to_face,
                        const T* zbuf, const T* bary, const T* dists, const int64_t* offset,
                        int64_t* faces, T* zbuf_out, T* bary_out, T* dists_out, int64_t* pixel) {
  parallel_ranges(pixels, 1024, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t q = begin; q < end; ++q) {
      int64_t o = offset[q];
      for (int64_t s = q * K; s < (q + 1) * K && pix_to_face[s] >= 0; ++s, ++o) {
        faces[o] = pix_to_face[s];
        zbuf_out[o] = zbuf[s];
        dists_out[o] = dists[s];
        for (int j = 0; j < 3; ++j) bary_out[3 * o + j] = bary[3 * s + j];
        pixel[o] = first_pixel + q;
      }
    }
  });
}

template <typename T>
void rasterize_packed_backward_cpu(const RasterizeParams& p, const T* face_verts, int64_t count,
                                   const int64_t* pixel, const int64_t* faces, const T* grad_zbuf,
                                   const T* grad_bary, const T* grad_dists, T* grad_face_verts) {
  const PixelFaceSettings<T> s = pixel_face_settings<T>(p);
  const double rx = ndc_range_x(p), ry = ndc_range_y(p);
  std::vector<FaceSetup<T>> setups(p.num_faces);  // each face prepared once
  for (int64_t f = 0; f < p.num_faces; ++f) setups[f] = prepare_face(face_verts + 9 * f, s);
  ThreadSums grads(int64_t(p.num_faces) * 9);
  parallel_ranges(count, 4096, [&](int64_t thread, int64_t begin, int64_t end) {
    double* g = grads.of(thread);
    PixelFace<T> pf;
    for (int64_t i = begin; i < end; ++i) {
      const T grad_z = grad_zbuf[i], grad_dist = grad_dists[i];
      const T* gb = grad_bary + 3 * i;
      const bool geometry = grad_z != T(0) || gb[0] != T(0) || gb[1] != T(0) || gb[2] != T(0);
      if (!geometry && grad_dist == T(0)) continue;
      const int64_t f = faces[i], q = pixel[i] % (int64_t(p.height) * p.width);
      const int y = int(q / p.width), x = int(q % p.width);
      const Vec2<T> pix = {T(pixel_center_ndc(x, p.width, rx)), T(pixel_center_ndc(y, p.height, ry))};
      const T* face = face_verts + 9 * f;
      if (geometry) {  // recomputing is cheaper than storing the intermediates
        // eval_pixel_face, with the face prepared once
        if (!(eval_coverage(pix, setups[f], s, pf) && eval_depth(setups[f], s, pf))) continue;
        eval_pixel_face_backward(pix, face, s, pf, grad_z, gb, grad_dist, g + 9 * f);
      } else {
        DistanceHit<T> hit;
        coverage_distance(pix, setups[f], s.blur_radius, hit);
        eval_dist_backward(pix, face, hit, grad_dist, g + 9 * f);
      }
    }
  }, grads.slots());
  grads.reduce(grad_face_verts);
}

template <typename T>
void softmax_blend_weights_cpu(const SoftBlendParams& p, const int64_t* pixel_start, const T* zbuf,
                               const T* dists, const T* znear, const T* zfar, const bool* given,
                               bool* keep, SoftBlendWeights<T> out) {
  parallel_ranges(p.pixels, 1024, [&](int64_t, int64_t begin, int64_t end) {
    std::vector<T> weights;
    for (int64_t q = begin; q < end; ++q) {
      const int64_t first = pixel_start[q], last = pixel_start[q + 1];
      if (first == last) {
        out.background_share[q] = T(1);
        out.transmittance[q] = T(1);
        continue;
      }
      const PixelWeights<T> w = pixel_weights(p, q, first, last, zbuf, znear, zfar, false);
      weights.resize(last - first);
      double total = w.w_b, log_transmittance = 0.0;
      for (int64_t i = first; i < last; ++i) {
        // D = sigmoid(x) and log(1 - D) from one exponential, x = -dist / sigma.
        const T x = -dists[i] / T(p.sigma);
        const T e = std::exp(x >= T(0) ? -x : x);
        const T D = coverage_from_exp(x, e);
        log_transmittance += log_one_minus_coverage_from_exp(x, e);
        out.coverage[i] = D;
        weights[i - first] = D * depth_factor(p, w, zbuf[i]);
        total += weights[i - first];
      }
      const double threshold = p.dropped_weight / double(last - first) * total;
      double denom = w.w_b;
      for (int64_t i = first; i < last; ++i) {
        keep[i] = given ? given[i] : p.dropped_weight <= 0 || double(weights[i - first]) > threshold;
        if (keep[i]) denom += weights[i - first];
      }
      for (int64_t i = first; i < last; ++i)
        out.share[i] = keep[i] ? T(weights[i - first] / denom) : T(0);
      out.background_share[q] = T(w.w_b / denom);
      out.transmittance[q] = T(std::exp(log_transmittance));
    }
  });
}

int64_t kept_indices_cpu(int64_t count, const bool* keep, int64_t* kept) {
  int64_t k = 0;
  for (int64_t i = 0; i < count; ++i)
    if (keep[i]) kept[k++] = i;
  return k;
}

template <typename T>
void softmax_blend_forward_cpu(const SoftBlendParams& p, const int64_t* pixel_start,
                               SoftBlendWeights<const T> weights, const T* background,
                               int64_t kept_count, const int64_t* kept, const T* colors, T* rgba) {
  const int C = p.channels;
  parallel_ranges(p.pixels, 1024, [&](int64_t, int64_t begin, int64_t end) {
    int64_t k = first_kept(kept, kept_count, pixel_start[begin]);
    std::vector<double> sum(C);
    for (int64_t q = begin; q < end; ++q) {
      for (int c = 0; c < C; ++c) sum[c] = double(weights.background_share[q]) * background[c];
      for (; k < kept_count && kept[k] < pixel_start[q + 1]; ++k)
        for (int c = 0; c < C; ++c) sum[c] += double(weights.share[kept[k]]) * colors[k * C + c];
      T* out = rgba + q * (C + 1);
      for (int c = 0; c < C; ++c) out[c] = T(sum[c]);
      out[C] = T(1) - weights.transmittance[q];
    }
  });
}

template <typename T>
void softmax_blend_backward_cpu(const SoftBlendParams& p, const int64_t* pixel_start,
                                const T* zbuf, const T* znear, const T* zfar,
                                SoftBlendWeights<const T> weights, const T* background,
                                int64_t kept_count, const int64_t* kept, const T* colors,
                                const T* rgba, const T* grad_rgba, T* grad_colors, T* grad_zbuf,
                                T* grad_dists) {
  const int C = p.channels;
  const T sigma = T(p.sigma), gamma = T(p.gamma);
  parallel_ranges(p.pixels, 1024, [&](int64_t, int64_t begin, int64_t end) {
    int64_t k = first_kept(kept, kept_count, pixel_start[begin]);
    for (int64_t q = begin; q < end; ++q) {
      const int64_t first = pixel_start[q], last = pixel_start[q + 1];
      if (first == last) continue;
      const T* g = grad_rgba + q * (C + 1);
      const T* rgb = rgba + q * (C + 1);
      const PixelWeights<T> w = pixel_weights(p, q, first, last, zbuf, znear, zfar, true);
      const T inv_range = T(1) / (w.zfar - w.znear);
      const T silhouette = -g[C] * weights.transmittance[q] / sigma;
      // d L / d log w for a weight of share s and colour c: s g.(c - rgb). z_max scales every
      // weight but a clamped w_b by exp(-z_max / gamma).
      T grad_background = T(0);
      for (int c = 0; c < C; ++c) grad_background += g[c] * (background[c] - rgb[c]);
      T grad_log_weights = w.w_b_free ? weights.background_share[q] * grad_background : T(0);
      for (int64_t i = first; i < last; ++i) {
        const T D = weights.coverage[i];
        T gd = silhouette * D;  // the silhouette's, as silhouette_blend
        T gz = T(0);
        if (k < kept_count && kept[k] == i) {
          const T share = weights.share[i];
          T dot = T(0);
          for (int c = 0; c < C; ++c) {
            dot += g[c] * (colors[k * C + c] - rgb[c]);
            grad_colors[k * C + c] = g[c] * share;
          }
          const T grad_log_weight = share * dot;
          gd -= grad_log_weight * (T(1) - D) / sigma;
          gz -= grad_log_weight / gamma * inv_range;
          grad_log_weights += grad_log_weight;
          ++k;
        }
        grad_dists[i] = gd;
        grad_zbuf[i] = gz;
      }
      if (w.z_max_free && grad_log_weights != T(0)) {
        const T share = -grad_log_weights / gamma / T(w.ties) * inv_range;
        for (int64_t i = first; i < last; ++i)
          if (normalised_depth(zbuf[i], w.znear, w.zfar) == w.z_max) grad_zbuf[i] -= share;
      }
    }
  });
}

template <typename T>
void interpolate_forward_cpu(int64_t count, int dim, const int64_t* faces, const T* bary,
                             const T* face_attrs, T* out) {
  parallel_ranges(count, 4096, [&](int64_t, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const T* a = face_attrs + faces[i] * 3 * dim;
      const T* b = bary + 3 * i;
      for (int d = 0; d < dim; ++d) out[i * dim + d] = b[0] * a[d] + b[1] * a[dim + d] + b[2] * a[2 * dim + d];
    }
  });
}

template <typename T>
void interpolate_backward_cpu(int64_t count, int dim, int64_t num_faces, const int64_t* faces,
                              const T* bary, const T* face_attrs, const T* grad_out,
                              T* grad_bary, T* grad_face_attrs) {
  ThreadSums grads(grad_face_attrs ? num_faces * 3 * dim : 0);
  parallel_ranges(count, 4096, [&](int64_t thread, int64_t begin, int64_t end) {
    double* ga = grad_face_attrs ? grads.of(thread) : nullptr;
    for (int64_t i = begin; i < end; ++i) {
      const int64_t f = faces[i];
      const T* go = grad_out + i * dim;
      for (int j = 0; j < 3; ++j) {
        if (grad_bary) {
          const T* a = face_attrs + (f * 3 + j) * dim;
          T sum = T(0);
          for (int d = 0; d < dim; ++d) sum += go[d] * a[d];
          grad_bary[3 * i + j] = sum;
        }
        if (ga) {
          double* gaj = ga + (f * 3 + j) * dim;
          for (int d = 0; d < dim; ++d) gaj[d] += double(bary[3 * i + j]) * go[d];
        }
      }
    }
  }, grads.slots());
  if (grad_face_attrs) grads.reduce(grad_face_attrs);
}

#define LIB3DR_INSTANTIATE(T)                                                                      \
  template void pack_fragments_cpu<T>(int64_t, int, int64_t, const int64_t*, const T*, const T*,  \
                                      const T*, const int64_t*, int64_t*, T*, T*, T*, int64_t*);   \
  template void rasterize_packed_backward_cpu<T>(const RasterizeParams&, const T*, int64_t,       \
                                                 const int64_t*, const int64_t*, const T*,        \
                                                 const T*, const T*, T*);                         \
  template void softmax_blend_weights_cpu<T>(const SoftBlendParams&, const int64_t*, const T*,    \
                                             const T*, const T*, const T*, const bool*, bool*,    \
                                             SoftBlendWeights<T>);                                \
  template void softmax_blend_forward_cpu<T>(const SoftBlendParams&, const int64_t*,              \
                                             SoftBlendWeights<const T>, const T*, int64_t,        \
                                             const int64_t*, const T*, T*);                       \
  template void softmax_blend_backward_cpu<T>(const SoftBlendParams&, const int64_t*, const T*,   \
                                              const T*, const T*, SoftBlendWeights<const T>,      \
                                              const T*, int64_t, const int64_t*, const T*,        \
                                              const T*, const T*, T*, T*, T*);                    \
  template void phong_lighting_forward_cpu<T>(const PhongParams&, PhongInputs<T>, T*);          \
  template void phong_lighting_backward_cpu<T>(const PhongParams&, PhongInputs<T>, const T*,     \
                                               PhongGrads<T>);                                  \
  template void interpolate_forward_cpu<T>(int64_t, int, const int64_t*, const T*, const T*, T*); \
  template void interpolate_backward_cpu<T>(int64_t, int, int64_t, const int64_t*, const T*,      \
                                            const T*, const T*, T*, T*);
LIB3DR_INSTANTIATE(float)
LIB3DR_INSTANTIATE(double)

}  // namespace lib3dr
