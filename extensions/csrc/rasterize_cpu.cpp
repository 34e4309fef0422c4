// Multi-threaded CPU rasterization.
//
// The image is cut into square tiles; each face is listed in the tiles its blur-expanded bounding
// box touches, and a tile tests only the pixels of each listed face's box, in vectorized loops
// over 8-pixel chunks of its rows. Work is split by tile (forward, fused backward) or by image
// row (fragment backward) in a fixed round-robin, so the forward output does not depend on the
// number of threads; backward gradients go to one buffer per thread, summed in a fixed order.
// The soft silhouette's blend from fragments is here too: one pass per pixel over its K slots.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "cpu_threads.h"
#include "rasterize.h"

namespace lib3dr {
namespace {

constexpr int kChunk = 8;  // the row kernels test a tile row (kTile pixels) in chunks of this many

// Each face's pixel box (face_pixel_box, shared with the CUDA kernels).
template <typename T>
std::vector<PixelBox> face_pixel_boxes(const RasterizeParams& p, const T* face_verts) {
  std::vector<PixelBox> boxes(p.num_faces);
  for (int64_t f = 0; f < p.num_faces; ++f) boxes[f] = face_pixel_box(p, face_verts + 9 * f);
  return boxes;
}

// Faces of every mesh listed per tile, in ascending face order (compressed rows: the faces of
// tile t of mesh n are faces[start[n * tiles + t] .. start[n * tiles + t + 1])).
struct TileBins {
  int tiles_x, tiles_y;
  std::vector<int64_t> start;
  std::vector<int64_t> faces;
  int64_t tiles() const { return int64_t(tiles_x) * tiles_y; }  // per image
};

inline TileBins bin_faces(const RasterizeParams& p, const std::vector<PixelBox>& boxes,
                          const int64_t* mesh_first_face, const int64_t* mesh_num_faces) {
  TileBins bins;
  bins.tiles_x = tiles_along(p.width);
  bins.tiles_y = tiles_along(p.height);
  bins.start.assign(p.num_meshes * bins.tiles() + 1, 0);
  auto for_each_entry = [&](auto&& visit) {
    for (int n = 0; n < p.num_meshes; ++n)
      for (int64_t f = mesh_first_face[n]; f < mesh_first_face[n] + mesh_num_faces[n]; ++f)
        for_each_bin_of_box(boxes[f], n, bins.tiles_x, bins.tiles(),
                            [&](int64_t bin) { visit(bin, f); });
  };
  for_each_entry([&](int64_t tile, int64_t) { ++bins.start[tile + 1]; });
  for (size_t i = 1; i < bins.start.size(); ++i) bins.start[i] += bins.start[i - 1];
  bins.faces.resize(bins.start.back());
  std::vector<int64_t> fill(bins.start.begin(), bins.start.end() - 1);
  for_each_entry([&](int64_t tile, int64_t f) { bins.faces[fill[tile]++] = f; });
  return bins;
}

// The pixels of tile `item` (a bin: an index over meshes x tiles): its mesh, and the rectangle of
// w x h pixels from (x0, y0), smaller than kTile x kTile at the image's right and bottom edges.
struct TileRect {
  int64_t mesh;
  int x0, y0, w, h;
};

inline TileRect tile_rect(const RasterizeParams& p, const TileBins& bins, int64_t item) {
  const BinOrigin o = bin_origin(item, bins.tiles_x, bins.tiles());
  return {o.mesh, o.x0, o.y0, std::min(kTile, p.width - o.x0), std::min(kTile, p.height - o.y0)};
}

// Calls body(local, index) for each pixel of the tile: its index within the tile (row-major,
// kTile per row) and in the (N, H, W) images.
template <typename Body>
void for_each_tile_pixel(const RasterizeParams& p, const TileRect& tile, const Body& body) {
  for (int ly = 0; ly < tile.h; ++ly)
    for (int lx = 0; lx < tile.w; ++lx)
      body(ly * kTile + lx, pixel_index(p, tile.mesh, tile.x0 + lx, tile.y0 + ly));
}

// NDC centres of every pixel column and row, computed once per call.
template <typename T>
struct PixelCentres {
  std::vector<T> x, y;
  explicit PixelCentres(const RasterizeParams& p)
      : x(tiles_along(p.width) * kTile, T(0)), y(p.height) {
    for (int i = 0; i < p.width; ++i) x[i] = T(pixel_center_ndc(i, p.width, ndc_range_x(p)));
    for (int i = 0; i < p.height; ++i) y[i] = T(pixel_center_ndc(i, p.height, ndc_range_y(p)));
  }
  Vec2<T> operator()(int col, int row) const { return {x[col], y[row]}; }
  // The centre of pixel `local` (for_each_tile_pixel) of the tile.
  Vec2<T> at(const TileRect& tile, int local) const {
    return (*this)(tile.x0 + local % kTile, tile.y0 + local / kTile);
  }
};

// exp(x) for x <= 0, in a form the compiler vectorizes (std::exp is a library call, which stops
// it): Cody and Waite's reduction to x = n ln 2 + r with |r| <= ln(2) / 2, Cephes' polynomial
// for e^r (within 2 ulp of std::exp), and 2^n written into the exponent bits. Below -87.3 it
// returns exp(-87.3) (about 1.2e-38), where 1 / (1 + e) already rounds to 1 in float.
inline float exp_nonpositive(float x) {
  x = x < -87.3f ? -87.3f : x;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float n = (x * 1.44269504f + kRound) - kRound;
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float poly = 1.9875691500e-4f;
  poly = poly * r + 1.3981999507e-3f;
  poly = poly * r + 8.3334519073e-3f;
  poly = poly * r + 4.1665795894e-2f;
  poly = poly * r + 1.6666665459e-1f;
  poly = poly * r + 5.0000001201e-1f;
  poly = poly * r * r + r + 1.0f;
  const int32_t bits = (int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return poly * scale;
}
// Double precision serves the gradient checks, where speed does not matter.
inline double exp_nonpositive(double x) { return std::exp(x); }

// coverage_probability with exp_nonpositive.
template <typename T>
inline T coverage_probability_vectorizable(T dist, T sigma) {
  const T x = -dist / sigma;
  return coverage_from_exp(x, exp_nonpositive(x >= T(0) ? -x : x));
}

// The pixels of a face's box within one tile: tile-local columns j_begin..j_end, image rows
// y_begin..y_end.
struct TileSpan {
  int j_begin, j_end, y_begin, y_end;
  int rows() const { return y_end - y_begin + 1; }
};

// Calls visit(face index, its FaceSetup, TileSpan) for each drawable face listed in tile `item`
// whose box meets the tile, in ascending face order.
template <typename T, typename Visit>
void for_each_tile_face(const RasterizeParams& p, const T* face_verts,
                        const std::vector<PixelBox>& boxes, const TileBins& bins, int64_t item,
                        const Visit& visit) {
  const PixelFaceSettings<T> s = pixel_face_settings<T>(p);
  const TileRect tile = tile_rect(p, bins, item);
  for (int64_t i = bins.start[item]; i < bins.start[item + 1]; ++i) {
    const int64_t f = bins.faces[i];
    const PixelBox& b = boxes[f];
    const TileSpan span = {std::max(b.x0, tile.x0) - tile.x0,
                           std::min(b.x1, tile.x0 + tile.w - 1) - tile.x0,
                           std::max(b.y0, tile.y0), std::min(b.y1, tile.y0 + tile.h - 1)};
    if (span.j_begin > span.j_end || span.y_begin > span.y_end) continue;
    const FaceSetup<T> face = prepare_face(face_verts + 9 * f, s);
    if (face.drawable) visit(f, face, span);
  }
}

// The coverage test (coverage_distance) of one face at the pixels of a row of a tile (test_rows
// fills the chunks that meet the span it was given; the caller reads the span's pixels only).
template <typename T>
struct RowCoverage {
  T dist[kTile], edge_t[kTile];
  int edge[kTile], inside[kTile], hit[kTile];  // int, not bool: one element width vectorizes
  DistanceHit<T> at(int j) const { return {dist[j], edge_t[j], edge[j], inside[j] != 0}; }
};

// The row kernels below loop over the rows of a span, and over each chunk of kChunk columns
// (aligned within the tile) that meets it, with a fixed trip count: that vectorizes with no
// scalar remainder, and the lanes outside the span are masked or ignored. Inside a chunk every
// array is addressed from a pointer to the chunk's first element: Python builds extensions with
// -fwrapv, and the vectorizer cannot follow a wrapping index such as r * kTile + c + k.
template <typename Body>
__attribute__((always_inline)) inline void for_each_row_chunk(TileSpan span, const Body& body) {
  for (int r = 0; r < span.rows(); ++r)
    for (int c = span.j_begin / kChunk * kChunk; c <= span.j_end; c += kChunk) body(r, c);
}

template <typename T>
__attribute__((always_inline)) inline void test_rows(const FaceSetup<T>& face, T blur_radius,
                                                     const T* xs, const T* ys, TileSpan span,
                                                     RowCoverage<T>* out) {
  const FaceSetup<T> local = face;  // a copy the outputs cannot alias
  for_each_row_chunk(span, [&](int r, int c) __attribute__((always_inline)) {
    const T* x = xs + c;
    T *dist = out[r].dist + c, *edge_t = out[r].edge_t + c;
    int *edge = out[r].edge + c, *inside = out[r].inside + c, *hit = out[r].hit + c;
    for (int k = 0; k < kChunk; ++k) {
      DistanceHit<T> h;
      hit[k] = coverage_distance(Vec2<T>{x[k], ys[r]}, local, blur_radius, h);
      dist[k] = h.dist;
      edge_t[k] = h.edge_t;
      edge[k] = h.edge;
      inside[k] = h.inside;
    }
  });
}

// The fused forward's whole work for a face that needs no depth at any pixel: each pixel of its
// box in these rows that it covers has its transmittance (rows of kTile) multiplied by 1 - D and
// its count of covering faces raised by one.
template <typename T>
__attribute__((always_inline)) inline void attenuate_rows(const FaceSetup<T>& face,
                                                          T blur_radius, T sigma, const T* xs,
                                                          const T* ys, TileSpan span,
                                                          T* transmittance, int* count) {
  const FaceSetup<T> local = face;  // a copy the outputs cannot alias
  for_each_row_chunk(span, [&](int r, int c) __attribute__((always_inline)) {
    const T* x = xs + c;
    T* chunk_transmittance = transmittance + kTile * r + c;
    int* chunk_count = count + kTile * r + c;
    const int first = span.j_begin - c, last = span.j_end - c;
    for (int k = 0; k < kChunk; ++k) {
      DistanceHit<T> h;
      const bool covered = coverage_distance(Vec2<T>{x[k], ys[r]}, local, blur_radius, h) &
                           (k >= first) & (k <= last);
      const T d = coverage_probability_vectorizable(h.dist, sigma);
      chunk_transmittance[k] *= covered ? T(1) - d : T(1);
      chunk_count[k] += covered;
    }
  });
}

// The fused backward's work for a face that needs no depth at any pixel, over the pixels of its
// box in these rows where it is surely nearer than the pixel's cut (its depth_range ends below
// cut_z, which is infinite where there is no cut): the gradient of sum_pixels grad_alpha * alpha
// with respect to the face's (x, y), into grad_xy (x0, y0, x1, y1, x2, y2), given weight =
// grad_alpha * transmittance. Per pixel it is the scalar path's silhouette_dist_grad and
// nearest_edge_backward (which has eval_dist_backward's routing); the sums are kept per lane, so
// that the loop vectorizes.
template <typename T>
__attribute__((always_inline)) inline void distance_gradient_rows(
    const FaceSetup<T>& face, T blur_radius, T sigma, const T* xs, const T* ys, TileSpan span,
    const T* weight, const T* cut_z, T grad_xy[6]) {
  const FaceSetup<T> local = face;
  const T kept_below = depth_range(local).hi;
  T sums[6][kChunk] = {};
  for_each_row_chunk(span, [&](int r, int c) __attribute__((always_inline)) {
    const T* x = xs + c;
    const T* chunk_weight = weight + kTile * r + c;
    const T* chunk_cut_z = cut_z + kTile * r + c;
    const int first = span.j_begin - c, last = span.j_end - c;
    for (int k = 0; k < kChunk; ++k) {
      const Vec2<T> pix = {x[k], ys[r]};
      DistanceHit<T> h;
      const bool covered = coverage_distance(pix, local, blur_radius, h) & (k >= first) &
                           (k <= last) & (kept_below < chunk_cut_z[k]);
      const T d = coverage_probability_vectorizable(h.dist, sigma);
      const T grad_dist = covered ? silhouette_dist_grad(chunk_weight[k], d, sigma) : T(0);
      Vec2<T> gv[3];
      nearest_edge_backward(pix, local.v, h, grad_dist, gv);
      for (int i = 0; i < 3; ++i) {
        sums[2 * i][k] += gv[i].x;
        sums[2 * i + 1][k] += gv[i].y;
      }
    }
  });
  for (int i = 0; i < 6; ++i) {
    T sum = T(0);
    for (int k = 0; k < kChunk; ++k) sum += sums[i][k];
    grad_xy[i] = sum;
  }
}

// Most of the kernels' time is in these loops. On x86-64 Linux they are compiled twice, for the
// baseline (SSE2) and for AVX2, and the loader picks what the CPU runs (an ifunc). AVX2 does not
// imply FMA, so both round alike and choose the same faces. LIB3DR_BASELINE_ONLY (setup.py's
// switch) keeps only the baseline copy, so that the tests run what machines without AVX2 run.
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(LIB3DR_BASELINE_ONLY)
#define LIB3DR_AVX2_CLONES __attribute__((target_clones("avx2", "default")))
#define LIB3DR_ROW_KERNEL_COPIES "avx2 and baseline, chosen at load time"
#else
#define LIB3DR_AVX2_CLONES
#define LIB3DR_ROW_KERNEL_COPIES "baseline only"
#endif

#define LIB3DR_ROW_KERNELS(T)                                                                     \
  LIB3DR_AVX2_CLONES void test_face_rows(const FaceSetup<T>& face, T blur_radius, const T* xs,   \
                                         const T* ys, TileSpan span, RowCoverage<T>* out) {      \
    test_rows(face, blur_radius, xs, ys, span, out);                                             \
  }                                                                                               \
  LIB3DR_AVX2_CLONES void attenuate_face_rows(const FaceSetup<T>& face, T blur_radius, T sigma,  \
                                              const T* xs, const T* ys, TileSpan span,           \
                                              T* transmittance, int* count) {                    \
    attenuate_rows(face, blur_radius, sigma, xs, ys, span, transmittance, count);                \
  }                                                                                               \
  LIB3DR_AVX2_CLONES void distance_gradient_face_rows(                                            \
      const FaceSetup<T>& face, T blur_radius, T sigma, const T* xs, const T* ys, TileSpan span,  \
      const T* weight, const T* cut_z, T grad_xy[6]) {                                            \
    distance_gradient_rows(face, blur_radius, sigma, xs, ys, span, weight, cut_z, grad_xy);       \
  }
LIB3DR_ROW_KERNELS(float)
LIB3DR_ROW_KERNELS(double)
#undef LIB3DR_ROW_KERNELS

// Calls covered(face, its FaceSetup, pixel centre, pixel index within the tile, DistanceHit) for
// every pixel of the span that the face covers in 2D (coverage_distance).
template <typename T, typename Covered>
void visit_face_coverage(const PixelCentres<T>& centres, const TileRect& tile, int64_t f,
                         const FaceSetup<T>& face, T blur_radius, TileSpan span,
                         const Covered& covered) {
  const T* xs = centres.x.data() + tile.x0;
  RowCoverage<T> rows[kTile];
  test_face_rows(face, blur_radius, xs, centres.y.data() + span.y_begin, span, rows);
  for (int y = span.y_begin; y <= span.y_end; ++y) {
    const RowCoverage<T>& row = rows[y - span.y_begin];
    for (int j = span.j_begin; j <= span.j_end; ++j)
      if (row.hit[j])
        covered(f, face, Vec2<T>{xs[j], centres.y[y]}, (y - tile.y0) * kTile + j, row.at(j));
  }
}

// visit_face_coverage for every face listed in tile `item`, in ascending face order.
template <typename T, typename Covered>
void visit_tile_coverage(const RasterizeParams& p, const T* face_verts,
                         const PixelCentres<T>& centres, const std::vector<PixelBox>& boxes,
                         const TileBins& bins, int64_t item, const Covered& covered) {
  const TileRect tile = tile_rect(p, bins, item);
  const T blur_radius = T(p.blur_radius);
  for_each_tile_face(p, face_verts, boxes, bins, item,
                     [&](int64_t f, const FaceSetup<T>& face, TileSpan span) {
                       visit_face_coverage(centres, tile, f, face, blur_radius, span, covered);
                     });
}

// The pixels of a tile to visit again, as a bit mask per row of the tile (bit j: column j).
using TileRowMasks = uint32_t[kTile];
static_assert(kTile <= 32, "a tile row's pixels are the bits of a uint32_t");

// visit_tile_coverage for the pixels of tile `item` set in `masks`, and only for the pairs that
// wanted(FaceSetup, pixel index within the tile) accepts. Each face's test runs vectorized over
// the rows and columns that hold such pixels (they come in clusters).
template <typename T, typename Wanted, typename Covered>
void visit_masked_coverage(const RasterizeParams& p, const T* face_verts,
                           const PixelCentres<T>& centres, const std::vector<PixelBox>& boxes,
                           const TileBins& bins, int64_t item, const TileRowMasks& masks,
                           const Wanted& wanted, const Covered& covered) {
  uint32_t any = 0;
  for (uint32_t mask : masks) any |= mask;
  if (!any) return;
  const TileRect tile = tile_rect(p, bins, item);
  const T blur_radius = T(p.blur_radius);
  const T* xs = centres.x.data() + tile.x0;
  RowCoverage<T> rows[kTile];
  for_each_tile_face(p, face_verts, boxes, bins, item, [&](int64_t f, const FaceSetup<T>& face,
                                                          TileSpan span) {
    // The wanted pixels in the face's box, and the smallest span that holds them.
    const uint32_t columns =
        ((uint32_t(2) << span.j_end) - 1) & ~((uint32_t(1) << span.j_begin) - 1);
    uint32_t face_masks[kTile], all = 0;
    TileSpan tested = {kTile, -1, span.y_end + 1, span.y_begin - 1};
    for (int y = span.y_begin; y <= span.y_end; ++y) {
      uint32_t mask = masks[y - tile.y0] & columns;
      for (uint32_t bits = mask; bits; bits &= bits - 1) {
        const int j = __builtin_ctz(bits);
        if (!wanted(face, (y - tile.y0) * kTile + j)) mask &= ~(uint32_t(1) << j);
      }
      face_masks[y - span.y_begin] = mask;
      all |= mask;
      if (mask) tested.y_begin = std::min(tested.y_begin, y), tested.y_end = y;
    }
    if (!all) return;
    tested.j_begin = __builtin_ctz(all);
    tested.j_end = 31 - __builtin_clz(all);
    test_face_rows(face, blur_radius, xs, centres.y.data() + tested.y_begin, tested, rows);
    for (int y = tested.y_begin; y <= tested.y_end; ++y) {
      const RowCoverage<T>& row = rows[y - tested.y_begin];
      for (uint32_t bits = face_masks[y - span.y_begin]; bits; bits &= bits - 1) {
        const int j = __builtin_ctz(bits);
        if (row.hit[j])
          covered(f, face, Vec2<T>{xs[j], centres.y[y]}, (y - tile.y0) * kTile + j, row.at(j));
      }
    }
  });
}

// One covering face at a pixel, as the fragments report it.
template <typename T>
struct FragmentHit {
  T z, dist, bary[3];
};

// Every face covering each pixel of one tile, grouped by pixel: pixel `local` has count[local]
// hits at grouped[start[local]...], in the order the faces were visited.
template <typename T>
struct TileHits {
  std::vector<int> pixel, start, count;
  std::vector<int64_t> face, grouped_face;
  std::vector<FragmentHit<T>> record, grouped;
};

template <typename T>
void collect_hits(const RasterizeParams& p, const T* face_verts, const PixelCentres<T>& centres,
                  const std::vector<PixelBox>& boxes, const TileBins& bins, int64_t item,
                  TileHits<T>& hits) {
  const int pixels = kTile * kTile;
  const PixelFaceSettings<T> s = pixel_face_settings<T>(p);
  hits.pixel.clear();
  hits.face.clear();
  hits.record.clear();
  PixelFace<T> pf;
  visit_tile_coverage(p, face_verts, centres, boxes, bins, item,
                      [&](int64_t f, const FaceSetup<T>& face, Vec2<T> pix, int local,
                          const DistanceHit<T>& hit) {
                        if (!eval_depth_at(pix, face, s, pf)) return;
                        hits.pixel.push_back(local);
                        hits.face.push_back(f);
                        hits.record.push_back({pf.z, hit.dist, {pf.bary[0], pf.bary[1], pf.bary[2]}});
                      });
  // Group by pixel (a counting sort, keeping the visit order within a pixel).
  hits.start.assign(pixels + 1, 0);
  for (int local : hits.pixel) ++hits.start[local + 1];
  for (int i = 0; i < pixels; ++i) hits.start[i + 1] += hits.start[i];
  hits.grouped_face.resize(hits.face.size());
  hits.grouped.resize(hits.record.size());
  hits.count.assign(pixels, 0);
  for (size_t i = 0; i < hits.pixel.size(); ++i) {
    const int local = hits.pixel[i], at = hits.start[local] + hits.count[local]++;
    hits.grouped_face[at] = hits.face[i];
    hits.grouped[at] = hits.record[i];
  }
}

// Whether a face that covers a pixel in 2D counts towards the soft silhouette there: where it may
// be behind the camera, only if its depth at the pixel is not (the rasterizer's rule). The depth
// is computed into `pf` in that case or when `need_depth`; the silhouette needs it nowhere else.
template <typename T>
bool silhouette_depth_ok(Vec2<T> pix, const FaceSetup<T>& face, const PixelFaceSettings<T>& s,
                         const DistanceHit<T>& hit, bool need_depth, PixelFace<T>& pf) {
  if (!need_depth && depth_surely_visible(face, s, hit.inside)) return true;
  return eval_depth_at(pix, face, s, pf);
}

// A face covering a pixel, for choosing the K nearest: its depth is known to lie in [lo, hi]
// (depth_range; lo == hi once it is exact).
template <typename T>
struct DepthHit {
  T lo, hi, dist;
  int64_t face;
};

// Moves the K nearest of a pixel's covering faces (more than K) to the front of `hits` and
// returns the K-th nearest. Exact depths, from exact_depth(hit), are computed only where the
// depth ranges do not decide: with B and A the K-th smallest lower and upper bounds, the K-th
// depth lies in [B, A], so a face whose range ends below B is kept and one whose range starts
// above A is not.
template <typename T, typename ExactDepth>
DepthHit<T> keep_nearest(std::vector<DepthHit<T>>& hits, int K, std::vector<T>& bounds,
                         const ExactDepth& exact_depth) {
  auto kth_smallest = [&](T DepthHit<T>::*bound) {
    bounds.resize(hits.size());
    for (size_t i = 0; i < hits.size(); ++i) bounds[i] = hits[i].*bound;
    std::nth_element(bounds.begin(), bounds.begin() + (K - 1), bounds.end());
    return bounds[K - 1];
  };
  const T below = kth_smallest(&DepthHit<T>::lo), above = kth_smallest(&DepthHit<T>::hi);
  const auto kept = std::partition(hits.begin(), hits.end(),
                                   [&](const DepthHit<T>& h) { return h.hi < below; });
  const auto undecided = std::partition(kept, hits.end(),
                                        [&](const DepthHit<T>& h) { return !(h.lo > above); });
  for (auto h = kept; h != undecided; ++h)
    if (h->lo != h->hi) h->lo = h->hi = exact_depth(*h);
  const auto kth = hits.begin() + (K - 1);
  std::nth_element(kept, kth, undecided, [](const DepthHit<T>& a, const DepthHit<T>& b) {
    return nearer(a.lo, a.face, b.lo, b.face);
  });
  return *kth;
}

// The same tiling for every kernel of one call.
template <typename T>
struct TiledFaces {
  std::vector<PixelBox> boxes;
  TileBins bins;
  int64_t items() const { return int64_t(bins.start.size()) - 1; }
};

template <typename T>
TiledFaces<T> tile_faces(const RasterizeParams& p, const T* face_verts,
                         const int64_t* mesh_first_face, const int64_t* mesh_num_faces) {
  TiledFaces<T> tiled;
  tiled.boxes = face_pixel_boxes(p, face_verts);
  tiled.bins = bin_faces(p, tiled.boxes, mesh_first_face, mesh_num_faces);
  return tiled;
}

}  // namespace

const char* row_kernel_copies() { return LIB3DR_ROW_KERNEL_COPIES; }

template <typename T>
void rasterize_forward_cpu(const RasterizeParams& p, const T* face_verts,
                           const int64_t* mesh_first_face, const int64_t* mesh_num_faces,
                           int64_t* pix_to_face, T* zbuf, T* bary, T* dists) {
  const TiledFaces<T> tiled = tile_faces(p, face_verts, mesh_first_face, mesh_num_faces);
  const PixelCentres<T> centres(p);
  const int K = p.faces_per_pixel;
  const int64_t slots = thread_slots();  // one count for the scratch and the loop
  std::vector<TileHits<T>> scratch(slots);
  std::vector<std::vector<int>> orders(slots);
  parallel_round_robin(tiled.items(), [&](int64_t thread, int64_t item) {
    TileHits<T>& hits = scratch[thread];
    collect_hits(p, face_verts, centres, tiled.boxes, tiled.bins, item, hits);
    std::vector<int>& order = orders[thread];
    for_each_tile_pixel(p, tile_rect(p, tiled.bins, item), [&](int local, int64_t pixel) {
      const int first = hits.start[local], count = hits.count[local];
      // The K nearest, by depth and then face index.
      order.resize(count);
      for (int i = 0; i < count; ++i) order[i] = first + i;
      const int kept = std::min(count, K);
      auto nearer_hit = [&](int a, int b) {
        return nearer(hits.grouped[a].z, hits.grouped_face[a], hits.grouped[b].z,
                      hits.grouped_face[b]);
      };
      if (kept == count)  // all of them: a plain sort beats partial_sort's heap
        std::sort(order.begin(), order.end(), nearer_hit);
      else
        std::partial_sort(order.begin(), order.begin() + kept, order.end(), nearer_hit);
      const int64_t out = pixel * K;
      for (int k = 0; k < kept; ++k) {
        const int64_t o = out + k;
        const FragmentHit<T>& hit = hits.grouped[order[k]];
        pix_to_face[o] = hits.grouped_face[order[k]];
        zbuf[o] = hit.z;
        dists[o] = hit.dist;
        for (int i = 0; i < 3; ++i) bary[3 * o + i] = hit.bary[i];
      }
      // The padding, in runs that compile to wide stores: most of the output is padding.
      std::fill_n(pix_to_face + out + kept, K - kept, int64_t(-1));
      std::fill_n(zbuf + out + kept, K - kept, T(-1));
      std::fill_n(dists + out + kept, K - kept, T(-1));
      std::fill_n(bary + 3 * (out + kept), 3 * (K - kept), T(-1));
    });
  }, slots);
}

template <typename T>
void rasterize_backward_cpu(const RasterizeParams& p, const T* face_verts,
                            const int64_t* pix_to_face, const T* grad_zbuf, const T* grad_bary,
                            const T* grad_dists, T* grad_face_verts) {
  const int K = p.faces_per_pixel;
  const PixelFaceSettings<T> s = pixel_face_settings<T>(p);
  const double rx = ndc_range_x(p), ry = ndc_range_y(p);
  const T no_grad_bary[3] = {T(0), T(0), T(0)};
  std::vector<FaceSetup<T>> setups;  // for the distances alone, each face prepared once
  if (!grad_zbuf && !grad_bary) {
    setups.resize(p.num_faces);
    for (int64_t f = 0; f < p.num_faces; ++f) setups[f] = prepare_face(face_verts + 9 * f, s);
  }
  ThreadSums grads(int64_t(p.num_faces) * 9);
  parallel_round_robin(int64_t(p.num_meshes) * p.height, [&](int64_t thread, int64_t row) {
    double* g = grads.of(thread);
    const int y = int(row % p.height);
    const T py = T(pixel_center_ndc(y, p.height, ry));
    PixelFace<T> pf;
    for (int x = 0; x < p.width; ++x) {
      const Vec2<T> pix = {T(pixel_center_ndc(x, p.width, rx)), py};
      const int64_t base = (row * p.width + x) * K;
      for (int k = 0; k < K; ++k) {
        const int64_t o = base + k;
        const int64_t f = pix_to_face[o];
        if (f < 0) break;
        const T grad_z = grad_zbuf ? grad_zbuf[o] : T(0);
        const T grad_dist = grad_dists ? grad_dists[o] : T(0);
        const T* gb = grad_bary ? grad_bary + 3 * o : no_grad_bary;
        if (grad_z == T(0) && grad_dist == T(0) && gb[0] == T(0) && gb[1] == T(0) && gb[2] == T(0))
          continue;
        // Recomputing is cheaper than storing the intermediates for every fragment.
        if (grad_zbuf || grad_bary) {
          if (!eval_pixel_face(pix, face_verts + 9 * f, s, pf)) continue;
          eval_pixel_face_backward(pix, face_verts + 9 * f, s, pf, grad_z, gb, grad_dist,
                                   g + 9 * f);
        } else {  // a silhouette: only the distances have gradients, and need no depth
          DistanceHit<T> hit;
          coverage_distance(pix, setups[f], s.blur_radius, hit);
          eval_dist_backward(pix, face_verts + 9 * f, hit, grad_dist, g + 9 * f);
        }
      }
    }
  }, grads.slots());
  grads.reduce(grad_face_verts);
}

// ---- The fused soft silhouette ----------------------------------------------------------------
//
// The forward visits every (face, pixel) pair of a tile once and multiplies the pixel's
// transmittance by 1 - D in place: no list of hits, and the product's order (ascending face
// index) does not depend on the threads. Pixels covered by more than K faces are visited again
// to keep the K nearest. The backward needs, of the other faces at a pixel, only the forward's
// transmittance (silhouette_dist_grad), and visits the pairs in any order.

namespace {

// What every tile of one fused call reads: the faces and their tiling, the pixel centres and the
// settings.
template <typename T>
struct SilhouetteScene {
  const RasterizeParams& p;
  const T* face_verts;
  TiledFaces<T> tiled;
  PixelCentres<T> centres;
  PixelFaceSettings<T> s;
  T sigma;

  SilhouetteScene(const RasterizeParams& params, const T* verts, const int64_t* mesh_first_face,
                  const int64_t* mesh_num_faces)
      : p(params),
        face_verts(verts),
        tiled(tile_faces(params, verts, mesh_first_face, mesh_num_faces)),
        centres(params),
        s(pixel_face_settings<T>(params)),
        sigma(T(params.sigma)) {}
};

// The forward's first visit of a tile: per pixel, the product of 1 - D over the faces that cover
// it (in ascending face order) and their number.
template <typename T>
struct TileTransmittance {
  T transmittance[kTile * kTile];
  int count[kTile * kTile];
};

// Fills `out` for tile `item`, visiting its faces in ascending order.
template <typename T>
void attenuate_tile(const SilhouetteScene<T>& scene, int64_t item, const TileRect& tile,
                    TileTransmittance<T>& out) {
  std::fill_n(out.transmittance, kTile * kTile, T(1));
  std::fill_n(out.count, kTile * kTile, 0);
  const PixelFaceSettings<T>& s = scene.s;
  const T* xs = scene.centres.x.data() + tile.x0;
  PixelFace<T> pf;
  for_each_tile_face(scene.p, scene.face_verts, scene.tiled.boxes, scene.tiled.bins, item,
                     [&](int64_t f, const FaceSetup<T>& face, TileSpan span) {
    // Most faces need no depth anywhere: one vectorized loop does it all.
    if (depth_surely_visible(face, s, false)) {
      const int first = (span.y_begin - tile.y0) * kTile;
      attenuate_face_rows(face, s.blur_radius, scene.sigma, xs,
                          scene.centres.y.data() + span.y_begin, span,
                          out.transmittance + first, out.count + first);
      return;
    }
    visit_face_coverage(scene.centres, tile, f, face, s.blur_radius, span,
                        [&](int64_t, const FaceSetup<T>&, Vec2<T> pix, int local,
                            const DistanceHit<T>& hit) {
      if (!silhouette_depth_ok(pix, face, s, hit, false, pf)) return;
      out.transmittance[local] *= T(1) - coverage_probability(hit.dist, scene.sigma);
      ++out.count[local];
    });
  });
}

// The pixels of a tile covered by more than K faces.
template <typename T>
void over_full_pixels(const TileTransmittance<T>& t, int K, TileRowMasks& masks) {
  std::fill_n(masks, kTile, uint32_t(0));
  for (int local = 0; local < kTile * kTile; ++local)
    if (t.count[local] > K) masks[local / kTile] |= uint32_t(1) << (local % kTile);
}

// The forward's second visit, of the pixels in `masks`: into covering[local], every face that
// covers pixel `local`, with the bounds of its depth there (exact where it may be behind the
// camera).
template <typename T>
void collect_depth_hits(const SilhouetteScene<T>& scene, int64_t item, const TileRowMasks& masks,
                        std::vector<DepthHit<T>>* covering) {
  for (int row = 0; row < kTile; ++row)
    for (uint32_t bits = masks[row]; bits; bits &= bits - 1)
      covering[row * kTile + __builtin_ctz(bits)].clear();
  const PixelFaceSettings<T>& s = scene.s;
  PixelFace<T> pf;
  visit_masked_coverage(scene.p, scene.face_verts, scene.centres, scene.tiled.boxes,
                        scene.tiled.bins, item, masks,
                        [](const FaceSetup<T>&, int) { return true; },
                        [&](int64_t f, const FaceSetup<T>& face, Vec2<T> pix, int local,
                            const DistanceHit<T>& hit) {
    if (depth_surely_visible(face, s, false)) {
      const DepthRange<T> depth = depth_range(face);
      covering[local].push_back({depth.lo, depth.hi, hit.dist, f});
    } else if (eval_depth_at(pix, face, s, pf)) {
      covering[local].push_back({pf.z, pf.z, hit.dist, f});
    }
  });
}

// The transmittance at pixel `pix` over the K nearest of the faces that cover it (`hits`, which
// the first visit counted more than K of), and the depth cut there: the K-th nearest face's
// depth and index, or no cut (0, -1) where fewer than K + 1 faces are found again (only a depth
// that overflows to NaN can do that).
template <typename T>
T nearest_transmittance(const SilhouetteScene<T>& scene, Vec2<T> pix,
                        std::vector<DepthHit<T>>& hits, std::vector<T>& scratch_bounds, T& cut_z,
                        int64_t& cut_face) {
  const int K = scene.p.faces_per_pixel;
  const size_t kept = std::min(hits.size(), size_t(K));
  cut_z = T(0);
  cut_face = -1;
  if (hits.size() > kept) {
    PixelFace<T> pf;
    const DepthHit<T> kth = keep_nearest(hits, K, scratch_bounds, [&](const DepthHit<T>& hit) {
      eval_depth_at(pix, prepare_face(scene.face_verts + 9 * hit.face, scene.s), scene.s, pf);
      return pf.z;
    });
    cut_z = kth.lo;
    cut_face = kth.face;
  }
  T transmittance = T(1);
  for (size_t k = 0; k < kept; ++k)
    transmittance *= T(1) - coverage_probability(hits[k].dist, scene.sigma);
  return transmittance;
}

// The backward's view of a tile's pixels: weight = grad_alpha * transmittance (zero beyond the
// image), the depth cut (cut_z infinite where there is none, and beyond the image), and the
// pixels with both a cut and a gradient.
template <typename T>
struct TileGradient {
  T weight[kTile * kTile];
  T cut_z[kTile * kTile];
  int64_t cut_face[kTile * kTile];
  TileRowMasks cut;
};

// Fills `t` from the forward's state; false where no pixel of the tile has a gradient (the
// background of a masked loss), which the backward skips.
template <typename T>
bool load_tile_gradient(const RasterizeParams& p, const TileRect& tile, const T* grad_alpha,
                        SilhouetteState<const T, const int64_t> state, TileGradient<T>& t) {
  std::fill_n(t.weight, kTile * kTile, T(0));
  std::fill_n(t.cut_z, kTile * kTile, std::numeric_limits<T>::infinity());
  std::fill_n(t.cut_face, kTile * kTile, int64_t(-1));
  std::fill_n(t.cut, kTile, uint32_t(0));
  bool any = false;
  for_each_tile_pixel(p, tile, [&](int local, int64_t o) {
    t.weight[local] = grad_alpha[o] * state.transmittance[o];
    t.cut_face[local] = state.cut_face[o];
    if (t.cut_face[local] >= 0) t.cut_z[local] = state.cut_z[o];
    if (t.cut_face[local] >= 0 && t.weight[local] != T(0))
      t.cut[local / kTile] |= uint32_t(1) << (local % kTile);
    any = any || t.weight[local] != T(0);
  });
  return any;
}

// The gradient of one (face, pixel) pair where the face covers the pixel in 2D, added to g (the
// face's 9 values): none where the face is behind the camera or beyond the pixel's cut.
template <typename T>
void add_pixel_gradient(const SilhouetteScene<T>& scene, const TileGradient<T>& t, int64_t f,
                        const FaceSetup<T>& face, Vec2<T> pix, int local,
                        const DistanceHit<T>& hit, PixelFace<T>& pf, double* g) {
  if (t.weight[local] == T(0)) return;
  const bool cut = t.cut_face[local] >= 0;
  if (!silhouette_depth_ok(pix, face, scene.s, hit, cut, pf)) return;
  if (cut && nearer(t.cut_z[local], t.cut_face[local], pf.z, f)) return;
  const T d = coverage_probability(hit.dist, scene.sigma);
  eval_dist_backward(pix, scene.face_verts + 9 * f, hit,
                     silhouette_dist_grad(t.weight[local], d, scene.sigma), g);
}

// The backward of every face listed in the tile, into g (9 values a face), over the pixels
// where it is surely kept; pixel_gradient(f, face, pix, local, hit) is add_pixel_gradient. Most
// faces need no depth: one vectorized loop does those, and the cut pixels are left for
// cut_pixel_gradients. The others are done pixel by pixel.
template <typename T, typename PixelGradient>
void tile_face_gradients(const SilhouetteScene<T>& scene, int64_t item, const TileRect& tile,
                         const TileGradient<T>& t, const PixelGradient& pixel_gradient,
                         double* g) {
  const PixelFaceSettings<T>& s = scene.s;
  const T* xs = scene.centres.x.data() + tile.x0;
  for_each_tile_face(scene.p, scene.face_verts, scene.tiled.boxes, scene.tiled.bins, item,
                     [&](int64_t f, const FaceSetup<T>& face, TileSpan span) {
    if (!depth_surely_visible(face, s, false)) {
      visit_face_coverage(scene.centres, tile, f, face, s.blur_radius, span, pixel_gradient);
      return;
    }
    const int first = (span.y_begin - tile.y0) * kTile;
    T grad_xy[6];
    distance_gradient_face_rows(face, s.blur_radius, scene.sigma, xs,
                                scene.centres.y.data() + span.y_begin, span, t.weight + first,
                                t.cut_z + first, grad_xy);
    for (int i = 0; i < 3; ++i) {
      g[9 * f + 3 * i] += grad_xy[2 * i];
      g[9 * f + 3 * i + 1] += grad_xy[2 * i + 1];
    }
  });
}

// What the vectorized loop left: at the cut pixels, the faces whose depth range holds the cut.
template <typename T, typename PixelGradient>
void cut_pixel_gradients(const SilhouetteScene<T>& scene, int64_t item, const TileGradient<T>& t,
                         const PixelGradient& pixel_gradient) {
  visit_masked_coverage(scene.p, scene.face_verts, scene.centres, scene.tiled.boxes,
                        scene.tiled.bins, item, t.cut,
                        [&](const FaceSetup<T>& face, int local) {
                          const DepthRange<T> depth = depth_range(face);
                          return depth_surely_visible(face, scene.s, false) &&
                                 !(depth.hi < t.cut_z[local]) && !(depth.lo > t.cut_z[local]);
                        },
                        pixel_gradient);
}

}  // namespace

template <typename T>
void soft_silhouette_forward_cpu(const RasterizeParams& p, const T* face_verts,
                                 const int64_t* mesh_first_face, const int64_t* mesh_num_faces,
                                 T* alpha, SilhouetteState<T> state) {
  const SilhouetteScene<T> scene(p, face_verts, mesh_first_face, mesh_num_faces);
  const int64_t slots = thread_slots();  // one count for the scratch and the loop
  std::vector<std::vector<std::vector<DepthHit<T>>>> covering(
      slots, std::vector<std::vector<DepthHit<T>>>(kTile * kTile));
  std::vector<std::vector<T>> scratch_bounds(slots);
  parallel_round_robin(scene.tiled.items(), [&](int64_t thread, int64_t item) {
    const TileRect tile = tile_rect(p, scene.tiled.bins, item);
    TileTransmittance<T> t;
    attenuate_tile(scene, item, tile, t);
    // Pixels covered by more than K faces keep their K nearest (the rasterizer's rule): their
    // faces are found again, with depth ranges, and the transmittance is taken over the K
    // nearest. Few pixels need it (468 of the cow's 9,908 at K = 100).
    TileRowMasks cut;
    over_full_pixels(t, p.faces_per_pixel, cut);
    collect_depth_hits(scene, item, cut, covering[thread].data());
    for_each_tile_pixel(p, tile, [&](int local, int64_t o) {
      state.cut_z[o] = T(0);
      state.cut_face[o] = -1;
      if (t.count[local] > p.faces_per_pixel)
        t.transmittance[local] =
            nearest_transmittance(scene, scene.centres.at(tile, local), covering[thread][local],
                                  scratch_bounds[thread], state.cut_z[o], state.cut_face[o]);
      state.transmittance[o] = t.transmittance[local];
      alpha[o] = T(1) - t.transmittance[local];
    });
  }, slots);
}

template <typename T>
void soft_silhouette_backward_cpu(const RasterizeParams& p, const T* face_verts,
                                  const int64_t* mesh_first_face, const int64_t* mesh_num_faces,
                                  const T* grad_alpha,
                                  SilhouetteState<const T, const int64_t> state,
                                  T* grad_face_verts) {
  const SilhouetteScene<T> scene(p, face_verts, mesh_first_face, mesh_num_faces);
  ThreadSums grads(int64_t(p.num_faces) * 9);
  parallel_round_robin(scene.tiled.items(), [&](int64_t thread, int64_t item) {
    const TileRect tile = tile_rect(p, scene.tiled.bins, item);
    TileGradient<T> t;
    if (!load_tile_gradient(p, tile, grad_alpha, state, t)) return;
    double* g = grads.of(thread);
    PixelFace<T> pf;
    auto pixel_gradient = [&](int64_t f, const FaceSetup<T>& face, Vec2<T> pix, int local,
                              const DistanceHit<T>& hit) {
      add_pixel_gradient(scene, t, f, face, pix, local, hit, pf, g + 9 * f);
    };
    tile_face_gradients(scene, item, tile, t, pixel_gradient, g);
    cut_pixel_gradients(scene, item, t, pixel_gradient);
  }, grads.slots());
  grads.reduce(grad_face_verts);
}

// Runs body(pixel) for every pixel in [0, pixels), in chunks spread over the threads.
template <typename Body>
void parallel_pixels(int64_t pixels, const Body& body) {
  constexpr int64_t kChunk = 1024;
  parallel_round_robin((pixels + kChunk - 1) / kChunk, [&](int64_t, int64_t chunk) {
    for (int64_t i = chunk * kChunk; i < std::min(pixels, (chunk + 1) * kChunk); ++i) body(i);
  });
}

template <typename T>
void silhouette_blend_forward_cpu(int64_t pixels, int K, double sigma, const int64_t* pix_to_face,
                                  const T* dists, T* alpha, T* log_transmittance) {
  parallel_pixels(pixels, [&](int64_t i) {
    T sum = T(0);
    for (int64_t o = i * K; o < (i + 1) * K; ++o)
      if (pix_to_face[o] >= 0) sum += log_one_minus_coverage(dists[o], T(sigma));
    log_transmittance[i] = sum;
    alpha[i] = T(1) - std::exp(sum);
  });
}

// The fused kernels' gradient, silhouette_dist_grad, with the transmittance from the forward.
template <typename T>
void silhouette_blend_backward_cpu(int64_t pixels, int K, double sigma, const int64_t* pix_to_face,
                                   const T* dists, const T* log_transmittance, const T* grad_alpha,
                                   T* grad_dists) {
  parallel_pixels(pixels, [&](int64_t i) {
    const T weight = grad_alpha[i] * std::exp(log_transmittance[i]), s = T(sigma);
    for (int64_t o = i * K; o < (i + 1) * K; ++o)
      grad_dists[o] = pix_to_face[o] < 0
                          ? T(0)
                          : silhouette_dist_grad(weight, coverage_probability(dists[o], s), s);
  });
}

#define LIB3DR_INSTANTIATE(T)                                                                      \
  template void rasterize_forward_cpu<T>(const RasterizeParams&, const T*, const int64_t*,        \
                                         const int64_t*, int64_t*, T*, T*, T*);                   \
  template void rasterize_backward_cpu<T>(const RasterizeParams&, const T*, const int64_t*,       \
                                          const T*, const T*, const T*, T*);                      \
  template void soft_silhouette_forward_cpu<T>(const RasterizeParams&, const T*, const int64_t*,  \
                                               const int64_t*, T*, SilhouetteState<T>);           \
  template void soft_silhouette_backward_cpu<T>(const RasterizeParams&, const T*, const int64_t*, \
                                                const int64_t*, const T*,                         \
                                                SilhouetteState<const T, const int64_t>, T*);     \
  template void silhouette_blend_forward_cpu<T>(int64_t, int, double, const int64_t*, const T*,   \
                                                T*, T*);                                          \
  template void silhouette_blend_backward_cpu<T>(int64_t, int, double, const int64_t*, const T*,  \
                                                 const T*, const T*, T*);
LIB3DR_INSTANTIATE(float)
LIB3DR_INSTANTIATE(double)

}  // namespace lib3dr
