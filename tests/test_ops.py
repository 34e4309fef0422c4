"""lib3dr.ops: knn_points against brute force, the statistics of sample_points_from_meshes, SubdivideMeshes."""
import math

import pytest
import torch
import torch.nn.functional as F

from lib3dr import ops
from lib3dr.ops import SubdivideMeshes, knn_gather, knn_points, sample_points_from_meshes
from lib3dr.structures import Meshes
from lib3dr.renderer.textures import TexturesUV, TexturesVertex
from lib3dr.utils import ico_sphere

D64 = torch.float64
# float64 values from a few dozen roundings of numbers of size <= 10: 1e-12 is far above their error.
TOL = 1e-12


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)


# ------------------------------------------------------------------------------------------------- knn


def _clouds(D=3, dtype=D64):
    p1, p2 = torch.randn(3, 20, D, dtype=dtype), torch.randn(3, 15, D, dtype=dtype)
    lengths1, lengths2 = torch.tensor([20, 9, 0]), torch.tensor([15, 2, 7])
    p1[torch.arange(20) >= lengths1[:, None]] = float("nan")  # padding may hold anything
    p2[torch.arange(15) >= lengths2[:, None]] = float("nan")
    return p1, p2, lengths1, lengths2


def _brute_knn(p1, p2, lengths1, lengths2, K, norm):
    """Per cloud: all distances with Python loops over the clouds, sorted; zeros where nothing is found."""
    N, P1, _ = p1.shape
    dists, idx = torch.zeros(N, P1, K, dtype=p1.dtype), torch.zeros(N, P1, K, dtype=torch.int64)
    for n in range(N):
        a, b = p1[n, :lengths1[n]], p2[n, :lengths2[n]]
        d = (a[:, None] - b[None]).abs().sum(-1) if norm == 1 else ((a[:, None] - b[None]) ** 2).sum(-1)
        k = min(K, len(b))
        values, order = d.sort(dim=1)
        dists[n, :len(a), :k], idx[n, :len(a), :k] = values[:, :k], order[:, :k]
    return dists, idx


@pytest.mark.parametrize("norm", [1, 2])
@pytest.mark.parametrize("D", [3, 5])
def test_knn_against_brute_force_with_padding(norm, D):
    p1, p2, lengths1, lengths2 = _clouds(D)
    for K in (1, 4, 20):  # 4 > lengths2[1] = 2, and 20 > P2 = 15
        result = knn_points(p1, p2, lengths1, lengths2, norm=norm, K=K, return_nn=True)
        dists, idx = _brute_knn(p1, p2, lengths1, lengths2, K, norm)
        assert torch.equal(result.idx, idx)  # random points: no ties within rounding
        assert torch.allclose(result.dists, dists, rtol=0, atol=TOL)
        found = torch.arange(K) < lengths2[:, None, None].clamp(max=K)
        found = found & (torch.arange(20) < lengths1[:, None])[..., None]
        gathered = torch.nan_to_num(p2).gather(1, idx.flatten(1)[..., None].expand(-1, -1, D)).view(3, 20, K, D)
        assert torch.equal(result.knn, torch.where(found[..., None], gathered, 0.0))


def test_knn_chunks_give_the_same_answer(monkeypatch):
    p1, p2, lengths1, lengths2 = _clouds()
    whole = knn_points(p1, p2, lengths1, lengths2, K=3)
    monkeypatch.setattr(ops, "_CHUNK", 7)  # 7 scores per chunk: one p1 point at a time
    chunked = knn_points(p1, p2, lengths1, lengths2, K=3)
    assert torch.equal(whole.idx, chunked.idx) and torch.equal(whole.dists, chunked.dists)


def test_knn_float32_finds_a_neighbour_within_the_rounding_bound():
    # Ranking by |q|^2 - 2 p.q in float32 may swap near-ties: the distance found exceeds the true nearest by
    # at most a few roundings of |p|^2 + |q|^2 (bound: 4 (D + 2) 2^-24 (|p|^2 + max |q|^2), D = 3).
    p1, p2 = torch.randn(2, 500, 3) * 10, torch.randn(2, 400, 3) * 10
    found = knn_points(p1, p2).dists[..., 0].double()
    true = ((p1.double()[:, :, None] - p2.double()[:, None]) ** 2).sum(-1).min(dim=2).values
    bound = 4 * 5 * 2.0 ** -24 * ((p1.double() ** 2).sum(-1) + (p2.double() ** 2).sum(-1).max())
    assert ((found - true).abs() <= bound).all()


def test_knn_gradcheck():
    p1, p2 = torch.randn(2, 6, 3, dtype=D64, requires_grad=True), torch.randn(2, 5, 3, dtype=D64, requires_grad=True)
    lengths = torch.tensor([6, 3]), torch.tensor([5, 2])
    for norm in (1, 2):
        assert torch.autograd.gradcheck(lambda a, b: knn_points(a, b, *lengths, norm=norm, K=3).dists, (p1, p2))


def test_knn_gather_zeroes_slots_past_lengths():
    x = torch.arange(12.0).view(2, 3, 2)
    idx = torch.tensor([[[2, 0]], [[1, 0]]])
    out = knn_gather(x, idx, lengths=torch.tensor([3, 1]))
    assert torch.equal(out, torch.tensor([[[[4.0, 5], [0, 1]]], [[[8, 9], [0, 0]]]]))


def test_knn_rejects_bad_arguments():
    p = torch.randn(2, 4, 3)
    with pytest.raises(ValueError, match="agree"):
        knn_points(p, torch.randn(2, 4, 2))
    with pytest.raises(ValueError, match="lengths2"):
        knn_points(p, p, lengths2=torch.tensor([5, 1]))
    with pytest.raises(ValueError, match="norm"):
        knn_points(p, p, norm=3)


# --------------------------------------------------------------------------------------------- sampling


# Three separate triangles in the plane z = 0 with areas 1/2, 1 and 5/2, far apart along x.
_TRIANGLES = torch.tensor([[[0, 0, 0], [1, 0, 0], [0, 1, 0]],
                           [[10, 0, 0], [12, 0, 0], [10, 1, 0]],
                           [[20, 0, 0], [25, 0, 0], [20, 1, 0]]], dtype=D64)


def _triangles():
    return Meshes([_TRIANGLES.reshape(9, 3)], [torch.arange(9).view(3, 3)])


def _barycentrics(points, triangle):
    """(S, 3) barycentrics of points in the plane z = 0 with respect to a (3, 3) triangle."""
    a, b, c = triangle[:, :2]
    A = torch.stack([b - a, c - a], dim=1)  # (2, 2)
    w12 = torch.linalg.solve(A, (points[:, :2] - a).T).T
    return torch.cat([1 - w12.sum(1, keepdim=True), w12], dim=1)


def _within_binomial(count, n, p, sigmas=5):
    """|count - n p| <= 5 standard deviations of Binomial(n, p): a false alarm has probability < 6e-7."""
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_samples_per_face_proportional_to_area():
    S = 40000
    points = sample_points_from_meshes(_triangles(), S)[0]
    assert points.dtype == D64 and (points[:, 2] == 0).all()
    counts = [int(((points[:, 0] >= lo) & (points[:, 0] <= lo + 5)).sum()) for lo in (0, 10, 20)]
    assert sum(counts) == S  # every sample is on one of the triangles
    for count, area in zip(counts, (0.5, 1.0, 2.5)):
        assert _within_binomial(count, S, area / 4)


def test_samples_are_uniform_inside_a_face():
    # The midpoints split a triangle into 4 of equal area: each should get a quarter of the samples. Sampling
    # barycentrics without the sqrt (w0 = 1 - u) would put half of them in the corner triangle at v0.
    S = 40000
    one = Meshes([_TRIANGLES[2]], [torch.tensor([[0, 1, 2]])])
    w = _barycentrics(sample_points_from_meshes(one, S)[0], _TRIANGLES[2])
    assert (w > -TOL * 100).all() and (w < 1 + TOL * 100).all()  # inside, up to the solve's rounding
    corners = [int((w[:, k] > 0.5).sum()) for k in range(3)]
    middle = S - sum(corners)
    for count in corners + [middle]:
        assert _within_binomial(count, S, 0.25)


def test_sample_normals_and_vertex_textures():
    verts, faces = ico_sphere(1).verts_packed().double(), ico_sphere(1).faces_packed()
    # Features equal to the positions: interpolated at the samples' barycentrics they are the samples.
    meshes = Meshes([verts], [faces], TexturesVertex([verts.clone()]))
    points, normals, textures = sample_points_from_meshes(meshes, 500, return_normals=True, return_textures=True)
    assert torch.allclose(textures, points, rtol=0, atol=TOL)
    assert torch.allclose(normals.norm(dim=-1), torch.ones(1, 500, dtype=D64), rtol=0, atol=TOL)
    # The sphere's faces are wound outwards and small: the normal points along the position to within the
    # angle a face spans (cos > 0.9 on a level-1 sphere).
    assert ((normals * F.normalize(points, dim=-1)).sum(-1) > 0.9).all()


def test_sample_uv_textures():
    # A map whose red channel ramps from 0 at u = 0 to 1 at u = 1; with UV = the points' (x, y) on the unit
    # square, bilinear lookup of a linear ramp is exact: red = x, up to float32 roundings of values <= 1 in the
    # ramp, the UVs, the lookup and the samples: about ten of 2^-24 = 6e-8, under 1e-6.
    W = 9
    ramp = torch.linspace(0, 1, W).expand(4, W)
    maps = torch.stack([ramp, torch.zeros(4, W), torch.zeros(4, W)], dim=-1)[None]
    verts = torch.tensor([[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    meshes = Meshes([verts], [faces], TexturesUV(maps, [faces], [verts[:, :2]]))
    points, textures = sample_points_from_meshes(meshes, 300, return_textures=True)
    assert torch.allclose(textures[0, :, 0], points[0, :, 0], rtol=0, atol=1e-6)


def test_sampling_batches_with_empty_meshes_and_gradients():
    verts = _TRIANGLES.reshape(9, 3).clone().requires_grad_()
    empty = torch.zeros(0, 3, dtype=D64)
    meshes = Meshes([empty, verts], [torch.zeros(0, 3, dtype=torch.int64), torch.arange(9).view(3, 3)])
    points, normals = sample_points_from_meshes(meshes, 100, return_normals=True)
    assert points.shape == (2, 100, 3) and (points[0] == 0).all() and (normals[0] == 0).all()
    # Each sample is sum_k w_k v_k, so d(sum of x coordinates)/d(v_k) is the sum of v_k's barycentric weights:
    # over all vertices these add up to the number of samples.
    points[..., 0].sum().backward()
    assert abs(float(verts.grad[:, 0].sum()) - 100) < TOL and (verts.grad[:, 1:] == 0).all()


def test_sampling_gradcheck():
    verts, faces = ico_sphere(0).verts_packed().double(), ico_sphere(0).faces_packed()

    def sample(v):
        torch.manual_seed(1)  # the same faces and barycentrics for every evaluation
        return sample_points_from_meshes(Meshes([v], [faces]), 40, return_normals=True)

    assert torch.autograd.gradcheck(sample, verts.clone().requires_grad_())


def test_sampling_errors():
    with pytest.raises(ValueError, match="no faces"):
        sample_points_from_meshes(Meshes([torch.zeros(3, 3)], [torch.zeros(0, 3, dtype=torch.int64)]))
    with pytest.raises(ValueError, match="no textures"):
        sample_points_from_meshes(_triangles(), return_textures=True)


# ------------------------------------------------------------------------------------------ subdivision


def _canonical_faces(faces):
    """Each face rotated to start at its smallest index (keeping its winding), rows sorted: a set to compare."""
    start = faces.argmin(dim=1, keepdim=True)
    rotated = faces.gather(1, (start + torch.arange(3)) % 3)
    return rotated[torch.argsort(rotated[:, 0] * 10 ** 6 + rotated[:, 1] * 10 ** 3 + rotated[:, 2])]


def test_subdivision_counts_midpoints_and_faces():
    tetra = torch.tensor([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=D64)
    sphere = ico_sphere(0)
    meshes = Meshes([tetra, torch.randn(2, 3, dtype=D64), sphere.verts_packed().double()],
                    [torch.tensor([[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]]), torch.zeros(0, 3, dtype=torch.int64),
                     sphere.faces_packed()])
    new = SubdivideMeshes()(meshes)
    # V + E vertices (V - E + F = 2: tetrahedron 4 + 6, icosahedron 12 + 30) and 4 F faces.
    assert new.num_verts_per_mesh().tolist() == [10, 2, 42]
    assert new.num_faces_per_mesh().tolist() == [16, 0, 80]
    for n, (old, sub) in enumerate(zip(meshes.verts_list(), new.verts_list())):
        edges = meshes[n].edges_packed()
        assert torch.equal(sub[:len(old)], old)
        assert torch.allclose(sub[len(old):], (old[edges[:, 0]] + old[edges[:, 1]]) / 2, rtol=0, atol=TOL)
    # Each face becomes four with a quarter of its area and its normal (so its winding is kept).
    for n in (0, 2):
        F_n = len(meshes.faces_list()[n])
        old_areas, old_normals = meshes[n].faces_areas_packed(), meshes[n].faces_normals_packed()
        new_areas = new[n].faces_areas_packed().view(4, F_n)  # corner triangles at v0, v1, v2, then middles
        new_normals = new[n].faces_normals_packed().view(4, F_n, 3)
        assert torch.allclose(new_areas, old_areas.expand(4, -1) / 4, rtol=0, atol=TOL)
        assert torch.allclose(new_normals, old_normals.expand(4, -1, -1), rtol=0, atol=TOL)


def test_subdivided_icosphere_matches_the_next_level():
    sphere = ico_sphere(1)
    new = SubdivideMeshes()(sphere)
    level2 = ico_sphere(2)
    # ico_sphere numbers its midpoints in the same sorted edge order, then pushes them onto the sphere; float32
    # unit vectors, whose midpoints may round one ulp apart: 1e-6 is 17 ulps.
    assert torch.allclose(F.normalize(new.verts_packed(), dim=1), level2.verts_packed(), rtol=0, atol=1e-6)
    assert torch.equal(_canonical_faces(new.faces_packed()), _canonical_faces(level2.faces_packed()))


def test_subdivision_features_and_precomputed_topology():
    sphere = ico_sphere(0)
    batch = sphere.extend(3).offset_verts(torch.randn(36, 3))
    feats = torch.randn(36, 2)
    general, general_feats = SubdivideMeshes()(batch, feats)
    # Features are averaged like the vertices: subdividing the vertices as features gives the new vertices.
    _, as_feats = SubdivideMeshes()(batch, batch.verts_packed())
    assert torch.equal(as_feats, general.verts_packed())
    fixed = SubdivideMeshes(sphere)
    same, same_feats = fixed(batch, feats)
    assert torch.equal(same.verts_packed(), general.verts_packed())
    assert torch.equal(same.faces_packed(), general.faces_packed())
    assert same_feats.shape == (3, 42, 2) and torch.equal(same_feats.flatten(0, 1), general_feats)


def test_subdivision_gradients_reach_the_vertices():
    verts = ico_sphere(0).verts_packed().double().requires_grad_()
    faces = ico_sphere(0).faces_packed()
    assert torch.autograd.gradcheck(lambda v: SubdivideMeshes()(Meshes([v], [faces])).verts_packed(), verts)
