"""lib3dr.loss: chamfer_distance and the mesh regularisers, against values derived by hand and brute force."""
import math

import pytest
import torch

from lib3dr import loss as loss_module
from lib3dr.loss import chamfer_distance, mesh_edge_loss, mesh_laplacian_smoothing, mesh_normal_consistency
from lib3dr.structures import Meshes
from lib3dr.utils import ico_sphere

D64 = torch.float64
# float64 values built from a few dozen roundings of numbers of size <= 10: 1e-12 is far above their error.
TOL = 1e-12


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


def tetrahedron():
    """Regular tetrahedron centred at 0: |v| = sqrt(3), edges 2 sqrt(2), faces wound outwards."""
    verts = torch.tensor([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=D64)
    return verts, torch.tensor([[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]])


def hinge(b):
    """Two triangles on the edge (0,0,0)-(1,0,0): one with apex (0.5, 1, 0), the other with apex b."""
    verts = torch.tensor([[0, 0, 0], [1, 0, 0], [0.5, 1, 0], b], dtype=D64)
    return verts, torch.tensor([[0, 1, 2], [1, 0, 3]])


def hexagon_fan():
    """Six equilateral triangles around the origin; ring vertices at distance 1, centre last."""
    angles = torch.arange(6, dtype=D64) * math.pi / 3
    verts = torch.cat([torch.stack([angles.cos(), angles.sin(), 0 * angles], 1), torch.zeros(1, 3, dtype=D64)])
    faces = torch.tensor([[6, i, (i + 1) % 6] for i in range(6)])
    return verts, faces


def mesh(verts_faces):
    return Meshes([verts_faces[0]], [verts_faces[1]])


def bumpy_sphere():
    """A level-1 ico-sphere with randomly moved vertices: no symmetry left to hide a wrong term."""
    sphere = ico_sphere(1)
    verts = sphere.verts_packed().to(D64)
    return verts + 0.1 * torch.randn_like(verts), sphere.faces_packed()


# ------------------------------------------------------------------------------------------ edge loss


def test_edge_loss_of_tetrahedron_by_hand():
    m = mesh(tetrahedron())
    assert abs(float(mesh_edge_loss(m)) - 8) < TOL  # every edge is 2 sqrt(2) long
    assert abs(float(mesh_edge_loss(m, target_length=1.0)) - (2 * math.sqrt(2) - 1) ** 2) < TOL


def test_edge_loss_of_hinge_by_hand():
    # Edges of length 1 (the shared one), and four of length sqrt(1.25) (to the apexes): mean of squares.
    m = mesh(hinge([0.5, 0, 1]))
    assert abs(float(mesh_edge_loss(m)) - (1 + 4 * 1.25) / 5) < TOL


# ------------------------------------------------------------------------------------ Laplacian smoothing


@pytest.mark.parametrize("method, expected", [
    ("uniform", 4 * math.sqrt(3) / 3),  # delta_i = (others' centroid = -v_i / 3) - v_i, |v_i| = sqrt(3)
    ("cot", 4 * math.sqrt(3) / 3),  # all angles 60 degrees: equal weights, so the same centroid
    ("cotcurv", math.sqrt(3) / 9),  # |(2 / sqrt 3) sum_j (v_j - v_i)| = 8 over 4 A_i = 4 * 3 * 2 sqrt(3)
])
def test_laplacian_of_tetrahedron_by_hand(method, expected):
    assert abs(float(mesh_laplacian_smoothing(mesh(tetrahedron()), method)) - expected) < TOL


@pytest.mark.parametrize("method, expected", [
    # The centre is its neighbours' centroid (delta 0). A ring vertex: uniform weights 1/3 to the centre and
    # its two ring neighbours, whose sum is v_i: delta = v_i / 3 - v_i; six of them over 7 vertices.
    ("uniform", 6 * (2 / 3) / 7),
    # cot: weight 2/sqrt(3) to the centre (two 60-degree angles), 1/sqrt(3) to each ring neighbour (boundary
    # edges, one face): delta = (2 * 0 + v_i) / 4 - v_i.
    ("cot", 6 * (3 / 4) / 7),
    # cotcurv: sum_j w_ij (v_j - v_i) = -sqrt(3) v_i, 4 A_i = 4 * 2 * sqrt(3)/4: delta = -v_i / 2.
    ("cotcurv", 6 * (1 / 2) / 7),
])
def test_laplacian_of_flat_hexagon_fan_by_hand(method, expected):
    assert abs(float(mesh_laplacian_smoothing(mesh(hexagon_fan()), method)) - expected) < TOL


def test_laplacian_of_a_vertex_off_its_neighbours_centroid_by_hand():
    # Lift the fan's centre by h: its own term is |(0, 0, -h)| = h (0 at the centroid, as the fan test has it),
    # and each ring vertex's delta becomes -2/3 v_i + (0, 0, h/3), of length sqrt(4/9 + h^2/9).
    verts, faces = hexagon_fan()
    h = 0.5
    verts[6, 2] = h
    expected = (h + 6 * math.sqrt(4 / 9 + h * h / 9)) / 7
    assert abs(float(mesh_laplacian_smoothing(Meshes([verts], [faces]))) - expected) < TOL


def test_cot_laplacian_vanishes_inside_any_flat_patch():
    # An irregular fan: ring vertices at random angles and radii around an off-centre inner vertex. The
    # cotangent Laplacian reproduces linear functions, so the inner vertex's delta is 0 ("uniform"'s is not).
    angles = (torch.arange(7, dtype=D64) + 0.8 * torch.rand(7, dtype=D64)) * 2 * math.pi / 7  # gaps < pi
    radii = 1 + torch.rand(7, dtype=D64)
    ring = torch.stack([radii * angles.cos(), radii * angles.sin(), 0 * angles], 1)
    verts = torch.cat([ring, torch.tensor([[0.1, -0.2, 0.0]], dtype=D64)])
    faces = torch.tensor([[7, i, (i + 1) % 7] for i in range(7)])
    W, inv_areas = loss_module._cot_weights(verts, faces)
    total = torch.sparse.sum(W, dim=1).to_dense()[:, None]
    cot_delta = torch.sparse.mm(W, verts) - total * verts
    assert cot_delta[7].abs().max() < TOL
    uniform_delta = Meshes([verts], [faces]).laplacian_packed() @ verts
    assert uniform_delta[7].abs().max() > 1e-3


def test_cot_weights_are_constants_for_autograd(monkeypatch):
    """PyTorch3D treats the cotangent weights as constants; the gradient must be the frozen-weights one."""
    verts, faces = bumpy_sphere()
    for method in ("cot", "cotcurv"):
        v = verts.clone().requires_grad_()
        (free,) = torch.autograd.grad(mesh_laplacian_smoothing(Meshes([v], [faces]), method), v)
        frozen_weights = loss_module._cot_weights(verts, faces)
        with monkeypatch.context() as patch:
            patch.setattr(loss_module, "_cot_weights", lambda *_: frozen_weights)
            (frozen,) = torch.autograd.grad(mesh_laplacian_smoothing(Meshes([v], [faces]), method), v)
            # and that gradient is right: finite differences with the weights held fixed
            assert torch.autograd.gradcheck(lambda x: mesh_laplacian_smoothing(Meshes([x], [faces]), method),
                                            verts.clone().requires_grad_())
        assert torch.allclose(free, frozen, rtol=0, atol=TOL)


# ---------------------------------------------------------------------------------- normal consistency


@pytest.mark.parametrize("apex_b, expected", [
    ([0.5, -1, 0], 0.0),  # coplanar, on opposite sides of the edge: 1 - cos 0
    ([0.5, 0, 1], 1.0),  # folded at 90 degrees: 1 - cos 90
    ([0.5, 1, 0], 2.0),  # folded flat onto the first face: 1 - cos 180
])
def test_normal_consistency_of_hinge_by_hand(apex_b, expected):
    verts, faces = hinge(apex_b)
    assert abs(float(mesh_normal_consistency(Meshes([verts], [faces]))) - expected) < TOL
    flipped = faces.clone()
    flipped[1] = flipped[1].flip(0)  # the measure is geometric: the second face's winding does not matter
    assert abs(float(mesh_normal_consistency(Meshes([verts], [flipped]))) - expected) < TOL


def test_normal_consistency_of_tetrahedron_by_hand():
    # Outward normals of adjacent faces meet at pi - acos(1/3) (the dihedral angle is acos(1/3)): 1 + 1/3.
    assert abs(float(mesh_normal_consistency(mesh(tetrahedron()))) - 4 / 3) < TOL


def test_normal_consistency_counts_every_pair_on_a_shared_edge():
    # Three fins on one edge: three pairs; the fins at 0, 90 and 180 degrees (apexes +y, +z, -y).
    verts = torch.tensor([[0, 0, 0], [1, 0, 0], [0.5, 1, 0], [0.5, 0, 1], [0.5, -1, 0]], dtype=D64)
    faces = torch.tensor([[0, 1, 2], [0, 1, 3], [0, 1, 4]])
    # Pairs (+y, +z): 90 degrees -> 1; (+y, -y): flat -> 0; (+z, -y): 90 degrees -> 1.
    assert abs(float(mesh_normal_consistency(Meshes([verts], [faces]))) - 2 / 3) < TOL


def test_normal_consistency_without_shared_edges_is_zero():
    single = Meshes([torch.eye(3, dtype=D64)], [torch.tensor([[0, 1, 2]])])
    assert mesh_normal_consistency(single).item() == 0


# ------------------------------------------------------------------------- batches, empty meshes, gradients


def _batch_and_parts():
    parts = [tetrahedron(), hinge([0.5, 0.3, 0.8]), bumpy_sphere(),
             (torch.zeros(0, 3, dtype=D64), torch.zeros(0, 3, dtype=torch.int64))]
    return Meshes([v for v, _ in parts], [f for _, f in parts]), parts


@pytest.mark.parametrize("loss_fn", [
    mesh_edge_loss, lambda m: mesh_edge_loss(m, 0.7), mesh_normal_consistency,
    mesh_laplacian_smoothing, lambda m: mesh_laplacian_smoothing(m, "cot"),
    lambda m: mesh_laplacian_smoothing(m, "cotcurv"),
])
def test_heterogeneous_batch_is_the_mean_of_its_meshes(loss_fn):
    batch, parts = _batch_and_parts()
    # Each mesh counts 1/N, the empty one (loss 0) included, as PyTorch3D.
    per_mesh = [float(loss_fn(Meshes([v], [f]))) if len(f) else 0.0 for v, f in parts]
    assert abs(float(loss_fn(batch)) - sum(per_mesh) / len(parts)) < TOL


@pytest.mark.parametrize("loss_fn", [mesh_edge_loss, mesh_laplacian_smoothing, mesh_normal_consistency])
def test_empty_batch_gives_a_differentiable_zero(loss_fn):
    empty = Meshes([torch.zeros(0, 3)], [torch.zeros(0, 3, dtype=torch.int64)])
    value = loss_fn(empty)
    assert value.item() == 0 and value.requires_grad
    value.backward()


@pytest.mark.parametrize("loss_fn", [
    lambda m: mesh_edge_loss(m, 0.3), mesh_normal_consistency, mesh_laplacian_smoothing,
])
def test_mesh_losses_gradcheck(loss_fn):
    batch, parts = _batch_and_parts()
    faces = [f for _, f in parts]
    verts = [v.clone().requires_grad_() for v, _ in parts[:3]]
    empty = parts[3][0]
    assert torch.autograd.gradcheck(lambda *v: loss_fn(Meshes([*v, empty], faces)), verts)


def test_laplacian_rejects_unknown_method():
    with pytest.raises(ValueError, match="method"):
        mesh_laplacian_smoothing(mesh(tetrahedron()), "cotangent")


# --------------------------------------------------------------------------------------------- chamfer


def _clouds(dtype=D64):
    """Padded clouds with NaN padding (which must be ignored), their lengths and normals."""
    x, y = torch.randn(3, 7, 3, dtype=dtype), torch.randn(3, 5, 3, dtype=dtype)
    xn, yn = torch.randn(3, 7, 3, dtype=dtype), torch.randn(3, 5, 3, dtype=dtype)
    x_lengths, y_lengths = torch.tensor([7, 4, 1]), torch.tensor([5, 2, 3])
    for cloud, normals, lengths in ((x, xn, x_lengths), (y, yn, y_lengths)):
        pad = torch.arange(cloud.shape[1]) >= lengths[:, None]
        cloud[pad], normals[pad] = float("nan"), float("nan")
    return x, y, x_lengths, y_lengths, xn, yn


def _brute_one_way(a, b, an, bn, norm, abs_cosine):
    """Per-point distances from a (P, D) to its nearest point of b (Q, D), and the normal terms."""
    d = (a[:, None] - b[None]).abs().sum(-1) if norm == 1 else ((a[:, None] - b[None]) ** 2).sum(-1)
    dist, j = d.min(dim=1)
    cos = torch.nn.functional.cosine_similarity(an, bn[j], dim=1, eps=1e-6)
    return dist, 1 - (cos.abs() if abs_cosine else cos)


def _brute_chamfer(x, y, xl, yl, xn, yn, weights, batch_reduction, point_reduction, norm, single, abs_cosine):
    """chamfer_distance's documented formula, cloud by cloud, with Python loops."""
    dist_n, normal_n = [], []
    for n in range(len(x)):
        a, b, an, bn = x[n, :xl[n]], y[n, :yl[n]], xn[n, :xl[n]], yn[n, :yl[n]]
        directions = [_brute_one_way(a, b, an, bn, norm, abs_cosine)]
        if not single:
            directions.append(_brute_one_way(b, a, bn, an, norm, abs_cosine))
        w = 1.0 if weights is None else weights[n]
        for out, which in ((dist_n, 0), (normal_n, 1)):
            reduced = [{"mean": t[which].mean(), "sum": t[which].sum(), "max": t[which].max()}[point_reduction]
                       for t in directions]
            out.append(w * (max(reduced) if point_reduction == "max" else sum(reduced)))
    results = []
    for per_cloud in (torch.stack(dist_n), torch.stack(normal_n)):
        if batch_reduction == "sum":
            per_cloud = per_cloud.sum()
        elif batch_reduction == "mean":
            per_cloud = per_cloud.sum() / (len(x) if weights is None else weights.sum())
        results.append(per_cloud)
    return results


@pytest.mark.parametrize("batch_reduction", ["mean", "sum", None])
@pytest.mark.parametrize("point_reduction", ["mean", "sum", "max"])
@pytest.mark.parametrize("norm", [1, 2])
@pytest.mark.parametrize("single", [False, True])
def test_chamfer_against_brute_force(batch_reduction, point_reduction, norm, single):
    x, y, xl, yl, xn, yn = _clouds()
    weights = torch.tensor([0.5, 2.0, 1.0], dtype=D64)
    for w in (None, weights):
        normals = {} if point_reduction == "max" else dict(x_normals=xn, y_normals=yn)
        dist, normal = chamfer_distance(x, y, xl, yl, weights=w, batch_reduction=batch_reduction,
                                        point_reduction=point_reduction, norm=norm, single_directional=single,
                                        **normals)
        want_dist, want_normal = _brute_chamfer(x, y, xl, yl, xn, yn, w, batch_reduction, point_reduction, norm,
                                                single, True)
        assert torch.allclose(dist, want_dist, rtol=0, atol=TOL)
        if point_reduction == "max":
            assert normal is None
        else:
            assert torch.allclose(normal, want_normal, rtol=0, atol=TOL)


def test_chamfer_signed_cosine_and_per_point_terms():
    x, y, xl, yl, xn, yn = _clouds()
    (dx, dy), (nx, ny) = chamfer_distance(x, y, xl, yl, xn, yn, batch_reduction=None, point_reduction=None,
                                          abs_cosine=False)
    assert dx.shape == (3, 7) and dy.shape == (3, 5)
    for n in range(3):
        want_d, want_n = _brute_one_way(x[n, :xl[n]], y[n, :yl[n]], xn[n, :xl[n]], yn[n, :yl[n]], 2, False)
        assert torch.allclose(dx[n, :xl[n]], want_d, rtol=0, atol=TOL)
        assert torch.allclose(nx[n, :xl[n]], want_n, rtol=0, atol=TOL)
        assert (dx[n, xl[n]:] == 0).all() and (nx[n, xl[n]:] == 0).all()  # padding gives 0, not NaN
        assert (dy[n, yl[n]:] == 0).all() and (ny[n, yl[n]:] == 0).all()
    single, _ = chamfer_distance(x, y, xl, yl, batch_reduction=None, point_reduction=None, single_directional=True)
    assert torch.equal(single, dx)


def test_chamfer_defaults_without_lengths_and_zero_weights():
    x, y = torch.randn(2, 6, 3, dtype=D64), torch.randn(2, 4, 3, dtype=D64)
    dist, normal = chamfer_distance(x, y)
    want, _ = _brute_chamfer(x, y, [6, 6], [4, 4], x, y, None, "mean", "mean", 2, False, True)
    assert normal is None and abs(float(dist) - float(want)) < TOL
    zero, _ = chamfer_distance(x, y, weights=torch.zeros(2, dtype=D64))
    assert float(zero) == 0


def test_chamfer_gradcheck_with_padding_and_normals():
    x, y, xl, yl, xn, yn = _clouds()
    # Replace the NaN padding by numbers: gradcheck perturbs every entry, and padding must get zero gradient.
    x, y, xn, yn = (torch.nan_to_num(t, nan=0.25).requires_grad_() for t in (x, y, xn, yn))
    assert torch.autograd.gradcheck(lambda *a: torch.stack(chamfer_distance(a[0], a[1], xl, yl, a[2], a[3])),
                                    (x, y, xn, yn))


def test_chamfer_nan_padding_gives_finite_gradients():
    x, y, xl, yl, xn, yn = _clouds()
    for t in (x, y, xn, yn):
        t.requires_grad_()
    dist, normal = chamfer_distance(x, y, xl, yl, xn, yn)
    (dist + normal).backward()
    for t, lengths in ((x, xl), (y, yl), (xn, xl), (yn, yl)):
        pad = torch.arange(t.shape[1]) >= lengths[:, None]
        assert torch.isfinite(t.grad).all() and (t.grad[pad] == 0).all()


def test_chamfer_rejects_bad_arguments():
    x = torch.randn(2, 4, 3)
    with pytest.raises(ValueError, match="batch_reduction=None"):
        chamfer_distance(x, x, point_reduction=None)
    with pytest.raises(ValueError, match="normals"):
        chamfer_distance(x, x, x_normals=x, y_normals=x, point_reduction="max")
    with pytest.raises(ValueError, match="weights"):
        chamfer_distance(x, x, weights=-torch.ones(2))
    with pytest.raises(ValueError, match="agree"):
        chamfer_distance(x, torch.randn(3, 4, 3))
