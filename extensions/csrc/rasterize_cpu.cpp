// Multi-threaded CPU rasterization.
//
// The image is cut into square tiles; each face is listed in the tiles its blur-expanded bounding
// box touches, and a tile tests only the pixels of each listed face's box. Work is split by tile
// (forward) or by image row (backward) in a fixed round-robin, so the forward output does not
// depend on the number of threads; backward gradients go to one buffer per thread, summed in a
// fixed order at the end.
#include <ATen/Parallel.h>  // at::get_num_threads

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <thread>
#include <utility>
#include <vector>

#include "rasterize.h"

namespace lib3dr {
namespace {

constexpr int kTile = 16;  // tile side in pixels

// Runs body(thread, item) for every item in [0, count), spread round-robin over up to
// at::get_num_threads() threads. std::thread rather than at::parallel_for: ATen's OpenMP backend
// is header code that runs serially unless the extension itself is compiled with OpenMP.
template <typename Body>
void parallel_round_robin(int64_t count, const Body& body) {
  const int64_t threads = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), count));
  auto work = [&](int64_t t) {
    for (int64_t item = t; item < count; item += threads) body(t, item);
  };
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (std::thread& thread : pool) thread.join();
}

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
};

inline TileBins bin_faces(const RasterizeParams& p, const std::vector<PixelBox>& boxes,
                          const int64_t* mesh_first_face, const int64_t* mesh_num_faces) {
  TileBins bins;
  bins.tiles_x = (p.width + kTile - 1) / kTile;
  bins.tiles_y = (p.height + kTile - 1) / kTile;
  const int64_t tiles = int64_t(bins.tiles_x) * bins.tiles_y;
  bins.start.assign(p.num_meshes * tiles + 1, 0);
  auto for_each_entry = [&](auto&& visit) {
    for (int n = 0; n < p.num_meshes; ++n)
      for (int64_t f = mesh_first_face[n]; f < mesh_first_face[n] + mesh_num_faces[n]; ++f) {
        const PixelBox& b = boxes[f];
        if (b.x0 > b.x1 || b.y0 > b.y1) continue;
        for (int ty = b.y0 / kTile; ty <= b.y1 / kTile; ++ty)
          for (int tx = b.x0 / kTile; tx <= b.x1 / kTile; ++tx)
            visit(n * tiles + int64_t(ty) * bins.tiles_x + tx, f);
      }
  };
  for_each_entry([&](int64_t tile, int64_t) { ++bins.start[tile + 1]; });
  for (size_t i = 1; i < bins.start.size(); ++i) bins.start[i] += bins.start[i - 1];
  bins.faces.resize(bins.start.back());
  std::vector<int64_t> fill(bins.start.begin(), bins.start.end() - 1);
  for_each_entry([&](int64_t tile, int64_t f) { bins.faces[fill[tile]++] = f; });
  return bins;
}

// The pixel rectangle of tile `item` (an index over meshes x tiles).
struct TileRect {
  int x0, y0, w, h;
};

inline TileRect tile_rect(const RasterizeParams& p, const TileBins& bins, int64_t item) {
  const int64_t tile = item % (int64_t(bins.tiles_x) * bins.tiles_y);
  const int x0 = int(tile % bins.tiles_x) * kTile, y0 = int(tile / bins.tiles_x) * kTile;
  return {x0, y0, std::min(kTile, p.width - x0), std::min(kTile, p.height - y0)};
}

// NDC centres of every pixel column and row, computed once per call.
template <typename T>
struct PixelCentres {
  std::vector<T> x, y;
  explicit PixelCentres(const RasterizeParams& p) : x(p.width), y(p.height) {
    for (int i = 0; i < p.width; ++i) x[i] = T(pixel_center_ndc(i, p.width, ndc_range_x(p)));
    for (int i = 0; i < p.height; ++i) y[i] = T(pixel_center_ndc(i, p.height, ndc_range_y(p)));
  }
  Vec2<T> operator()(int col, int row) const { return {x[col], y[row]}; }
};

// Calls visit(face, its FaceSetup, pixel centre, pixel index within the tile) for every
// drawable face listed in tile `item` and every pixel of `rect` inside that face's pixel box,
// faces in ascending order.
template <typename T, typename Visit>
void visit_tile(const RasterizeParams& p, const T* face_verts, const PixelCentres<T>& centres,
                const std::vector<PixelBox>& boxes, const TileBins& bins, int64_t item,
                const TileRect& rect, const Visit& visit) {
  const PixelFaceSettings<T> s = pixel_face_settings<T>(p);
  const TileRect tile = tile_rect(p, bins, item);
  for (int64_t i = bins.start[item]; i < bins.start[item + 1]; ++i) {
    const int64_t f = bins.faces[i];
    const PixelBox& b = boxes[f];
    const int x_begin = std::max(b.x0, rect.x0), x_end = std::min(b.x1, rect.x0 + rect.w - 1);
    const int y_begin = std::max(b.y0, rect.y0), y_end = std::min(b.y1, rect.y0 + rect.h - 1);
    if (x_begin > x_end || y_begin > y_end) continue;
    const FaceSetup<T> face = prepare_face(face_verts + 9 * f, s);
    if (!face.drawable) continue;
    for (int y = y_begin; y <= y_end; ++y)
      for (int x = x_begin; x <= x_end; ++x)
        visit(f, face, centres(x, y), (y - tile.y0) * kTile + (x - tile.x0));
  }
}

// One covering face at a pixel, as the fragments report it.
template <typename T>
struct FragmentHit {
  T z, dist, bary[3];
  static FragmentHit of(const PixelFace<T>& f) {
    return {f.z, f.dist, {f.bary[0], f.bary[1], f.bary[2]}};
  }
};

// Every face covering each pixel of one tile, grouped by pixel: pixel `local` has count[local]
// records at grouped[start[local]...], in the order the faces were visited. Record is
// FragmentHit (with depth) or DistanceHit (all the soft silhouette needs; its depth is computed
// only where the face might be behind the camera).
template <typename T, typename Record>
struct TileHits {
  std::vector<int> pixel, start, count;
  std::vector<int64_t> face, grouped_face;
  std::vector<Record> record, grouped;
};

template <typename T, typename Record>
void collect_hits(const RasterizeParams& p, const T* face_verts, const PixelCentres<T>& centres,
                  const std::vector<PixelBox>& boxes, const TileBins& bins, int64_t item,
                  TileHits<T, Record>& hits) {
  constexpr bool kDepth = std::is_same<Record, FragmentHit<T>>::value;
  const int pixels = kTile * kTile;
  const PixelFaceSettings<T> s = pixel_face_settings<T>(p);
  hits.pixel.clear();
  hits.face.clear();
  hits.record.clear();
  PixelFace<T> pf;
  visit_tile(p, face_verts, centres, boxes, bins, item, tile_rect(p, bins, item),
             [&](int64_t f, const FaceSetup<T>& face, Vec2<T> pix, int local) {
               if (!eval_coverage(pix, face, s, pf)) return;
               if (!(!kDepth && depth_surely_visible(face, s, pf)) && !eval_depth(face, s, pf)) return;
               hits.pixel.push_back(local);
               hits.face.push_back(f);
               hits.record.push_back(Record::of(pf));
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

// For the soft silhouette: pixels covered by more than K faces keep only their K nearest (the
// rasterizer's rule); their depths are computed here, the only place they matter.
template <typename T>
void keep_nearest_hits(const RasterizeParams& p, const T* face_verts, const PixelCentres<T>& centres,
                       const TileRect& tile, TileHits<T, DistanceHit<T>>& hits) {
  const int K = p.faces_per_pixel;
  const PixelFaceSettings<T> s = pixel_face_settings<T>(p);
  std::vector<std::pair<T, int64_t>> by_depth;
  PixelFace<T> pf;
  for (int local = 0; local < kTile * kTile; ++local) {
    const int n = hits.count[local], first = hits.start[local];
    if (n <= K) continue;
    const Vec2<T> pix = centres(tile.x0 + local % kTile, tile.y0 + local / kTile);
    by_depth.clear();
    for (int i = first; i < first + n; ++i) {
      eval_pixel_face(pix, face_verts + 9 * hits.grouped_face[i], s, pf);
      by_depth.emplace_back(pf.z, hits.grouped_face[i]);
    }
    std::nth_element(by_depth.begin(), by_depth.begin() + (K - 1), by_depth.end());
    for (int k = 0; k < K; ++k) {
      const int64_t f = by_depth[k].second;
      eval_coverage(pix, prepare_face(face_verts + 9 * f, s), s, pf);
      hits.grouped_face[first + k] = f;
      hits.grouped[first + k] = DistanceHit<T>::of(pf);
    }
    hits.count[local] = K;
  }
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

// Per-thread gradient buffers accumulate in double: with float sums the result would depend on
// how the work was split between threads.
using GradBuffers = std::vector<std::vector<double>>;

// Sums the per-thread gradient buffers into grad_face_verts.
template <typename T>
void reduce_thread_grads(const GradBuffers& per_thread, int64_t size, T* out) {
  for (int64_t i = 0; i < size; ++i) {
    double sum = 0.0;
    for (const auto& g : per_thread) sum += g.empty() ? 0.0 : g[i];
    out[i] = T(sum);
  }
}

inline int thread_slots() { return std::max(1, at::get_num_threads()); }

}  // namespace

template <typename T>
void rasterize_forward_cpu(const RasterizeParams& p, const T* face_verts,
                           const int64_t* mesh_first_face, const int64_t* mesh_num_faces,
                           int64_t* pix_to_face, T* zbuf, T* bary, T* dists) {
  const TiledFaces<T> tiled = tile_faces(p, face_verts, mesh_first_face, mesh_num_faces);
  const PixelCentres<T> centres(p);
  const int K = p.faces_per_pixel;
  const int64_t tiles = int64_t(tiled.bins.tiles_x) * tiled.bins.tiles_y;
  std::vector<TileHits<T, FragmentHit<T>>> scratch(thread_slots());
  std::vector<std::vector<int>> orders(thread_slots());
  parallel_round_robin(tiled.items(), [&](int64_t thread, int64_t item) {
    TileHits<T, FragmentHit<T>>& hits = scratch[thread];
    collect_hits(p, face_verts, centres, tiled.boxes, tiled.bins, item, hits);
    const TileRect tile = tile_rect(p, tiled.bins, item);
    const int64_t n = item / tiles;
    std::vector<int>& order = orders[thread];
    for (int ly = 0; ly < tile.h; ++ly)
      for (int lx = 0; lx < tile.w; ++lx) {
        const int local = ly * kTile + lx, first = hits.start[local], count = hits.count[local];
        // The K nearest, by depth and then face index.
        order.resize(count);
        for (int i = 0; i < count; ++i) order[i] = first + i;
        const int kept = std::min(count, K);
        std::partial_sort(order.begin(), order.begin() + kept, order.end(), [&](int a, int b) {
          const T za = hits.grouped[a].z, zb = hits.grouped[b].z;
          return za < zb || (za == zb && hits.grouped_face[a] < hits.grouped_face[b]);
        });
        const int64_t out = ((n * p.height + tile.y0 + ly) * p.width + tile.x0 + lx) * K;
        for (int k = 0; k < K; ++k) {
          const int64_t o = out + k;
          if (k < kept) {
            const FragmentHit<T>& hit = hits.grouped[order[k]];
            pix_to_face[o] = hits.grouped_face[order[k]];
            zbuf[o] = hit.z;
            dists[o] = hit.dist;
            for (int i = 0; i < 3; ++i) bary[3 * o + i] = hit.bary[i];
          } else {
            pix_to_face[o] = -1;
            zbuf[o] = dists[o] = T(-1);
            for (int i = 0; i < 3; ++i) bary[3 * o + i] = T(-1);
          }
        }
      }
  });
}

template <typename T>
void rasterize_backward_cpu(const RasterizeParams& p, const T* face_verts,
                            const int64_t* pix_to_face, const T* grad_zbuf, const T* grad_bary,
                            const T* grad_dists, T* grad_face_verts) {
  const int K = p.faces_per_pixel;
  const PixelFaceSettings<T> s = pixel_face_settings<T>(p);
  const double rx = ndc_range_x(p), ry = ndc_range_y(p);
  GradBuffers grads(thread_slots());
  parallel_round_robin(int64_t(p.num_meshes) * p.height, [&](int64_t thread, int64_t row) {
    std::vector<double>& g = grads[thread];
    if (g.empty()) g.assign(size_t(p.num_faces) * 9, 0.0);
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
        const T* gb = grad_bary + 3 * o;
        if (grad_zbuf[o] == T(0) && grad_dists[o] == T(0) && gb[0] == T(0) && gb[1] == T(0) &&
            gb[2] == T(0))
          continue;
        // Recomputing is cheaper than storing the intermediates for every fragment.
        if (!eval_pixel_face(pix, face_verts + 9 * f, s, pf)) continue;
        eval_pixel_face_backward(pix, face_verts + 9 * f, s, pf, grad_zbuf[o], gb, grad_dists[o],
                                 g.data() + 9 * f);
      }
    }
  });
  reduce_thread_grads(grads, int64_t(p.num_faces) * 9, grad_face_verts);
}

template <typename T>
void soft_silhouette_forward_cpu(const RasterizeParams& p, const T* face_verts,
                                 const int64_t* mesh_first_face, const int64_t* mesh_num_faces,
                                 T* alpha) {
  const TiledFaces<T> tiled = tile_faces(p, face_verts, mesh_first_face, mesh_num_faces);
  const PixelCentres<T> centres(p);
  const int64_t tiles = int64_t(tiled.bins.tiles_x) * tiled.bins.tiles_y;
  std::vector<TileHits<T, DistanceHit<T>>> scratch(thread_slots());
  parallel_round_robin(tiled.items(), [&](int64_t thread, int64_t item) {
    TileHits<T, DistanceHit<T>>& hits = scratch[thread];
    const TileRect tile = tile_rect(p, tiled.bins, item);
    collect_hits(p, face_verts, centres, tiled.boxes, tiled.bins, item, hits);
    keep_nearest_hits(p, face_verts, centres, tile, hits);
    const int64_t n = item / tiles;
    for (int ly = 0; ly < tile.h; ++ly)
      for (int lx = 0; lx < tile.w; ++lx) {
        const int local = ly * kTile + lx, first = hits.start[local];
        T transmittance = T(1);  // prod_k (1 - D_k)
        for (int i = first; i < first + hits.count[local]; ++i)
          transmittance *= T(1) - coverage_probability(hits.grouped[i].dist, T(p.sigma));
        alpha[(n * p.height + tile.y0 + ly) * p.width + tile.x0 + lx] = T(1) - transmittance;
      }
  });
}

template <typename T>
void soft_silhouette_backward_cpu(const RasterizeParams& p, const T* face_verts,
                                  const int64_t* mesh_first_face, const int64_t* mesh_num_faces,
                                  const T* grad_alpha, T* grad_face_verts) {
  const TiledFaces<T> tiled = tile_faces(p, face_verts, mesh_first_face, mesh_num_faces);
  const PixelCentres<T> centres(p);
  const int K = p.faces_per_pixel;
  const PixelFaceSettings<T> s = pixel_face_settings<T>(p);
  const T sigma = T(p.sigma);
  const int64_t tiles = int64_t(tiled.bins.tiles_x) * tiled.bins.tiles_y;
  std::vector<TileHits<T, DistanceHit<T>>> scratch(thread_slots());
  GradBuffers grads(thread_slots());
  std::vector<std::vector<T>> suffix(thread_slots(), std::vector<T>(K + 1));
  std::vector<std::vector<T>> coverage_of(thread_slots(), std::vector<T>(K));
  parallel_round_robin(tiled.items(), [&](int64_t thread, int64_t item) {
    const TileRect tile = tile_rect(p, tiled.bins, item);
    const int64_t n = item / tiles;
    auto grad_at = [&](int ly, int lx) {
      return grad_alpha[(n * p.height + tile.y0 + ly) * p.width + tile.x0 + lx];
    };
    bool any = false;  // tiles with no gradient (the background of a masked loss) are skipped
    for (int ly = 0; ly < tile.h && !any; ++ly)
      for (int lx = 0; lx < tile.w && !any; ++lx) any = grad_at(ly, lx) != T(0);
    if (!any) return;
    TileHits<T, DistanceHit<T>>& hits = scratch[thread];
    collect_hits(p, face_verts, centres, tiled.boxes, tiled.bins, item, hits);
    keep_nearest_hits(p, face_verts, centres, tile, hits);
    std::vector<double>& g = grads[thread];
    if (g.empty()) g.assign(size_t(p.num_faces) * 9, 0.0);
    std::vector<T>& after = suffix[thread];
    std::vector<T>& D = coverage_of[thread];
    for (int ly = 0; ly < tile.h; ++ly)
      for (int lx = 0; lx < tile.w; ++lx) {
        const int local = ly * kTile + lx, count = hits.count[local];
        const T grad = grad_at(ly, lx);
        if (grad == T(0) || count == 0) continue;
        const Vec2<T> pix = centres(tile.x0 + lx, tile.y0 + ly);
        const DistanceHit<T>* hit = &hits.grouped[hits.start[local]];
        const int64_t* face = &hits.grouped_face[hits.start[local]];
        // d alpha / d D_k = prod_{j != k} (1 - D_j), from prefix and suffix products so that a
        // fully covering face (D = 1) does not divide by zero.
        after[count] = T(1);
        for (int k = count - 1; k >= 0; --k) {
          D[k] = coverage_probability(hit[k].dist, sigma);
          after[k] = after[k + 1] * (T(1) - D[k]);
        }
        T before = T(1);
        for (int k = 0; k < count; ++k) {
          eval_dist_backward(pix, face_verts + 9 * face[k], hit[k],
                             grad * before * after[k + 1] * (-D[k] * (T(1) - D[k]) / sigma),
                             g.data() + 9 * face[k]);
          before *= T(1) - D[k];
        }
      }
  });
  reduce_thread_grads(grads, int64_t(p.num_faces) * 9, grad_face_verts);
}

#define LIB3DR_INSTANTIATE(T)                                                                      \
  template void rasterize_forward_cpu<T>(const RasterizeParams&, const T*, const int64_t*,        \
                                         const int64_t*, int64_t*, T*, T*, T*);                   \
  template void rasterize_backward_cpu<T>(const RasterizeParams&, const T*, const int64_t*,       \
                                          const T*, const T*, const T*, T*);                      \
  template void soft_silhouette_forward_cpu<T>(const RasterizeParams&, const T*, const int64_t*,  \
                                               const int64_t*, T*);                               \
  template void soft_silhouette_backward_cpu<T>(const RasterizeParams&, const T*, const int64_t*, \
                                                const int64_t*, const T*, T*);
LIB3DR_INSTANTIATE(float)
LIB3DR_INSTANTIATE(double)

}  // namespace lib3dr
