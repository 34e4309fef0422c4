"""Ready-made meshes: ``ico_sphere`` (as PyTorch3D's ``pytorch3d.utils.ico_sphere``)."""
import math

import torch
import torch.nn.functional as F

from lib3dr.structures import Meshes

# The golden ratio: (0, ±1, ±phi) and its cyclic permutations are the corners of an icosahedron.
_PHI = (1 + math.sqrt(5)) / 2
_ICOSAHEDRON_VERTS = [
    [-1, _PHI, 0], [1, _PHI, 0], [-1, -_PHI, 0], [1, -_PHI, 0],
    [0, -1, _PHI], [0, 1, _PHI], [0, -1, -_PHI], [0, 1, -_PHI],
    [_PHI, 0, -1], [_PHI, 0, 1], [-_PHI, 0, -1], [-_PHI, 0, 1],
]
# Counter-clockwise seen from outside, so (v1 - v0) x (v2 - v0) points outwards.
_ICOSAHEDRON_FACES = [
    [0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11],
    [1, 5, 9], [5, 11, 4], [11, 10, 2], [10, 7, 6], [7, 1, 8],
    [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9],
    [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1],
]


def _subdivide(verts, faces):
    """Split every triangle into four at its edge midpoints, pushed out onto the unit sphere.

    Args:
        verts: (V, 3) unit vectors.
        faces: (F, 3) int64, counter-clockwise.
    Returns:
        (V + E, 3) verts (the E edge midpoints appended) and (4F, 3) faces, still counter-clockwise.
    """
    V = len(verts)
    # (3F, 2) corner pairs, sorted so that the two faces sharing an edge list it identically.
    edges = faces[:, [[0, 1], [1, 2], [2, 0]]].sort(dim=2).values.reshape(-1, 2)
    # Each edge must get one midpoint, shared by both its faces: number the edges by the key a * V + b.
    keys, edge_of_corner = torch.unique(edges[:, 0] * V + edges[:, 1], return_inverse=True)
    midpoints = F.normalize((verts[keys // V] + verts[keys % V]) / 2, dim=1)
    m01, m12, m20 = (V + edge_of_corner.view(-1, 3)).unbind(1)  # midpoint of edge (0,1), (1,2), (2,0) per face
    v0, v1, v2 = faces.unbind(1)
    new_faces = torch.stack([
        torch.stack([v0, m01, m20], dim=1),
        torch.stack([v1, m12, m01], dim=1),
        torch.stack([v2, m20, m12], dim=1),
        torch.stack([m01, m12, m20], dim=1),
    ], dim=1).reshape(-1, 3)
    return torch.cat([verts, midpoints]), new_faces


def ico_sphere(level=0, device=None):
    """A unit sphere made by subdividing an icosahedron ``level`` times.

    Level 0 has 12 vertices and 20 faces; each level multiplies the faces by 4 (level L: 20 * 4**L faces,
    10 * 4**L + 2 vertices). Faces are counter-clockwise seen from outside, so their normals point outwards.

    Returns:
        ``Meshes`` holding one mesh, on ``device`` (default: CPU).
    """
    if not isinstance(level, int) or level < 0:
        raise ValueError(f"level must be a non-negative int, got {level!r}")
    verts = F.normalize(torch.tensor(_ICOSAHEDRON_VERTS, dtype=torch.float32, device=device), dim=1)
    faces = torch.tensor(_ICOSAHEDRON_FACES, dtype=torch.int64, device=device)
    for _ in range(level):
        verts, faces = _subdivide(verts, faces)
    return Meshes(verts=[verts], faces=[faces])
