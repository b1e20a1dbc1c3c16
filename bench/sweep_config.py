"""``bench run/ablate --config FILE``: a TOML (or YAML, where pyyaml is installed) file holding any spec field.

    models = ["single_frame", "pool_avg"]     # which models, seeds, profile, device: what the run is
    seeds = [0, 1]
    profile = "smoke"
    lr = 0.01                                 # any field of bench.fields (short name or dotted path)
    "train.weight_decay" = 0.0
    [vary]                                    # the sweep (bench ablate): field -> list of values
    lr = [0.01, 0.003]
    backbone = ["small_cnn", "resnet18"]

Every error is one ``ValueError`` line naming the file, the field and what it expects.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .fields import FieldTypeError, apply_field, field_names, get_field

# Keys that say what runs rather than how (they build the base spec through RunOptions, as the CLI does).
RUN_KEYS = {"models": "str or list", "seeds": "list", "profile": "str", "device": "str"}


@dataclass
class SweepConfig:
    """A parsed config file: run keys (models, seeds, profile, device), spec fields, and the grid to vary."""

    path: Path
    run: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    vary: list[tuple[str, list[Any]]] = field(default_factory=list)


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"config {path}: cannot be read ({exc.strerror or exc})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:  # pragma: no cover - pyyaml is not a dependency; TOML needs nothing
            raise ValueError(f"config {path}: YAML needs pyyaml (pip install pyyaml); TOML works without it") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"config {path}: YAML syntax error: {' '.join(str(exc).split())}") from None
    else:
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"config {path}: TOML syntax error: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config {path}: expected a table of field = value, got {type(data).__name__}")
    return data


def load_config(path: str | Path) -> SweepConfig:
    """Parse and type-check ``path``: unknown fields, wrong types and syntax errors are one-line ``ValueError``s."""
    path = Path(path)
    data = _read(path)
    cfg = SweepConfig(path)
    for key, value in data.items():
        if key == "vary":
            if not isinstance(value, dict):
                raise ValueError(f"config {path}: 'vary' must be a table of field = [values]")
            for name, values in value.items():
                vals = values if isinstance(values, list) else [values]
                if not vals:
                    raise ValueError(f"config {path}: vary.{name} needs at least one value")
                cfg.vary.append((name, [_check(path, name, v, where=f"vary.{name}") for v in vals]))
        elif key in RUN_KEYS:
            cfg.run[key] = _run_key(path, key, value)
        else:
            cfg.fields[key] = _check(path, key, value)
    return cfg


def _check(path: Path, name: str, value: Any, where: str | None = None) -> Any:
    """``value`` unchanged once ``name`` is known to be a field and ``value`` to have its type."""
    from .fields import coerce

    try:
        f = get_field(name)
    except ValueError:
        raise ValueError(f"config {path}: unknown field {where or name!r} (valid fields: "
                         f"{', '.join(field_names())})") from None
    try:
        coerce(f, value)
    except FieldTypeError as exc:
        raise ValueError(f"config {path}: field {where or name!r} expects {exc.expected}, got "
                         f"{type(value).__name__} {value!r}") from None
    return value


def _run_key(path: Path, key: str, value: Any) -> Any:
    if key == "seeds":
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if not (isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
            raise ValueError(f"config {path}: field 'seeds' expects a list of integers, got {value!r}")
        return tuple(value)
    if key == "models" and isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return ",".join(value)
    if not isinstance(value, str) or not value:
        raise ValueError(f"config {path}: field {key!r} expects a string"
                         + (" or a list of names" if key == "models" else "") + f", got {value!r}")
    return value


def apply_fields(spec, values: dict[str, Any], *, source: str, skip: tuple[str, ...] = ()):
    """``spec`` with every field of ``values`` set (``skip``: fields the command line gave explicitly, which win)."""
    for name, value in values.items():
        if name in skip:
            continue
        try:
            spec, _ = apply_field(spec, name, value)
        except FieldTypeError as exc:
            raise ValueError(f"{source}: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"{source}: field {name!r}: {exc}") from None
    return spec


def with_run_keys(opts, cfg: SweepConfig | None, given: set[str]):
    """``RunOptions`` with the config's models/seeds/profile/device where the command line did not set them."""
    if cfg is None:
        return opts
    return replace(opts, **{k: v for k, v in cfg.run.items() if k not in given})
