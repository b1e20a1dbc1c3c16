"""Every field of a run that a config file or ``--vary FIELD=v1,v2`` may set: one table, derived from the specs.

    FIELDS["lr"]                 -> train.lr           (short name: the leaf is unique among all spec fields)
    FIELDS["train.weight_decay"] -> train.weight_decay (any leaf of RunSpec by its dotted path)
    FIELDS["frames"]             -> both clips' T      (the ablation knobs of ``bench.plan.KNOBS``, kept as they were)

Why one table: the config file, ``--vary`` and their error messages ("valid fields: ...") read the same list,
so a field added to ``TrainSpec`` or ``DatasetSpec`` is settable and listed without touching this file.
Values arrive as text (``--vary``) or typed (TOML / YAML); ``coerce`` turns both into the field's type or
raises ``FieldTypeError`` naming the field and the type it expects.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, replace
from typing import Any, Callable

from fusion_models.clip import ClipSpec

from .config import CostSpec, MeasureSpec, RunSpec, TrainSpec

# Leaf names too generic to stand alone (``enabled`` of what?): they keep their dotted path only.
NO_SHORT_NAME = ("enabled", "name", "channels")
# Fields a point of a sweep cannot change: they say which models and seeds run (lists already), where, and
# with which defaults; ``point`` is the sweep's own bookkeeping.
NOT_VARIABLE = ("models", "seeds", "device", "profile", "point")


class FieldTypeError(ValueError):
    """A value that does not have its field's type; ``str()`` is one line naming both."""

    def __init__(self, field: str, expected: str, value: Any) -> None:
        self.field, self.expected, self.value = field, expected, value
        shown = f"{type(value).__name__} {value!r}" if not isinstance(value, str) else repr(value)
        super().__init__(f"field {field!r} expects {expected}, got {shown}")


@dataclass(frozen=True)
class Field:
    """One settable field: its name, the type it holds, a help line, and how a value lands on a ``RunSpec``."""

    name: str
    kind: str                                   # int | float | bool | str | clip | size | ints | strs | pair
    optional: bool
    help: str
    apply: Callable[[RunSpec, Any], RunSpec]

    @property
    def expected(self) -> str:
        """The type in words, for error messages and ``bench ablate --help``."""
        words = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
                 "clip": "a clip like T8x32x32 (frames x H x W)", "size": "a size like 32x32 (H x W)",
                 "ints": "a list of integers", "strs": "a list of strings", "pair": "two integers like 1:3"}
        return words[self.kind] + (" or none" if self.optional else "")


# ------------------------------------------------------------------------------------------ coercion
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def coerce(field: Field, value: Any) -> Any:
    """``value`` (text from the command line or a typed TOML/YAML value) as ``field``'s type."""
    if field.optional and (value is None or (isinstance(value, str) and value.strip().lower() in ("none", ""))):
        return None
    kind, name = field.kind, field.name
    if isinstance(value, str):
        value = value.strip()
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
                return value.lower() in _TRUE
        elif kind == "int":
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, str):
                return int(value)
        elif kind == "float":
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str):
                return float(value)
        elif kind in ("str", "clip", "size"):
            if kind == "size" and isinstance(value, int) and not isinstance(value, bool):
                return str(value)
            if isinstance(value, str) and value:
                if kind == "clip":
                    from .plan import COST_OFF, parse_clip

                    if not (name == "cost_clip" and value.lower() in COST_OFF):
                        parse_clip(value)  # checked here, applied by the field
                elif kind == "size":
                    from .config import parse_size

                    parse_size(value)
                return value
        elif kind in ("ints", "strs"):
            items = value.replace("+", ",").split(",") if isinstance(value, str) else value
            if isinstance(items, (list, tuple)) and items:
                if kind == "ints":
                    return tuple(int(v) if isinstance(v, str) else _strict_int(v) for v in items)
                if all(isinstance(v, str) and v.strip() for v in items):
                    return tuple(v.strip() for v in items)
        elif kind == "pair":
            items = value.split(":") if isinstance(value, str) else value
            if isinstance(items, (list, tuple)) and len(items) == 2:
                return tuple(int(v) if isinstance(v, str) else _strict_int(v) for v in items)
    except (TypeError, ValueError):
        raise FieldTypeError(name, field.expected, value) from None
    raise FieldTypeError(name, field.expected, value)


def _strict_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(v)
    return v


# ------------------------------------------------------------------------------------------ the table
def _kind_of(tp: Any) -> tuple[str, bool] | None:
    """``(kind, optional)`` of a dataclass field's type; ``None`` for types no config value can hold."""
    optional = False
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        if len(args) != 1:
            return None
        tp = args[0]
    if tp is bool:
        return "bool", optional
    if tp in (int, float, str):
        return tp.__name__, optional
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis and args[0] in (int, str):
            return ("ints" if args[0] is int else "strs"), optional
        if args == (int, int):
            return "pair", optional
    return None


def _setter(path: tuple[str, ...]) -> Callable[[RunSpec, Any], RunSpec]:
    """Nested ``dataclasses.replace`` along ``path`` (each spec validates itself in ``__post_init__``)."""
    def apply(obj: Any, value: Any, _path: tuple[str, ...] = path) -> Any:
        head, *rest = _path
        return replace(obj, **{head: apply(getattr(obj, head), value, tuple(rest)) if rest else value})

    return apply


def _leaves(cls: type, prefix: str = "") -> list[tuple[str, str, bool, str]]:
    """``(dotted path, kind, optional, help)`` of every settable leaf of a spec dataclass, depth first."""
    from .data import DatasetSpec

    nested = {"dataset": DatasetSpec, "clip": ClipSpec, "train": TrainSpec, "cost": CostSpec, "measure": MeasureSpec}
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        path = prefix + f.name
        if cls is RunSpec and f.name in NOT_VARIABLE:
            continue
        sub = nested.get(f.name) if f.name in nested and (cls is RunSpec or f.name == "clip") else None
        if sub is not None:
            out += _leaves(sub, path + ".")
            continue
        kind = _kind_of(hints[f.name])
        if kind is not None:
            out.append((path, kind[0], kind[1], f"{cls.__name__}.{f.name}"))
    return out


def _knob_field(name: str, fn: Callable[[RunSpec, str], RunSpec], help_: str) -> Field:
    # the ablation knobs parse their own text (and check ranges); typed values are handed over as text
    kinds = {"frames": "int", "size": "size", "batch": "int", "epochs": "int", "camera": "int",
             "distractors": "int", "backbone": "str"}
    return Field(name, kinds.get(name, "float"), False, help_,
                 lambda spec, v, _fn=fn: _fn(spec, v if isinstance(v, str) else format(v)))


def _clip_field(name: str, where: str, help_: str) -> Field:
    def apply(spec: RunSpec, v: str) -> RunSpec:
        from .plan import COST_OFF, parse_clip

        if where == "cost" and v.lower() in COST_OFF:
            return replace(spec, cost=replace(spec.cost, enabled=False))
        t, h, w = parse_clip(v)
        if where == "train":
            return replace(spec, clip=spec.clip.with_(frames=t, height=h, width=w))
        return replace(spec, cost=replace(spec.cost, clip=spec.cost.clip.with_(frames=t, height=h, width=w),
                                          enabled=True))

    return Field(name, "clip", False, help_, apply)


def _checked_backbone(setter: Callable[[RunSpec, Any], RunSpec]) -> Callable[[RunSpec, Any], RunSpec]:
    def apply(spec: RunSpec, v: str) -> RunSpec:
        from .plan import _backbone

        _backbone(spec, v)  # the one check of a backbone name
        return setter(spec, v)

    return apply


def _measurements(spec: RunSpec, v: tuple[str, ...]) -> RunSpec:
    return replace(spec, measurements=v)  # RunSpec checks the names


def build_fields() -> dict[str, Field]:
    """Ablation knobs first, then friendly names, short leaf names, and every dotted spec path."""
    from .plan import KNOBS

    table: dict[str, Field] = {name: _knob_field(name, fn, help_) for name, (fn, help_) in KNOBS.items()}
    table["clip"] = _clip_field("clip", "train", "training clip T<frames>x<H>x<W>, e.g. T8x32x32")
    table["cost_clip"] = _clip_field("cost_clip", "cost", "deployment clip for costs, T16x112x112, or off")
    table["measure"] = Field("measure", "strs", False, "measurements, e.g. accuracy,params", _measurements)
    leaves = _leaves(RunSpec)
    counts: dict[str, int] = {}
    for path, kind, _, _ in leaves:
        counts[path.rsplit(".", 1)[-1]] = counts.get(path.rsplit(".", 1)[-1], 0) + 1
    for path, kind, optional, where in leaves:
        setter = _setter(tuple(path.split(".")))
        if path.endswith("backbone"):
            setter = _checked_backbone(setter)
        leaf = path.rsplit(".", 1)[-1]
        # a short name when the leaf is unique; tuple values hold commas, so they keep only their dotted path
        if (counts[leaf] == 1 and leaf not in table and leaf not in NO_SHORT_NAME
                and kind not in ("ints", "strs", "pair")):
            table[leaf] = Field(leaf, kind, optional, f"{path} ({where})", setter)
        table.setdefault(path, Field(path, kind, optional, where, setter))
    table.setdefault("dataset", Field("dataset", "str", False, "dataset.name: synthetic, folder, ucf101, ...",
                                      _setter(("dataset", "name"))))
    # a leaf two specs share: the short name means what the `bench run` flag of that name does
    table.setdefault("channels_last", Field("channels_last", "bool", False,
                                            "measure.channels_last, as --channels-last (training: train.channels_last)",
                                            _setter(("measure", "channels_last"))))
    table.setdefault("cost_backbone", Field("cost_backbone", "str", False, "backbone at the deployment clip",
                                            _checked_backbone(_setter(("cost", "backbone")))))
    return table


_FIELDS: dict[str, Field] | None = None


def fields() -> dict[str, Field]:
    """The field table (built once, on first use)."""
    global _FIELDS
    if _FIELDS is None:
        _FIELDS = build_fields()
    return _FIELDS


def field_names(short_only: bool = False) -> list[str]:
    """Valid field names: short names first, then dotted paths."""
    names = list(fields())
    short = [n for n in names if "." not in n]
    return short if short_only else short + [n for n in names if "." in n]


def unknown_field(name: str, what: str = "field") -> ValueError:
    """One line: the unknown name, the closest valid one, and every valid field."""
    import difflib

    close = difflib.get_close_matches(name, field_names(), n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return ValueError(f"unknown {what} {name!r}{hint} (valid fields: {', '.join(field_names())})")


def get_field(name: str, what: str = "field") -> Field:
    """The field called ``name`` or a ``ValueError`` listing the valid ones."""
    f = fields().get(name)
    if f is None:
        raise unknown_field(name, what)
    return f


def apply_field(spec: RunSpec, name: str, value: Any) -> tuple[RunSpec, Any]:
    """``(spec with the field set, the typed value)``; a bad value raises ``ValueError`` naming the field."""
    f = get_field(name)
    typed = coerce(f, value)
    try:
        return f.apply(spec, typed), typed
    except TypeError as exc:  # a spec's __post_init__ comparing a wrong type
        raise FieldTypeError(name, f.expected, value) from exc
