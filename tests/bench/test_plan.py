"""Option parsing and ablation grids: bad values give one clear ValueError."""
import pytest

from bench.config import parse_int_list, parse_size, run_spec_from_dict
from bench.plan import RunOptions, ablation_points, build_run_spec, parse_clip, parse_vary


def test_parse_size_and_clip():
    assert parse_size("32") == (32, 32)
    assert parse_size("64x48") == (64, 48)
    for bad in ("7x", "x", "0x4", "a"):
        with pytest.raises(ValueError, match="size"):
            parse_size(bad)
    assert parse_clip("T16x112x112") == (16, 112, 112)
    assert parse_clip("8x64") == (8, 64, 64)
    with pytest.raises(ValueError):
        parse_clip("T0x1x1")


def test_parse_int_list():
    assert parse_int_list("0,1, 2", what="--seeds") == (0, 1, 2)
    for bad in ("", " , ", "a,b"):
        with pytest.raises(ValueError, match="--seeds"):
            parse_int_list(bad, what="--seeds")


def test_build_run_spec_profile_and_overrides():
    spec = build_run_spec(RunOptions(models="pool_*", profile="smoke", frames=6, size="24x20", epochs=2),
                          resolved_device="cpu")
    assert spec.models == ("pool_avg", "pool_max", "pool_attn")
    assert (spec.clip.frames, spec.clip.height, spec.clip.width) == (6, 24, 20)
    assert spec.train.epochs == 2 and spec.profile == "smoke"
    # resume rebuilds the identical spec from run.json
    assert run_spec_from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("profile", ["smoke", "quick", "full"])
def test_resume_rebuilds_every_point_through_json(profile):
    """run.json goes through JSON (tuples become lists): every profile and ablation point comes back equal."""
    import json

    base = build_run_spec(RunOptions(profile=profile, noise=0.1, cost_clip="T4x32x32"), resolved_device="cpu")
    for spec in [base, *ablation_points(base, parse_vary(["frames=4,8", "camera=0,2"]))]:
        assert run_spec_from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_resume_of_an_older_run_json_takes_defaults_for_missing_fields():
    spec = build_run_spec(RunOptions(profile="smoke"), resolved_device="cpu")
    d = spec.to_dict()
    del d["train"]["grad_clip"], d["measure"]["warmup_s"], d["threads"]
    back = run_spec_from_dict(d)
    assert back.train.grad_clip == type(spec.train)().grad_clip and back.threads is None
    assert back.clip == spec.clip and back.dataset == spec.dataset


@pytest.mark.parametrize("kw, match", [
    ({"models": "nope"}, "nope"),
    ({"frames": 0}, "frames"),
    ({"size": "7x"}, "size"),
    ({"profile": "huge"}, "profile"),
    ({"measure": "speed"}, "measurement"),
    ({"backbone": "vgg"}, "backbone"),
    ({"dataset": "folder", "root": "/does/not/exist"}, "does not exist"),
    ({"dataset": "kinetics"}, "dataset"),
    ({"seeds": ()}, "seed"),
])
def test_bad_options(kw, match):
    with pytest.raises(ValueError, match=match):
        build_run_spec(RunOptions(**kw), resolved_device="cpu")


def test_ablation_grid():
    base = build_run_spec(RunOptions(models="pool_avg", profile="smoke"), resolved_device="cpu")
    pts = ablation_points(base, parse_vary(["frames=2,4", "noise=0,0.1"]))
    assert len(pts) == 4
    assert [dict(p.point) for p in pts] == [
        {"frames": 2, "noise": 0}, {"frames": 2, "noise": 0.1}, {"frames": 4, "noise": 0}, {"frames": 4, "noise": 0.1}]
    assert [p.clip.frames for p in pts] == [2, 2, 4, 4]
    assert [p.dataset.noise for p in pts] == [0, 0.1, 0, 0.1]
    assert len({p.config_hash() for p in pts}) == 4
    batch = ablation_points(base, parse_vary(["batch=1,8"]))
    assert [p.measure.latency_batches for p in batch] == [(1,), (8,)]
    assert "accuracy" not in batch[0].measurements


@pytest.mark.parametrize("vary, match", [
    (["speed=1,2"], "unknown knob"), (["frames"], "KNOB="), (["frames="], "at least one"),
    (["frames=0"], "frames"), (["noise=-1"], "noise"), ([], "at least one"),
])
def test_bad_vary(vary, match):
    base = build_run_spec(RunOptions(models="pool_avg", profile="smoke"), resolved_device="cpu")
    with pytest.raises(ValueError, match=match):
        ablation_points(base, parse_vary(vary))
