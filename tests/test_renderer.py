"""Shading, textures, blending and MeshRenderer, checked against values computed independently."""
import math
import os

import numpy as np
import pytest
import torch
from helpers import CAMERA_OPS, UNIT_ROUNDOFF, silhouette_tolerance

from lib3dr.renderer.blending import (BlendParams, hard_rgb_blend, sigmoid_alpha_blend,
                                      softmax_rgb_blend)
from lib3dr.renderer.interpolate import interpolate_face_attributes
from lib3dr.io import load_objs_as_meshes
from lib3dr.renderer.rasterizer import Fragments
from lib3dr.renderer import (
    AmbientLights, FoVPerspectiveCameras, HardFlatShader, HardGouraudShader, HardPhongShader,
    Materials, MeshRasterizer, MeshRenderer, MeshRendererWithFragments, PointLights,
    RasterizationSettings, SoftGouraudShader, SoftPhongShader, SoftSilhouetteShader,
    TexturesVertex, look_at_view_transform)
from lib3dr.structures import Meshes, join_meshes_as_batch
from lib3dr.utils import ico_sphere

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
SIZE = 64
U32 = UNIT_ROUNDOFF[torch.float32]
# Comparisons without a tolerance use assert_close's defaults for their dtype (float32: 1.3e-6
# relative plus 1e-5 absolute; float64: 1e-7 and 1e-7): closed-form results of a few operations
# on values of order 1, some ulps apart at most.


def white_sphere(level=3, dtype=torch.float32):
    sphere = ico_sphere(level)
    verts = sphere.verts_packed().to(dtype)
    return Meshes(verts=[verts], faces=[sphere.faces_packed()],
                  textures=TexturesVertex(verts_features=[torch.ones_like(verts)]))


def sphere_scene():
    R, T = look_at_view_transform(3.0, 0.0, 0.0)
    cameras = FoVPerspectiveCameras(R=R, T=T)
    lights = PointLights(location=((2.0, 1.0, 3.0),))
    rasterizer = MeshRasterizer(cameras, RasterizationSettings(image_size=SIZE, faces_per_pixel=1))
    return cameras, lights, rasterizer


def phong_by_hand(row, col, cameras, light_location, shininess=64.0):
    """Colour of pixel (row, col) of the unit sphere: ray-sphere intersection, then Phong with the
    default light (ambient 0.5, diffuse 0.3, specular 0.2) and white material. None if missed."""
    R, T = cameras.R[0].double().numpy(), cameras.T[0].double().numpy()
    x_ndc, y_ndc = 1 - (2 * col + 1) / SIZE, 1 - (2 * row + 1) / SIZE
    tan_half = math.tan(math.radians(30.0))
    direction = np.array([x_ndc * tan_half, y_ndc * tan_half, 1.0]) @ R.T  # view -> world
    direction /= np.linalg.norm(direction)
    centre = -T @ R.T
    b, c = centre @ direction, centre @ centre - 1.0
    if b * b - c < 0:
        return None
    point = centre + (-b - math.sqrt(b * b - c)) * direction
    normal = point / np.linalg.norm(point)
    to_light = np.asarray(light_location) - point
    to_light /= np.linalg.norm(to_light)
    cos = normal @ to_light
    reflected = -to_light + 2 * cos * normal
    to_camera = (centre - point) / np.linalg.norm(centre - point)
    specular = max(0.0, to_camera @ reflected) ** shininess if cos > 0 else 0.0
    return 0.5 + 0.3 * max(cos, 0.0) + 0.2 * specular


# Geometry, not rounding: the level-3 sphere's faces span about 8 degrees. Phong interpolates
# the vertex normals (nearly the sphere's), Gouraud the vertices' colours (off where the
# highlight bends between them), flat uses one normal per face (up to 4 degrees off).
@pytest.mark.parametrize("shader_class, tolerance", [
    (HardPhongShader, 0.01), (HardGouraudShader, 0.03), (HardFlatShader, 0.04)])
def test_sphere_matches_phong_by_hand(shader_class, tolerance):
    cameras, lights, rasterizer = sphere_scene()
    image = MeshRenderer(rasterizer, shader_class(cameras=cameras, lights=lights))(white_sphere())[0]
    # The sphere's disk has a radius of 19.6 pixels: the centre, a pixel towards the light, one
    # at 89% of the radius (near the limb) and one up-left; then a background pixel.
    for row, col in [(32, 32), (26, 24), (32, 49), (20, 20)]:
        expected = phong_by_hand(row, col, cameras, (2.0, 1.0, 3.0))
        assert expected is not None
        torch.testing.assert_close(image[row, col, :3], torch.full((3,), expected), atol=tolerance, rtol=0)
        assert image[row, col, 3] == 1.0
    assert phong_by_hand(2, 2, cameras, (2.0, 1.0, 3.0)) is None
    torch.testing.assert_close(image[2, 2], torch.tensor([1.0, 1.0, 1.0, 0.0]))

def test_flat_gouraud_phong_differ_where_they_should():
    cameras, lights, rasterizer = sphere_scene()
    mesh = white_sphere(level=1)  # large faces make the differences visible
    fragments = rasterizer(mesh)
    images = {cls.__name__: cls(cameras=cameras, lights=lights)(fragments, mesh)[0, ..., 0]
              for cls in (HardFlatShader, HardGouraudShader, HardPhongShader)}
    face = fragments.pix_to_face[0, ..., 0]
    front = face[32, 32]
    inside = face == front
    # Flat: one colour per face. Gouraud and Phong vary across the face.
    assert images["HardFlatShader"][inside].std() < 16 * U32  # one value per face, up to rounding
    assert images["HardGouraudShader"][inside].std() > 1e-3
    assert images["HardPhongShader"][inside].std() > 1e-3
    # Gouraud interpolates colours, Phong normals: they disagree inside faces, agree at vertices.
    assert (images["HardGouraudShader"] - images["HardPhongShader"]).abs().max() > 1e-2


def test_cow_texture_lands_where_its_surface_point_projects():
    mesh = load_objs_as_meshes([os.path.join(DATA, "cow_mesh", "cow.obj")])
    R, T = look_at_view_transform(2.7, 10.0, 150.0)
    cameras = FoVPerspectiveCameras(R=R, T=T)
    settings = RasterizationSettings(image_size=128, faces_per_pixel=1)
    renderer = MeshRendererWithFragments(
        MeshRasterizer(cameras, settings),
        HardPhongShader(cameras=cameras, lights=AmbientLights()))  # colour = texel exactly
    image, fragments = renderer(mesh)
    texture = mesh.textures.maps_padded()[0].double().numpy()
    verts, faces = mesh.verts_packed().double(), mesh.faces_packed()
    uvs = mesh.textures.verts_uvs_list()[0].double()
    faces_uvs = mesh.textures.faces_uvs_list()[0]
    centre = (-T @ R.transpose(1, 2))[0, 0].double()
    checked = 0
    for row, col in [(50, 60), (64, 64), (70, 40), (40, 80), (80, 70)]:
        face = int(fragments.pix_to_face[0, row, col, 0])
        if face < 0:
            continue
        # The pixel's ray in world space, intersected with the face's plane.
        x_ndc, y_ndc = 1 - (2 * col + 1) / 128, 1 - (2 * row + 1) / 128
        tan_half = math.tan(math.radians(30.0))
        direction = torch.tensor([x_ndc * tan_half, y_ndc * tan_half, 1.0], dtype=torch.float64) \
            @ R[0].double().T
        a, b, c = verts[faces[face]]
        normal = torch.linalg.cross(b - a, c - a)
        point = centre + ((a - centre) @ normal) / (direction @ normal) * direction
        # Barycentrics of that point, then its UV, then a bilinear texture lookup by hand.
        area = normal.norm()
        bary = torch.stack([torch.linalg.cross(b - point, c - point).norm(),
                            torch.linalg.cross(c - point, a - point).norm(),
                            torch.linalg.cross(a - point, b - point).norm()]) / area
        u, v = (bary[:, None] * uvs[faces_uvs[face]]).sum(0).tolist()
        height, width = texture.shape[:2]
        x, y = u * (width - 1), (1 - v) * (height - 1)
        x0, y0 = int(x), int(y)
        fx, fy = x - x0, y - y0
        expected = ((1 - fx) * (1 - fy) * texture[y0, x0] + fx * (1 - fy) * texture[y0, x0 + 1]
                    + (1 - fx) * fy * texture[y0 + 1, x0] + fx * fy * texture[y0 + 1, x0 + 1])
        # float32 perspective-correct barycentrics against the exact ray: uv within ~1e-6, which at
        # 1023 texels per unit and colour steps below 1 per texel moves the colour by ~1e-3.
        np.testing.assert_allclose(image[0, row, col, :3].numpy(), expected, atol=2e-3)
        checked += 1
    assert checked >= 4


def random_fragments(N=2, H=3, W=4, K=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    pix_to_face = torch.randint(-1, 5, (N, H, W, K), generator=gen)
    pix_to_face, _ = torch.sort(pix_to_face, dim=-1, descending=True)  # padding last
    zbuf = (torch.rand(N, H, W, K, generator=gen, dtype=torch.float64) * 5 + 1)
    dists = torch.randn(N, H, W, K, generator=gen, dtype=torch.float64) * 1e-2
    bary = torch.rand(N, H, W, K, 3, generator=gen, dtype=torch.float64)
    return pix_to_face, zbuf, bary, dists


def test_blend_gradients():
    pix_to_face, zbuf, bary, dists = random_fragments()
    colors = torch.rand(*pix_to_face.shape, 3, dtype=torch.float64)
    params = BlendParams(sigma=1e-2, gamma=0.5, background_color=(0.2, 0.3, 0.4))

    def soft(colors, zbuf, dists):
        return softmax_rgb_blend(colors, Fragments(pix_to_face, zbuf, bary, dists), params)

    def sigmoid(colors, dists):
        return sigmoid_alpha_blend(colors, Fragments(pix_to_face, zbuf, bary, dists), params)

    def hard(colors):
        return hard_rgb_blend(colors, Fragments(pix_to_face, zbuf, bary, dists), params)

    inputs = [t.clone().requires_grad_() for t in (colors, zbuf, dists)]
    assert torch.autograd.gradcheck(soft, inputs)
    assert torch.autograd.gradcheck(sigmoid, (inputs[0], inputs[2]))
    assert torch.autograd.gradcheck(hard, (inputs[0],))
    # Background pixels take the background colour; tiny gamma does not overflow.
    image = softmax_rgb_blend(colors, Fragments(pix_to_face, zbuf, bary, dists),
                              BlendParams(sigma=1e-6, gamma=1e-6))
    assert torch.isfinite(image).all()
    empty = pix_to_face[..., 0] < 0
    torch.testing.assert_close(hard(colors)[..., :3][empty],
                               torch.tensor([0.2, 0.3, 0.4], dtype=torch.float64).expand(int(empty.sum()), 3))


def test_interpolate_face_attributes_gradcheck():
    pix_to_face, _, bary, _ = random_fragments()
    attributes = torch.rand(5, 3, 2, dtype=torch.float64, requires_grad=True)
    bary.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda b, a: interpolate_face_attributes(pix_to_face, b, a), (bary, attributes))
    out = interpolate_face_attributes(pix_to_face, bary, attributes)
    assert (out[pix_to_face < 0] == 0).all()


def silhouette_renderer(cameras, image_size=64, K=20, sigma=1e-4):
    blend = BlendParams(sigma=sigma, gamma=1e-4)
    settings = RasterizationSettings(image_size=image_size, faces_per_pixel=K,
                                     blur_radius=math.log(1.0 / 1e-4 - 1.0) * sigma)
    return MeshRenderer(MeshRasterizer(cameras, settings), SoftSilhouetteShader(blend))


def test_silhouette_gradient_moves_mesh_toward_target():
    R, T = look_at_view_transform(3.0, 0.0, 0.0)
    cameras = FoVPerspectiveCameras(R=R, T=T)
    renderer = silhouette_renderer(cameras, sigma=1e-3)
    sphere = white_sphere(level=2)
    target = renderer(sphere.offset_verts(torch.tensor([0.3, 0.0, 0.0])))[..., 3]
    shift = torch.zeros(3, requires_grad=True)
    loss = ((renderer(sphere.offset_verts(shift))[..., 3] - target) ** 2).sum()
    loss.backward()
    # Descending the loss moves the sphere towards the target at +X; depth does not matter.
    assert -shift.grad[0] > 10 * shift.grad[1:].abs().max()


def test_fused_silhouette_renderer_equals_fragments_path():
    R, T = look_at_view_transform(3.0, 30.0, 40.0)
    cameras = FoVPerspectiveCameras(R=R, T=T)
    mesh = white_sphere(level=2)
    renderer = silhouette_renderer(cameras, K=30, sigma=1e-3)
    fused = renderer(mesh)
    unfused = MeshRendererWithFragments(renderer.rasterizer, renderer.shader)(mesh)[0]
    # One backend, so the same distances (one function of geometry.h, from the NDC vertices that
    # ndc_meshes gives both paths), blended in another order: the blend's own rounding.
    torch.testing.assert_close(fused, unfused, atol=silhouette_tolerance(30, torch.float32), rtol=0)


def test_batch_of_four_equals_four_single_calls():
    f64 = torch.float64
    teapot = load_objs_as_meshes([os.path.join(DATA, "teapot.obj")])
    meshes = [white_sphere(level=1, dtype=f64), white_sphere(level=2, dtype=f64),
              Meshes(verts=[teapot.verts_packed().to(f64)], faces=[teapot.faces_packed()],
                     textures=TexturesVertex([torch.full_like(teapot.verts_packed(), 0.7, dtype=f64)])),
              white_sphere(level=3, dtype=f64)]
    R, T = look_at_view_transform(torch.tensor([3.0, 3.5, 4.0, 3.0]), torch.tensor([0.0, 20.0, 40.0, 60.0]),
                                  torch.tensor([0.0, 90.0, 180.0, 270.0]))
    R, T = R.to(f64), T.to(f64)
    cameras = FoVPerspectiveCameras(R=R, T=T)
    sigma, blur_radius, K = 1e-4, 1e-4, 5
    renderer = MeshRenderer(
        MeshRasterizer(cameras, RasterizationSettings(image_size=32, faces_per_pixel=K, blur_radius=blur_radius)),
        SoftPhongShader(cameras=cameras, lights=PointLights(location=((2.0, 2.0, -2.0),)),
                        blend_params=BlendParams(sigma=sigma, gamma=1e-2)))
    batch = renderer(join_meshes_as_batch(meshes))
    # A batched transform may round otherwise than a single one (another summation order): each
    # view-space coordinate by up to CAMERA_OPS u |x|, |x| <= 5 here, hence NDC positions by up to
    # 4x that (focal length sqrt(3) over depths >= 1.5, times 1 + |x / z|). A colour moves with
    # them through each of the K slots' D = sigmoid(-d / sigma): slope <= 1 / (4 sigma) on d, and
    # d (a squared distance <= blur_radius) moves by 2 sqrt(blur_radius) per unit of position;
    # the colours (<= 1), barycentrics and normals (slopes of 1 / edge length, edges >= 0.01 NDC,
    # times 64 for the shininess) add less than 100x the shift. In float64 this bound is ~1e-11:
    # a mix-up of meshes, cameras or lights between batch entries is off by 1e-2 or more.
    shift = 4 * CAMERA_OPS * UNIT_ROUNDOFF[f64] * 5.0
    atol = shift * (K * 2 * math.sqrt(blur_radius) / (4 * sigma) + 100 * 64)
    for i, mesh in enumerate(meshes):
        single = renderer(mesh, R=R[i:i + 1], T=T[i:i + 1],
                          cameras=FoVPerspectiveCameras(R=R[i:i + 1], T=T[i:i + 1]))
        assert batch[i, ..., 3].sum() > 10  # each mesh is in view
        torch.testing.assert_close(batch[i], single[0], atol=atol, rtol=0)


def test_bad_input():
    sphere = white_sphere(level=1)
    with pytest.raises(ValueError):
        Meshes(verts=sphere.verts_list(), faces=sphere.faces_list(),
               textures=TexturesVertex([torch.ones(5, 3)]))  # wrong vertex count
    with pytest.raises(ValueError):
        Meshes(verts=sphere.verts_list(), faces=sphere.faces_list(),
               textures=TexturesVertex([torch.ones(42, 3)] * 2))  # wrong batch size
    cameras, lights, rasterizer = sphere_scene()
    fragments = rasterizer(sphere)
    with pytest.raises(ValueError, match="needs cameras"):
        HardPhongShader(lights=lights)(fragments, sphere)
    with pytest.raises(ValueError, match="lights are on meta"):
        HardPhongShader(cameras=cameras, lights=PointLights().to("meta"))(fragments, sphere)
