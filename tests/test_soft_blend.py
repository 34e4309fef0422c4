"""The soft shaders' packed path (lib3dr.renderer.packed, the compiled kernels of packed_cpu.cpp)
against the reference: the fragments and formulas of chapter 2.

Exact claims (every fragment kept, ``dropped_weight = 0``) are compared in float64, where the two
paths differ only by the order of sums; gradients are also checked by ``gradcheck``. With
fragments dropped, the difference is checked against the bound ``softmax_rgb_blend_packed``
states, computed per pixel from the dropped share of the weight.
"""
import math
import os

import pytest
import torch
from helpers import UNIT_ROUNDOFF, assert_within, needs_cpu

from lib3dr.io import load_objs_as_meshes
from lib3dr import _backend
from lib3dr.renderer import (AmbientLights, BlendParams, DirectionalLights,
                             FoVPerspectiveCameras, Materials, MeshRasterizer, MeshRenderer,
                             MeshRendererWithFragments, PointLights, RasterizationSettings,
                             SoftGouraudShader, SoftPhongShader, TexturesVertex,
                             look_at_view_transform)
from lib3dr.renderer.blending import (blended_fragments, hard_rgb_blend, softmax_rgb_blend,
                                      softmax_rgb_blend_packed)
from lib3dr.renderer.compiled import FaceInterpolate
from lib3dr.renderer.interpolate import interpolate_packed
from lib3dr.renderer.packed import PackedFragments, pack_fragments
from lib3dr.renderer.rasterizer import (Fragments, default_blur_radius, rasterize_meshes,
                                        rasterize_meshes_packed)
from lib3dr.renderer.shading import _light_covered, apply_lighting, phong_shading
from lib3dr.structures import Meshes
from lib3dr.utils import ico_sphere

pytestmark = needs_cpu
DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
U64 = UNIT_ROUNDOFF[torch.float64]


def random_fragments(N=2, H=3, W=5, K=4, seed=0, zfar=100.0):
    """Fragments with random depths (some beyond zfar: a normalised depth below 0), covered slots
    first, as the rasterizer leaves them; float64."""
    gen = torch.Generator().manual_seed(seed)
    pix_to_face = torch.randint(-1, 5, (N, H, W, K), generator=gen)
    pix_to_face, _ = torch.sort(pix_to_face, dim=-1, descending=True)  # padding last
    zbuf = torch.rand(N, H, W, K, generator=gen, dtype=torch.float64) * 1.2 * zfar + 1
    dists = torch.randn(N, H, W, K, generator=gen, dtype=torch.float64) * 1e-2
    bary = torch.rand(N, H, W, K, 3, generator=gen, dtype=torch.float64)
    colors = torch.rand(N, H, W, K, 3, generator=gen, dtype=torch.float64)
    return Fragments(pix_to_face, zbuf, bary, dists), colors


# gamma 0.5: the background's weight exp((eps - z_max) / gamma) is free; 1e-3: it is clamped at
# eps, and z_max then has a gradient of its own. zfar 3 puts most depths beyond it.
PARAMS = [(BlendParams(sigma=1e-2, gamma=0.5, background_color=(0.2, 0.3, 0.4)), 100.0),
          (BlendParams(sigma=1e-2, gamma=1e-3, background_color=(0.2, 0.3, 0.4)), 100.0),
          (BlendParams(sigma=2e-2, gamma=0.1), 3.0)]


def packed_blend(colors, fragments, params, zfar, kept=None):
    """softmax_rgb_blend_packed of dense inputs: pack, keep ``kept`` (default every fragment)."""
    packed = pack_fragments(fragments)
    if kept is None:
        kept = torch.arange(len(packed))
    weights = blended_fragments(packed, params, znear=1.0, zfar=zfar, kept=kept)
    covered = colors.reshape(-1, 3)[(fragments.pix_to_face >= 0).reshape(-1)]
    return softmax_rgb_blend_packed(covered[kept], weights, packed, params, znear=1.0, zfar=zfar)


@pytest.mark.parametrize("params, zfar", PARAMS)
def test_packed_blend_equals_softmax_rgb_blend(params, zfar):
    fragments, colors = random_fragments(zfar=zfar)
    inputs = [t.clone().requires_grad_() for t in (colors, fragments.zbuf, fragments.dists)]

    def blends(colors, zbuf, dists):
        f = Fragments(fragments.pix_to_face, zbuf, fragments.bary_coords, dists)
        return (softmax_rgb_blend(colors, f, params, znear=1.0, zfar=zfar),
                packed_blend(colors, f, params, zfar))

    reference, packed = blends(*inputs)
    torch.testing.assert_close(packed, reference)
    weight = torch.rand(reference.shape, dtype=torch.float64)
    for a, b in zip(torch.autograd.grad((reference * weight).sum(), inputs),
                    torch.autograd.grad((packed * weight).sum(), inputs)):
        torch.testing.assert_close(b, a)
    # The packed blend's own gradient, every fragment kept and half of them.
    assert torch.autograd.gradcheck(lambda *x: blends(*x)[1], inputs)
    packed_fragments = pack_fragments(fragments)
    half = torch.arange(0, len(packed_fragments), 2)
    covered = colors.reshape(-1, 3)[(fragments.pix_to_face >= 0).reshape(-1)][half]

    def subset(colors, zbuf, dists):
        f = PackedFragments(packed_fragments.pix_to_face, zbuf, packed_fragments.bary_coords,
                            dists, packed_fragments.pixel, packed_fragments.pixel_start,
                            packed_fragments.shape)
        weights = blended_fragments(f, params, znear=1.0, zfar=zfar, kept=half)
        return softmax_rgb_blend_packed(colors, weights, f, params, znear=1.0, zfar=zfar)

    assert torch.autograd.gradcheck(subset, [t.clone().requires_grad_() for t in (
        covered, packed_fragments.zbuf, packed_fragments.dists)])


def test_z_max_ties_share_its_gradient_like_amax():
    # Two fragments at the same depth: torch's amax splits z_max's gradient evenly between them.
    fragments, colors = random_fragments(N=1, H=1, W=1, K=3, seed=4)
    pix_to_face = torch.tensor([[[[0, 1, 2]]]])
    zbuf = torch.tensor([[[[2.0, 2.0, 2.5]]]], dtype=torch.float64, requires_grad=True)
    params = BlendParams(sigma=1e-2, gamma=1e-3)  # w_b clamped: z_max has a gradient
    f = Fragments(pix_to_face, zbuf, fragments.bary_coords, fragments.dists)
    weight = torch.rand(1, 1, 1, 4, dtype=torch.float64)
    reference = torch.autograd.grad((softmax_rgb_blend(colors, f, params) * weight).sum(), zbuf)[0]
    packed = torch.autograd.grad((packed_blend(colors, f, params, 100.0) * weight).sum(), zbuf)[0]
    torch.testing.assert_close(packed, reference)


def test_interpolate_gradcheck():
    gen = torch.Generator().manual_seed(1)
    faces = torch.randint(0, 5, (40,), generator=gen)
    bary = torch.rand(40, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    attributes = torch.rand(5, 3, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(FaceInterpolate.apply(faces, bary, attributes),
                               interpolate_packed(faces, bary, attributes))
    assert torch.autograd.gradcheck(lambda b, a: FaceInterpolate.apply(faces, b, a),
                                    (bary, attributes))


def soup(dtype=torch.float64):
    """Random triangles in NDC with positive depth, two meshes."""
    gen = torch.Generator().manual_seed(3)
    verts, faces = [], []
    for count in (5, 4):
        centre = torch.rand(count, 1, 3, generator=gen, dtype=torch.float64) * \
            torch.tensor([2.0, 2.0, 3.0], dtype=torch.float64) - torch.tensor([1.0, 1.0, -0.5])
        spread = torch.randn(count, 3, 3, generator=gen, dtype=torch.float64) * 0.4
        verts.append((centre + spread).reshape(-1, 3).to(dtype))
        faces.append(torch.arange(3 * count).reshape(-1, 3))
    return Meshes(verts=verts, faces=faces)


@pytest.mark.parametrize("settings", [
    dict(image_size=12, faces_per_pixel=3, blur_radius=0.02, clip_barycentric_coords=True),
    dict(image_size=(10, 14), faces_per_pixel=6, blur_radius=0.01, perspective_correct=True)])
def test_rasterize_packed_equals_packed_fragments(settings):
    mesh = soup()
    counts, faces = mesh.num_verts_per_mesh().tolist(), mesh.faces_list()
    verts = mesh.verts_packed().detach().requires_grad_()

    def outputs(verts, packed):
        meshes = Meshes(verts=list(verts.split(counts)), faces=faces)
        fragments = rasterize_meshes_packed(meshes, **settings) if packed else \
            pack_fragments(Fragments(*rasterize_meshes(meshes, **settings)))
        return fragments

    direct, via_dense = outputs(verts, True), outputs(verts, False)
    for name in ("pix_to_face", "zbuf", "bary_coords", "dists", "pixel", "pixel_start"):
        assert torch.equal(getattr(direct, name), getattr(via_dense, name)), name
    weights = [torch.rand_like(t) for t in (direct.zbuf, direct.bary_coords, direct.dists)]

    def loss(f):
        return sum((t * w).sum() for t, w in zip((f.zbuf, f.bary_coords, f.dists), weights))

    torch.testing.assert_close(torch.autograd.grad(loss(direct), verts)[0],
                               torch.autograd.grad(loss(via_dense), verts)[0])
    assert torch.autograd.gradcheck(
        lambda v: tuple(getattr(outputs(v, True), n) for n in ("zbuf", "bary_coords", "dists")),
        (verts,), eps=1e-7, atol=1e-5)


def renderers(shader_class, image_size, K, sigma, gamma, dropped_weight, textures=None, N=1):
    R, T = look_at_view_transform(torch.tensor([2.7, 3.0][:N]), torch.tensor([10.0, 40.0][:N]),
                                  torch.tensor([150.0, 30.0][:N]))
    cameras = FoVPerspectiveCameras(R=R.double(), T=T.double())
    settings = RasterizationSettings(image_size=image_size, faces_per_pixel=K,
                                     blur_radius=default_blur_radius(sigma))
    shader = shader_class(cameras=cameras, lights=PointLights(location=((2.0, 2.0, -2.0),)),
                          blend_params=BlendParams(sigma=sigma, gamma=gamma,
                                                   dropped_weight=dropped_weight))
    rasterizer = MeshRasterizer(cameras, settings)
    return MeshRenderer(rasterizer, shader), MeshRendererWithFragments(rasterizer, shader)


def double_mesh(mesh):
    return mesh.update_padded(mesh.verts_padded().double())


def cow(N=1):
    mesh = load_objs_as_meshes([os.path.join(DATA, "cow_mesh", "cow.obj")])
    return double_mesh(mesh.extend(N))


def vertex_sphere(N=1):
    sphere = ico_sphere(3)
    verts = sphere.verts_packed().double()
    colors = (verts + 1) / 2
    return Meshes(verts=[verts] * N, faces=[sphere.faces_packed()] * N,
                  textures=TexturesVertex([colors] * N))


@pytest.mark.parametrize("shader_class, make_mesh, N", [
    (SoftPhongShader, cow, 1), (SoftPhongShader, cow, 2), (SoftPhongShader, vertex_sphere, 2),
    (SoftGouraudShader, vertex_sphere, 2)])
def test_renderer_with_every_fragment_equals_reference(shader_class, make_mesh, N):
    # MeshRenderer takes the packed path; MeshRendererWithFragments the fragments and formulas.
    mesh = make_mesh(N)
    fast, reference = renderers(shader_class, 48, 12, 1e-4, 1e-4, 0.0, N=N)
    verts = mesh.verts_padded().detach().requires_grad_()
    images = [fast(mesh.update_padded(verts)), reference(mesh.update_padded(verts))[0]]
    torch.testing.assert_close(images[0], images[1])
    weight = torch.rand(images[0].shape, dtype=torch.float64)
    grads = [torch.autograd.grad((image * weight).sum(), verts)[0] for image in images]
    # The same float64 terms summed in other orders differ by at most n u sum|term|: n <= 48 * 48
    # * 12 = 2.8e4 terms per vertex coordinate, u = 1.1e-16, and terms that carry the depth
    # weights' 1 / gamma and the coverage's 1 / sigma (1e4 each) yet cancel to the gradient, so
    # sum|term| is taken as up to 300x |grad|max: 2.8e4 * 1.1e-16 * 300 = 9e-10 |grad|max.
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-9, atol=1e-9 * grads[1].abs().max())


def test_dropped_fragments_stay_within_the_bound():
    # The cow at K = 50 with sigma = gamma = 1e-4, as the benchmarks render it: colours from the
    # reference shading of every fragment, then the full blend and the blend of the kept ones.
    mesh = cow()
    fast, reference = renderers(SoftPhongShader, 96, 50, 1e-4, 1e-4, 0.0)
    shader = reference.shader
    fragments = reference.rasterizer(mesh)
    fragments = Fragments(fragments.pix_to_face, *(t.detach() for t in (
        fragments.zbuf, fragments.bary_coords, fragments.dists)))
    colors = phong_shading(mesh, fragments, shader.lights, shader.cameras, shader.materials,
                           mesh.sample_textures(fragments)).detach()
    znear, zfar = shader.cameras.znear, shader.cameras.zfar
    N, H, W, K = fragments.pix_to_face.shape
    covered = fragments.pix_to_face >= 0
    gen = torch.Generator().manual_seed(0)
    weight = torch.rand(N, H, W, 4, generator=gen, dtype=torch.float64) * 2 - 1
    for tau in (1e-4, 1e-2):
        params = BlendParams(sigma=1e-4, gamma=1e-4, dropped_weight=tau)
        inputs = [t.clone().requires_grad_() for t in (colors, fragments.zbuf, fragments.dists)]
        full = softmax_rgb_blend(inputs[0], Fragments(fragments.pix_to_face, inputs[1],
                                                      fragments.bary_coords, inputs[2]),
                                 params, znear=znear, zfar=zfar)
        packed = pack_fragments(Fragments(fragments.pix_to_face, inputs[1], fragments.bary_coords,
                                          inputs[2]))
        weights = blended_fragments(packed, params, znear=znear, zfar=zfar)
        kept = weights.kept
        assert 0 < len(kept) < len(packed)
        dropped = softmax_rgb_blend_packed(inputs[0][covered][kept], weights, packed, params,
                                           znear=znear, zfar=zfar)
        grads = [torch.autograd.grad((image * weight).sum(), inputs) for image in (full, dropped)]

        # Per pixel: the dropped share of the weight (delta <= tau), the colours' range R.
        z = (zfar - fragments.zbuf) / (zfar - znear) * covered
        z_max = z.amax(dim=-1, keepdim=True).clamp_min(1e-10)
        D = torch.sigmoid(-fragments.dists / 1e-4) * covered
        w = D * torch.exp((z - z_max) / 1e-4)
        w_b = torch.exp((1e-10 - z_max) / 1e-4).clamp_min(1e-10)
        is_kept = torch.zeros(covered.sum(), dtype=torch.bool)
        is_kept[kept] = True
        kept_dense = torch.zeros_like(covered)
        kept_dense[covered] = is_kept
        total = w.sum(dim=-1) + w_b[..., 0]
        delta = (w * (covered & ~kept_dense)).sum(dim=-1) / total
        assert (delta <= tau * (1 + 1e-9)).all()
        background = torch.tensor(params.background_color, dtype=torch.float64)
        big = torch.where(covered[..., None], colors, -math.inf).amax(dim=-2).maximum(background)
        small = torch.where(covered[..., None], colors, math.inf).amin(dim=-2).minimum(background)
        R = big - small  # (N, H, W, 3)
        g = weight[..., :3].abs()
        rounding = 64 * K * U64  # float64 sums of K terms, and the 1 / sigma, 1 / gamma slopes
        # The colour moves by at most delta R; alpha not at all.
        assert_within(dropped[..., :3], full[..., :3], delta[..., None] * R + rounding, "colour")
        assert_within(dropped[..., 3], full[..., 3], rounding, "alpha")
        # Gradients, summed over each pixel's fragments: colours 2 delta |g|; dists through the
        # log-weights, 3 delta R |g| / sigma; zbuf through them and z_max, 6 delta R |g| /
        # (gamma (zfar - znear)).
        err = [(a - b).abs() for a, b in zip(*grads)]
        scale = [1.0, 1e-4, 1e-4 * (zfar - znear)]  # (sigma, gamma (zfar - znear))
        zero = torch.zeros(())
        assert_within(err[0].sum(dim=-2), zero, 2 * delta[..., None] * g + rounding, "colours")
        assert_within(err[2].sum(dim=-1) * scale[1], zero,
                      3 * delta * (R * g).sum(-1) + rounding, "dists")
        assert_within(err[1].sum(dim=-1) * scale[2], zero,
                      6 * delta * (R * g).sum(-1) + rounding, "zbuf")


def test_bad_inputs():
    packed, params, weights, covered = blend_inputs()
    with pytest.raises(RuntimeError, match="kept must be increasing"):
        softmax_rgb_blend_packed(covered, weights._replace(kept=weights.kept.flip(0)), packed,
                                 params)
    with pytest.raises(RuntimeError, match="colors must be"):
        softmax_rgb_blend_packed(covered[:-1], weights, packed, params)
    with pytest.raises(ValueError, match="dropped_weight"):
        blended_fragments(packed, BlendParams(dropped_weight=1.5))
    with pytest.raises(RuntimeError, match="faces must lie"):
        FaceInterpolate.apply(torch.tensor([7]), torch.rand(1, 3, dtype=torch.float64),
                              torch.rand(5, 3, 2, dtype=torch.float64))


@pytest.mark.parametrize("lights", [
    PointLights(location=((0.5, 1.0, -2.0), (-1.0, 0.2, 3.0)),
                diffuse_color=((0.3, 0.4, 0.5),), specular_color=((0.6, 0.2, 0.1), (0.2, 0.3, 0.4))),
    DirectionalLights(direction=((0.0, 1.0, -1.0),)),
    AmbientLights(ambient_color=((0.2, 0.7, 0.4),))])
def test_compiled_lighting_equals_apply_lighting(lights):
    # Two images, per-image lights (or one for both), materials and camera centres; some normals
    # and points at the camera or light (zero vectors, which F.normalize clamps), some highlights
    # below the clamp of 1e-12.
    gen = torch.Generator().manual_seed(2)
    M, N = 300, 2
    image = torch.sort(torch.randint(0, N, (M,), generator=gen))[0]
    points = torch.randn(M, 3, generator=gen, dtype=torch.float64)
    normals = torch.randn(M, 3, generator=gen, dtype=torch.float64)
    normals[:3] = 0.0
    texels = torch.rand(M, 3, generator=gen, dtype=torch.float64)
    R, T = look_at_view_transform(torch.tensor([3.0, 4.0]), torch.tensor([10.0, 50.0]),
                                  torch.tensor([0.0, 120.0]))
    cameras = FoVPerspectiveCameras(R=R.double(), T=T.double())
    points[3] = cameras.get_camera_center()[image[3]]
    lights = lights.clone().to("cpu")
    for name in lights._fields:
        setattr(lights, name, getattr(lights, name).double().requires_grad_())
    materials = Materials(shininess=(64.0, 10.0), specular_color=((1.0, 0.5, 0.2),))
    for name in materials._fields:
        setattr(materials, name, getattr(materials, name).double().requires_grad_())
    inputs = [t.requires_grad_() for t in (points, normals, texels)]
    packed = PackedFragments(torch.zeros(M, dtype=torch.int64), torch.zeros(M, dtype=torch.float64),
                             torch.zeros(M, 3, dtype=torch.float64), torch.zeros(M, dtype=torch.float64),
                             image * 4, None, (N, 2, 2, 1))

    def by_torch(points, normals, texels):
        slot = torch.arange(M) - (torch.bincount(image, minlength=N).cumsum(0)
                                  - torch.bincount(image, minlength=N))[image]
        width = int(torch.bincount(image).max())
        batch = lambda v: torch.zeros(N, width, 3, dtype=v.dtype).index_put((image, slot), v)  # noqa: E731
        ambient, diffuse, specular = apply_lighting(batch(points), batch(normals), lights, cameras,
                                                    materials)
        pick = lambda v: v.expand(N, width, 3)[image, slot]  # noqa: E731
        return (pick(ambient) + pick(diffuse)) * texels + pick(specular)

    def compiled(points, normals, texels):
        return _light_covered(packed, points, normals, texels, lights, cameras, materials, {})

    parameters = [t for t in (*[getattr(lights, n) for n in lights._fields],
                              *[getattr(materials, n) for n in materials._fields])]
    reference, fast = by_torch(*inputs), compiled(*inputs)
    torch.testing.assert_close(fast, reference)
    weight = torch.rand(M, 3, generator=gen, dtype=torch.float64)
    wrt = inputs + parameters
    for a, b in zip(torch.autograd.grad((reference * weight).sum(), wrt, allow_unused=True),
                    torch.autograd.grad((fast * weight).sum(), wrt, allow_unused=True)):
        if a is None or b is None:
            assert (a is None or not a.any()) and (b is None or not b.any())
        else:
            torch.testing.assert_close(b, a)
    # gradcheck away from the zero vectors, where F.normalize has a kink.
    smooth = [t.detach()[4:].clone().requires_grad_() for t in inputs]
    image, packed = image[4:], packed.select(torch.arange(4, M))
    assert torch.autograd.gradcheck(compiled, smooth)


def test_packed_path_with_an_empty_image_and_lights_of_a_subclass():
    # The second cow lies outside the view (no fragments); lights of a subclass of PointLights
    # are lit by the torch formulas (apply_lighting), grouped by image, not by the compiled kernel.
    class OwnLights(PointLights):
        pass

    mesh = cow(2)
    verts = mesh.verts_padded().detach().clone()
    verts[1] += 100.0
    fast, reference = renderers(SoftPhongShader, 32, 8, 1e-4, 1e-4, 0.0, N=2)
    for renderer in (fast, reference):
        renderer.shader.lights = OwnLights(location=((2.0, 2.0, -2.0),))
    verts.requires_grad_()
    images = [fast(mesh.update_padded(verts)), reference(mesh.update_padded(verts))[0]]
    torch.testing.assert_close(images[0], images[1])
    assert (images[0][1, ..., 3] == 0).all()
    grads = [torch.autograd.grad(image.sum(), verts)[0] for image in images]
    # As in test_renderer_with_every_fragment_equals_reference: the same float64 terms summed in
    # other orders.
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-9, atol=1e-9 * grads[1].abs().max())


def blend_inputs():
    """Packed random fragments, their weights with every fragment kept, and their colours."""
    fragments, colors = random_fragments()
    packed = pack_fragments(fragments)
    params = BlendParams(sigma=1e-2, gamma=0.5)
    weights = blended_fragments(packed, params, kept=torch.arange(len(packed)))
    covered = colors.reshape(-1, 3)[(fragments.pix_to_face >= 0).reshape(-1)]
    return packed, params, weights, covered


@pytest.mark.parametrize("middle", [10**9, -5, "decreasing"])
def test_every_pixel_start_entry_is_checked(middle):
    # Right at both ends, wrong in the middle: once the forward's check passed this, the backward
    # walked it out of bounds.
    packed, params, weights, covered = blend_inputs()
    start = packed.pixel_start.clone()
    start[1] = len(packed) if middle == "decreasing" else middle
    bad = PackedFragments(packed.pix_to_face, packed.zbuf, packed.bary_coords, packed.dists,
                          packed.pixel, start, packed.shape)
    with pytest.raises(ValueError, match="pixel_start"):  # not the weights' fragments
        softmax_rgb_blend_packed(covered, weights, bad, params)
    with pytest.raises(RuntimeError, match="pixel_start must never decrease"):
        blended_fragments(bad, params)
    with pytest.raises(RuntimeError, match="pixel_start must never decrease"):
        softmax_rgb_blend_packed(covered, weights._replace(pixel_start=start), bad, params)
    # The kernels themselves, backward included, whatever the Python layer passes them.
    arrays = [weights.coverage, weights.share, weights.background_share, weights.transmittance]
    background = torch.ones(3, dtype=torch.float64)
    rgba = _backend._C.softmax_blend_forward(packed.pixel_start, arrays, background, weights.kept,
                                             covered)
    for pixel_start in (start, torch.zeros(0, dtype=torch.int64)):
        match = "never decrease" if len(pixel_start) else "pixel_start must have"
        with pytest.raises(RuntimeError, match=match):
            _backend._C.softmax_blend_forward(pixel_start, arrays, background, weights.kept,
                                              covered)
        with pytest.raises(RuntimeError, match=match):
            _backend._C.softmax_blend_backward(pixel_start, packed.zbuf, weights.znear,
                                               weights.zfar, arrays, background, weights.kept,
                                               covered, rgba, torch.ones_like(rgba),
                                               packed.shape[1] * packed.shape[2], 1e-2, 0.5)


@pytest.mark.parametrize("change", [dict(sigma=2e-2), dict(gamma=0.25), dict(znear=0.5),
                                    dict(zfar=50.0)])
def test_blend_and_weights_must_agree(change):
    # The backward differentiates the weights with the blend's sigma, gamma, znear and zfar.
    packed, params, weights, covered = blend_inputs()
    blend_params = BlendParams(sigma=change.get("sigma", params.sigma),
                               gamma=change.get("gamma", params.gamma))
    depths = {k: v for k, v in change.items() if k in ("znear", "zfar")}
    with pytest.raises(ValueError, match=f"{next(iter(change))} differs"):
        softmax_rgb_blend_packed(covered, weights, packed, blend_params, **depths)


@pytest.mark.parametrize("kept", [[5, 2], [2, 2, 5], [-1, 3], [0, 10**6], [[1, 2]]])
def test_kept_must_be_increasing_unique_indices(kept):
    packed, params, _, _ = blend_inputs()
    with pytest.raises(ValueError, match="kept must be increasing"):
        blended_fragments(packed, params, kept=torch.tensor(kept))


@pytest.mark.parametrize("value", [-1e-3, 1.0, math.nan])
def test_invalid_dropped_weight(value):
    with pytest.raises(ValueError, match="dropped_weight"):
        BlendParams(dropped_weight=value)
    packed, params, _, _ = blend_inputs()
    params.dropped_weight = value  # assigned after the checks of the constructor
    with pytest.raises(ValueError, match="dropped_weight"):
        blended_fragments(packed, params)


class HardBlendPhong(SoftPhongShader):
    """Soft Phong's colours, the nearest face's blend: a subclass the packed path would bypass."""

    def blend(self, colors, fragments, cameras, blend_params, kwargs):
        return hard_rgb_blend(colors, fragments, blend_params)


class RecordingRasterizer(MeshRasterizer):
    calls = 0

    def forward(self, meshes_world, **kwargs):
        RecordingRasterizer.calls += 1
        return super().forward(meshes_world, **kwargs)


class ScreenGradient(TexturesVertex):
    """A colour by image row: needs (N, H, W, K) fragments, which the packed path has not."""

    def sample_textures(self, fragments, faces_packed=None):
        N, H, W, K = fragments.pix_to_face.shape
        rows = torch.linspace(0, 1, H, dtype=torch.float64)
        return rows[None, :, None, None, None].expand(N, H, W, K, 3)


@pytest.mark.parametrize("case", ["shader", "rasterizer", "textures"])
def test_renderer_takes_the_packed_path_only_for_its_own_classes(case):
    mesh = vertex_sphere()
    fast, reference = renderers(SoftPhongShader, 16, 4, 1e-4, 1e-4, 1e-4)
    if case == "shader":
        shader = HardBlendPhong(cameras=fast.shader.cameras, lights=fast.shader.lights,
                                blend_params=fast.shader.blend_params)
        fast, reference = MeshRenderer(fast.rasterizer, shader), \
            MeshRendererWithFragments(fast.rasterizer, shader)
    elif case == "rasterizer":
        rasterizer = RecordingRasterizer(fast.rasterizer.cameras, fast.rasterizer.raster_settings)
        fast = MeshRenderer(rasterizer, fast.shader)
    else:
        mesh.textures = ScreenGradient(mesh.textures.verts_features_list())
    image = fast(mesh)
    torch.testing.assert_close(image, reference(mesh)[0], rtol=0, atol=0)
    if case == "rasterizer":
        assert RecordingRasterizer.calls == 1


def test_a_shader_overriding_blend_refuses_packed_fragments():
    mesh = vertex_sphere()
    fast, _ = renderers(SoftPhongShader, 16, 4, 1e-4, 1e-4, 1e-4)
    shader = HardBlendPhong(cameras=fast.shader.cameras, lights=fast.shader.lights,
                            blend_params=fast.shader.blend_params)
    with pytest.raises(ValueError, match="overrides blend"):
        shader(fast.rasterizer.rasterize_packed(mesh), mesh)
    assert shader(fast.rasterizer(mesh), mesh).shape == (1, 16, 16, 4)  # Fragments: its own blend


def test_packed_path_stops_at_the_memory_limit_between_images():
    from lib3dr.renderer.memory import (BYTES_PER_PACKED_FRAGMENT, RasterMemoryError, memory_estimate,
                                        set_memory_limit)
    mesh = vertex_sphere(N=2)
    fast, _ = renderers(SoftPhongShader, 32, 8, 1e-4, 1e-4, 1e-4, N=2)
    starts = fast.rasterizer.rasterize_packed(mesh).image_starts()  # image n: [starts[n], starts[n + 1])
    assert 0 < starts[1] < starts[2]
    buffers = memory_estimate(1, 32, 32, 8)
    try:
        # Room for the buffers and the first image's fragments, not for the second's.
        set_memory_limit(buffers + starts[1] * BYTES_PER_PACKED_FRAGMENT)
        with pytest.raises(RasterMemoryError, match=r"N=2 images.*images 0 to 1.*Reduce faces_per_pixel"):
            fast(mesh)
        set_memory_limit(buffers + starts[2] * BYTES_PER_PACKED_FRAGMENT)
        assert fast(mesh).shape == (2, 32, 32, 4)
        set_memory_limit(None)
        assert fast(mesh).shape == (2, 32, 32, 4)
    finally:
        set_memory_limit(None)
