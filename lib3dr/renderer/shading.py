"""Shading: the colour of each (pixel, face) fragment under lights, by Phong reflection.

Three ways to decide where the reflection is evaluated (PyTorch3D's functions):
``phong_shading`` per pixel with interpolated normals, ``gouraud_shading`` per vertex then
interpolated, ``flat_shading`` once per face. Each returns ``(N, H, W, K, 3)``, zero where there
is no face. Only covered fragments are lit: with K = 50 most of the (N, H, W, K) slots are empty.
"""
import torch

from lib3dr.renderer.interpolate import (covered_by_image, interpolate_covered,
                                         interpolate_face_attributes, scatter_covered)
from lib3dr.renderer.properties import broadcast_to_points


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
    points, normals and texels; returns ``(N, H, W, K, 3)``.

    Lights and cameras are batched per image, so the fragments are grouped by image into a
    padded ``(N, max fragments per image, 3)`` batch for ``apply_lighting``."""
    covered = fragments.pix_to_face >= 0
    N = covered.shape[0]
    image, slot, width = covered_by_image(fragments.pix_to_face)

    def by_image(values):
        batch = values.new_zeros(N, width, 3)
        batch[image, slot] = values
        return batch

    lit = apply_lighting(by_image(points), by_image(normals), lights, cameras, materials, **camera_kwargs)
    ambient, diffuse, specular = (light.expand(N, width, 3)[image, slot] for light in lit)
    return scatter_covered(fragments.pix_to_face, (ambient + diffuse) * texels[covered] + specular)


def phong_shading(meshes, fragments, lights, cameras, materials, texels, **camera_kwargs):
    """Reflection per pixel, at the interpolated position with the interpolated vertex normal."""
    faces = meshes.faces_packed()
    points = interpolate_covered(fragments.pix_to_face, fragments.bary_coords,
                                 meshes.verts_packed()[faces])
    normals = interpolate_covered(fragments.pix_to_face, fragments.bary_coords,
                                  meshes.verts_normals_packed()[faces])
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
    shaded = verts_colors * _packed(ambient + diffuse, counts) + _packed(specular, counts)
    return interpolate_face_attributes(fragments.pix_to_face, fragments.bary_coords,
                                       shaded[meshes.faces_packed()])


def flat_shading(meshes, fragments, lights, cameras, materials, texels, **camera_kwargs):
    """Reflection once per face, at its centroid with its geometric normal."""
    faces = fragments.pix_to_face[fragments.pix_to_face >= 0]
    points = meshes.verts_packed()[meshes.faces_packed()[faces]].mean(dim=1)
    normals = meshes.faces_normals_packed()[faces]
    return _light_covered(fragments, points, normals, texels, lights, cameras, materials,
                          camera_kwargs)


def _packed(padded, counts):
    """(N, V, C) padded per-vertex values -> (sum V_n, C) packed."""
    real = torch.arange(padded.shape[1], device=padded.device)[None] < counts[:, None]
    return padded[real]
