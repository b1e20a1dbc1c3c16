"""THE shared 2D encoder every fusion model uses, and first-conv inflation for stacked inputs.

    frames [N, C_in, H, W] --first_conv--> ... --body--> maps [N, D, h, w] --GAP--> x [N, D]

``Backbone.maps`` / ``Backbone.forward`` work on frames; ``per_frame_maps`` / ``per_frame`` fold a clip
``[B, T, C, H, W]`` into the batch so every frame goes through the same weights.
"""
from __future__ import annotations

import os
from typing import Callable

import torch
from torch import nn

from . import adapter

BACKBONES = ("small_cnn", "resnet18", "mobilenet_v3_small")
DEFAULT_BACKBONE = "small_cnn"


def _conv_bn_relu(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def small_cnn(width: int = 16) -> nn.Sequential:
    """Four 3x3 conv-BN-ReLU blocks, stride 1-2-2-1: 32x32 -> 8x8 maps of ``4*width`` channels.

    Small enough that a per-frame model over 8 frames at 32x32 trains in well under a minute on 2 cores.
    """
    return nn.Sequential(
        _conv_bn_relu(3, width, 1),
        _conv_bn_relu(width, 2 * width, 2),
        _conv_bn_relu(2 * width, 4 * width, 2),
        _conv_bn_relu(4 * width, 4 * width, 1),
    )


def _torchvision(name: str, pretrained: bool) -> tuple[nn.Module, int]:
    import torchvision.models as tvm

    if name == "resnet18":
        weights = tvm.ResNet18_Weights.IMAGENET1K_V1 if pretrained else None
        if weights is not None:
            _require_cached(weights)
        m = tvm.resnet18(weights=weights)
        features = nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3, m.layer4)
        return features, 512
    if name == "mobilenet_v3_small":
        weights = tvm.MobileNet_V3_Small_Weights.IMAGENET1K_V1 if pretrained else None
        if weights is not None:
            _require_cached(weights)
        m = tvm.mobilenet_v3_small(weights=weights)
        return m.features, 576
    raise AssertionError(name)


def _require_cached(weights) -> None:
    """Fail clearly (no download attempt) unless the ImageNet weights sit in the local torch hub cache."""
    filename = os.path.basename(weights.url)
    path = os.path.join(torch.hub.get_dir(), "checkpoints", filename)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"pretrained=True needs {filename} in the torch cache ({path}); this suite never downloads. "
            f"Copy the file there or use pretrained=False."
        )


def _first_conv_path(module: nn.Module) -> str:
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Conv2d):
            return name
    raise ValueError("backbone has no Conv2d")


def _set_submodule(root: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, leaf = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, leaf, new)


INFLATE_MODALITIES = ("rgb", "flow")


def inflate_conv(conv: nn.Conv2d, in_channels: int, *, from_weights: bool, modality: str = "rgb") -> nn.Conv2d:
    """A copy of ``conv`` taking ``in_channels`` inputs (3T stacked RGB, 2L stacked flow, ...).

    With ``from_weights`` (pretrained weights exist) the new kernel is built from the 3-channel one so a
    uniform input gives the same response (the cross-modality trick of TSN): for stacked RGB
    (``modality="rgb"``, ``in_channels = 3k``) the RGB kernel is tiled k times and divided by k; for flow
    (whose channels u, v are not colours) or any other count, its channel mean is replicated and scaled
    by ``3 / in_channels``. Without weights the new conv keeps PyTorch's fan-in initialisation.
    """
    if modality not in INFLATE_MODALITIES:
        raise ValueError(f"modality must be one of {INFLATE_MODALITIES}, got {modality!r}")
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=1,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
    )
    if from_weights:
        w = conv.weight.detach()
        cin = w.shape[1]
        with torch.no_grad():
            if modality == "rgb" and in_channels % cin == 0:
                k = in_channels // cin
                new.weight.copy_(w.repeat(1, k, 1, 1) / k)
            else:
                new.weight.copy_(w.mean(dim=1, keepdim=True).repeat(1, in_channels, 1, 1) * cin / in_channels)
            if conv.bias is not None:
                new.bias.copy_(conv.bias.detach())
    return new


class Backbone(nn.Module):
    """Shared per-frame 2D encoder: ``[N, C_in, H, W] -> maps [N, D, h, w] -> pooled [N, D]``."""

    def __init__(self, features: nn.Module, out_channels: int, *, name: str, pretrained: bool) -> None:
        super().__init__()
        self.features = features
        self.out_channels = out_channels  # D
        self.output_dim = out_channels
        self.name = name
        self.pretrained = pretrained
        self._first_conv_path = _first_conv_path(features)

    @property
    def first_conv(self) -> nn.Conv2d:
        """The input convolution (its weight is ``[C_out, C_in, k, k]``)."""
        return self.features.get_submodule(self._first_conv_path)  # type: ignore[return-value]

    @property
    def in_channels(self) -> int:
        return self.first_conv.in_channels

    def inflate(self, in_channels: int, *, modality: str = "rgb") -> "Backbone":
        """Replace the first conv with one taking ``in_channels`` inputs (see ``inflate_conv``)."""
        if in_channels != self.in_channels:
            new = inflate_conv(self.first_conv, in_channels, from_weights=self.pretrained, modality=modality)
            _set_submodule(self.features, self._first_conv_path, new)
        return self

    # ------------------------------------------------- where time may act inside it (TSM, slow fusion)
    # The backbone owns these answers; the built-in ones and the adapted timm / torchvision / user classifiers
    # read them off their module structure (``fusion_models.adapter``). A subclass may declare its own.
    def units(self) -> list[tuple[str, nn.Module]]:
        """``(path inside features, module)`` run one after another (nested plain ``Sequential``s expanded)."""
        return adapter.units(self.features)

    def shift_sites(self) -> list[tuple[str, int]]:
        """Where TSM puts a temporal shift: ``(path inside features, input channels)`` of each module a shift goes
        in front of (the first conv of every residual block, or every conv but the first of a plain chain)."""
        return adapter.shift_sites(self.features)

    def fusion_stages(self, count: int) -> list[tuple[int, list[str]]]:
        """Where slow fusion stacks two time steps: ``(index into units(), entry-conv paths)`` of ``count``
        stages (the last ``count`` that lower the resolution); ``AdaptError`` when there are not enough."""
        return adapter.fusion_stages(self.features, self.in_channels, count=count, label=self.name)

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, C_in, H, W] -> [N, D, h, w]``."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, C_in, H, W] -> [N, D]`` (global average pool of ``maps``)."""
        return self.maps(x).mean(dim=(2, 3))

    def per_frame_maps(self, clip: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W] -> [B, T, D, h, w]``, the same weights on every frame."""
        b, t = clip.shape[:2]
        m = self.maps(clip.flatten(0, 1))
        return m.unflatten(0, (b, t))

    def per_frame(self, clip: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W] -> [B, T, D]``: ``x_t = f_theta(I_t)``."""
        return self.per_frame_maps(clip).mean(dim=(3, 4))


def build_backbone(
    name: "str | Callable[[], nn.Module] | nn.Module" = DEFAULT_BACKBONE,
    *,
    in_channels: int = 3,
    pretrained: bool = False,
    width: int = 16,
    modality: str = "rgb",
    weights: str | None = None,
) -> Backbone:
    """The shared encoder ``name`` with its first conv taking ``in_channels`` (``modality`` says what the
    stacked channels are, for the pretrained inflation rule).

    ``name`` is one of ``BACKBONES``, ``"timm:NAME"`` (any ``timm.create_model`` name), ``"tv:NAME"`` (a
    torchvision classification builder), a factory returning an ``nn.Module`` (called with no arguments), or
    a module (deep-copied, so every model gets its own). Beyond the built-in three, the feature extractor and
    its channel count D are read off the module structure (``fusion_models.adapter``); a classifier that
    cannot be adapted raises ``AdaptError`` saying why. A ``Backbone`` (or a factory returning one) is used as
    it is: a subclass may declare its own ``shift_sites`` / ``fusion_stages`` (where TSM and slow fusion act).

    ``pretrained=True`` loads the library's weights from the local cache only; ``weights=PATH`` loads a
    local state-dict file (``.pth`` / ``.pt`` / ``.safetensors``): the classifier's, or its feature extractor's
    (``backbone_state``, what a pre-training saves; the only kind ``small_cnn`` takes). Loaded weights hold a
    3-channel first conv; a stacked input (early fusion's 3T channels) gets it inflated, I3D-style: the kernel
    repeated over the T frames and divided by T, so a clip of T identical frames gives the 2D conv's response
    on one (``inflate_conv``). Nothing is ever downloaded; a missing file is a ``FileNotFoundError``.
    """
    if weights is not None and not os.path.isfile(weights):
        raise FileNotFoundError(f"backbone {backbone_label(name)}: weights file {weights!r} does not exist")
    if name == "small_cnn":
        if pretrained:
            raise ValueError("small_cnn has no pretrained weights; use pretrained=False or backbone='resnet18'")
        features, dim = small_cnn(width), 4 * width
        if weights is not None:  # a state dict of its features: what a pre-training saves (``backbone_state``)
            _load_weights((features,), weights, "small_cnn")
        loaded = weights is not None
        return Backbone(features, dim, name=name, pretrained=loaded).inflate(in_channels, modality=modality)
    if isinstance(name, str) and name in BACKBONES and weights is None:
        features, dim = _torchvision(name, pretrained)
        return Backbone(features, dim, name=name, pretrained=pretrained).inflate(in_channels, modality=modality)
    label = backbone_label(name)
    model = _classifier(name, label, pretrained=pretrained and weights is None)
    if isinstance(model, Backbone):  # already an encoder (a subclass declaring its own sites): used as it is
        if weights is not None:
            _load_weights((model, model.features), weights, label)
        return model.inflate(in_channels, modality=modality)
    features = adapter.feature_chain(model, label=label)
    if weights is not None:  # the classifier's state dict, or its feature extractor's (``backbone_state``)
        _load_weights((model, features), weights, label)
    dim = adapter.probe(features, features.get_submodule(_first_conv_path(features)).in_channels, label=label)[-1][1]
    loaded = pretrained or weights is not None
    # loaded weights hold a 3-channel first conv: ``inflate`` builds the 3T / 2L one from it (``inflate_conv``)
    return Backbone(features, dim, name=label, pretrained=loaded).inflate(in_channels, modality=modality)


def model_backbone(model: nn.Module) -> Backbone:
    """The one shared ``Backbone`` inside ``model`` (``ValueError`` for none, or two as in two_stream)."""
    found = [m for m in model.modules() if isinstance(m, Backbone)]
    if len(found) != 1:
        raise ValueError(f"{type(model).__name__} holds {len(found)} shared backbones, not one: its encoder weights "
                         "are not one state dict")
    return found[0]


def backbone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict of ``model``'s encoder features (CPU copies): what ``build_backbone(weights=PATH)`` loads
    into every strategy's encoder, the first conv inflated where a strategy stacks frames."""
    return {k: v.detach().cpu().clone() for k, v in model_backbone(model).features.state_dict().items()}


def backbone_label(name: object) -> str:
    """The name a backbone is recorded under: the string itself, or a factory's / module's qualified name."""
    if isinstance(name, str):
        return name
    if isinstance(name, nn.Module):
        return type(name).__name__
    return getattr(name, "__qualname__", None) or getattr(name, "__name__", None) or type(name).__name__


def check_backbone_name(name: str) -> None:
    """Raise ``ValueError`` (one line, with close matches) unless ``name`` names a backbone; builds nothing."""
    if name in BACKBONES:
        return
    lib, sep, model = name.partition(":")
    if not sep or lib not in ("timm", "tv"):
        _unknown(name, BACKBONES, f"known: {', '.join(BACKBONES)}, timm:NAME, tv:NAME")
    _library_names(lib, model, name)


def _unknown(name: str, choices, known: str) -> None:
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown backbone {name!r}{hint} ({known})")


def _library_names(lib: str, model: str, name: str) -> None:
    if lib == "timm":
        try:
            import timm
        except ImportError:
            raise ValueError(f"backbone {name!r} needs timm: pip install 'fusionbench[timm]'") from None
        names = timm.list_models()
        if model not in names:
            close = [f"timm:{n}" for n in __import__("difflib").get_close_matches(model, names, n=3, cutoff=0.6)]
            _unknown(name, close, "see timm.list_models()")
    else:
        import torchvision.models as tvm

        names = tvm.list_models(module=tvm)  # classification builders only
        if model not in names:
            _unknown(name, [f"tv:{n}" for n in names], "torchvision classification builders: torchvision.models.list_models()")


def _classifier(name: object, label: str, *, pretrained: bool) -> nn.Module:
    """The whole classifier ``name`` names, with the library's cached weights when ``pretrained``."""
    import copy

    if isinstance(name, str):
        check_backbone_name(name)
        lib, _, model_name = name.partition(":")
        if name in BACKBONES:
            lib, model_name = "tv", name
        if lib == "timm":
            model = _timm(model_name, pretrained=pretrained)
        else:
            model = _tv(model_name, pretrained=pretrained)
    elif isinstance(name, nn.Module):
        model = copy.deepcopy(name)
    elif callable(name):
        model = name()
        if not isinstance(model, nn.Module):
            raise TypeError(f"backbone factory {label} returned {type(model).__name__}, not an nn.Module")
    else:
        raise TypeError(f"backbone must be a name, an nn.Module or a factory returning one, got {type(name).__name__}")
    return model


def _tv(model_name: str, *, pretrained: bool) -> nn.Module:
    import torchvision.models as tvm

    w = tvm.get_model_weights(model_name).DEFAULT if pretrained else None
    if w is not None:
        _require_cached(w)
    return tvm.get_model(model_name, weights=w)


def _timm(model_name: str, *, pretrained: bool) -> nn.Module:
    import timm

    if not pretrained:
        return timm.create_model(model_name, pretrained=False)
    cfg = timm.models.get_pretrained_cfg(model_name)
    path = None
    if cfg is not None and cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        for fname in ("model.safetensors", "pytorch_model.bin"):
            hit = try_to_load_from_cache(cfg.hf_hub_id, fname)
            if isinstance(hit, str):
                path = hit
                break
    if path is None:
        where = f"the Hugging Face cache (repo {cfg.hf_hub_id})" if cfg is not None and cfg.hf_hub_id else "no local cache"
        raise FileNotFoundError(f"pretrained=True for timm:{model_name} needs its weights in {where}; this suite never "
                                f"downloads. Copy them there, pass weights=PATH, or use pretrained=False.")
    return timm.create_model(model_name, pretrained=True, pretrained_cfg_overlay={"file": path})


def read_state_dict(path: str, label: str = "") -> dict[str, torch.Tensor]:
    """The state dict in a local ``.pth`` / ``.pt`` / ``.safetensors`` file (a ``{"state_dict": ...}`` checkpoint
    unwrapped); ``ValueError`` when the file holds something else."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{'backbone ' + label + ': ' if label else ''}{path} holds a {type(state).__name__}, "
                         "not a state dict of tensors")
    return state


def _load_weights(targets: tuple[nn.Module, ...], path: str, label: str) -> None:
    """Load a local state dict into the target it fits best (the classifier, or its feature extractor, whose
    modules are the classifier's own); the head's keys may be missing or differ (the head is dropped)."""
    state = read_state_dict(path, label)
    fits = []
    for target in targets:
        own = target.state_dict()
        fits.append((target, {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}))
    target, shaped = max(fits, key=lambda f: len(f[1]))
    if not shaped:
        raise ValueError(f"backbone {label}: no tensor in {path} matches the model's state dict (wrong file?)")
    target.load_state_dict(shaped, strict=False)
