"""Dynamic int8 quantization of linear layers, implemented here rather than with ``torch.ao.quantization``.

Why our own: ``torch.ao.quantization.quantize_dynamic`` is deprecated (torch 2.15 warns it "will be removed") and its
replacement, torchao, targets GPUs. The scheme is the classic dynamic one: weights are stored as int8 with one
symmetric scale per output channel (4x smaller than fp32); at run time each input row is quantized to int8 with its
own scale, the product is computed in integer arithmetic (``torch._int_mm``: int8 x int8 -> int32) and rescaled.
Where ``_int_mm`` cannot take the shapes (CUDA wants M > 16 and multiples of 8), the same integers are multiplied in
fp32, which is exact while K x 127 x 127 stays below 2**24.
"""

from __future__ import annotations

import torch
from torch import nn


class Int8DynamicLinear(nn.Module):
    """A frozen ``nn.Linear`` whose weight lives as int8 + per-channel scales."""

    qweight: torch.Tensor
    scale: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, in_features: int, out_features: int, bias: bool) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.register_buffer("qweight", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("scale", torch.ones(out_features, dtype=torch.float32))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8DynamicLinear:
        w = linear.weight.detach().float()
        scale = w.abs().amax(dim=1).clamp(min=1e-8) / 127.0
        q = cls(linear.in_features, linear.out_features, linear.bias is not None)
        q.qweight.copy_(torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8))
        q.scale.copy_(scale)
        if linear.bias is not None and q.bias is not None:
            q.bias.copy_(linear.bias.detach().float())
        return q.to(linear.weight.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]).float()
        x_scale = x2.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / 127.0
        xq = torch.round(x2 / x_scale).clamp(-127, 127).to(torch.int8)
        acc = _int8_matmul(xq, self.qweight.t())
        y = acc.float() * x_scale * self.scale[None, :]
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def _int8_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    m, k = a.shape
    n = b.shape[1]
    if a.device.type == "cpu" or (m > 16 and k % 8 == 0 and n % 8 == 0):
        return torch._int_mm(a, b.contiguous() if a.device.type == "cpu" else b)
    return a.float() @ b.float()


def quantize_int8(model: nn.Module) -> nn.Module:
    """Replace every nn.Linear in ``model`` (in place) with its int8 dynamic version; returns the model."""
    for name, child in list(model.named_children()):
        if isinstance(child, nn.Linear):
            setattr(model, name, Int8DynamicLinear.from_linear(child))
        else:
            quantize_int8(child)
    return model
