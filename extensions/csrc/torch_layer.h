// What the two torch layers (bindings.cpp, packed_ops.cpp) share: the rasterizer's input checks,
// its parameters from the Python arguments, and the hint for large buffers.
#pragma once

#include <torch/extension.h>

#include <cstdint>

#ifdef __linux__
#include <sys/mman.h>
#endif

#include "rasterize.h"

namespace lib3dr {

inline void check_tensor(const torch::Tensor& t, const char* name, const torch::Device& device) {
  TORCH_CHECK(t.device() == device, name, " must be on ", device, " like face_verts, got ",
              t.device());
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

inline void check_inputs(const RasterizeParams& p, const torch::Tensor& face_verts,
                         const torch::Tensor& mesh_first_face, const torch::Tensor& mesh_num_faces) {
  TORCH_CHECK(face_verts.dim() == 3 && face_verts.size(1) == 3 && face_verts.size(2) == 3,
              "face_verts must have shape (F, 3, 3), got ", face_verts.sizes());
  TORCH_CHECK(face_verts.scalar_type() == torch::kFloat || face_verts.scalar_type() == torch::kDouble,
              "face_verts must be float32 or float64, got ", face_verts.scalar_type());
  TORCH_CHECK(face_verts.is_contiguous(), "face_verts must be contiguous");
  for (const auto* t : {&mesh_first_face, &mesh_num_faces}) {
    const char* name = t == &mesh_first_face ? "mesh_first_face" : "mesh_num_faces";
    check_tensor(*t, name, face_verts.device());
    TORCH_CHECK(t->dim() == 1 && t->size(0) == p.num_meshes, name, " must have shape (N,) with N = ",
                p.num_meshes, ", got ", t->sizes());
    TORCH_CHECK(t->scalar_type() == torch::kLong, name, " must be int64, got ", t->scalar_type());
  }
  TORCH_CHECK(p.height > 0 && p.width > 0, "image size must be positive, got (", p.height, ", ",
              p.width, ")");
  TORCH_CHECK(p.faces_per_pixel >= 1, "faces_per_pixel must be >= 1, got ", p.faces_per_pixel);
  TORCH_CHECK(p.blur_radius >= 0, "blur_radius must be >= 0, got ", p.blur_radius);
  if (face_verts.is_cpu()) {
    // The kernels index face_verts with these; on the GPU the Python layer guarantees them.
    const auto first = mesh_first_face.accessor<int64_t, 1>();
    const auto num = mesh_num_faces.accessor<int64_t, 1>();
    for (int n = 0; n < p.num_meshes; ++n)
      TORCH_CHECK(first[n] >= 0 && num[n] >= 0 && first[n] + num[n] <= p.num_faces, "mesh ", n,
                  " has faces [", first[n], ", ", first[n] + num[n], ") outside face_verts (",
                  p.num_faces, " faces)");
  }
}

// Asks Linux to back a large new CPU buffer with 2 MB pages before it is first written: the
// unfused fragments are hundreds of MB, and faulting them in 4 KB at a time costs more than the
// rasterization itself. Only a hint; elsewhere nothing happens.
inline void advise_huge_pages(const torch::Tensor& t) {
#ifdef __linux__
  if (!t.is_cpu()) return;
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t first = (begin + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t last = (begin + t.nbytes()) & ~(kHuge - 1);
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
#endif
}

inline RasterizeParams make_params(const torch::Tensor& face_verts, int64_t num_meshes,
                                   int64_t height, int64_t width, int64_t faces_per_pixel,
                                   double blur_radius, bool perspective_correct,
                                   bool clip_barycentric, bool cull_backfaces, double sigma) {
  RasterizeParams p;
  p.num_meshes = int(num_meshes);
  p.num_faces = int(face_verts.size(0));
  p.height = int(height);
  p.width = int(width);
  p.faces_per_pixel = int(faces_per_pixel);
  p.blur_radius = blur_radius;
  p.perspective_correct = perspective_correct;
  p.clip_barycentric = clip_barycentric;
  p.cull_backfaces = cull_backfaces;
  p.sigma = sigma;
  return p;
}

}  // namespace lib3dr
