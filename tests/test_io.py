"""load_obj, load_objs_as_meshes and save_obj on the shipped meshes and on small hand-written OBJ files."""
import re
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from helpers import UNIT_ROUNDOFF

from lib3dr.io import load_obj, load_objs_as_meshes, save_obj
from lib3dr.renderer.textures import TexturesUV

DATA = Path(__file__).resolve().parents[1] / "data"
COW = DATA / "cow_mesh" / "cow.obj"
TEAPOT = DATA / "teapot.obj"

SQUARE = "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\n"  # four vertices for the face tests
U32 = UNIT_ROUNDOFF[torch.float32]
# Comparisons without a tolerance use assert_close's defaults for their dtype (float32: 1.3e-6
# relative plus 1e-5 absolute; float64: 1e-7 and 1e-7): closed-form results of a few operations
# on values of order 1, some ulps apart at most.


def write(tmp_path, text, name="mesh.obj"):
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def load_error(tmp_path, text, name="bad.obj"):
    """The message of the ValueError that loading ``text`` raises."""
    with pytest.raises(ValueError) as info:
        load_obj(write(tmp_path, text, name))
    return str(info.value)


# ---- the shipped meshes ---------------------------------------------------------------------------


def test_teapot():
    verts, faces, aux = load_obj(TEAPOT)
    assert verts.shape == (1292, 3) and verts.dtype == torch.float32
    assert faces.verts_idx.shape == (2464, 3) and faces.verts_idx.dtype == torch.int64
    assert aux.normals is not None and faces.normals_idx.min() >= 0
    assert aux.verts_uvs is None and (faces.textures_idx == -1).all()
    assert (faces.materials_idx == -1).all() and faces.materials_idx.shape == (2464,)
    assert aux.material_colors is None and aux.texture_images is None and aux.texture_atlas is None


def test_cow():
    verts, faces, aux = load_obj(str(COW))
    assert verts.shape == (2930, 3) and faces.verts_idx.shape == (5856, 3)
    assert aux.verts_uvs.shape == (3225, 2) and faces.textures_idx.max() == 3224 and faces.textures_idx.min() >= 0
    assert aux.normals is None and (faces.normals_idx == -1).all()
    assert (faces.materials_idx == 0).all()
    colors = aux.material_colors["material_1"]  # the MTL has trailing "# white" comments
    torch.testing.assert_close(colors["ambient_color"], torch.ones(3))
    torch.testing.assert_close(colors["specular_color"], torch.zeros(3))
    torch.testing.assert_close(colors["shininess"], torch.tensor([10.0]))
    image = aux.texture_images["material_1"]
    assert image.shape == (1024, 1024, 3) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1


def test_load_objs_as_meshes_on_the_cow():
    mesh = load_objs_as_meshes([COW])
    assert len(mesh) == 1 and mesh.num_verts_per_mesh().tolist() == [2930]
    assert isinstance(mesh.textures, TexturesUV)
    assert mesh.textures.maps_padded().shape == (1, 1024, 1024, 3)
    assert mesh.textures.faces_uvs_list()[0].shape == (5856, 3)
    both = load_objs_as_meshes([COW, TEAPOT], load_textures=False)
    assert both.num_faces_per_mesh().tolist() == [5856, 2464] and both.textures is None


# ---- unusual but valid files ----------------------------------------------------------------------


def test_quad_and_pentagon_are_fan_triangulated(tmp_path):
    _, faces, _ = load_obj(write(tmp_path, SQUARE + "v 0.5 2 0\nf 1 2 3 4\nf 1 2 3 4 5\n"))
    assert faces.verts_idx.tolist() == [[0, 1, 2], [0, 2, 3], [0, 1, 2], [0, 2, 3], [0, 3, 4]]


def test_vertex_texture_and_normal_formats(tmp_path):
    text = SQUARE + "vt 0 0\nvt 1 0\nvt 1 1\nvn 0 0 1\nvn 0 0 -1\n"
    text += "f 1/1 2/2 3/3\nf 1//2 3//2 4//2\nf 1/3/1 2/2/1 3/1/2\nf 2 3 4\n"
    _, faces, aux = load_obj(write(tmp_path, text))
    assert faces.textures_idx.tolist() == [[0, 1, 2], [-1, -1, -1], [2, 1, 0], [-1, -1, -1]]
    assert faces.normals_idx.tolist() == [[-1, -1, -1], [1, 1, 1], [0, 0, 1], [-1, -1, -1]]
    assert aux.verts_uvs.shape == (3, 2) and aux.normals.shape == (2, 3)


def test_negative_indices_count_back_from_the_face(tmp_path):
    text = "v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nf -3/-1 -2/-1 -1/-1\nv 5 5 5\nf -4 -2 -1\n"
    _, faces, _ = load_obj(write(tmp_path, text))
    assert faces.verts_idx.tolist() == [[0, 1, 2], [0, 2, 3]]
    assert faces.textures_idx.tolist()[0] == [0, 0, 0]


def test_comments_blank_lines_crlf_and_unknown_statements(tmp_path):
    text = "# a comment\r\n\r\no thing\r\ng group\r\ns 1\r\nvp 0.5\r\n  \r\n"
    text += "v 0 0 0 # origin\r\nv 1 0 0\r\nv 0 1 0\r\nl 1 2\r\nf 1 2 3   # the only face\r\n"
    verts, faces, aux = load_obj(write(tmp_path, text))
    assert verts.shape == (3, 3) and faces.verts_idx.tolist() == [[0, 1, 2]]


def test_file_object_and_pathlib(tmp_path):
    path = write(tmp_path, SQUARE + "f 1 2 3\n")
    with open(path) as f:
        verts, faces, _ = load_obj(f)
    assert torch.equal(verts, load_obj(path)[0]) and faces.verts_idx.shape == (1, 3)


def test_missing_mtl_warns_and_loads(tmp_path):
    with pytest.warns(UserWarning, match="nothere.mtl"):
        verts, faces, aux = load_obj(write(tmp_path, "mtllib nothere.mtl\nusemtl a\n" + SQUARE + "f 1 2 3\n"))
    assert verts.shape == (4, 3) and faces.materials_idx.tolist() == [0] and aux.material_colors is None


def test_missing_texture_image_warns_and_loads(tmp_path):
    write(tmp_path, "newmtl a\nKd 1 0 0\nmap_Kd missing.png\n", "mesh.mtl")
    text = "mtllib mesh.mtl\n" + SQUARE + "vt 0 0\nusemtl a\nf 1/1 2/1 3/1\n"
    with pytest.warns(UserWarning, match="missing.png"):
        _, _, aux = load_obj(write(tmp_path, text))
    assert aux.texture_images == {}
    torch.testing.assert_close(aux.material_colors["a"]["diffuse_color"], torch.tensor([1.0, 0, 0]))
    with pytest.warns(UserWarning):
        assert load_objs_as_meshes([tmp_path / "mesh.obj"]).textures is None


def test_several_materials(tmp_path):
    iio.imwrite(tmp_path / "red.png", np.full((4, 6, 3), [255, 0, 0], dtype=np.uint8))
    iio.imwrite(tmp_path / "grey.png", np.full((2, 2), 128, dtype=np.uint8))
    mtl = "newmtl red\nmap_Kd red.png\nKd 1 0 0\n\nnewmtl grey\nmap_Kd grey.png\nNs 5\nnewmtl unused\nKd 0 0 1\n"
    write(tmp_path, mtl, "materials.mtl")
    text = "mtllib materials.mtl\n" + SQUARE + "vt 0 0\nvt 1 0\nvt 1 1\n"
    text += "f 1/1 2/2 3/3\nusemtl red\nf 1/1 2/2 3/3\nusemtl grey\nf 1/1 3/3 4/2\nusemtl red\nf 2/1 3/2 4/3\n"
    _, faces, aux = load_obj(write(tmp_path, text))
    assert faces.materials_idx.tolist() == [-1, 0, 1, 0]
    assert list(aux.material_colors) == ["red", "grey"]  # the used ones, in order of first use
    assert aux.texture_images["red"].shape == (4, 6, 3) and aux.texture_images["grey"].shape == (2, 2, 3)
    torch.testing.assert_close(aux.texture_images["grey"], torch.full((2, 2, 3), 128 / 255))
    mesh = load_objs_as_meshes([tmp_path / "mesh.obj"])
    torch.testing.assert_close(mesh.textures.maps_padded()[0, 0, 0], torch.tensor([1.0, 0, 0]))  # the first: red
    assert load_obj(tmp_path / "mesh.obj", load_textures=False)[2].texture_images is None


def test_faces_without_uvs_give_no_textures(tmp_path):
    iio.imwrite(tmp_path / "tex.png", np.zeros((2, 2, 3), dtype=np.uint8))
    write(tmp_path, "newmtl a\nmap_Kd tex.png\n", "mesh.mtl")
    text = "mtllib mesh.mtl\nusemtl a\n" + SQUARE + "vt 0 0\nf 1/1 2/1 3/1\nf 1 3 4\n"
    write(tmp_path, text)
    assert load_objs_as_meshes([tmp_path / "mesh.obj"]).textures is None


# ---- malformed files: a ValueError naming the file and the line -----------------------------------


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("v 0 0 0\nv 1 abc 0\n", 2, "bad number 'abc'"),
        ("v 0 0 0\n\nv 1 0\n", 3, "'v' needs 3 numbers, got 2"),
        ("v 0 0 0\nvt 0.5\n", 2, "'vt' needs 2 numbers"),
        ("v 0 0 0\nv 0 nan 0\n", 2, "non-finite"),
        ("# header\nvn 0 0 inf\n", 2, "non-finite"),
        ("v 0 0 0\nv 1e999 0 0\n", 2, "non-finite"),
        ("v 0 0 0\nv 1e39 0 0\n", 2, "non-finite"),  # beyond float32
        (SQUARE + "f 1 2\n", 5, "at least 3 vertices, got 2"),
        (SQUARE + "f 1 2 3\nf 0 1 2\n", 6, "face index 0 out of range (4 vertices)"),
        (SQUARE + "f 1 2 3\n\nf 1 2 9000\n", 7, "face index 9000 out of range (4 vertices)"),
        (SQUARE + "f -5 -1 -2\n", 5, "face index -5 out of range (4 vertices)"),
        ("v 0 0 0\nv 1 0 0\nf -1 -2 -3\nv 0 1 0\n", 3, "face index -3 out of range (2 vertices)"),
        (SQUARE + "vt 0 0\nf 1/1 2/2 3/1\n", 6, "face texture index 2 out of range (1 texture coordinates)"),
        (SQUARE + "f 1//1 2//1 3//1\n", 5, "face normal index 1 out of range (0 normals)"),
        (SQUARE + "vt 0 0\nvn 0 0 1\nf 1/1 2//1 3/1\n", 7, "inconsistent vertex formats"),
        (SQUARE + "f 1 2.5 3\n", 5, "bad face index '2.5'"),
        (SQUARE + "f 1 2 99999999999999999999\n", 5, "bad face index '99999999999999999999'"),
        (SQUARE + "vt 0 0\nf 1/x 2/1 3/1\n", 6, "bad face texture index 'x'"),
        (SQUARE + "f 1/1/1/1 2 3\n", 5, "bad face vertex"),
        (SQUARE + "f /1 2 3\n", 5, "bad face vertex"),
        ("mtllib\n", 1, "mtllib needs a file name"),
    ],
)
def test_malformed_lines(tmp_path, text, line, message):
    error = load_error(tmp_path, text)
    assert f"bad.obj:{line}: " in error
    assert message in error


def test_error_line_numbers_with_crlf_and_comments(tmp_path):
    text = "# comment\r\nv 0 0 0\r\nv 1 0 0 # x\r\n\r\nv 0 1 0\r\nf 1 2 3\r\nf 1 2 4\r\n"
    assert "crlf.obj:7: face index 4 out of range (3 vertices)" in load_error(tmp_path, text, "crlf.obj")


def test_malformed_mtl_names_the_mtl_file(tmp_path):
    write(tmp_path, "newmtl a\n\nKd 1 x 0\n", "broken.mtl")
    error = load_error(tmp_path, "mtllib broken.mtl\nusemtl a\n" + SQUARE + "f 1 2 3\n")
    assert re.search(r"broken\.mtl:3: bad number 'x'", error)


# ---- save_obj -------------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    verts = torch.rand(5, 3)
    faces = torch.tensor([[0, 1, 2], [2, 3, 4]])
    save_obj(tmp_path / "out.obj", verts, faces)
    loaded_verts, loaded_faces, aux = load_obj(tmp_path / "out.obj")
    # Written with 6 decimals (half a unit of the last one) and read back into float32 (values < 1).
    torch.testing.assert_close(loaded_verts, verts, atol=0.5e-6 + U32, rtol=0)
    assert torch.equal(loaded_faces.verts_idx, faces) and aux.verts_uvs is None
    save_obj(str(tmp_path / "short.obj"), verts, faces, decimal_places=2)
    torch.testing.assert_close(load_obj(tmp_path / "short.obj")[0], verts, atol=0.5e-2 + U32, rtol=0)


def test_save_load_round_trip_with_texture(tmp_path):
    verts, faces, aux = load_obj(COW)
    image = aux.texture_images["material_1"][:64, :32]
    save_obj(tmp_path / "cow.obj", verts, faces.verts_idx, verts_uvs=aux.verts_uvs, faces_uvs=faces.textures_idx,
             texture_map=image)
    verts2, faces2, aux2 = load_obj(tmp_path / "cow.obj")
    # 6 decimals (half a unit of the last one), read back into float32 relative to the values' size.
    torch.testing.assert_close(verts2, verts, atol=0.5e-6 + U32 * verts.abs().max().item(), rtol=0)
    assert torch.equal(faces2.verts_idx, faces.verts_idx) and torch.equal(faces2.textures_idx, faces.textures_idx)
    torch.testing.assert_close(aux2.verts_uvs, aux.verts_uvs, atol=0.5e-6 + U32, rtol=0)  # uv in [0, 1]
    # Saved as 8-bit PNG, rounded: half a level of 1/255.
    torch.testing.assert_close(aux2.texture_images["mesh"], image, atol=0.5 / 255 + U32, rtol=0)
    assert load_objs_as_meshes([tmp_path / "cow.obj"]).textures.maps_padded().shape == (1, 64, 32, 3)


def test_save_obj_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="verts"):
        save_obj(tmp_path / "x.obj", torch.rand(3, 2), torch.tensor([[0, 1, 2]]))
    with pytest.raises(ValueError, match="must index the 3 verts"):
        save_obj(tmp_path / "x.obj", torch.rand(3, 3), torch.tensor([[0, 1, 3]]))
    with pytest.raises(ValueError, match="together"):
        save_obj(tmp_path / "x.obj", torch.rand(3, 3), torch.tensor([[0, 1, 2]]), verts_uvs=torch.rand(3, 2))
