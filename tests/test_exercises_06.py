"""The exercises of chapter 6: the visible checks (lib3dr_book.exercises.chapter06) accept right
answers and reject wrong ones with a message that says what is wrong, the library's (and
scikit-image's) own functions do not pass for the student's work, and the hidden tests (in the
chapter's test cells) reject what slips past the visible checks."""
import math

import pytest
import torch
from chapter_cells import answer, hidden_tests_reject, rejects, run_tests

from lib3dr.structures import Meshes
from lib3dr.utils import ico_sphere
from lib3dr_book.exercises import chapter06


def lengths(verts, edges):
    return (verts[edges[:, 0]] - verts[edges[:, 1]]).norm(dim=1)


# ------------------------------------------------------------------------------- 6.1 edge loss

def test_edge_loss_accepts_the_instructors_answer_and_another_form():
    instructor = answer("06", "ex6_1_answer")["edge_loss"]
    assert chapter06.check_edge_loss(instructor) is True
    run_tests("06", "ex6_1_tests", edge_loss=instructor)

    def via_squares(verts, edges, target_length=0.0):
        d = verts[edges[:, 0]] - verts[edges[:, 1]]
        squared = (d * d).sum(1)
        return (squared - 2 * target_length * squared.sqrt() + target_length ** 2).sum() / len(edges)

    assert chapter06.check_edge_loss(via_squares) is True
    run_tests("06", "ex6_1_tests", edge_loss=via_squares)


def test_edge_loss_agrees_with_the_library():
    from lib3dr.loss import mesh_edge_loss
    instructor = answer("06", "ex6_1_answer")["edge_loss"]
    mesh = ico_sphere(2)
    for target in (0.0, 0.5):
        # float32 means of 480 squares of order-1 numbers, in another order: a few ulps relative
        assert math.isclose(instructor(mesh.verts_packed(), mesh.edges_packed(), target).item(),
                            mesh_edge_loss(mesh, target_length=target).item(), rel_tol=1e-5)


def test_edge_loss_rejects_wrong_answers_and_the_library():
    def summed(verts, edges, target_length=0.0):
        return ((lengths(verts, edges) - target_length) ** 2).sum()

    def squared_twice(verts, edges, target_length=0.0):
        return ((lengths(verts, edges) ** 2 - target_length) ** 2).mean()

    def not_squared(verts, edges, target_length=0.0):
        return (lengths(verts, edges) - target_length).abs().mean()

    def ignores_target(verts, edges, target_length=0.0):
        return (lengths(verts, edges) ** 2).mean()

    def target_outside(verts, edges, target_length=0.0):
        return (lengths(verts, edges) ** 2).mean() - target_length

    def detached(verts, edges, target_length=0.0):
        return ((lengths(verts.detach(), edges) - target_length) ** 2).mean()

    def as_float(verts, edges, target_length=0.0):
        return ((lengths(verts, edges) - target_length) ** 2).mean().item()

    def with_the_library(verts, edges, target_length=0.0):
        from lib3dr.loss import mesh_edge_loss
        faces = torch.tensor([[0, 1, 2]])  # any face: the loss reads the edges of the faces
        return mesh_edge_loss(Meshes([verts], [faces]), target_length)

    rejects(chapter06.check_edge_loss, summed, "mean over the edges")
    rejects(chapter06.check_edge_loss, squared_twice, "once, not twice")
    rejects(chapter06.check_edge_loss, not_squared, "square each length")
    rejects(chapter06.check_edge_loss, ignores_target, "ignores its target_length")
    rejects(chapter06.check_edge_loss, target_outside, "subtract it from each length")
    rejects(chapter06.check_edge_loss, detached, "autograd")
    rejects(chapter06.check_edge_loss, as_float, "autograd")
    rejects(chapter06.check_edge_loss, lambda verts, edges, target_length=0.0: lengths(verts, edges), "one number")
    rejects(chapter06.check_edge_loss, with_the_library, "mesh_edge_loss")

    def tetrahedron_only(verts, edges, target_length=0.0):  # right on the hand-made cases, wrong in general
        value = ((lengths(verts, edges) - target_length) ** 2).mean()
        return value if len(edges) <= 6 else value * 1.01

    rejects(chapter06.check_edge_loss, tetrahedron_only, "unit cube")


# ---------------------------------------------------------------------------- 6.2 the Laplacian

def test_uniform_laplacian_accepts_right_answers_and_matches_the_library():
    instructor = answer("06", "ex6_2_answer")["uniform_laplacian"]
    assert chapter06.check_uniform_laplacian(instructor) is True
    run_tests("06", "ex6_2_tests", uniform_laplacian=instructor)

    def dense(verts, edges):
        adjacency = torch.zeros(len(verts), len(verts), dtype=verts.dtype)
        adjacency[edges[:, 0], edges[:, 1]] = 1
        adjacency[edges[:, 1], edges[:, 0]] = 1
        return adjacency @ verts / adjacency.sum(1, keepdim=True) - verts

    assert chapter06.check_uniform_laplacian(dense) is True
    run_tests("06", "ex6_2_tests", uniform_laplacian=dense)
    mesh = ico_sphere(2)
    verts = mesh.verts_packed().double()
    library = torch.sparse.mm(mesh.laplacian_packed().double(), verts)
    # The same sums of 5 or 6 neighbours in float64, in another order: a few ulps of order-1 values.
    assert torch.allclose(instructor(verts, mesh.edges_packed()), library, atol=1e-12)


def test_uniform_laplacian_rejects_wrong_answers_and_the_library():
    good = answer("06", "ex6_2_answer")["uniform_laplacian"]

    def flipped(verts, edges):
        return -good(verts, edges)

    def summed(verts, edges):
        a, b = edges[:, 0], edges[:, 1]
        return torch.zeros_like(verts).index_add(0, a, verts[b]).index_add(0, b, verts[a]) - verts

    def one_way(verts, edges):
        a, b = edges[:, 0], edges[:, 1]
        total = torch.zeros_like(verts).index_add(0, a, verts[b])
        degree = torch.bincount(a, minlength=len(verts)).to(verts.dtype)
        return total / degree.clamp(min=1)[:, None] - verts

    def norms(verts, edges):
        return good(verts, edges).norm(dim=1)

    def fixed_degree(verts, edges):  # the pyramid's degrees, whatever the graph
        a, b = edges[:, 0], edges[:, 1]
        total = torch.zeros_like(verts).index_add(0, a, verts[b]).index_add(0, b, verts[a])
        return total / torch.tensor([4.0] + [3.0] * (len(verts) - 1), dtype=verts.dtype)[:, None] - verts

    def with_the_library(verts, edges):  # refused for naming laplacian_packed, before it runs
        mesh = Meshes([verts], [torch.tensor([[0, 1, 2]])])
        return torch.sparse.mm(mesh.laplacian_packed(), verts)

    rejects(chapter06.check_uniform_laplacian, flipped, "sign is flipped")
    rejects(chapter06.check_uniform_laplacian, summed, "divide the sum by the number of neighbours")
    rejects(chapter06.check_uniform_laplacian, one_way, "a neighbour of a and a a neighbour of b")
    rejects(chapter06.check_uniform_laplacian, norms, "(V, 3)")
    rejects(chapter06.check_uniform_laplacian, fixed_degree, "random graph")
    rejects(chapter06.check_uniform_laplacian, with_the_library, "laplacian_packed")


# --------------------------------------------------------------------------------------- 6.3 PSNR

def test_psnr_accepts_right_answers_and_matches_scikit_image():
    skimage_metrics = pytest.importorskip("skimage.metrics")
    instructor = answer("06", "ex6_3_answer")["psnr"]

    def as_float(image, reference):
        return -10 * math.log10(float(((image - reference) ** 2).mean()))

    for good in (instructor, as_float):
        assert chapter06.check_psnr(good) is True
        run_tests("06", "ex6_3_tests", psnr=good)
    generator = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 8, 8, 3, generator=generator, dtype=torch.float64)
    expected = skimage_metrics.peak_signal_noise_ratio(a.numpy(), b.numpy(), data_range=1.0)
    assert math.isclose(instructor(b, a).item(), expected, rel_tol=1e-12)


def test_psnr_rejects_wrong_answers_and_scikit_image():
    pytest.importorskip("skimage.metrics")

    def mse(image, reference):
        return ((image - reference) ** 2).mean()

    def with_scikit_image(image, reference):
        from skimage.metrics import peak_signal_noise_ratio
        return float(peak_signal_noise_ratio(reference.numpy(), image.numpy(), data_range=1.0))

    rejects(chapter06.check_psnr, lambda i, r: 20 * torch.log10(1 / mse(i, r)), "10 log10")
    rejects(chapter06.check_psnr, lambda i, r: 10 * torch.log(1 / mse(i, r)), "base-10")
    rejects(chapter06.check_psnr, lambda i, r: 10 * torch.log10(255 ** 2 / mse(i, r)), "not 255")
    rejects(chapter06.check_psnr, lambda i, r: 10 * torch.log10(mse(i, r)), "sign is flipped")
    rejects(chapter06.check_psnr, lambda i, r: 10 * torch.log10(1 / ((i - r) ** 2).sum()), "not their sum")
    rejects(chapter06.check_psnr, lambda i, r: 10 * torch.log10(1 / mse(i, r).sqrt()), "without a square root")
    rejects(chapter06.check_psnr, lambda i, r: [1.0], "number")
    rejects(chapter06.check_psnr, with_scikit_image, "peak_signal_noise_ratio")


# ------------------------------------------------------------------------------ the hidden tests

def test_hidden_tests_reject_answers_fitted_to_the_visible_checks():
    def edge_loss_for_small_graphs(verts, edges, target_length=0.0):
        value = ((lengths(verts, edges) - target_length) ** 2).mean()
        return value if len(edges) <= 30 else value * 1.01

    def laplacian_for_degrees_up_to_5(verts, edges):
        good = answer("06", "ex6_2_answer")["uniform_laplacian"](verts, edges)
        degree = torch.bincount(edges.flatten(), minlength=len(verts))
        return torch.where((degree <= 5)[:, None], good, 0.0)

    def psnr_of_3d_images(image, reference):
        value = 10 * torch.log10(1.0 / ((image - reference) ** 2).mean())
        return value if image.dim() == 3 else value + 1

    hidden_tests_reject("06", "ex6_1_tests", edge_loss=edge_loss_for_small_graphs)
    hidden_tests_reject("06", "ex6_2_tests", uniform_laplacian=laplacian_for_degrees_up_to_5)
    hidden_tests_reject("06", "ex6_3_tests", psnr=psnr_of_3d_images)


def test_hidden_tests_reject_the_library_when_the_visible_guard_is_gone():
    def edge_loss_with_the_library(verts, edges, target_length=0.0):
        from lib3dr.loss import mesh_edge_loss
        good = answer("06", "ex6_1_answer")["edge_loss"](verts, edges, target_length)
        mesh_edge_loss  # noqa: B018 (named: the guard refuses the reference)
        return good

    def psnr_with_scikit_image(image, reference):
        from skimage.metrics import peak_signal_noise_ratio
        return float(peak_signal_noise_ratio(reference.numpy(), image.numpy(), data_range=1.0))

    pytest.importorskip("skimage.metrics")
    hidden_tests_reject("06", "ex6_1_tests", edge_loss=edge_loss_with_the_library)
    hidden_tests_reject("06", "ex6_3_tests", psnr=psnr_with_scikit_image)
