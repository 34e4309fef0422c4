"""Meshes, join_meshes_as_batch, TexturesVertex and TexturesUV."""
import pytest
import torch

from lib3dr.renderer.rasterizer import Fragments
from lib3dr.structures import Meshes, join_meshes_as_batch, join_meshes_as_scene
from lib3dr.renderer.textures import TexturesUV, TexturesVertex
from lib3dr.utils import ico_sphere

# Comparisons without a tolerance use assert_close's defaults for their dtype (float32: 1.3e-6
# relative plus 1e-5 absolute; float64: 1e-7 and 1e-7): closed-form results of a few operations
# on values of order 1, some ulps apart at most.


def _batch(requires_grad=False):
    """Three meshes: a square (4 verts, 2 faces), an empty mesh, a triangle (3 verts, 1 face)."""
    square = torch.tensor([[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], requires_grad=requires_grad)
    triangle = torch.tensor([[0.0, 0, 1], [0, 2, 1], [0, 0, 3]], requires_grad=requires_grad)
    verts = [square, torch.zeros(0, 3), triangle]
    faces = [torch.tensor([[0, 1, 2], [0, 2, 3]]), torch.zeros(0, 3, dtype=torch.int64), torch.tensor([[0, 1, 2]])]
    return verts, faces


def test_views_agree_on_heterogeneous_batch():
    verts, faces = _batch()
    m = Meshes(verts, faces)
    assert len(m) == 3 and not m.isempty()
    assert m.num_verts_per_mesh().tolist() == [4, 0, 3]
    assert m.num_faces_per_mesh().tolist() == [2, 0, 1]
    assert torch.equal(m.verts_packed(), torch.cat(verts))
    padded = m.verts_padded()
    assert padded.shape == (3, 4, 3)
    assert torch.equal(padded[0], verts[0]) and torch.equal(padded[2, :3], verts[2])
    assert (padded[1] == 0).all() and (padded[2, 3] == 0).all()
    for got, want in zip(m.verts_list(), verts):
        assert torch.equal(got, want)
    for got, want in zip(m.faces_list(), faces):
        assert torch.equal(got, want)
    assert torch.equal(m.faces_packed(), torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6]]))
    fp = m.faces_padded()
    assert fp.shape == (3, 2, 3) and fp.dtype == torch.int64
    assert (fp[1] == -1).all() and (fp[2, 1] == -1).all() and torch.equal(fp[2, 0], faces[2][0])
    # Packed faces index packed verts: the same triangles as the list view.
    assert torch.equal(m.verts_packed()[m.faces_packed()][2], verts[2][faces[2][0]])


def test_index_maps():
    m = Meshes(*_batch())
    assert m.mesh_to_verts_packed_first_idx().tolist() == [0, 4, 4]
    assert m.mesh_to_faces_packed_first_idx().tolist() == [0, 2, 2]
    assert m.verts_packed_to_mesh_idx().tolist() == [0, 0, 0, 0, 2, 2, 2]
    assert m.faces_packed_to_mesh_idx().tolist() == [0, 0, 2]
    idx = m.verts_padded_to_packed_idx()
    assert idx.tolist() == [0, 1, 2, 3, 8, 9, 10]
    assert torch.equal(m.verts_padded().flatten(0, 1)[idx], m.verts_packed())


def test_padded_input():
    verts = torch.rand(2, 4, 3)
    faces = torch.tensor([[[0, 1, 2], [-1, -1, -1]], [[0, 1, 2], [1, 2, 3]]])
    m = Meshes(verts, faces)
    assert m.num_verts_per_mesh().tolist() == [4, 4]
    assert m.num_faces_per_mesh().tolist() == [1, 2]
    assert torch.equal(m.faces_padded(), faces)
    assert torch.equal(m.faces_packed(), torch.tensor([[0, 1, 2], [4, 5, 6], [5, 6, 7]]))
    assert m.verts_padded() is verts
    assert torch.equal(m.verts_packed(), verts.reshape(-1, 3))


def test_empty_batch_and_empty_meshes():
    m = Meshes([], [])
    assert len(m) == 0 and m.isempty()
    assert m.verts_packed().shape == (0, 3) and m.faces_packed().shape == (0, 3)
    assert m.verts_padded().shape == (0, 0, 3) and m.get_bounding_boxes().shape == (0, 3, 2)
    only_empty = Meshes([torch.zeros(0, 3)], [torch.zeros(0, 3, dtype=torch.int64)])
    assert only_empty.isempty() and only_empty.verts_normals_packed().shape == (0, 3)


def test_normals_and_areas_on_hand_made_mesh():
    # Two triangles folded along the x axis: one in the z=0 plane (normal +z), one in the y=0 plane (normal -y).
    verts = torch.tensor([[0.0, 0, 0], [2, 0, 0], [0, 1, 0], [0, 0, 3]])
    faces = torch.tensor([[0, 1, 2], [0, 1, 3]])
    m = Meshes([verts], [faces])
    torch.testing.assert_close(m.faces_normals_packed(), torch.tensor([[0.0, 0, 1], [0, -1, 0]]))
    torch.testing.assert_close(m.faces_areas_packed(), torch.tensor([1.0, 3.0]))
    # Shared vertices 0 and 1: area-weighted sum (0,0,2) + (0,-6,0) normalised; 2 and 3 keep their face's normal.
    shared = torch.tensor([0.0, -6, 2]) / torch.tensor([0.0, -6, 2]).norm()
    want = torch.stack([shared, shared, torch.tensor([0.0, 0, 1]), torch.tensor([0.0, -1, 0])])
    torch.testing.assert_close(m.verts_normals_packed(), want)
    torch.testing.assert_close(m.verts_normals_list()[0], want)
    torch.testing.assert_close(m.verts_normals_padded()[0], want)
    assert len(m.faces_normals_list()) == 1 and m.faces_normals_padded().shape == (1, 2, 3)


def test_normals_padded_zero_fill():
    m = Meshes(*_batch())
    assert (m.faces_normals_padded()[1] == 0).all() and (m.verts_normals_padded()[2, 3] == 0).all()
    torch.testing.assert_close(m.faces_normals_list()[2], torch.tensor([[1.0, 0, 0]]))


def test_gradients_flow_to_list_and_padded_inputs():
    verts, faces = _batch(requires_grad=True)
    m = Meshes(verts, faces)
    (m.verts_packed().sum() + m.verts_padded().sum() + m.verts_normals_packed().sum()).backward()
    assert verts[0].grad is not None and verts[2].grad is not None
    assert torch.isfinite(verts[0].grad).all()
    # Views are recomputed on each call, so a second backward through new views works.
    m.verts_packed().pow(2).sum().backward()
    padded = torch.rand(2, 3, 3, requires_grad=True)
    Meshes(padded, torch.tensor([[[0, 1, 2]], [[2, 1, 0]]])).verts_list()[1].sum().backward()
    assert padded.grad[0].eq(0).all() and padded.grad[1].eq(1).all()


def test_offset_scale_update_padded():
    verts, faces = _batch()
    m = Meshes(verts, faces)
    offsets = torch.rand(7, 3, requires_grad=True)
    moved = m.offset_verts(offsets)
    torch.testing.assert_close(moved.verts_packed(), m.verts_packed() + offsets)
    moved.verts_packed().sum().backward()
    assert offsets.grad.eq(1).all()
    assert torch.equal(m.verts_packed(), torch.cat(verts))  # the original is untouched
    assert m.offset_verts_(torch.ones(3)) is m
    torch.testing.assert_close(m.verts_list()[2], verts[2] + 1)
    with pytest.raises(ValueError, match="shape"):
        m.offset_verts(torch.ones(5, 3))

    scaled = Meshes(verts, faces).scale_verts(torch.tensor([2.0, 5.0, 3.0]))
    torch.testing.assert_close(scaled.verts_list()[0], verts[0] * 2)
    torch.testing.assert_close(scaled.verts_list()[2], verts[2] * 3)
    torch.testing.assert_close(Meshes(verts, faces).scale_verts_(0.5).verts_packed(), torch.cat(verts) * 0.5)

    new = torch.rand(3, 4, 3)
    updated = Meshes(verts, faces).update_padded(new)
    torch.testing.assert_close(updated.verts_list()[2], new[2, :3])
    assert torch.equal(updated.faces_packed(), m.faces_packed())
    with pytest.raises(ValueError):
        m.update_padded(torch.rand(3, 5, 3))
    with pytest.raises(ValueError, match="floating point"):
        m.update_padded(torch.ones(3, 4, 3, dtype=torch.int64))
    # A single mesh, or meshes of one size, need no padding: the new vertices are used as given.
    one = Meshes([verts[0]], [faces[0]])
    new_one = torch.rand(1, len(verts[0]), 3, requires_grad=True)
    padded = one.update_padded(new_one).verts_padded()
    assert torch.equal(padded, new_one) and padded.data_ptr() == new_one.data_ptr()


def test_getitem_extend_clone_detach_to():
    verts, faces = _batch(requires_grad=True)
    m = Meshes(verts, faces)
    for index in (2, -1, [2], torch.tensor([2]), torch.tensor([False, False, True])):
        picked = m[index]
        assert len(picked) == 1 and torch.equal(picked.verts_packed(), verts[2])
    assert m[0:2].num_faces_per_mesh().tolist() == [2, 0]
    assert m[[2, 0]].num_verts_per_mesh().tolist() == [3, 4]
    with pytest.raises(IndexError):
        m[3]

    extended = m.extend(2)
    assert extended.num_verts_per_mesh().tolist() == [4, 4, 0, 0, 3, 3]
    assert torch.equal(extended.verts_list()[5], verts[2])

    copy = m.clone()
    assert torch.equal(copy.verts_packed(), m.verts_packed())
    assert copy.verts_list()[0] is not verts[0]
    copy.verts_packed().sum().backward()  # clone stays in the graph
    assert verts[0].grad is not None
    assert not m.detach().verts_packed().requires_grad
    assert m.to("cpu") is m and m.cpu() is m
    assert m.to("cpu", copy=True) is not m


def test_bounding_boxes():
    m = Meshes(*_batch())
    boxes = m.get_bounding_boxes()
    assert boxes.shape == (3, 3, 2)
    torch.testing.assert_close(boxes[0], torch.tensor([[0.0, 1], [0, 1], [0, 0]]))
    torch.testing.assert_close(boxes[1], torch.zeros(3, 2))
    torch.testing.assert_close(boxes[2], torch.tensor([[0.0, 0], [0, 2], [1, 3]]))


def test_join_meshes_as_batch():
    verts, faces = _batch()
    a = Meshes(verts[:1], faces[:1], TexturesVertex([torch.rand(4, 3)]))
    b = Meshes(verts[1:], faces[1:], TexturesVertex([torch.rand(0, 3), torch.rand(3, 3)]))
    joined = join_meshes_as_batch([a, b])
    assert joined.num_verts_per_mesh().tolist() == [4, 0, 3]
    assert torch.equal(joined.faces_packed(), Meshes(verts, faces).faces_packed())
    assert torch.equal(joined.textures.verts_features_packed(),
                       torch.cat([a.textures.verts_features_packed(), b.textures.verts_features_packed()]))
    assert join_meshes_as_batch([a, b], include_textures=False).textures is None
    with pytest.raises(ValueError, match="textures"):
        join_meshes_as_batch([a, Meshes(verts[1:], faces[1:])])


def test_validation_errors():
    verts, faces = _batch()
    with pytest.raises(ValueError, match="mesh 2 contain index 3"):
        Meshes(verts, faces[:2] + [torch.tensor([[0, 1, 3]])])
    with pytest.raises(ValueError, match="mesh 0 contain index -2"):
        Meshes(verts, [torch.tensor([[0, 1, -2], [0, 2, 3]])] + faces[1:])
    with pytest.raises(ValueError, match="3 face tensors"):
        Meshes(verts[:2], faces)
    with pytest.raises(ValueError, match="shape"):
        Meshes([torch.rand(4, 2)], [faces[0]])
    with pytest.raises(ValueError, match="floating point"):
        Meshes([torch.zeros(4, 3, dtype=torch.int64)], [faces[0]])
    with pytest.raises(ValueError, match="integer"):
        Meshes([verts[0]], [faces[0].float()])
    with pytest.raises(ValueError, match="both"):
        Meshes(verts, torch.zeros(3, 1, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="padding rows"):
        Meshes(torch.rand(1, 3, 3), torch.tensor([[[-1, -1, -1], [0, 1, 2]]]))
    with pytest.raises(ValueError, match="mesh 0 contain index -1"):
        Meshes(torch.rand(1, 3, 3), torch.tensor([[[0, -1, 2]]]))
    assert Meshes([verts[0]], [faces[0].int()]).faces_packed().dtype == torch.int64


def test_textures_vertex_carried_through_ops():
    verts, faces = _batch()
    features = [torch.rand(4, 3), torch.rand(0, 3), torch.rand(3, 3)]
    m = Meshes(verts, faces, textures=TexturesVertex(features))
    assert torch.equal(m.textures.verts_features_packed(), torch.cat(features))
    assert m.textures.verts_features_padded().shape == (3, 4, 3)
    assert torch.equal(m[2].textures.verts_features_packed(), features[2])
    assert torch.equal(m.extend(2).textures.verts_features_list()[1], features[0])
    assert len(m.extend(2).textures) == 6
    copy = m.clone().textures
    assert copy is not m.textures and torch.equal(copy.verts_features_list()[2], features[2])
    assert torch.equal(m.detach().textures.verts_features_packed(), torch.cat(features))
    assert m.to("cpu", copy=True).textures.device == torch.device("cpu")
    assert m.offset_verts(torch.ones(3)).textures is m.textures
    assert m.update_padded(m.verts_padded()).textures is m.textures


def test_textures_vertex_padded_takes_mesh_counts():
    verts, faces = _batch()
    padded = torch.rand(3, 4, 2)
    m = Meshes(verts, faces, textures=TexturesVertex(padded))
    assert m.textures.verts_features_packed().shape == (7, 2)
    assert torch.equal(m.textures.verts_features_list()[2], padded[2, :3])
    assert torch.equal(m[2].textures.verts_features_packed(), padded[2, :3])
    with pytest.raises(ValueError, match="largest mesh has 4 vertices"):
        Meshes(verts, faces, textures=TexturesVertex(torch.rand(3, 5, 2)))


def test_textures_vertex_mismatch_errors():
    verts, faces = _batch()
    with pytest.raises(ValueError, match="mesh 2 has 3 vertices"):
        Meshes(verts, faces, textures=TexturesVertex([torch.rand(4, 3), torch.rand(0, 3), torch.rand(5, 3)]))
    with pytest.raises(ValueError, match="holds 1 meshes"):
        Meshes(verts, faces, textures=TexturesVertex([torch.rand(4, 3)]))
    with pytest.raises(ValueError, match="last dimension"):
        TexturesVertex([torch.rand(4, 3), torch.rand(3, 2)])
    with pytest.raises(ValueError):
        TexturesVertex(torch.rand(4, 3))


def _uv_textures(maps=None):
    faces_uvs = [torch.tensor([[0, 1, 2], [0, 2, 3]]), torch.zeros(0, 3, dtype=torch.int64),
                 torch.tensor([[2, 1, 0]])]
    verts_uvs = [torch.rand(4, 2), torch.rand(1, 2), torch.rand(3, 2)]
    return TexturesUV(maps if maps is not None else torch.rand(3, 8, 16, 3), faces_uvs, verts_uvs)


def test_textures_uv_carried_through_ops():
    verts, faces = _batch()
    m = Meshes(verts, faces, textures=_uv_textures())
    tex = m.textures
    assert tex.maps_padded().shape == (3, 8, 16, 3) and len(tex.maps_list()) == 3
    assert tex.faces_uvs_padded().shape == (3, 2, 3) and tex.verts_uvs_padded().shape == (3, 4, 2)
    assert tex.faces_uvs_padded()[2, 1].eq(0).all()  # padded with 0, as PyTorch3D
    picked = m[[2, 0]].textures
    assert torch.equal(picked.maps_padded(), tex.maps_padded()[[2, 0]])
    assert torch.equal(picked.faces_uvs_list()[0], tex.faces_uvs_list()[2])
    extended = m.extend(3).textures
    assert len(extended) == 9 and torch.equal(extended.verts_uvs_list()[4], tex.verts_uvs_list()[1])
    assert extended.maps_padded().shape == (9, 8, 16, 3)
    assert torch.equal(m.clone().textures.maps_padded(), tex.maps_padded())
    joined = join_meshes_as_batch([m, m[0]])
    assert len(joined.textures) == 4 and torch.equal(joined.textures.faces_uvs_list()[3], tex.faces_uvs_list()[0])


def test_textures_uv_padded_inputs_take_mesh_counts():
    verts, faces = _batch()
    faces_uvs = torch.tensor([[[0, 1, 2], [0, 2, 3]], [[-1, -1, -1], [-1, -1, -1]], [[2, 1, 0], [-1, -1, -1]]])
    tex = TexturesUV(torch.rand(3, 4, 4, 3), faces_uvs, torch.rand(3, 4, 2))
    m = Meshes(verts, faces, textures=tex)
    assert [len(f) for f in m.textures.faces_uvs_list()] == [2, 0, 1]
    assert [len(v) for v in m.textures.verts_uvs_list()] == [4, 4, 4]


def test_textures_uv_errors():
    verts, faces = _batch()
    verts_uvs = [torch.rand(4, 2), torch.rand(1, 2), torch.rand(3, 2)]
    one_face_short = TexturesUV(torch.rand(3, 4, 4, 3), [faces[0][:1], faces[1], faces[2]], verts_uvs)
    with pytest.raises(ValueError, match="mesh 0 has 2 faces"):
        Meshes(verts, faces, textures=one_face_short)
    bad_index = TexturesUV(torch.rand(3, 4, 4, 3), [faces[0], faces[1], torch.tensor([[0, 1, 3]])], verts_uvs)
    with pytest.raises(ValueError, match="faces_uvs of mesh 2 contain index 3"):
        Meshes(verts, faces, textures=bad_index)
    with pytest.raises(ValueError, match="one size"):
        TexturesUV([torch.rand(4, 4, 3), torch.rand(5, 4, 3)], [faces[0]] * 2, [torch.rand(4, 2)] * 2)
    with pytest.raises(ValueError, match="hold 2, 1 and 1 meshes"):
        TexturesUV(torch.rand(2, 4, 4, 3), [faces[0]], [torch.rand(4, 2)])
    with pytest.raises(ValueError, match="padding_mode"):
        TexturesUV(torch.rand(1, 4, 4, 3), [faces[0]], [torch.rand(4, 2)], padding_mode="wrap")
    with pytest.raises(ValueError, match="differ in size"):
        _uv_textures().join_batch([_uv_textures(torch.rand(3, 4, 4, 3))])


# ------------------------------------------------------------------- edges, Laplacian, join_meshes_as_scene


def _tetrahedron_empty_triangle():
    """A tetrahedron (packed vertices 0-3), an empty mesh, a triangle (4-6) plus a vertex on no face (7)."""
    tetra = torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]])
    triangle = torch.tensor([[0.0, 0, 0], [2, 0, 0], [0, 2, 0], [5, 5, 5]])
    faces = [torch.tensor([[0, 1, 2], [0, 3, 1], [0, 2, 3], [1, 3, 2]]), torch.zeros(0, 3, dtype=torch.int64),
             torch.tensor([[0, 2, 1]])]
    return Meshes([tetra, torch.zeros(0, 3), triangle], faces)


def test_get_mesh_verts_faces():
    verts, faces = _batch()
    m = Meshes(verts, faces)
    v, f = m.get_mesh_verts_faces(2)
    assert torch.equal(v, verts[2]) and torch.equal(f, faces[2])
    with pytest.raises(ValueError, match="index"):
        m.get_mesh_verts_faces(3)


def test_edges_packed_and_their_index_maps():
    m = _tetrahedron_empty_triangle()
    edges = m.edges_packed()
    # All six pairs of the tetrahedron, then the triangle's three, each once with a < b, sorted.
    assert edges.tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3], [4, 5], [4, 6], [5, 6]]
    assert m.num_edges_per_mesh().tolist() == [6, 0, 3]
    assert m.mesh_to_edges_packed_first_idx().tolist() == [0, 6, 6]
    assert m.edges_packed_to_mesh_idx().tolist() == [0] * 6 + [2] * 3
    faces, face_edges = m.faces_packed(), m.faces_packed_to_edges_packed()
    for k in range(3):  # column k is the edge opposite corner k
        assert torch.equal(edges[face_edges[:, k]], faces[:, [(k + 1) % 3, (k + 2) % 3]].sort(dim=1).values)


def test_edges_of_a_closed_surface_and_of_moved_copies():
    sphere = ico_sphere(2)
    V, E, F = len(sphere.verts_packed()), len(sphere.edges_packed()), len(sphere.faces_packed())
    assert V - E + F == 2  # Euler's formula for a sphere
    assert (torch.bincount(sphere.faces_packed_to_edges_packed().flatten()) == 2).all()  # two faces per edge
    # The edges depend on the faces only: a moved copy (an optimisation step) reuses them.
    moved = sphere.offset_verts(torch.randn(V, 3))
    assert moved.edges_packed() is sphere.edges_packed()
    empty = Meshes([], [])
    assert empty.edges_packed().shape == (0, 2) and empty.num_edges_per_mesh().shape == (0,)


def test_laplacian_packed():
    m = _tetrahedron_empty_triangle()
    L = m.laplacian_packed()
    assert L.is_sparse and L.dtype == torch.float32
    want = torch.zeros(8, 8)
    want[:4, :4] = 1 / 3  # each tetrahedron vertex has 3 neighbours
    want[4:7, 4:7] = 1 / 2  # each triangle vertex 2
    want.fill_diagonal_(-1)  # and vertex 7, on no edge, only the -1
    assert torch.equal(L.to_dense(), want)
    # L v is the neighbours' centroid minus the vertex: 0 for a vertex at its neighbours' centroid.
    verts = torch.tensor([[0.0, 0, 0], [3, 0, 0], [0, 3, 0], [-3, -3, 0], [0, 0, 0]], dtype=torch.float64)
    fan = Meshes([verts], [torch.tensor([[4, 0, 1], [4, 1, 2], [4, 2, 3], [4, 3, 0]])])
    Lv = fan.laplacian_packed() @ verts
    assert fan.laplacian_packed().dtype == torch.float64
    assert torch.equal(Lv[4], torch.zeros(3, dtype=torch.float64))  # (0 + 3 - 3) / 4 sums of exact numbers
    # Sums of thirds of numbers <= 3 in two orders: a few ulps (4.4e-16) apart.
    assert torch.allclose(Lv[0], (verts[1] + verts[3] + verts[4]) / 3 - verts[0], rtol=0, atol=1e-14)


def test_join_meshes_as_scene_vertex_textures():
    verts, faces = _batch()
    features = [torch.rand(4, 3), torch.rand(0, 3), torch.rand(3, 3)]
    scene = join_meshes_as_scene(Meshes(verts, faces, TexturesVertex(features)))
    assert len(scene) == 1
    assert torch.equal(scene.verts_packed(), torch.cat(verts))
    assert torch.equal(scene.faces_packed(), torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6]]))
    assert torch.equal(scene.textures.verts_features_packed(), torch.cat(features))
    from_list = join_meshes_as_scene([Meshes(verts[:1], faces[:1]), Meshes(verts[2:], faces[2:])])
    assert torch.equal(from_list.faces_packed(), scene.faces_packed()) and from_list.textures is None
    assert join_meshes_as_scene(scene) is scene
    assert join_meshes_as_scene(Meshes(verts, faces, TexturesVertex(features)), include_textures=False).textures \
        is None


@pytest.mark.parametrize("sampling_mode", ["bilinear", "nearest"])
def test_join_meshes_as_scene_uv_textures_read_the_same_texels(sampling_mode):
    verts, faces = _batch()
    f64 = torch.float64
    uvs = [torch.rand(4, 2, dtype=f64), torch.zeros(0, 2, dtype=f64), torch.rand(3, 2, dtype=f64)]
    uvs[0][0] = torch.tensor([1.0, 1.0])  # the right edge of map 0, next to map 1 in the atlas
    textures = TexturesUV(torch.rand(3, 5, 6, 2, dtype=f64), faces, uvs, sampling_mode=sampling_mode)
    batch = Meshes(verts, faces, textures)
    scene = join_meshes_as_scene(batch)
    assert scene.textures.maps_padded().shape == (1, 5, 18, 2)
    # One fragment per face, as a pixel of the batch (image n) and of the scene (one image).
    pix_to_face = torch.tensor([[0, 1, -1], [-1, -1, -1], [2, -1, -1]]).view(3, 3, 1, 1)
    bary = torch.rand(3, 3, 1, 1, 3, dtype=f64)
    bary = bary / bary.sum(-1, keepdim=True)
    bary[0, 0] = torch.tensor([1.0, 0, 0], dtype=f64)  # exactly at that vertex (corner 0 of face 0)
    zeros = torch.zeros(3, 3, 1, 1, dtype=f64)
    want = batch.sample_textures(Fragments(pix_to_face, zeros, bary, zeros)).reshape(1, 9, 1, 1, 2)
    got = scene.sample_textures(Fragments(pix_to_face.reshape(1, 9, 1, 1), zeros.reshape(1, 9, 1, 1),
                                          bary.reshape(1, 9, 1, 1, 3), zeros.reshape(1, 9, 1, 1)))
    # float64 texel positions computed two ways differ by a few ulps of 18: far below 1e-12 of a texel.
    assert torch.allclose(got, want, rtol=0, atol=1e-12)


def test_join_meshes_as_scene_rejects_uv_textures_it_cannot_join():
    verts, faces = _batch()
    uvs = [torch.rand(4, 2), torch.zeros(0, 2), torch.rand(3, 2)]
    textures = TexturesUV(torch.rand(3, 5, 6, 2), faces, uvs, align_corners=False)
    with pytest.raises(ValueError, match="align_corners"):
        join_meshes_as_scene(Meshes(verts, faces, textures))
    uvs[2][0, 0] = 1.5  # outside the map: the lookup would read the neighbouring map in an atlas
    with pytest.raises(ValueError, match=r"UVs in \[0, 1\]"):
        join_meshes_as_scene(Meshes(verts, faces, TexturesUV(torch.rand(3, 5, 6, 2), faces, uvs)))


def test_topology_is_computed_once_for_the_batches_that_share_faces():
    from lib3dr.loss import mesh_normal_consistency
    sphere = ico_sphere(2)
    first = sphere.offset_verts(0.1 * torch.randn(len(sphere.verts_packed()), 3))
    second = sphere.offset_verts(0.1 * torch.randn(len(sphere.verts_packed()), 3))
    # What the first offset batch computed, the second (and the source) reuse.
    assert first.laplacian_packed() is second.laplacian_packed() is sphere.laplacian_packed()
    assert first.edges_packed() is second.edges_packed()
    # Keyed by dtype, and not shared with a batch built anew, whose faces may differ.
    assert sphere.offset_verts(torch.zeros(3, dtype=torch.float64)).laplacian_packed().dtype == torch.float64
    fresh = Meshes([second.verts_packed()], [second.faces_packed()])
    assert fresh.laplacian_packed() is not second.laplacian_packed()
    assert mesh_normal_consistency(fresh) == mesh_normal_consistency(second)
    assert torch.equal(fresh.laplacian_packed().to_dense(), second.laplacian_packed().to_dense())
