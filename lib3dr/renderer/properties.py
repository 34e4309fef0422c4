"""Batched parameters of lights and materials: one row per mesh, broadcast over its points.

Like cameras, these are scene settings rather than data: ``to(device)`` moves them in place and
returns them (PyTorch3D's rule, and ``torch.nn.Module``'s), where ``Meshes`` and textures return
new objects like tensors do.
"""
import torch


def batched(value, device, name, width=3):
    """``value`` as a float tensor of shape (N, width) (or (N,) when width is None)."""
    tensor = torch.as_tensor(value, dtype=torch.float32, device=device) \
        if not torch.is_tensor(value) else value.to(device)
    if width is None:
        tensor = tensor.reshape(-1)
    elif tensor.dim() == 1:
        tensor = tensor[None]
    if width is not None and (tensor.dim() != 2 or tensor.shape[1] != width):
        raise ValueError(f"{name} must have shape (N, {width}) or ({width},), got {tuple(tensor.shape)}")
    return tensor


def broadcast_to_points(param, points):
    """(N, C) or (N,) parameters shaped to broadcast against points (N, ..., 3)."""
    if param.shape[0] not in (1, points.shape[0]):
        raise ValueError(f"a batch of {param.shape[0]} lights or materials cannot light "
                         f"{points.shape[0]} meshes")
    trailing = param.shape[1:] if param.dim() == 2 else ()
    return param.reshape(param.shape[0], *([1] * (points.dim() - 2)), *trailing)


class BatchedProperties:
    """Shared batching behaviour: ``device``, ``to``, ``clone`` and ``len`` over the fields."""

    _fields = ()

    def __len__(self):
        return max(getattr(self, name).shape[0] for name in self._fields)

    def to(self, device):
        """Moves all parameters to ``device``, in place; returns self (as cameras do)."""
        for name in self._fields:
            setattr(self, name, getattr(self, name).to(device))
        self.device = torch.device(device)
        return self

    def clone(self):
        other = object.__new__(type(self))
        other.__dict__.update({k: (v.clone() if torch.is_tensor(v) else v)
                               for k, v in self.__dict__.items()})
        return other


