"""Conv5_FC3 (ClinicaDL's architecture, from its published description), a compact head, the gradient
reversal layer and the SSDA network: feature extractor F and heads C_S, C_T, C_dom (paper Fig. 3).

Only F + C_T is exported for inference (`TargetClassifier`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from flairqc_app.train.settings import ModelSettings
from flairqc_app.train.template_grid import BRAIN_WINDOW_MARGIN_MM, template_brain


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, lambd: float) -> torch.Tensor:  # type: ignore[override]
        ctx.lambd = lambd
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return -ctx.lambd * grad, None


def reverse_gradient(x: torch.Tensor, lambd: float) -> torch.Tensor:
    """Identity forward; gradient multiplied by -lambda backward, so F maximises the domain loss."""
    return _ReverseGradient.apply(x, lambd)


def feature_grid(input_shape: tuple[int, ...], blocks: int) -> tuple[int, ...]:
    """Spatial size after `blocks` max-pools of 2 that pad odd sizes (ceil): 169x208x179 -> 6x7x6."""
    shape = tuple(input_shape)
    for _ in range(blocks):
        shape = tuple(math.ceil(n / 2) for n in shape)
    return shape


class InputWindow(nn.Module):
    """The image times a fixed 0/1 mask. The mask is a buffer: saved with the weights and exported to ONNX
    as a constant, so inference needs no step of its own."""

    def __init__(self, mask: np.ndarray):
        super().__init__()
        self.register_buffer("mask", torch.from_numpy(mask.astype(np.float32))[None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask


class FeatureExtractor(nn.Module):
    """F: blocks of Conv3d(3, pad 1) -> BatchNorm3d -> ReLU -> MaxPool3d(2, ceil). With ReLU outputs >= 0,
    ceil-mode pooling equals zero-padding to an even size, as in ClinicaDL's PadMaxPool3d.

    With a `window`, F sees only the brain: for artefacts judged in the brain, where the engine's scalp
    (smooth layers, unlike a real one) would otherwise teach a cue that real heads trip
    (docs/model-history.md#attempt-7).
    """

    def __init__(self, channels: tuple[int, ...], window: np.ndarray | None = None):
        super().__init__()
        self.window = InputWindow(window) if window is not None else None
        layers: list[nn.Module] = []
        previous = 1
        for c in channels:
            layers += [
                nn.Conv3d(previous, c, 3, padding=1),
                nn.BatchNorm3d(c),
                nn.ReLU(inplace=True),
                nn.MaxPool3d(2, ceil_mode=True),
            ]
            previous = c
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.window(x) if self.window is not None else x)


class Head(nn.Module):
    """Dropout -> Linear -> ReLU -> ... -> Linear(out). `fc3` flattens the feature map (the paper's 32,256
    inputs on the full grid); `gap` averages it globally first (channels inputs: small, any resolution)."""

    def __init__(self, settings: ModelSettings, n_out: int):
        super().__init__()
        channels = settings.channels[-1]
        if settings.head == "fc3":
            n_in = channels * math.prod(feature_grid(settings.input_shape, len(settings.channels)))
            self.pool: nn.Module = nn.Flatten()
        elif settings.head == "gap":
            n_in = channels
            self.pool = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten())
        else:
            raise ValueError(f"unknown head {settings.head!r} (fc3 | gap)")
        layers: list[nn.Module] = [nn.Dropout(settings.dropout)]
        for width in settings.hidden:
            layers += [nn.Linear(n_in, width), nn.ReLU(inplace=True)]
            n_in = width
        layers.append(nn.Linear(n_in, n_out))
        self.mlp = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.pool(features))


class SSDANet(nn.Module):
    """F with label heads (`source` = C_S, `target` = C_T) and optionally the domain head C_dom.

    Single-head methods (target-only, source-only, DANN-like) build only `target`, so every method is
    evaluated and exported through the same F + C_T path.
    """

    def __init__(self, settings: ModelSettings, n_classes: int, label_heads: tuple[str, ...], domain: bool):
        super().__init__()
        window = (
            template_brain(tuple(settings.input_shape), BRAIN_WINDOW_MARGIN_MM)
            if settings.input_region == "brain"
            else None
        )
        self.features = FeatureExtractor(settings.channels, window)
        self.heads = nn.ModuleDict({name: Head(settings, n_classes) for name in label_heads})
        self.domain = Head(settings, 1) if domain else None

    def classify(self, features: torch.Tensor, head: str) -> torch.Tensor:
        return self.heads[head](features)

    def discriminate(self, features: torch.Tensor, lambd: float) -> torch.Tensor:
        """Domain logit (1 = FLAIR) behind the gradient reversal layer."""
        assert self.domain is not None, "this network has no domain head"
        return self.domain(reverse_gradient(features, lambd)).squeeze(1)


class TargetClassifier(nn.Module):
    """F + C_T: what inference runs and what is exported to ONNX (logits [N, K])."""

    def __init__(self, net: SSDANet):
        super().__init__()
        self.features = net.features
        self.head = net.heads["target"]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image))
