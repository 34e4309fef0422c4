// Multi-threaded CPU rasterization.
//
// The image is cut into square tiles; each face is listed in the tiles its blur-expanded bounding
// box touches, and a tile tests only the pixels of each listed face's box, a row at a time in a
// vectorized loop. Work is split by tile (forward, fused backward) or by image row (fragment
// backward) in a fixed round-robin, so the forward output does not depend on the number of
// threads; backward gradients go to one buffer per thread, summed in a fixed order at the end.
// The soft silhouette's blend from fragments is here too: one pass per pixel over its K slots.
#include <ATen/Parallel.h>  // at::get_num_threads, at::parallel_for

#include <algorithm>
#include <cmath>
#include <thread>
#include <utility>
#include <vector>

#include "rasterize.h"

namespace lib3dr {
namespace {

constexpr int kTile = 16;  // tile side in pixels

// Runs body(thread, item) for every item in [0, count), spread round-robin over up to
// at::get_num_threads() threads. Built with OpenMP (Linux), these are torch's own OpenMP threads:
// after a torch operation they keep spinning for a while, and threads of our own would compete
// with them for the cores. ATen's parallel_for runs serially in code built without OpenMP, hence
// std::thread there.
template <typename Body>
void parallel_round_robin(int64_t count, const Body& body) {
  const int64_t threads = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), count));
  auto work = [&](int64_t t) {
    for (int64_t item = t; item < count; item += threads) body(t, item);
  };
#ifdef _OPENMP
  at::parallel_for(0, threads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) work(t);
  });
#else
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (std::thread& thread : pool) thread.join();
#endif
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

// Calls covered(face, its FaceSetup, pixel centre, pixel index within the tile, DistanceHit) for
// every pixel of tile `item` that a listed face covers in 2D (coverage_distance), faces in
// ascending order. Each row of a face's box is tested in one loop without branches, which the
// compiler vectorizes; the callback runs for the covered pixels only.
template <typename T, typename Covered>
void visit_tile_coverage(const RasterizeParams& p, const T* face_verts,
                         const PixelCentres<T>& centres, const std::vector<PixelBox>& boxes,
                         const TileBins& bins, int64_t item, const Covered& covered) {
  const PixelFaceSettings<T> s = pixel_face_settings<T>(p);
  const TileRect tile = tile_rect(p, bins, item);
  T dist[kTile], edge_t[kTile];
  int edge[kTile], inside[kTile], hit[kTile];  // int, not bool: one element width vectorizes
  for (int64_t i = bins.start[item]; i < bins.start[item + 1]; ++i) {
    const int64_t f = bins.faces[i];
    const PixelBox& b = boxes[f];
    const int x_begin = std::max(b.x0, tile.x0), x_end = std::min(b.x1, tile.x0 + tile.w - 1);
    const int y_begin = std::max(b.y0, tile.y0), y_end = std::min(b.y1, tile.y0 + tile.h - 1);
    if (x_begin > x_end || y_begin > y_end) continue;
    const FaceSetup<T> face = prepare_face(face_verts + 9 * f, s);
    if (!face.drawable) continue;
    const int n = x_end - x_begin + 1;
    const T* xs = centres.x.data() + x_begin;
    for (int y = y_begin; y <= y_end; ++y) {
      const T py = centres.y[y];
      for (int j = 0; j < n; ++j) {
        DistanceHit<T> h;
        hit[j] = coverage_distance(Vec2<T>{xs[j], py}, face, s.blur_radius, h);
        dist[j] = h.dist;
        edge_t[j] = h.edge_t;
        edge[j] = h.edge;
        inside[j] = h.inside;
      }
      const int row = (y - tile.y0) * kTile + (x_begin - tile.x0);
      for (int j = 0; j < n; ++j)
        if (hit[j])
          covered(f, face, Vec2<T>{xs[j], py}, row + j,
                  DistanceHit<T>{dist[j], edge_t[j], edge[j], inside[j] != 0});
    }
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
                          const DistanceHit<T>&) {
                        if (!eval_coverage(pix, face, s, pf) || !eval_depth(face, s, pf)) return;
                        hits.pixel.push_back(local);
                        hits.face.push_back(f);
                        hits.record.push_back(FragmentHit<T>::of(pf));
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
  return eval_coverage(pix, face, s, pf) && eval_depth(face, s, pf);
}

// A face covering a pixel, for choosing the K nearest.
template <typename T>
struct DepthHit {
  T z, dist;
  int64_t face;
};

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
  std::vector<TileHits<T>> scratch(thread_slots());
  std::vector<std::vector<int>> orders(thread_slots());
  parallel_round_robin(tiled.items(), [&](int64_t thread, int64_t item) {
    TileHits<T>& hits = scratch[thread];
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
        auto nearer_hit = [&](int a, int b) {
          return nearer(hits.grouped[a].z, hits.grouped_face[a], hits.grouped[b].z,
                        hits.grouped_face[b]);
        };
        if (kept == count)  // all of them: a plain sort beats partial_sort's heap
          std::sort(order.begin(), order.end(), nearer_hit);
        else
          std::partial_sort(order.begin(), order.begin() + kept, order.end(), nearer_hit);
        const int64_t out = ((n * p.height + tile.y0 + ly) * p.width + tile.x0 + lx) * K;
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
  const T no_grad_bary[3] = {T(0), T(0), T(0)};
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
        const T grad_z = grad_zbuf ? grad_zbuf[o] : T(0);
        const T grad_dist = grad_dists ? grad_dists[o] : T(0);
        const T* gb = grad_bary ? grad_bary + 3 * o : no_grad_bary;
        if (grad_z == T(0) && grad_dist == T(0) && gb[0] == T(0) && gb[1] == T(0) && gb[2] == T(0))
          continue;
        // Recomputing is cheaper than storing the intermediates for every fragment.
        if (!eval_pixel_face(pix, face_verts + 9 * f, s, pf)) continue;
        if (grad_zbuf || grad_bary)
          eval_pixel_face_backward(pix, face_verts + 9 * f, s, pf, grad_z, gb, grad_dist,
                                   g.data() + 9 * f);
        else  // a silhouette: only the distances have gradients
          eval_dist_backward(pix, face_verts + 9 * f, DistanceHit<T>::of(pf), grad_dist,
                             g.data() + 9 * f);
      }
    }
  });
  reduce_thread_grads(grads, int64_t(p.num_faces) * 9, grad_face_verts);
}

// The fused soft silhouette visits every (face, pixel) pair of a tile once and multiplies the
// pixel's transmittance by 1 - D in place: no list of hits, and the product's order (ascending
// face index) does not depend on the threads.
template <typename T>
void soft_silhouette_forward_cpu(const RasterizeParams& p, const T* face_verts,
                                 const int64_t* mesh_first_face, const int64_t* mesh_num_faces,
                                 T* alpha, SilhouetteState<T> state) {
  const TiledFaces<T> tiled = tile_faces(p, face_verts, mesh_first_face, mesh_num_faces);
  const PixelCentres<T> centres(p);
  const PixelFaceSettings<T> s = pixel_face_settings<T>(p);
  const T sigma = T(p.sigma);
  const int64_t tiles = int64_t(tiled.bins.tiles_x) * tiled.bins.tiles_y;
  std::vector<std::vector<std::vector<DepthHit<T>>>> covering(
      thread_slots(), std::vector<std::vector<DepthHit<T>>>(kTile * kTile));
  parallel_round_robin(tiled.items(), [&](int64_t thread, int64_t item) {
    const TileRect tile = tile_rect(p, tiled.bins, item);
    T transmittance[kTile * kTile];
    int count[kTile * kTile];
    std::fill(transmittance, transmittance + kTile * kTile, T(1));
    std::fill(count, count + kTile * kTile, 0);
    PixelFace<T> pf;
    visit_tile_coverage(p, face_verts, centres, tiled.boxes, tiled.bins, item,
                        [&](int64_t, const FaceSetup<T>& face, Vec2<T> pix, int local,
                            const DistanceHit<T>& hit) {
                          if (!silhouette_depth_ok(pix, face, s, hit, false, pf)) return;
                          transmittance[local] *= T(1) - coverage_probability(hit.dist, sigma);
                          ++count[local];
                        });
    // Pixels covered by more than K faces keep their K nearest (the rasterizer's rule): their
    // faces are visited again, with depths, and the transmittance is taken over the K nearest.
    // Few pixels need it (under 5% of the cow's at K = 100).
    std::vector<std::vector<DepthHit<T>>>& nearest = covering[thread];
    bool cut_any = false;
    for (int local = 0; local < kTile * kTile; ++local) {
      nearest[local].clear();
      cut_any = cut_any || count[local] > p.faces_per_pixel;
    }
    if (cut_any)
      visit_tile_coverage(p, face_verts, centres, tiled.boxes, tiled.bins, item,
                          [&](int64_t f, const FaceSetup<T>& face, Vec2<T> pix, int local,
                              const DistanceHit<T>& hit) {
                            if (count[local] > p.faces_per_pixel &&
                                silhouette_depth_ok(pix, face, s, hit, true, pf))
                              nearest[local].push_back({pf.z, hit.dist, f});
                          });
    const int64_t n = item / tiles;
    for (int ly = 0; ly < tile.h; ++ly)
      for (int lx = 0; lx < tile.w; ++lx) {
        const int local = ly * kTile + lx;
        const int64_t o = (n * p.height + tile.y0 + ly) * p.width + tile.x0 + lx;
        state.cut_z[o] = T(0);
        state.cut_face[o] = -1;
        if (count[local] > p.faces_per_pixel) {
          std::vector<DepthHit<T>>& hits = nearest[local];
          const auto kth = hits.begin() + (p.faces_per_pixel - 1);
          std::nth_element(hits.begin(), kth, hits.end(), [](const DepthHit<T>& a, const DepthHit<T>& b) {
            return nearer(a.z, a.face, b.z, b.face);
          });
          transmittance[local] = T(1);
          for (auto hit = hits.begin(); hit <= kth; ++hit)
            transmittance[local] *= T(1) - coverage_probability(hit->dist, sigma);
          state.cut_z[o] = kth->z;
          state.cut_face[o] = kth->face;
        }
        state.transmittance[o] = transmittance[local];
        alpha[o] = T(1) - transmittance[local];
      }
  });
}

// With alpha = 1 - prod_k (1 - D_k) and dD/ddist = -D (1 - D) / sigma, the gradient of one face's
// distance is d alpha / d dist_k = -transmittance * D_k / sigma: the forward's transmittance is
// all the backward needs of the other faces, and it visits the pairs in any order.
template <typename T>
void soft_silhouette_backward_cpu(const RasterizeParams& p, const T* face_verts,
                                  const int64_t* mesh_first_face, const int64_t* mesh_num_faces,
                                  const T* grad_alpha,
                                  SilhouetteState<const T, const int64_t> state,
                                  T* grad_face_verts) {
  const TiledFaces<T> tiled = tile_faces(p, face_verts, mesh_first_face, mesh_num_faces);
  const PixelCentres<T> centres(p);
  const PixelFaceSettings<T> s = pixel_face_settings<T>(p);
  const T sigma = T(p.sigma);
  const int64_t tiles = int64_t(tiled.bins.tiles_x) * tiled.bins.tiles_y;
  GradBuffers grads(thread_slots());
  parallel_round_robin(tiled.items(), [&](int64_t thread, int64_t item) {
    const TileRect tile = tile_rect(p, tiled.bins, item);
    const int64_t n = item / tiles;
    T weight[kTile * kTile];  // grad_alpha * transmittance
    T cut_z[kTile * kTile];
    int64_t cut_face[kTile * kTile];
    bool any = false;  // tiles with no gradient (the background of a masked loss) are skipped
    for (int ly = 0; ly < tile.h; ++ly)
      for (int lx = 0; lx < tile.w; ++lx) {
        const int local = ly * kTile + lx;
        const int64_t o = (n * p.height + tile.y0 + ly) * p.width + tile.x0 + lx;
        weight[local] = grad_alpha[o] * state.transmittance[o];
        cut_z[local] = state.cut_z[o];
        cut_face[local] = state.cut_face[o];
        any = any || weight[local] != T(0);
      }
    if (!any) return;
    std::vector<double>& g = grads[thread];
    if (g.empty()) g.assign(size_t(p.num_faces) * 9, 0.0);
    PixelFace<T> pf;
    visit_tile_coverage(p, face_verts, centres, tiled.boxes, tiled.bins, item,
                        [&](int64_t f, const FaceSetup<T>& face, Vec2<T> pix, int local,
                            const DistanceHit<T>& hit) {
                          if (weight[local] == T(0)) return;
                          const bool cut = cut_face[local] >= 0;
                          if (!silhouette_depth_ok(pix, face, s, hit, cut, pf)) return;
                          if (cut && nearer(cut_z[local], cut_face[local], pf.z, f)) return;
                          const T grad_dist =
                              -weight[local] * coverage_probability(hit.dist, sigma) / sigma;
                          eval_dist_backward(pix, face_verts + 9 * f, hit, grad_dist,
                                             g.data() + 9 * f);
                        });
  });
  reduce_thread_grads(grads, int64_t(p.num_faces) * 9, grad_face_verts);
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

// d alpha / d dist_k = -transmittance * D_k / sigma, as in the fused kernel.
template <typename T>
void silhouette_blend_backward_cpu(int64_t pixels, int K, double sigma, const int64_t* pix_to_face,
                                   const T* dists, const T* log_transmittance, const T* grad_alpha,
                                   T* grad_dists) {
  parallel_pixels(pixels, [&](int64_t i) {
    const T weight = -grad_alpha[i] * std::exp(log_transmittance[i]) / T(sigma);
    for (int64_t o = i * K; o < (i + 1) * K; ++o)
      grad_dists[o] = pix_to_face[o] >= 0 ? weight * coverage_probability(dists[o], T(sigma)) : T(0);
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
