"""Any 2D image classifier as the shared per-frame encoder, read off its module structure (no per-name table).

    classifier children  c_0 c_1 ... c_k | c_{k+1} ...   cut at the first head-like child (a global pool,
                                                         Flatten, Linear or Dropout, or a child holding one)
    features = Sequential(c_0 .. c_k)                    a lone plain Sequential child is used as it is
    units    = features with nested plain Sequentials expanded: the same computation, unit by unit

What the fusion models need is derived from ``features``:

- **maps / out_channels**: a probe forward on the meta device (no memory, no FLOPs) checks every unit keeps
  ``[N, C, h, w]`` and reads the channel count D and each unit's spatial size.
- **TSM shift sites** (``shift_sites``): the outermost *residual* modules, i.e. those whose forward adds two
  tensors that both depend on the module's input (found by ``torch.fx`` tracing the module alone); the shift
  goes before the first convolution of each one's graph (the residual branch: the paper's "residual
  shift"). A backbone with no residual module (a plain chain) gets the paper's in-place shift instead:
  before every convolution except the first, which sees pixels.
- **slow-fusion stages** (``fusion_stages``): the last three units that lower the spatial resolution
  (after the stem, the unit holding the first conv); with fewer than three, the last three units holding
  a convolution. The convolutions reading each chosen unit's input are its entry convs (inflated to 2C).

A backbone that does not fit (transformer tokens, a side head inside the trunk, a stage whose input goes
through a norm before its conv) raises ``AdaptError``: one line saying what was missing. Such a model can
still be used by passing a factory that returns the feature extractor as an ``nn.Sequential``.
"""
from __future__ import annotations

import operator
from typing import Iterator

import torch
import torch.fx as fx
from torch import nn

PROBE_SIZE = 64  # probe input H = W; every built-in and tested backbone keeps >= 1x1 maps at 64x64
HEAD_TYPES = (nn.Linear, nn.Flatten, nn.Dropout, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
ADDS = (operator.add, operator.iadd, torch.add)


class AdaptError(ValueError):
    """A module that cannot serve as the per-frame encoder; the message says what was missing."""


def _is_plain_sequential(m: nn.Module) -> bool:
    return isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward


def _is_head(m: nn.Module) -> bool:
    """A head type, or a conv-free container holding a global pool / Flatten, or an MLP of Linears (a
    squeeze-excitation's pool inside a stage does not make the stage a head; a transformer is no MLP)."""
    if isinstance(m, HEAD_TYPES):
        return True
    mods = list(m.modules())
    if any(isinstance(s, nn.Conv2d) for s in mods):
        return False
    if any(isinstance(s, HEAD_TYPES[3:] + (nn.Flatten,)) for s in mods):
        return True  # a pool + classifier block (timm's SelectAdaptivePool2d, a ClassifierHead)
    leaves = [s for s in mods if not list(s.children())]
    # an MLP classifier (Linear, activation, Dropout): every leaf with parameters is a Linear
    return any(isinstance(s, nn.Linear) for s in leaves) and all(
        isinstance(s, nn.Linear) or not any(True for _ in s.parameters()) for s in leaves)


def _spatial_conv(m: nn.Module) -> str | None:
    for name, s in m.named_modules():
        if isinstance(s, nn.Conv2d) and max(s.kernel_size) > 1:
            return name
    return None


def feature_chain(model: nn.Module, *, label: str) -> nn.Sequential:
    """The children of classifier ``model`` up to its head, as one ``nn.Sequential`` (see module docstring)."""
    if isinstance(model, nn.Sequential) and not any(_is_head(c) for c in model.children()):
        return model  # already a feature extractor
    children = list(model.named_children())
    cut = next((i for i, (_, c) in enumerate(children) if _is_head(c)), None)
    if cut is None:
        raise AdaptError(f"backbone {label} cannot be adapted: no global pool / Flatten / Linear child marks where "
                         f"its features end (children: {', '.join(n for n, _ in children)})")
    for name, child in children[cut + 1:]:
        inner = _spatial_conv(child)
        if inner is not None:
            raise AdaptError(f"backbone {label} cannot be adapted: child {children[cut][0]!r} looks like a head but "
                             f"{name!r} after it still holds a spatial conv (a side head inside the trunk?); pass a "
                             f"factory returning the feature extractor as an nn.Sequential")
    kept = [c for _, c in children[:cut]]
    if not any(isinstance(m, nn.Conv2d) for c in kept for m in c.modules()):
        raise AdaptError(f"backbone {label} cannot be adapted: no Conv2d before its head "
                         f"({children[cut][0]!r}); the per-frame encoder must be a 2D CNN")
    if len(kept) == 1 and _is_plain_sequential(kept[0]):
        return kept[0]
    return nn.Sequential(*kept)


def units(features: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """``(path inside features, module)`` run one after another; nested plain ``Sequential``s are expanded."""
    out: list[tuple[str, nn.Module]] = []
    for name, child in features.named_children():
        path = f"{prefix}{name}"
        if _is_plain_sequential(child) and len(child):
            out += units(child, prefix=f"{path}.")
        else:
            out.append((path, child))
    return out


def probe(features: nn.Module, in_channels: int, *, label: str, size: int = PROBE_SIZE) -> list[tuple[int, ...]]:
    """Output shape of every unit for a ``[2, in_channels, size, size]`` input, run on the meta device
    (parameters swapped for meta tensors, so the real module is neither copied nor computed)."""
    state = {k: torch.empty_like(v, device="meta") for k, v in
             [*features.named_parameters(remove_duplicate=False), *features.named_buffers(remove_duplicate=False)]}
    x = torch.empty(2, in_channels, size, size, device="meta")
    shapes: list[tuple[int, ...]] = []
    us = units(features)
    was = features.training
    features.eval()
    try:
        for path, unit in us:
            sub = {k[len(path) + 1:]: v for k, v in state.items() if k.startswith(path + ".")}
            try:
                x = torch.func.functional_call(unit, sub, (x,))
            except Exception as exc:  # noqa: BLE001 - any failure here means "this is not a 2D CNN trunk"
                raise AdaptError(f"backbone {label} cannot be adapted: unit {path!r} ({type(unit).__name__}) fails on "
                                 f"the maps of the units before it, shape {list(shapes[-1]) if shapes else None}: "
                                 f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
            if not isinstance(x, torch.Tensor) or x.dim() != 4:
                got = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
                raise AdaptError(f"backbone {label} cannot be adapted: unit {path!r} ({type(unit).__name__}) gives "
                                 f"{got}, not per-frame maps [N, C, h, w] (a transformer's tokens?)")
            shapes.append(tuple(x.shape))
    finally:
        features.train(was)
    return shapes


# ----------------------------------------------------------------------------------- fx structure
class _ConvLeafTracer(fx.Tracer):
    """Traces into everything except torch.nn leaves and convolutions (timm's Conv2dSame included)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, nn.Conv2d) or super().is_leaf_module(m, qualname)


class _OwnForwardTracer(fx.Tracer):
    """Traces only the module's own forward: every submodule is a leaf."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return True


def _graph(m: nn.Module, tracer: type[fx.Tracer] = _ConvLeafTracer) -> fx.Graph | None:
    try:
        return tracer().trace(m)
    except Exception:  # noqa: BLE001 - untraceable (data-dependent control flow): treated as opaque
        return None


def _input_dependent(graph: fx.Graph) -> set[fx.Node]:
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    dep = set(placeholders[:1])
    for n in graph.nodes:
        if any(a in dep for a in n.all_input_nodes):
            dep.add(n)
    return dep


def _convs_in_order(m: nn.Module, graph: fx.Graph) -> Iterator[tuple[fx.Node, str]]:
    for n in graph.nodes:
        if n.op == "call_module" and isinstance(m.get_submodule(n.target), nn.Conv2d):
            yield n, n.target


def residual_entry(m: nn.Module) -> str | None:
    """Path (inside ``m``) of the first conv of ``m``'s graph when ``m``'s own forward (not one of its
    submodules') adds two input-dependent tensors (a residual block), else ``None``."""
    if not list(m.children()) or isinstance(m, nn.Conv2d):
        return None
    own = _graph(m, _OwnForwardTracer)
    graph = _graph(m)
    if own is None or graph is None:
        return None
    dep = _input_dependent(own)
    residual = any(
        ((n.op == "call_function" and n.target in ADDS) or (n.op == "call_method" and n.target in ("add", "add_")))
        and len([a for a in n.args if isinstance(a, fx.Node) and a in dep]) >= 2
        for n in own.nodes
    )
    if not residual:
        return None
    return next((path for _, path in _convs_in_order(m, graph)), None)


def shift_sites(features: nn.Module) -> list[tuple[str, int]]:
    """``(conv path inside features, its input channels)`` where TSM shifts (see module docstring)."""
    sites: list[tuple[str, int]] = []

    def visit(m: nn.Module, prefix: str) -> None:
        for name, child in m.named_children():
            path = f"{prefix}{name}"
            entry = residual_entry(child)
            if entry is not None:
                sites.append((f"{path}.{entry}", child.get_submodule(entry).in_channels))
            else:
                visit(child, f"{path}.")

    visit(features, "")
    if sites:
        return sites
    convs = [(n, m.in_channels) for n, m in features.named_modules() if isinstance(m, nn.Conv2d)]
    return convs[1:]  # plain chain: in-place shift before every conv but the one that sees pixels


def fusion_stages(features: nn.Module, in_channels: int, *, count: int, label: str) -> list[tuple[int, list[str]]]:
    """``(unit index, entry-conv paths inside features)`` for the ``count`` slow-fusion stages."""
    us = units(features)
    shapes = probe(features, in_channels, label=label)
    has_conv = [any(isinstance(s, nn.Conv2d) for s in u.modules()) for _, u in us]
    stem = has_conv.index(True)
    candidates = [i for i in range(stem + 1, len(us)) if has_conv[i]]
    if len(candidates) < count:
        raise AdaptError(f"slow_fusion: backbone {label} has {len(candidates)} conv units after its stem; "
                         f"{count} fusing stages need {count}")
    size_in = [PROBE_SIZE] + [s[-1] for s in shapes[:-1]]
    down = [i for i in candidates if shapes[i][-1] < size_in[i]]
    chosen = down[-count:] if len(down) >= count else candidates[-count:]
    out = []
    for i in chosen:
        path, unit = us[i]
        if isinstance(unit, nn.Conv2d):
            out.append((i, [path]))
            continue
        graph = _graph(unit)
        if graph is None:
            raise AdaptError(f"slow_fusion: backbone {label}: stage {path!r} ({type(unit).__name__}) cannot be "
                             f"traced by torch.fx, so its entry convs are unknown")
        entries, other = _entry_convs(unit, graph)
        if other or not entries:
            raise AdaptError(f"slow_fusion: backbone {label}: the input of stage {path!r} ({type(unit).__name__}) "
                             f"goes to {', '.join(sorted(other)) or 'nothing'} before a conv; slow fusion needs it "
                             f"read by convolutions (after parameter-free layers such as pooling) only")
        entries = [f"{path}.{e}" for e in entries]
        out.append((i, entries))
    return out


def _entry_convs(unit: nn.Module, graph: fx.Graph) -> tuple[list[str], set[str]]:
    """The convs that read ``unit``'s input, through parameter-free modules (pooling, activations, which act
    per channel and so commute with stacking two time steps on channels); and whatever else reads it."""
    entries: list[str] = []
    other: set[str] = set()
    frontier = [next(n for n in graph.nodes if n.op == "placeholder")]
    seen: set[fx.Node] = set()
    while frontier:
        node = frontier.pop(0)
        for user in node.users:
            if user in seen:
                continue
            seen.add(user)
            mod = unit.get_submodule(user.target) if user.op == "call_module" else None
            if isinstance(mod, nn.Conv2d):
                entries.append(user.target)
            elif mod is not None and not any(True for _ in mod.parameters()) and not list(mod.children()):
                frontier.append(user)
            else:
                other.add(str(getattr(user.target, "__name__", user.target)))
    return entries, other
