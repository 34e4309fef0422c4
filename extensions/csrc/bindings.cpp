// lib3dr._C: the torch layer over the raw-pointer kernels. It checks every tensor (with messages
// that name the argument), allocates outputs, and calls the CPU kernels or the CUDA launchers.
// It includes no c10/cuda header, so g++ compiles it in every build; the CUDA launchers are
// linked only when WITH_CUDA is defined.
#include <torch/extension.h>

#include <cstdint>
#include <string>

#include "packed_ops.h"
#include "rasterize.h"
#include "torch_layer.h"

namespace lib3dr {
namespace {


// LIB3DR_CUDA calls kernel_cuda<scalar_t>(p, args..., stream); LIB3DR_LAUNCH calls it for CUDA
// tensors, else kernel_cpu<scalar_t>(p, args...).
#ifdef WITH_CUDA
void check_cuda(const char* error) { TORCH_CHECK(error == nullptr, "CUDA kernel failed: ", error); }
#define LIB3DR_CUDA(kernel, ...) check_cuda(kernel##_cuda<scalar_t>(p, __VA_ARGS__, stream))
#else
[[noreturn]] void no_cuda() {
  TORCH_CHECK(false, "lib3dr._C was built without CUDA; rebuild with FORCE_CUDA=1 on a machine "
                     "with nvcc and a CUDA build of torch");
}
#define LIB3DR_CUDA(kernel, ...) no_cuda()
#endif
#define LIB3DR_LAUNCH(kernel, on_cuda, ...) \
  ((on_cuda) ? LIB3DR_CUDA(kernel, __VA_ARGS__) : kernel##_cpu<scalar_t>(p, __VA_ARGS__))

std::vector<torch::Tensor> rasterize_forward(const torch::Tensor& face_verts,
                                             const torch::Tensor& mesh_first_face,
                                             const torch::Tensor& mesh_num_faces, int64_t height,
                                             int64_t width, int64_t faces_per_pixel,
                                             double blur_radius, bool perspective_correct,
                                             bool clip_barycentric, bool cull_backfaces,
                                             int64_t stream) {
  const RasterizeParams p =
      make_params(face_verts, mesh_first_face.size(0), height, width, faces_per_pixel, blur_radius,
                  perspective_correct, clip_barycentric, cull_backfaces, 0.0);
  check_inputs(p, face_verts, mesh_first_face, mesh_num_faces);
  const auto shape = std::vector<int64_t>{p.num_meshes, height, width, faces_per_pixel};
  auto pix_to_face = torch::empty(shape, face_verts.options().dtype(torch::kLong));
  auto zbuf = torch::empty(shape, face_verts.options());
  auto dists = torch::empty(shape, face_verts.options());
  auto bary = torch::empty({p.num_meshes, height, width, faces_per_pixel, 3}, face_verts.options());
  for (const auto* t : {&pix_to_face, &zbuf, &dists, &bary}) advise_huge_pages(*t);
  AT_DISPATCH_FLOATING_TYPES(face_verts.scalar_type(), "rasterize_forward", [&] {
    LIB3DR_LAUNCH(rasterize_forward, face_verts.is_cuda(), face_verts.data_ptr<scalar_t>(), mesh_first_face.data_ptr<int64_t>(), mesh_num_faces.data_ptr<int64_t>(), pix_to_face.data_ptr<int64_t>(), zbuf.data_ptr<scalar_t>(), bary.data_ptr<scalar_t>(), dists.data_ptr<scalar_t>());
  });
  return {pix_to_face, zbuf, bary, dists};
}

// Gradients of outputs the loss did not use may be None (CPU only; CUDA wants all three).
torch::Tensor rasterize_backward(const torch::Tensor& face_verts, const torch::Tensor& pix_to_face,
                                 const std::optional<torch::Tensor>& grad_zbuf,
                                 const std::optional<torch::Tensor>& grad_bary,
                                 const std::optional<torch::Tensor>& grad_dists, int64_t height,
                                 int64_t width, int64_t faces_per_pixel, double blur_radius,
                                 bool perspective_correct, bool clip_barycentric,
                                 bool cull_backfaces, int64_t stream) {
  TORCH_CHECK(pix_to_face.dim() == 4, "pix_to_face must have shape (N, H, W, K), got ",
              pix_to_face.sizes());
  const RasterizeParams p =
      make_params(face_verts, pix_to_face.size(0), height, width, faces_per_pixel, blur_radius, perspective_correct, clip_barycentric,
                  cull_backfaces, 0.0);
  const auto shape = std::vector<int64_t>{p.num_meshes, height, width, faces_per_pixel};
  TORCH_CHECK(pix_to_face.sizes() == shape, "pix_to_face must have shape ", shape, ", got ",
              pix_to_face.sizes());
  check_tensor(pix_to_face, "pix_to_face", face_verts.device());
  TORCH_CHECK(face_verts.is_cpu() || (grad_zbuf && grad_bary && grad_dists),
              "the CUDA backward needs all three gradients");
  for (const auto* t : {&grad_zbuf, &grad_dists}) {
    if (!*t) continue;
    check_tensor(**t, "grad_zbuf/grad_dists", face_verts.device());
    TORCH_CHECK((*t)->sizes() == shape && (*t)->scalar_type() == face_verts.scalar_type(),
                "gradients of zbuf and dists must match them in shape and dtype");
  }
  if (grad_bary) {
    check_tensor(*grad_bary, "grad_bary", face_verts.device());
    TORCH_CHECK(grad_bary->dim() == 5 && grad_bary->size(4) == 3 &&
                    grad_bary->scalar_type() == face_verts.scalar_type(),
                "grad_bary must match bary_coords in shape and dtype");
  }
  auto grad_face_verts = torch::empty_like(face_verts);
  AT_DISPATCH_FLOATING_TYPES(face_verts.scalar_type(), "rasterize_backward", [&] {
    auto data = [](const std::optional<torch::Tensor>& t) {
      return t ? t->data_ptr<scalar_t>() : nullptr;
    };
    LIB3DR_LAUNCH(rasterize_backward, face_verts.is_cuda(), face_verts.data_ptr<scalar_t>(), pix_to_face.data_ptr<int64_t>(), data(grad_zbuf), data(grad_bary), data(grad_dists), grad_face_verts.data_ptr<scalar_t>());
  });
  return grad_face_verts;
}

// Returns {alpha} on CUDA, whose backward recomputes everything, and on the CPU also the
// per-pixel state its backward reads: {alpha, transmittance, cut_z, cut_face} (SilhouetteState).
std::vector<torch::Tensor> soft_silhouette_forward(const torch::Tensor& face_verts,
                                                   const torch::Tensor& mesh_first_face,
                                                   const torch::Tensor& mesh_num_faces,
                                                   int64_t height, int64_t width,
                                                   int64_t faces_per_pixel, double blur_radius,
                                                   bool perspective_correct, bool clip_barycentric,
                                                   bool cull_backfaces, double sigma,
                                                   int64_t stream) {
  const RasterizeParams p =
      make_params(face_verts, mesh_first_face.size(0), height, width, faces_per_pixel, blur_radius,
                  perspective_correct, clip_barycentric, cull_backfaces, sigma);
  check_inputs(p, face_verts, mesh_first_face, mesh_num_faces);
  TORCH_CHECK(sigma > 0, "sigma must be > 0, got ", sigma);
  const auto shape = std::vector<int64_t>{p.num_meshes, height, width};
  auto alpha = torch::empty(shape, face_verts.options());
  if (face_verts.is_cuda()) {
    AT_DISPATCH_FLOATING_TYPES(face_verts.scalar_type(), "soft_silhouette_forward", [&] {
      LIB3DR_CUDA(soft_silhouette_forward, face_verts.data_ptr<scalar_t>(), mesh_first_face.data_ptr<int64_t>(), mesh_num_faces.data_ptr<int64_t>(), alpha.data_ptr<scalar_t>());
    });
    return {alpha};
  }
  auto transmittance = torch::empty(shape, face_verts.options());
  auto cut_z = torch::empty(shape, face_verts.options());
  auto cut_face = torch::empty(shape, face_verts.options().dtype(torch::kLong));
  AT_DISPATCH_FLOATING_TYPES(face_verts.scalar_type(), "soft_silhouette_forward", [&] {
    soft_silhouette_forward_cpu<scalar_t>(
        p, face_verts.data_ptr<scalar_t>(), mesh_first_face.data_ptr<int64_t>(),
        mesh_num_faces.data_ptr<int64_t>(), alpha.data_ptr<scalar_t>(),
        {transmittance.data_ptr<scalar_t>(), cut_z.data_ptr<scalar_t>(), cut_face.data_ptr<int64_t>()});
  });
  return {alpha, transmittance, cut_z, cut_face};
}

// `state` is what soft_silhouette_forward returned after alpha.
torch::Tensor soft_silhouette_backward(const torch::Tensor& face_verts,
                                       const torch::Tensor& mesh_first_face,
                                       const torch::Tensor& mesh_num_faces,
                                       const torch::Tensor& grad_alpha,
                                       const std::vector<torch::Tensor>& state, int64_t height,
                                       int64_t width, int64_t faces_per_pixel, double blur_radius,
                                       bool perspective_correct, bool clip_barycentric,
                                       bool cull_backfaces, double sigma, int64_t stream) {
  const RasterizeParams p =
      make_params(face_verts, mesh_first_face.size(0), height, width, faces_per_pixel, blur_radius,
                  perspective_correct, clip_barycentric, cull_backfaces, sigma);
  check_inputs(p, face_verts, mesh_first_face, mesh_num_faces);
  const auto shape = std::vector<int64_t>{p.num_meshes, height, width};
  check_tensor(grad_alpha, "grad_alpha", face_verts.device());
  TORCH_CHECK(grad_alpha.sizes() == shape && grad_alpha.scalar_type() == face_verts.scalar_type(),
              "grad_alpha must have shape (N, H, W) and the dtype of face_verts");
  auto grad_face_verts = torch::empty_like(face_verts);
  if (face_verts.is_cuda()) {
    TORCH_CHECK(state.empty(), "the CUDA fused silhouette keeps no state between passes");
    AT_DISPATCH_FLOATING_TYPES(face_verts.scalar_type(), "soft_silhouette_backward", [&] {
      LIB3DR_CUDA(soft_silhouette_backward, face_verts.data_ptr<scalar_t>(), mesh_first_face.data_ptr<int64_t>(), mesh_num_faces.data_ptr<int64_t>(), grad_alpha.data_ptr<scalar_t>(), grad_face_verts.data_ptr<scalar_t>());
    });
    return grad_face_verts;
  }
  TORCH_CHECK(state.size() == 3, "state must be the forward's (transmittance, cut_z, cut_face)");
  for (size_t i = 0; i < 3; ++i) {
    check_tensor(state[i], "state", face_verts.device());
    TORCH_CHECK(state[i].sizes() == shape &&
                    state[i].scalar_type() == (i == 2 ? torch::kLong : face_verts.scalar_type()),
                "state must be the forward's (transmittance, cut_z, cut_face), shaped (N, H, W)");
  }
  AT_DISPATCH_FLOATING_TYPES(face_verts.scalar_type(), "soft_silhouette_backward", [&] {
    soft_silhouette_backward_cpu<scalar_t>(
        p, face_verts.data_ptr<scalar_t>(), mesh_first_face.data_ptr<int64_t>(),
        mesh_num_faces.data_ptr<int64_t>(), grad_alpha.data_ptr<scalar_t>(),
        {state[0].data_ptr<scalar_t>(), state[1].data_ptr<scalar_t>(), state[2].data_ptr<int64_t>()},
        grad_face_verts.data_ptr<scalar_t>());
  });
  return grad_face_verts;
}

void check_fragments(const torch::Tensor& pix_to_face, const torch::Tensor& dists) {
  TORCH_CHECK(pix_to_face.is_cpu() && dists.is_cpu(),
              "the compiled silhouette blend runs on the CPU; CUDA tensors use the torch formula");
  TORCH_CHECK(pix_to_face.dim() == 4 && pix_to_face.scalar_type() == torch::kLong,
              "pix_to_face must be int64 of shape (N, H, W, K), got ", pix_to_face.scalar_type(),
              " of shape ", pix_to_face.sizes());
  TORCH_CHECK(dists.sizes() == pix_to_face.sizes(), "dists must have the shape of pix_to_face ",
              pix_to_face.sizes(), ", got ", dists.sizes());
  TORCH_CHECK(dists.scalar_type() == torch::kFloat || dists.scalar_type() == torch::kDouble,
              "dists must be float32 or float64, got ", dists.scalar_type());
  TORCH_CHECK(pix_to_face.is_contiguous() && dists.is_contiguous(),
              "pix_to_face and dists must be contiguous");
}

// {alpha, log_transmittance}, each (N, H, W).
std::vector<torch::Tensor> silhouette_blend_forward(const torch::Tensor& pix_to_face,
                                                    const torch::Tensor& dists, double sigma) {
  check_fragments(pix_to_face, dists);
  TORCH_CHECK(sigma > 0, "sigma must be > 0, got ", sigma);
  const auto shape = pix_to_face.sizes().slice(0, 3);
  auto alpha = torch::empty(shape, dists.options());
  auto log_transmittance = torch::empty(shape, dists.options());
  AT_DISPATCH_FLOATING_TYPES(dists.scalar_type(), "silhouette_blend_forward", [&] {
    silhouette_blend_forward_cpu<scalar_t>(alpha.numel(), int(pix_to_face.size(3)), sigma,
                                           pix_to_face.data_ptr<int64_t>(),
                                           dists.data_ptr<scalar_t>(), alpha.data_ptr<scalar_t>(),
                                           log_transmittance.data_ptr<scalar_t>());
  });
  return {alpha, log_transmittance};
}

torch::Tensor silhouette_blend_backward(const torch::Tensor& pix_to_face,
                                        const torch::Tensor& dists,
                                        const torch::Tensor& log_transmittance,
                                        const torch::Tensor& grad_alpha, double sigma) {
  check_fragments(pix_to_face, dists);
  const auto shape = pix_to_face.sizes().slice(0, 3);
  for (const auto* t : {&log_transmittance, &grad_alpha})
    TORCH_CHECK(t->is_cpu() && t->is_contiguous() && t->sizes() == shape &&
                    t->scalar_type() == dists.scalar_type(),
                "log_transmittance and grad_alpha must be contiguous (N, H, W) CPU tensors of the "
                "dtype of dists");
  auto grad_dists = torch::empty_like(dists);  // as large as the fragments
  advise_huge_pages(grad_dists);
  AT_DISPATCH_FLOATING_TYPES(dists.scalar_type(), "silhouette_blend_backward", [&] {
    silhouette_blend_backward_cpu<scalar_t>(
        grad_alpha.numel(), int(pix_to_face.size(3)), sigma, pix_to_face.data_ptr<int64_t>(),
        dists.data_ptr<scalar_t>(), log_transmittance.data_ptr<scalar_t>(),
        grad_alpha.data_ptr<scalar_t>(), grad_dists.data_ptr<scalar_t>());
  });
  return grad_dists;
}

bool has_cuda() {
#ifdef WITH_CUDA
  return true;
#else
  return false;
#endif
}

// How this build was made, for bug reports and for the tests of each build variant.
py::dict build_info() {
  py::dict info;
#ifdef __clang__
  info["compiler"] = "clang " __clang_version__;
#else
  info["compiler"] = "gcc " __VERSION__;
#endif
  info["row_kernels"] = row_kernel_copies();
#ifdef _OPENMP
  info["threads"] = "OpenMP (torch's)";
#else
  info["threads"] = "std::thread";
#endif
  info["cuda"] = has_cuda();
  return info;
}

}  // namespace
}  // namespace lib3dr

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using namespace lib3dr;
  const auto no_gil = py::call_guard<py::gil_scoped_release>();
  m.def("has_cuda",                 &has_cuda,                 "True when built with the CUDA kernels");
  m.def("build_info",               &build_info,               "compiler, row-loop copies, threads");
  m.def("rasterize_forward",        &rasterize_forward,        "pix_to_face, zbuf, bary, dists", no_gil);
  m.def("rasterize_backward",       &rasterize_backward,       "grad of face_verts",             no_gil);
  m.def("soft_silhouette_forward",  &soft_silhouette_forward,  "alpha and the backward's state", no_gil);
  m.def("soft_silhouette_backward", &soft_silhouette_backward, "grad of face_verts",             no_gil);
  m.def("silhouette_blend_forward", &silhouette_blend_forward, "alpha, log_transmittance",       no_gil);
  m.def("silhouette_blend_backward", &silhouette_blend_backward, "grad of dists",                no_gil);
  // The soft shaders' packed fragments (packed_ops.h), CPU only.
  m.def("rasterize_packed_forward", &rasterize_packed_forward, "packed fragments, image by image", no_gil);
  m.def("rasterize_packed_backward", &rasterize_packed_backward, "grad of face_verts",           no_gil);
  m.def("softmax_blend_weights",    &softmax_blend_weights,    "kept fragments and their weights", no_gil);
  m.def("softmax_blend_forward",    &softmax_blend_forward,    "rgba (N * H * W, C + 1)",        no_gil);
  m.def("softmax_blend_backward",   &softmax_blend_backward,   "grads of colors, zbuf, dists",   no_gil);
  m.def("phong_lighting_forward",   &phong_lighting_forward,   "colours of packed fragments",    no_gil);
  m.def("phong_lighting_backward",  &phong_lighting_backward,  "grads of the lighting's inputs", no_gil);
  m.def("interpolate_forward",      &interpolate_forward,      "attributes at packed fragments", no_gil);
  m.def("interpolate_backward",     &interpolate_backward,     "grads of bary, face attributes", no_gil);
}
