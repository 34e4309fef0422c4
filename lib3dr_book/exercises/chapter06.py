"""Visible checks for chapter 6's exercises (shape and colours fitted to images).

Exercise 6.1 ``check_edge_loss(edge_loss)``: the mean squared deviation of the edge lengths from
a target, checked on a tetrahedron, a cube and a single edge worked out by hand, on invariances (moving,
turning, splitting the edges into two halves) and with ``gradcheck``.
Exercise 6.2 ``check_uniform_laplacian(uniform_laplacian)``: each vertex's neighbours' centroid
minus the vertex, checked on a pyramid worked out by hand and by moving one vertex at a time.
Exercise 6.3 ``check_psnr(psnr)``: the peak signal-to-noise ratio of an image in [0, 1], checked
on images whose error is worked out by hand.

Each check raises ``AssertionError`` saying what is wrong and returns True when the answer passes.
The answers take plain tensors (vertices and edges, images), and the library's (or
scikit-image's) own function may not stand in for them. They hold no answers; the chapter's
hidden tests decide the points.
"""
import math

import torch

from lib3dr_book.exercises import shortcuts

EDGE_SHORTCUTS = ("lib3dr.loss.mesh_edge_loss",)
LAPLACIAN_SHORTCUTS = ("lib3dr.loss.mesh_laplacian_smoothing", "lib3dr.structures.Meshes.laplacian_packed")
PSNR_SHORTCUTS = ("skimage.metrics.peak_signal_noise_ratio", "skimage.metrics.mean_squared_error")

# A tetrahedron: three edges of length 1 (from the origin) and three of length sqrt(2).
_TETRAHEDRON_VERTS = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
_TETRAHEDRON_EDGES = [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]


def _random_graph(seed, num_verts=12, num_edges=30):
    """Random float64 vertices (V, 3) and distinct edges (E, 2), each pair once, every vertex on a
    ring edge (so of degree 2 or more)."""
    generator = torch.Generator().manual_seed(seed)
    verts = torch.randn(num_verts, 3, generator=generator, dtype=torch.float64)
    ring = torch.stack([torch.arange(num_verts), (torch.arange(num_verts) + 1) % num_verts], 1)
    pairs = torch.combinations(torch.arange(num_verts), 2)
    gap = pairs[:, 1] - pairs[:, 0]
    pairs = pairs[(gap != 1) & (gap != num_verts - 1)]
    extra = pairs[torch.randperm(len(pairs), generator=generator)[:num_edges - num_verts]]
    return verts, torch.cat([ring, extra])


def _rotation(seed):
    """A random rotation matrix (3, 3), float64."""
    generator = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q


def _number(value, name):
    """The float of a 0-d tensor or a float; AssertionError for anything else."""
    assert torch.is_tensor(value) or isinstance(value, float), (
        f"{name} must return a number (a 0-d tensor), got {type(value).__name__}")
    if torch.is_tensor(value):
        assert value.numel() == 1, f"{name} must return one number (a 0-d tensor), got shape {tuple(value.shape)}"
        value = float(value.detach())
    assert math.isfinite(value), f"{name} returned {value}"
    return value


# ---------------------------------------------------------------------------------------- 6.1


def check_edge_loss(edge_loss):
    """Exercise 6.1: ``edge_loss(verts, edges, target_length=0.0)`` with ``verts (V, 3)`` and
    ``edges (E, 2)`` int64 returns ``mean_e (|v_a - v_b| - target_length)^2``, differentiable
    with respect to ``verts``."""
    why = ("compute each edge's length |v_a - v_b| from verts and edges, then the mean of the squared "
           "deviations; mesh_edge_loss takes a Meshes and is what the check compares with in the tests")

    def call(verts, edges, *target):
        return shortcuts.call_honestly(edge_loss, (verts.clone(), edges.clone(), *target),
                                       targets=EDGE_SHORTCUTS, why=why)

    verts = torch.tensor(_TETRAHEDRON_VERTS, dtype=torch.float64)
    edges = torch.tensor(_TETRAHEDRON_EDGES)
    value = _number(call(verts, edges), "edge_loss")
    # By hand: (3 * 1^2 + 3 * sqrt(2)^2) / 6 = 1.5.
    if math.isclose(value, 9.0, rel_tol=1e-9):
        raise AssertionError("edge_loss returned 9 on the tetrahedron, the sum over its 6 edges: take the "
                             "mean over the edges")
    if math.isclose(value, 2.5, rel_tol=1e-9):
        raise AssertionError("edge_loss returned 2.5 on the tetrahedron (3 edges of length 1, 3 of sqrt 2), "
                             "the mean of the squared lengths squared: square the length |v_a - v_b| once, "
                             "not twice")
    if math.isclose(value, (3 + 3 * math.sqrt(2)) / 6, rel_tol=1e-9):
        raise AssertionError("edge_loss returned the mean edge length: square each length's deviation from "
                             "target_length")
    assert math.isclose(value, 1.5, rel_tol=1e-9), (
        f"on the tetrahedron (3 edges of length 1, 3 of length sqrt 2) edge_loss should be "
        f"(3 * 1 + 3 * 2) / 6 = 1.5, got {value:.6g}")
    targeted = _number(call(verts, edges, 1.0), "edge_loss")
    if math.isclose(targeted, 1.5, rel_tol=1e-9):
        raise AssertionError("edge_loss ignores its target_length argument")
    if math.isclose(targeted, 0.5, rel_tol=1e-9):
        raise AssertionError("edge_loss subtracts target_length from the mean of the squared lengths: "
                             "subtract it from each length, then square")
    expected = (math.sqrt(2) - 1) ** 2 / 2
    assert math.isclose(targeted, expected, rel_tol=1e-9), (
        f"with target_length = 1 the tetrahedron's loss is (3 * 0 + 3 * (sqrt 2 - 1)^2) / 6 = "
        f"{expected:.6f}, got {targeted:.6g}")
    single = _number(call(torch.tensor([[1.0, 1.0, 1.0], [4.0, 5.0, 1.0]], dtype=torch.float64),
                          torch.tensor([[0, 1]]), 2.0), "edge_loss")
    assert math.isclose(single, 9.0, rel_tol=1e-9), (
        f"one edge from (1, 1, 1) to (4, 5, 1) has length 5; with target_length 2 the loss is "
        f"(5 - 2)^2 = 9, got {single:.6g}")

    # A unit cube: its 12 edges have length 1 and its 4 space diagonals length sqrt(3).
    cube = torch.tensor([[x, y, z] for x in (0.0, 1.0) for y in (0.0, 1.0) for z in (0.0, 1.0)],
                        dtype=torch.float64)
    cube_edges = torch.tensor([[a, b] for a in range(8) for b in range(a + 1, 8)
                               if bin(a ^ b).count("1") in (1, 3)])
    value = _number(call(cube, cube_edges, 1.0), "edge_loss")
    expected = 4 * (math.sqrt(3) - 1) ** 2 / 16
    assert math.isclose(value, expected, rel_tol=1e-9), (
        f"on a unit cube's 12 edges (length 1) and 4 space diagonals (length sqrt 3), with target_length 1, "
        f"the loss is (12 * 0 + 4 * (sqrt 3 - 1)^2) / 16 = {expected:.6f}, got {value:.6g}")

    verts, edges = _random_graph(6)
    value = _number(call(verts, edges, 0.7), "edge_loss")
    moved = _number(call(verts @ _rotation(6).T + torch.tensor([0.3, -2.0, 1.0], dtype=torch.float64),
                         edges, 0.7), "edge_loss")
    assert math.isclose(moved, value, rel_tol=1e-9), (
        "edge_loss changed when the whole graph was turned and moved: it should depend on the edge lengths only")
    half = len(edges) // 3
    first, second = (_number(call(verts, part, 0.7), "edge_loss") for part in (edges[:half], edges[half:]))
    combined = (half * first + (len(edges) - half) * second) / len(edges)
    assert math.isclose(value, combined, rel_tol=1e-9), (
        f"on a graph of {len(edges)} edges, split into {half} and {len(edges) - half}, the loss of the whole "
        f"({value:.6g}) should be the edge-weighted mean of the two halves' ({combined:.6g}): a mean over the "
        f"edges, nothing else")
    result = call(verts.requires_grad_(True), edges, 0.7)
    assert torch.is_tensor(result) and result.requires_grad, (
        "edge_loss must return a tensor that depends on verts through autograd (no .item(), .detach() "
        "or numpy on the way): the fit needs its gradient")
    assert torch.autograd.gradcheck(lambda v: edge_loss(v, edges, 0.7), (verts,), raise_exception=False), (
        "the value is right but its gradient is not (torch.autograd.gradcheck disagrees): is part of the "
        "computation done outside autograd?")
    return True


# ---------------------------------------------------------------------------------------- 6.2


def check_uniform_laplacian(uniform_laplacian):
    """Exercise 6.2: ``uniform_laplacian(verts, edges)`` with ``verts (V, 3)`` and ``edges (E, 2)``
    (each pair listed once) returns ``(V, 3)``: ``delta_i = (1 / deg i) sum_{j ~ i} v_j - v_i``."""
    why = ("sum each vertex's neighbours (both ends of every edge) and divide by their number; "
           "mesh_laplacian_smoothing and Meshes.laplacian_packed are what the check compares with in the tests")

    def call(verts, edges):
        result = shortcuts.call_honestly(uniform_laplacian, (verts.clone(), edges.clone()),
                                         targets=LAPLACIAN_SHORTCUTS, why=why)
        assert torch.is_tensor(result), f"uniform_laplacian must return a tensor, got {type(result).__name__}"
        assert tuple(result.shape) == tuple(verts.shape), (
            f"uniform_laplacian must return one 3D vector per vertex, shape (V, 3) = {tuple(verts.shape)}, "
            f"got {tuple(result.shape)} (mesh_laplacian_smoothing takes the norms afterwards)")
        return result.detach().double()

    # A pyramid: apex 0 above the square 1-2-3-4. By hand, the apex's 4 neighbours have their
    # centroid at the origin: delta_0 = (0, 0, -1); vertex 1 = (1, 0, 0) has the neighbours 0, 2, 4:
    # delta_1 = ((0, 0, 1) + (0, 1, 0) + (0, -1, 0)) / 3 - (1, 0, 0) = (-1, 0, 1/3).
    verts = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0],
                          [0.0, -1.0, 0.0]], dtype=torch.float64)
    edges = torch.tensor([[0, 1], [0, 2], [0, 3], [0, 4], [1, 2], [2, 3], [3, 4], [1, 4]])
    result = call(verts, edges)
    apex = torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64)
    corner = torch.tensor([-1.0, 0.0, 1 / 3], dtype=torch.float64)
    got = (f"got delta_0 = {[round(x, 4) for x in result[0].tolist()]}, "
           f"delta_1 = {[round(x, 4) for x in result[1].tolist()]}")
    if torch.allclose(result[0], -apex, atol=1e-9) and torch.allclose(result[1], -corner, atol=1e-9):
        raise AssertionError("the sign is flipped: delta_i points from v_i to its neighbours' centroid, "
                             "centroid - v_i")
    if torch.allclose(result[0], torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64), atol=1e-9) and \
            torch.allclose(result[1], torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64), atol=1e-9):
        raise AssertionError(f"{got}: you sum the neighbours; divide the sum by the number of neighbours (the "
                             f"vertex's degree) to get their centroid")
    if torch.allclose(result[0], apex, atol=1e-9) and not torch.allclose(result[1], corner, atol=1e-9):
        raise AssertionError(
            f"the apex is right but vertex 1 is not ({got}, expected delta_1 = (-1, 0, 0.3333)): an edge (a, b) "
            f"makes b a neighbour of a and a a neighbour of b, and each edge is listed once")
    assert torch.allclose(result[0], apex, atol=1e-9) and torch.allclose(result[1], corner, atol=1e-9), (
        f"on the pyramid (apex 0 above the square 1-2-3-4) expected delta_0 = (0, 0, -1) and delta_1 = "
        f"(-1, 0, 1/3), {got}")

    # Moving vertex k by u changes delta_k by -u and the delta of each neighbour j by u / deg j.
    verts, edges = _random_graph(2)
    degree = torch.bincount(edges.flatten(), minlength=len(verts))
    base = call(verts, edges)
    u = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    for k in (0, 5, 11):
        moved = verts.clone()
        moved[k] += u
        change = call(moved, edges) - base
        neighbours = torch.cat([edges[edges[:, 0] == k, 1], edges[edges[:, 1] == k, 0]])
        assert torch.allclose(change[k], -u, atol=1e-9), (
            f"on a random graph, moving vertex {k} by u should change its own delta by -u "
            f"(its neighbours' centroid stays), got {[round(x, 4) for x in change[k].tolist()]} "
            f"for u = {u.tolist()}")
        for j in neighbours.tolist():
            assert torch.allclose(change[j], u / degree[j], atol=1e-9), (
                f"on a random graph, moving vertex {k} by u should change the delta of its neighbour {j} "
                f"(degree {int(degree[j])}) by u / {int(degree[j])}, got "
                f"{[round(x, 4) for x in change[j].tolist()]}: do you assume something about the degrees or "
                f"the order of the edges?")
        others = torch.ones(len(verts), dtype=torch.bool)
        others[neighbours] = False
        others[k] = False
        assert torch.allclose(change[others], torch.zeros_like(change[others]), atol=1e-9), (
            f"moving vertex {k} changed the delta of vertices that are not its neighbours")
    return True


# ---------------------------------------------------------------------------------------- 6.3


def check_psnr(psnr):
    """Exercise 6.3: ``psnr(image, reference)`` for images in [0, 1] (any shape, the same for both)
    returns ``10 log10(1 / MSE)`` in decibels, MSE over all pixels and channels."""
    why = "compute the mean squared error and 10 log10(1 / MSE) yourself with torch"

    def call(image, reference):
        return _number(shortcuts.call_honestly(psnr, (image.clone(), reference.clone()),
                                               targets=PSNR_SHORTCUTS, why=why), "psnr")

    reference = torch.full((4, 6, 3), 0.5, dtype=torch.float64)
    value = call(reference + 0.1, reference)  # every error 0.1: MSE = 0.01, PSNR = 10 log10(100) = 20 dB
    mistakes = [
        (40.0, "20 log10 goes with the RMS error (an amplitude); with the MSE (a power) it is 10 log10"),
        (10 * math.log(100), "use the base-10 logarithm (torch.log10), not the natural one"),
        (math.log(100), "use the base-10 logarithm (torch.log10), times 10: decibels"),
        (10 * math.log10(255 ** 2 / 0.01), "the images hold values in [0, 1]: the peak value is 1, not 255"),
        (-20.0, "the sign is flipped: PSNR grows as the error shrinks, 10 log10(1 / MSE)"),
        (10 * math.log10(1 / (0.01 * reference.numel())), "take the mean of the squared errors, not their sum"),
        (10.0, "the MSE is the mean of the squared errors, without a square root"),
    ]
    for wrong, hint in mistakes:
        if math.isclose(value, wrong, rel_tol=1e-6):
            raise AssertionError(f"with every pixel off by 0.1 (MSE 0.01) psnr returned {value:.4f} dB, "
                                 f"expected 20 dB: {hint}")
    assert math.isclose(value, 20.0, rel_tol=1e-6), (
        f"with every pixel off by 0.1 the MSE is 0.01 and the PSNR 10 log10(1 / 0.01) = 20 dB, got {value:.4f}")
    half = reference.clone()
    half[:2] += 0.2  # half of the pixels off by 0.2: MSE = 0.04 / 2
    value = call(half, reference)
    expected = 10 * math.log10(2 / 0.04)
    assert math.isclose(value, expected, rel_tol=1e-6), (
        f"with half of the pixels off by 0.2 (MSE 0.02) the PSNR is {expected:.4f} dB, got {value:.4f}: "
        f"the mean runs over all pixels and channels")
    generator = torch.Generator().manual_seed(3)
    reference = torch.rand(16, 12, 3, generator=generator, dtype=torch.float64)
    image = (reference + 0.1 * torch.randn(16, 12, 3, generator=generator, dtype=torch.float64)).clamp(0, 1)
    value = call(image, reference)
    assert math.isclose(call(reference, image), value, rel_tol=1e-9), "psnr(a, b) and psnr(b, a) should agree"
    halved = call(reference + (image - reference) / 2, reference)
    assert math.isclose(halved - value, 10 * math.log10(4), rel_tol=1e-6), (
        f"halving every error should add 10 log10(4) = 6.02 dB, it added {halved - value:.4f}")
    return True
