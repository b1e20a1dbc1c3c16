"""User code that registers models (``register_model``) or datasets (``register_dataset``): plug-in files
and installed packages.

    bench --plugin my_models.py list          a file (or an importable module name), repeatable
    FUSIONBENCH_PLUGINS=a.py:b.py bench ...   the same, for processes the CLI starts (torchrun, Ray tasks)
    [project.entry-points."fusionbench.plugins"]  my = "my_package.models"   loaded by every ``bench``

``load_plugins`` imports each once; a file that fails to import, or a plug-in registering a name already
taken, is one ``PluginError`` line naming the file and the error.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

ENV = "FUSIONBENCH_PLUGINS"
GROUP = "fusionbench.plugins"
_loaded: dict[str, object] = {}


class PluginError(ValueError):
    """A plug-in that cannot be loaded (one line: the file and the error)."""


def _describe(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def load_plugin(spec: str) -> object:
    """Import a plug-in file (``path.py``) or module name (``pkg.mod``); returns the module."""
    path = Path(spec)
    key = str(path.resolve()) if spec.endswith(".py") else spec
    if key in _loaded:
        return _loaded[key]
    try:
        if spec.endswith(".py"):
            if not path.is_file():
                raise PluginError(f"plugin {spec}: no such file")
            name = f"fusionbench_plugin_{path.stem}_{abs(hash(key)) % 10**8}"
            mod_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(mod_spec)  # type: ignore[arg-type]
            sys.modules[name] = module
            try:
                mod_spec.loader.exec_module(module)  # type: ignore[union-attr]
            except BaseException:
                sys.modules.pop(name, None)
                raise
        else:
            module = importlib.import_module(spec)
    except PluginError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever user code raises becomes one line naming the file
        what = "registers a name already taken" if "already registered" in str(exc) else "failed to import"
        raise PluginError(f"plugin {spec} {what}: {_describe(exc)}") from None
    _loaded[key] = module
    return module


def load_plugins(specs: list[str] | tuple[str, ...] = (), *, entry_point_group: str = GROUP) -> list[object]:
    """Load ``specs``, those in ``$FUSIONBENCH_PLUGINS`` and the installed entry points; record the files
    in ``$FUSIONBENCH_PLUGINS`` so subprocesses load them too."""
    env = [s for s in os.environ.get(ENV, "").split(os.pathsep) if s]
    specs = [str(Path(s).resolve()) if s.endswith(".py") else s for s in specs]
    todo = list(dict.fromkeys(env + specs))
    modules = [load_plugin(s) for s in todo]
    for ep in entry_points(group=entry_point_group):
        key = f"entry point {ep.name} = {ep.value}"
        if key in _loaded:
            continue
        try:
            _loaded[key] = ep.load()
        except Exception as exc:  # noqa: BLE001
            raise PluginError(f"plugin {key} failed to import: {_describe(exc)}") from None
        modules.append(_loaded[key])
    if todo:
        os.environ[ENV] = os.pathsep.join(todo)
    return modules
