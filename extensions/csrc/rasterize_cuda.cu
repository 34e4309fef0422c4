// CUDA rasterization: the results of rasterize_cpu.cpp, computed in three phases.
//
// 1. Binning. One thread per face computes its pixel box (face_pixel_box, as on the CPU) and
//    counts the (mesh, 16x16 tile) bins the box touches; an exclusive scan of the counts gives
//    every bin its range of one face list, and a second pass writes the faces into it.
// 2. Selection. One 16x16 thread block per bin, one thread per pixel: the block copies the bin's
//    faces to shared memory a chunk at a time, and each thread keeps the K nearest faces that
//    eval_pixel_face accepts at its pixel. insert_nearest breaks ties by face index, so the
//    arbitrary order of a bin's list does not change the result.
// 3. Output: the fragments (forward), the soft silhouette (fused forward), or the silhouette's
//    gradient added to the faces with atomics (fused backward). The unfused backward needs no
//    selection: one thread per fragment of pix_to_face.
//
// Gradients accumulate in double, as on the CPU. Temporaries come from the stream-ordered
// allocator and are freed on the stream before each launcher returns.
#include <cuda_runtime.h>

#include <climits>
#include <cub/cub.cuh>
#include <type_traits>
#include <vector>

#include "rasterize.h"

namespace lib3dr {
namespace {

constexpr int kThreads = kTile * kTile;  // threads of a block: one per pixel of a tile
constexpr int kMaxFacesPerPixel = 128;   // the largest per-thread list of nearest faces
constexpr const char* kTooManyFacesPerPixel = "faces_per_pixel > 128 is not supported on CUDA";

// Returns the CUDA error string from the enclosing function if `call` fails.
#define LIB3DR_TRY(call)                                           \
  do {                                                             \
    const cudaError_t error_ = (call);                             \
    if (error_ != cudaSuccess) return cudaGetErrorString(error_);  \
  } while (0)

unsigned blocks_for(int64_t threads) { return unsigned((threads + kThreads - 1) / kThreads); }

// Device buffers allocated on a stream, all freed on it when the Scratch goes out of scope.
class Scratch {
 public:
  explicit Scratch(cudaStream_t stream) : stream_(stream) {}
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() {
    for (void* ptr : ptrs_) cudaFreeAsync(ptr, stream_);
  }
  // `count` elements of U; nullptr when count is 0.
  template <typename U>
  cudaError_t alloc(U** out, int64_t count) {
    *out = nullptr;
    if (count <= 0) return cudaSuccess;
    void* ptr = nullptr;
    const cudaError_t error = cudaMallocAsync(&ptr, size_t(count) * sizeof(U), stream_);
    if (error != cudaSuccess) return error;
    ptrs_.push_back(ptr);
    *out = static_cast<U*>(ptr);
    return cudaSuccess;
  }

 private:
  cudaStream_t stream_;
  std::vector<void*> ptrs_;
};

// ---- Phase 1: binning ------------------------------------------------------------------------

// The faces of every (mesh, tile) bin, bin = mesh * tiles + tile, as on the CPU: bin b holds
// faces[start[b] .. start[b + 1]), in no particular order.
struct Bins {
  int tiles_x = 0;
  int64_t tiles = 0;  // tiles per image
  int64_t count = 0;  // N * tiles bins
  const unsigned long long* start = nullptr;
  const int* faces = nullptr;
  const PixelBox* boxes = nullptr;  // (F,) every face's pixel box
};

// The mesh whose faces [first, first + num) hold face f, or -1. Meshes are packed, so their
// first faces do not decrease (the Python layer guarantees it): a binary search finds it.
__device__ int mesh_of_face(int64_t f, const int64_t* mesh_first_face,
                            const int64_t* mesh_num_faces, int num_meshes) {
  int lo = 0, hi = num_meshes;  // ends as the number of meshes whose first face is <= f
  while (lo < hi) {
    const int mid = (lo + hi) / 2;
    if (mesh_first_face[mid] <= f)
      lo = mid + 1;
    else
      hi = mid;
  }
  const int n = lo - 1;
  return n >= 0 && f < mesh_first_face[n] + mesh_num_faces[n] ? n : -1;
}

// One thread per face: for every bin its pixel box touches, counts the face in `cursor` (first
// pass), or also writes it to the bin's next free slot (second pass, `fill`).
template <typename T>
__global__ void bin_faces_kernel(RasterizeParams p, const T* face_verts,
                                 const int64_t* mesh_first_face, const int64_t* mesh_num_faces,
                                 int tiles_x, int64_t tiles, bool fill, unsigned long long* cursor,
                                 PixelBox* boxes, const unsigned long long* start, int* faces) {
  const int64_t f = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (f >= p.num_faces) return;
  const PixelBox b = face_pixel_box(p, face_verts + 9 * f);
  if (!fill) boxes[f] = b;
  const int n = mesh_of_face(f, mesh_first_face, mesh_num_faces, p.num_meshes);
  if (n < 0) return;
  for_each_bin_of_box(b, n, tiles_x, tiles, [&](int64_t bin) {
    const unsigned long long slot = atomicAdd(&cursor[bin], 1ULL);
    if (fill) faces[start[bin] + slot] = int(f);
  });
}

// Bins the faces of every mesh (bins.count is 0 for an empty batch or image).
template <typename T>
const char* bin_faces(const RasterizeParams& p, const T* face_verts,
                      const int64_t* mesh_first_face, const int64_t* mesh_num_faces,
                      cudaStream_t stream, Scratch& scratch, Bins& bins) {
  bins.tiles_x = tiles_along(p.width);
  bins.tiles = int64_t(bins.tiles_x) * tiles_along(p.height);
  bins.count = p.num_meshes * bins.tiles;
  if (bins.count == 0) return nullptr;
  if (bins.count >= INT_MAX) return "too many (mesh, tile) bins for the CUDA rasterizer";
  const int scanned = int(bins.count) + 1;  // one more bin, always empty: start[count] = total
  unsigned long long *cursor, *start;
  PixelBox* boxes;
  LIB3DR_TRY(scratch.alloc(&cursor, scanned));
  LIB3DR_TRY(scratch.alloc(&start, scanned));
  LIB3DR_TRY(scratch.alloc(&boxes, p.num_faces));
  LIB3DR_TRY(cudaMemsetAsync(cursor, 0, scanned * sizeof(unsigned long long), stream));
  if (p.num_faces > 0) {
    bin_faces_kernel<<<blocks_for(p.num_faces), kThreads, 0, stream>>>(
        p, face_verts, mesh_first_face, mesh_num_faces, bins.tiles_x, bins.tiles, false, cursor,
        boxes, nullptr, nullptr);
    LIB3DR_TRY(cudaGetLastError());
  }

  size_t temp_bytes = 0;
  LIB3DR_TRY(cub::DeviceScan::ExclusiveSum(nullptr, temp_bytes, cursor, start, scanned, stream));
  char* temp;  // never null: cub takes a null buffer for a size query
  LIB3DR_TRY(scratch.alloc(&temp, int64_t(temp_bytes) + 1));
  LIB3DR_TRY(cub::DeviceScan::ExclusiveSum(temp, temp_bytes, cursor, start, scanned, stream));
  unsigned long long total = 0;  // the host needs it to size the face list
  LIB3DR_TRY(cudaMemcpyAsync(&total, start + bins.count, sizeof(total), cudaMemcpyDeviceToHost,
                             stream));
  LIB3DR_TRY(cudaStreamSynchronize(stream));

  int* faces;
  LIB3DR_TRY(scratch.alloc(&faces, int64_t(total)));
  if (total > 0) {
    LIB3DR_TRY(cudaMemsetAsync(cursor, 0, scanned * sizeof(unsigned long long), stream));
    bin_faces_kernel<<<blocks_for(p.num_faces), kThreads, 0, stream>>>(
        p, face_verts, mesh_first_face, mesh_num_faces, bins.tiles_x, bins.tiles, true, cursor,
        boxes, start, faces);
    LIB3DR_TRY(cudaGetLastError());
  }
  bins.start = start;
  bins.faces = faces;
  bins.boxes = boxes;
  return nullptr;
}

// ---- Phase 2: selection ----------------------------------------------------------------------

// This thread's pixel in the block's bin.
template <typename T>
struct Pixel {
  int x, y;
  bool in_image;  // false past the image's edge, in partial tiles
  Vec2<T> ndc;    // the pixel centre
  int64_t index;  // (mesh * H + y) * W + x
};

template <typename T>
__device__ Pixel<T> block_pixel(const RasterizeParams& p, const Bins& bins) {
  Pixel<T> px;
  const BinOrigin bin = bin_origin(blockIdx.x, bins.tiles_x, bins.tiles);
  px.x = bin.x0 + int(threadIdx.x);
  px.y = bin.y0 + int(threadIdx.y);
  px.in_image = px.x < p.width && px.y < p.height;
  px.ndc = {T(pixel_center_ndc(px.x, p.width, ndc_range_x(p))),
            T(pixel_center_ndc(px.y, p.height, ndc_range_y(p)))};
  px.index = pixel_index(p, bin.mesh, px.x, px.y);
  return px;
}

// A chunk of a bin's faces, staged in shared memory by the whole block.
template <typename T>
struct FaceChunk {
  T verts[kThreads][9];
  PixelBox box[kThreads];
  int face[kThreads];
};

// Keeps in (zs, faces) the K nearest faces that eval_pixel_face accepts at this thread's pixel,
// among those of the block's bin, and returns how many. It synchronizes the block: every thread
// must call it.
template <typename T>
__device__ int select_nearest(const RasterizeParams& p, const Bins& bins, const T* face_verts,
                              const Pixel<T>& px, FaceChunk<T>& chunk, T* zs, int64_t* faces) {
  const PixelFaceSettings<T> s = pixel_face_settings<T>(p);
  const int thread = int(threadIdx.y) * kTile + int(threadIdx.x);
  const unsigned long long begin = bins.start[blockIdx.x], end = bins.start[blockIdx.x + 1];
  int count = 0;
  PixelFace<T> pf;
  for (unsigned long long first = begin; first < end; first += kThreads) {
    const int size = end - first < kThreads ? int(end - first) : kThreads;
    __syncthreads();  // every thread is done with the previous chunk
    if (thread < size) {
      const int f = bins.faces[first + thread];
      for (int i = 0; i < 9; ++i) chunk.verts[thread][i] = face_verts[9 * int64_t(f) + i];
      chunk.box[thread] = bins.boxes[f];
      chunk.face[thread] = f;
    }
    __syncthreads();
    for (int j = 0; j < size && px.in_image; ++j) {
      // As on the CPU, a face is tested only at the pixels of its box.
      const PixelBox& b = chunk.box[j];
      if (px.x < b.x0 || px.x > b.x1 || px.y < b.y0 || px.y > b.y1) continue;
      if (eval_pixel_face(px.ndc, chunk.verts[j], s, pf))
        insert_nearest(pf.z, int64_t(chunk.face[j]), zs, faces, count, p.faces_per_pixel);
    }
  }
  return count;
}

// Phase 2 for the kernels below, run by every thread of a bin's block: selects the K nearest
// faces at the thread's pixel (at most Cap), then, for a pixel in the image, calls
// output(pixel, faces, count) with them in depth order.
template <typename T, int Cap, typename Output>
__device__ void with_nearest_faces(const RasterizeParams& p, const Bins& bins, const T* face_verts,
                                   const Output& output) {
  __shared__ FaceChunk<T> chunk;
  T zs[Cap];
  int64_t faces[Cap];
  const Pixel<T> px = block_pixel<T>(p, bins);
  const int count = select_nearest(p, bins, face_verts, px, chunk, zs, faces);
  if (px.in_image) output(px, faces, count);
}

// ---- Phase 3: outputs ------------------------------------------------------------------------

// The fragments of this thread's pixel: its `count` nearest faces, then -1 padding up to K.
template <typename T>
__device__ void write_fragments(const RasterizeParams& p, const T* face_verts, const Pixel<T>& px,
                                const int64_t* faces, int count, int64_t* pix_to_face, T* zbuf,
                                T* bary, T* dists) {
  const PixelFaceSettings<T> s = pixel_face_settings<T>(p);
  PixelFace<T> pf;
  for (int k = 0; k < p.faces_per_pixel; ++k) {
    const int64_t o = px.index * p.faces_per_pixel + k;
    if (k < count) {
      eval_pixel_face(px.ndc, face_verts + 9 * faces[k], s, pf);
      pix_to_face[o] = faces[k];
      zbuf[o] = pf.z;
      dists[o] = pf.dist;
      for (int i = 0; i < 3; ++i) bary[3 * o + i] = pf.bary[i];
    } else {
      pix_to_face[o] = -1;
      zbuf[o] = dists[o] = T(-1);
      for (int i = 0; i < 3; ++i) bary[3 * o + i] = T(-1);
    }
  }
}

// One thread per pixel of a bin: its K nearest faces, written out as fragments.
template <typename T, int Cap>
__global__ void __launch_bounds__(kThreads)
    rasterize_forward_kernel(RasterizeParams p, Bins bins, const T* face_verts,
                             int64_t* pix_to_face, T* zbuf, T* bary, T* dists) {
  with_nearest_faces<T, Cap>(p, bins, face_verts, [&](const Pixel<T>& px, const int64_t* faces,
                                                      int count) {
    write_fragments(p, face_verts, px, faces, count, pix_to_face, zbuf, bary, dists);
  });
}

// The transmittance prod_k (1 - D_k) over the `count` faces selected at this thread's pixel.
template <typename T>
__device__ T transmittance_of(const RasterizeParams& p, const T* face_verts, const Pixel<T>& px,
                              const int64_t* faces, int count) {
  const PixelFaceSettings<T> s = pixel_face_settings<T>(p);
  PixelFace<T> pf;
  T transmittance = T(1);
  for (int k = 0; k < count; ++k) {
    eval_pixel_face(px.ndc, face_verts + 9 * faces[k], s, pf);
    transmittance *= T(1) - coverage_probability(pf.dist, T(p.sigma));
  }
  return transmittance;
}

// One thread per pixel of a bin: alpha = 1 - prod_k (1 - D_k) over its K nearest faces.
template <typename T, int Cap>
__global__ void __launch_bounds__(kThreads)
    soft_silhouette_forward_kernel(RasterizeParams p, Bins bins, const T* face_verts, T* alpha) {
  with_nearest_faces<T, Cap>(p, bins, face_verts, [&](const Pixel<T>& px, const int64_t* faces,
                                                      int count) {
    alpha[px.index] = T(1) - transmittance_of(p, face_verts, px, faces, count);
  });
}

// Adds a face's 9 gradient values to grad, sparing the atomics of the zeros.
__device__ void add_face_grad(double* grad, const double* g) {
  for (int i = 0; i < 9; ++i)
    if (g[i] != 0.0) atomicAdd(grad + i, g[i]);
}

// One thread per pixel of a bin: grad_alpha times d alpha / d(its K nearest faces), as on the
// CPU: the transmittance first, then each face's silhouette_dist_grad and eval_dist_backward.
template <typename T, int Cap>
__global__ void __launch_bounds__(kThreads)
    soft_silhouette_backward_kernel(RasterizeParams p, Bins bins, const T* face_verts,
                                    const T* grad_alpha, double* grad_face_verts) {
  const Pixel<T> me = block_pixel<T>(p, bins);
  const T grad = me.in_image ? grad_alpha[me.index] : T(0);
  // Skip tiles whose pixels all have zero gradient (the background of a masked loss, say).
  if (!__syncthreads_or(grad != T(0))) return;
  with_nearest_faces<T, Cap>(p, bins, face_verts, [&](const Pixel<T>& px, const int64_t* faces,
                                                      int count) {
    if (grad == T(0)) return;
    const PixelFaceSettings<T> s = pixel_face_settings<T>(p);
    const T sigma = T(p.sigma);
    const T weight = grad * transmittance_of(p, face_verts, px, faces, count);
    PixelFace<T> pf;
    for (int k = 0; k < count; ++k) {
      const T* face = face_verts + 9 * faces[k];
      eval_pixel_face(px.ndc, face, s, pf);
      const T d = coverage_probability(pf.dist, sigma);
      double g[9] = {};
      eval_dist_backward(px.ndc, face, DistanceHit<T>::of(pf),
                         silhouette_dist_grad(weight, d, sigma), g);
      add_face_grad(grad_face_verts + 9 * faces[k], g);
    }
  });
}

// One thread per (pixel, k) fragment of pix_to_face: the fragment's gradient, added to its face.
template <typename T>
__global__ void rasterize_backward_kernel(RasterizeParams p, const T* face_verts,
                                          const int64_t* pix_to_face, const T* grad_zbuf,
                                          const T* grad_bary, const T* grad_dists,
                                          double* grad_face_verts) {
  const int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (o >= int64_t(p.num_meshes) * p.height * p.width * p.faces_per_pixel) return;
  const int64_t f = pix_to_face[o];
  const T* gb = grad_bary + 3 * o;
  if (f < 0 || f >= p.num_faces ||
      (grad_zbuf[o] == T(0) && grad_dists[o] == T(0) && gb[0] == T(0) && gb[1] == T(0) &&
       gb[2] == T(0)))
    return;
  const int64_t pixel = o / p.faces_per_pixel;
  const int x = int(pixel % p.width), y = int(pixel / p.width % p.height);
  const Vec2<T> pix = {T(pixel_center_ndc(x, p.width, ndc_range_x(p))),
                       T(pixel_center_ndc(y, p.height, ndc_range_y(p)))};
  const PixelFaceSettings<T> s = pixel_face_settings<T>(p);
  const T* face = face_verts + 9 * f;
  PixelFace<T> pf;
  // Recomputing is cheaper than storing the intermediates for every fragment.
  if (!eval_pixel_face(pix, face, s, pf)) return;
  double g[9] = {};
  eval_pixel_face_backward(pix, face, s, pf, grad_zbuf[o], gb, grad_dists[o], g);
  add_face_grad(grad_face_verts + 9 * f, g);
}

// One thread per value: the double gradient rounded to T.
template <typename T>
__global__ void round_grad_kernel(const double* acc, T* grad, int64_t size) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < size) grad[i] = T(acc[i]);
}

// The zeroed double buffer the backward kernels add into: grad_face_verts itself when T is
// double, else a temporary that finish_grad rounds into it.
template <typename T>
const char* zeroed_grad(T* grad_face_verts, int64_t size, cudaStream_t stream, Scratch& scratch,
                        double** acc) {
  if constexpr (std::is_same_v<T, double>)
    *acc = grad_face_verts;
  else
    LIB3DR_TRY(scratch.alloc(acc, size));
  if (size > 0) LIB3DR_TRY(cudaMemsetAsync(*acc, 0, size * sizeof(double), stream));
  return nullptr;
}

template <typename T>
const char* finish_grad(const double* acc, T* grad_face_verts, int64_t size, cudaStream_t stream) {
  if constexpr (!std::is_same_v<T, double>) {
    if (size > 0) {
      round_grad_kernel<<<blocks_for(size), kThreads, 0, stream>>>(acc, grad_face_verts, size);
      LIB3DR_TRY(cudaGetLastError());
    }
  }
  return nullptr;
}

// Calls launch(std::integral_constant<int, Cap>()) with the smallest list capacity Cap >= K
// (K <= kMaxFacesPerPixel).
template <typename Launch>
void with_capacity(int K, const Launch& launch) {
  if (K <= 8)
    launch(std::integral_constant<int, 8>());
  else if (K <= 32)
    launch(std::integral_constant<int, 32>());
  else
    launch(std::integral_constant<int, kMaxFacesPerPixel>());
}

const dim3 kTileBlock(kTile, kTile);

// Bins the faces, then launches a kernel of one kTileBlock per bin: launch(cap, bins) does it,
// with the list capacity `cap` (with_capacity). No launch for an empty batch or image.
template <typename T, typename Launch>
const char* bin_and_launch(const RasterizeParams& p, const T* face_verts,
                           const int64_t* mesh_first_face, const int64_t* mesh_num_faces,
                           cudaStream_t stream, Scratch& scratch, const Launch& launch) {
  if (p.faces_per_pixel > kMaxFacesPerPixel) return kTooManyFacesPerPixel;
  Bins bins;
  if (const char* error =
          bin_faces(p, face_verts, mesh_first_face, mesh_num_faces, stream, scratch, bins))
    return error;
  if (bins.count == 0) return nullptr;
  with_capacity(p.faces_per_pixel, [&](auto cap) { launch(cap, bins); });
  LIB3DR_TRY(cudaGetLastError());
  return nullptr;
}

}  // namespace

template <typename T>
const char* rasterize_forward_cuda(const RasterizeParams& p, const T* face_verts,
                                   const int64_t* mesh_first_face, const int64_t* mesh_num_faces,
                                   int64_t* pix_to_face, T* zbuf, T* bary, T* dists,
                                   int64_t stream_id) {
  const auto stream = reinterpret_cast<cudaStream_t>(stream_id);
  Scratch scratch(stream);
  return bin_and_launch(p, face_verts, mesh_first_face, mesh_num_faces, stream, scratch,
                        [&](auto cap, const Bins& bins) {
    rasterize_forward_kernel<T, decltype(cap)::value>
        <<<unsigned(bins.count), kTileBlock, 0, stream>>>(p, bins, face_verts, pix_to_face, zbuf,
                                                          bary, dists);
  });
}

template <typename T>
const char* rasterize_backward_cuda(const RasterizeParams& p, const T* face_verts,
                                    const int64_t* pix_to_face, const T* grad_zbuf,
                                    const T* grad_bary, const T* grad_dists, T* grad_face_verts,
                                    int64_t stream_id) {
  const auto stream = reinterpret_cast<cudaStream_t>(stream_id);
  Scratch scratch(stream);
  const int64_t size = int64_t(p.num_faces) * 9;
  double* grad;
  if (const char* error = zeroed_grad(grad_face_verts, size, stream, scratch, &grad)) return error;
  const int64_t fragments = int64_t(p.num_meshes) * p.height * p.width * p.faces_per_pixel;
  if (fragments > 0 && size > 0) {
    rasterize_backward_kernel<<<blocks_for(fragments), kThreads, 0, stream>>>(
        p, face_verts, pix_to_face, grad_zbuf, grad_bary, grad_dists, grad);
    LIB3DR_TRY(cudaGetLastError());
  }
  return finish_grad(grad, grad_face_verts, size, stream);
}

template <typename T>
const char* soft_silhouette_forward_cuda(const RasterizeParams& p, const T* face_verts,
                                         const int64_t* mesh_first_face,
                                         const int64_t* mesh_num_faces, T* alpha,
                                         int64_t stream_id) {
  const auto stream = reinterpret_cast<cudaStream_t>(stream_id);
  Scratch scratch(stream);
  return bin_and_launch(p, face_verts, mesh_first_face, mesh_num_faces, stream, scratch,
                        [&](auto cap, const Bins& bins) {
    soft_silhouette_forward_kernel<T, decltype(cap)::value>
        <<<unsigned(bins.count), kTileBlock, 0, stream>>>(p, bins, face_verts, alpha);
  });
}

template <typename T>
const char* soft_silhouette_backward_cuda(const RasterizeParams& p, const T* face_verts,
                                          const int64_t* mesh_first_face,
                                          const int64_t* mesh_num_faces, const T* grad_alpha,
                                          T* grad_face_verts, int64_t stream_id) {
  if (p.faces_per_pixel > kMaxFacesPerPixel) return kTooManyFacesPerPixel;
  const auto stream = reinterpret_cast<cudaStream_t>(stream_id);
  Scratch scratch(stream);
  const int64_t size = int64_t(p.num_faces) * 9;
  double* grad;
  if (const char* error = zeroed_grad(grad_face_verts, size, stream, scratch, &grad)) return error;
  const char* error = bin_and_launch(p, face_verts, mesh_first_face, mesh_num_faces, stream,
                                     scratch, [&](auto cap, const Bins& bins) {
    soft_silhouette_backward_kernel<T, decltype(cap)::value>
        <<<unsigned(bins.count), kTileBlock, 0, stream>>>(p, bins, face_verts, grad_alpha, grad);
  });
  return error ? error : finish_grad(grad, grad_face_verts, size, stream);
}

#define LIB3DR_INSTANTIATE(T)                                                                    \
  template const char* rasterize_forward_cuda<T>(const RasterizeParams&, const T*,              \
                                                 const int64_t*, const int64_t*, int64_t*, T*,  \
                                                 T*, T*, int64_t);                              \
  template const char* rasterize_backward_cuda<T>(const RasterizeParams&, const T*,             \
                                                  const int64_t*, const T*, const T*, const T*, \
                                                  T*, int64_t);                                 \
  template const char* soft_silhouette_forward_cuda<T>(const RasterizeParams&, const T*,        \
                                                       const int64_t*, const int64_t*, T*,      \
                                                       int64_t);                                \
  template const char* soft_silhouette_backward_cuda<T>(const RasterizeParams&, const T*,       \
                                                        const int64_t*, const int64_t*,         \
                                                        const T*, T*, int64_t);
LIB3DR_INSTANTIATE(float)
LIB3DR_INSTANTIATE(double)

}  // namespace lib3dr
