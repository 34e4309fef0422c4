"""ico_sphere (its build time is measured in benchmarks/bench_io.py)."""
import pytest
import torch

from lib3dr.utils import ico_sphere


@pytest.mark.parametrize("level, verts, faces", [(0, 12, 20), (1, 42, 80), (3, 642, 1280), (6, 40962, 81920)])
def test_counts(level, verts, faces):
    mesh = ico_sphere(level)
    assert len(mesh) == 1
    assert mesh.num_verts_per_mesh().tolist() == [verts] and mesh.num_faces_per_mesh().tolist() == [faces]


@pytest.mark.parametrize("level", [0, 2, 4])
def test_unit_sphere_outward_and_watertight(level):
    mesh = ico_sphere(level)
    verts, faces = mesh.verts_packed(), mesh.faces_packed()
    torch.testing.assert_close(verts.norm(dim=1), torch.ones(len(verts)))  # defaults: a few ulps of 1
    # Counter-clockwise from outside: every face normal points away from the origin.
    centers = verts[faces].mean(dim=1)
    assert ((mesh.faces_normals_packed() * centers).sum(dim=1) > 0).all()
    radial = (mesh.verts_normals_packed() * verts).sum(dim=1)
    # Geometry, not rounding: the area-weighted mean of the normals of the faces around a vertex
    # tilts off the radius where those faces are not symmetric (levels >= 2), by less as the
    # faces shrink; 1 - cos(tilt) <= 1e-2 (a tilt of 8 degrees) holds with room at levels 2 and 4.
    torch.testing.assert_close(radial, torch.ones(len(verts)), atol=1e-2, rtol=0)
    # Consistent orientation: every directed edge occurs once, and its reverse once (closed, no duplicate verts).
    directed = faces[:, [[0, 1], [1, 2], [2, 0]]].reshape(-1, 2)
    keys = directed[:, 0] * len(verts) + directed[:, 1]
    reverse = directed[:, 1] * len(verts) + directed[:, 0]
    assert len(keys.unique()) == len(keys)
    assert torch.equal(keys.sort().values, reverse.sort().values)
    assert len(verts.unique(dim=0)) == len(verts)
    assert len(verts) - len(keys) // 2 + len(faces) == 2  # Euler characteristic of a sphere


def test_device_and_bad_level():
    assert ico_sphere(1, device="cpu").device == torch.device("cpu")
    with pytest.raises(ValueError):
        ico_sphere(-1)
