"""Shading: the colour of each (pixel, face) fragment under lights, by Phong reflection.

Three ways to decide where the reflection is evaluated (PyTorch3D's functions):
``phong_shading`` per pixel with interpolated normals, ``gouraud_shading`` per vertex then
interpolated, ``flat_shading`` once per face. Each returns ``(N, H, W, K, 3)``, zero where there
is no face. Only covered fragments are lit: with K = 50 most of the (N, H, W, K) slots are empty.
Given ``PackedFragments`` (lib3dr.renderer.packed) they return ``(M, 3)``, a colour per fragment,
lit on the CPU by one compiled pass (``_light_compiled``) with the formulas of ``apply_lighting``.
"""
import torch

from lib3dr import _backend
from lib3dr.renderer.compiled import PhongLighting
from lib3dr.renderer.interpolate import (covered_by_image, interpolate_covered,
                                         interpolate_face_attributes, scatter_covered)
from lib3dr.renderer.lights import AmbientLights, DirectionalLights, PointLights
from lib3dr.renderer.packed import PackedFragments
from lib3dr.renderer.properties import broadcast_to_points
from lib3dr.structures import _padded_to_packed


def apply_lighting(points, normals, lights, cameras, materials, **camera_kwargs):
    """Ambient, diffuse and specular light at ``points`` with ``normals`` ``(N, ..., 3)``.

    The specular term looks from the camera centre (``camera_kwargs`` such as ``R=``/``T=``
    override the cameras' own, so a renderer called with a new pose lights it from there)."""
    camera_centre = cameras.get_camera_center(**camera_kwargs)
    diffuse = lights.diffuse(normals=normals, points=points)
    specular = lights.specular(normals=normals, points=points, camera_position=camera_centre,
                               shininess=materials.shininess)
    ambient = broadcast_to_points(materials.ambient_color * lights.ambient_color, points)
    return (ambient, broadcast_to_points(materials.diffuse_color, points) * diffuse,
            broadcast_to_points(materials.specular_color, points) * specular)


def _light_covered(fragments, points, normals, texels, lights, cameras, materials, camera_kwargs):
    """``(ambient + diffuse) * texel + specular`` of the covered fragments, given packed ``(M, 3)``
    points and normals; returns ``(N, H, W, K, 3)`` (``(M, 3)`` for ``PackedFragments``, whose
    texels are ``(M, 3)`` too).

    Lights and cameras are batched per image, so the fragments are grouped by image into a
    padded ``(N, max fragments per image, 3)`` batch for ``apply_lighting``."""
    packed = isinstance(fragments, PackedFragments)
    if packed and _compiled_lighting_applies(points, texels, lights):
        return _light_compiled(fragments, points, normals, texels, lights, cameras, materials,
                               camera_kwargs)
    if packed:
        N = fragments.shape[0]
        image, slot, width = fragments.by_image()
    else:
        N = fragments.pix_to_face.shape[0]
        image, slot, width = covered_by_image(fragments.pix_to_face)
        texels = texels[fragments.pix_to_face >= 0]

    def by_image(values):
        if N == 1:  # one image: the fragments are the batch
            return values[None]
        batch = values.new_zeros(N, width, 3)
        batch[image, slot] = values
        return batch

    lit = apply_lighting(by_image(points), by_image(normals), lights, cameras, materials, **camera_kwargs)
    ambient, diffuse, specular = (light.expand(1, width, 3)[0] if N == 1 else
                                  light.expand(N, width, 3)[image, slot] for light in lit)
    colors = (ambient + diffuse) * texels + specular
    return colors if packed else scatter_covered(fragments.pix_to_face, colors)


def _compiled_lighting_applies(points, texels, lights):
    """Whether ``_light_compiled`` can light these packed fragments: on the CPU with lib3dr._C,
    RGB texels, and lights of lib3dr's own classes (a subclass may light differently)."""
    return (points.device.type == "cpu" and _backend._C is not None
            and points.dtype in (torch.float32, torch.float64) and texels.shape[-1] == 3
            and type(lights) in (PointLights, DirectionalLights, AmbientLights))


def _light_compiled(fragments, points, normals, texels, lights, cameras, materials, camera_kwargs):
    """``_light_covered``'s colours of packed fragments by the compiled kernel, from the
    per-image products of the lights' and materials' colours."""
    N, H, W, _ = fragments.shape
    camera_centre = cameras.get_camera_center(**camera_kwargs)
    if type(lights) is PointLights:
        light = lights.location
    elif type(lights) is DirectionalLights:
        light = lights.direction
    else:  # AmbientLights: a zero direction, which lights nothing
        light = points.new_zeros(1, 3)
    per_image = [light, materials.ambient_color * lights.ambient_color,
                 materials.diffuse_color * lights.diffuse_color,
                 materials.specular_color * lights.specular_color, materials.shininess,
                 camera_centre]
    for value in per_image:
        if value.device != points.device:
            raise ValueError(f"lights, materials and cameras are on {value.device} but the points "
                             f"to light are on {points.device}: move them with .to(device)")
        if value.shape[0] not in (1, N):
            raise ValueError(f"a batch of {value.shape[0]} lights, materials or cameras cannot "
                             f"light {N} meshes")
    per_image = [value.to(points.dtype).expand(N, *value.shape[1:]) for value in per_image]
    return PhongLighting.apply(fragments.pixel, H * W, points, normals, texels.to(points.dtype),
                               type(lights) is PointLights, *per_image)


def phong_shading(meshes, fragments, lights, cameras, materials, texels, **camera_kwargs):
    """Reflection per pixel, at the interpolated position with the interpolated vertex normal."""
    faces = meshes.faces_packed()
    face_verts, face_normals = meshes.verts_packed()[faces], meshes.verts_normals_packed()[faces]
    if isinstance(fragments, PackedFragments):
        points, normals = fragments.interpolate(face_verts), fragments.interpolate(face_normals)
    else:
        points = interpolate_covered(fragments.pix_to_face, fragments.bary_coords, face_verts)
        normals = interpolate_covered(fragments.pix_to_face, fragments.bary_coords, face_normals)
    return _light_covered(fragments, points, normals, texels, lights, cameras, materials,
                          camera_kwargs)


def gouraud_shading(meshes, fragments, lights, cameras, materials, **camera_kwargs):
    """Reflection per vertex, coloured by the vertex colours (``TexturesVertex``), then
    interpolated across each face."""
    verts_colors = meshes.textures.verts_features_packed()
    # Light each mesh's vertices with that mesh's lights: padded (N, V, 3) views batch them.
    counts = meshes.num_verts_per_mesh()
    ambient, diffuse, specular = apply_lighting(meshes.verts_padded(), meshes.verts_normals_padded(),
                                                lights, cameras, materials, **camera_kwargs)
    shaded = verts_colors * _padded_to_packed(ambient + diffuse, counts) + _padded_to_packed(specular, counts)
    if isinstance(fragments, PackedFragments):
        return fragments.interpolate(shaded[meshes.faces_packed()])
    return interpolate_face_attributes(fragments.pix_to_face, fragments.bary_coords,
                                       shaded[meshes.faces_packed()])


def flat_shading(meshes, fragments, lights, cameras, materials, texels, **camera_kwargs):
    """Reflection once per face, at its centroid with its geometric normal."""
    faces = fragments.pix_to_face[fragments.pix_to_face >= 0]
    points = meshes.verts_packed()[meshes.faces_packed()[faces]].mean(dim=1)
    normals = meshes.faces_normals_packed()[faces]
    return _light_covered(fragments, points, normals, texels, lights, cameras, materials,
                          camera_kwargs)
