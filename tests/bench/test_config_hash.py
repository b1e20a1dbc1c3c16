"""A point's id (``RunSpec.config_hash``) must not move when a spec field is added: a resume finds a run's records
by it, and the report groups by it. Checked on the committed example runs recorded since 2026-12-06 (older ones
predate fields added before the rule existed)."""
import json
from dataclasses import replace
from pathlib import Path

import pytest

from bench.config import HASH_OMITTED_AT_DEFAULT, TrainSpec, run_spec_from_dict

EXAMPLE = Path(__file__).resolve().parents[2] / "results" / "example"
STABLE_SINCE = "20261206"


def _runs():
    return sorted(d for d in EXAMPLE.iterdir()
                  if d.is_dir() and d.name.split("-")[1] >= STABLE_SINCE and (d / "run.json").exists())


@pytest.mark.parametrize("run", _runs(), ids=lambda d: d.name)
def test_committed_runs_keep_their_point_ids(run):
    points = json.loads((run / "run.json").read_text())["points"]
    recorded = {json.loads(line)["point_id"] for line in (run / "records.jsonl").read_text().splitlines() if line}
    assert {run_spec_from_dict(p).config_hash() for p in points} == recorded, (
        "a spec field changed every point id; add it to bench.config.HASH_OMITTED_AT_DEFAULT")


def test_an_option_set_away_from_its_default_is_a_new_point():
    run = _runs()[-1]
    spec = run_spec_from_dict(json.loads((run / "run.json").read_text())["points"][0])
    assert ("train", "compile_backend") in HASH_OMITTED_AT_DEFAULT
    compiled = replace(spec, train=replace(spec.train, compile_backend="inductor"))
    assert compiled.config_hash() != spec.config_hash()
    assert TrainSpec().compile_backend is None
