"""Fixtures shared by the bench tests."""
import pytest


@pytest.fixture
def isolated_plugins(monkeypatch):
    """Plug-ins register models and datasets into process-wide tables: undo that after each test."""
    from bench import plugins
    from bench.data import user
    from fusion_models import registry

    monkeypatch.delenv(plugins.ENV, raising=False)
    tables = (registry._REGISTRY, user._USER, plugins._loaded)
    before = [dict(t) for t in tables]
    yield
    for table, saved in zip(tables, before):
        table.clear()
        table.update(saved)
