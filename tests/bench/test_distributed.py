"""DDP through torchrun: disjoint shards, rank 0 alone writes, and the result of a single-process run.

Tolerance of the parity test: each rank's loss is weighted by n_rank * world / n_global, so DDP's gradient
average equals the global-batch mean (also for the uneven last batch), and BatchNorm statistics span both ranks
(GlooSyncBatchNorm on CPU; torch's SyncBatchNorm is GPU-only). What is left is float reassociation (sums over
2 x 8 clips instead of 16, all-reduced statistics), ~1e-7 relative per step: losses must agree to 1e-4
relative after 12 steps, top-1 to one validation clip (an argmax near a tie may flip).
"""
import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import bench.cli as cli
from bench.data.loader import EpochBatchSampler
from bench.distributed import ShardedBatchSampler, per_rank_batch, torchrun_argv
from bench.plan import RunOptions, build_run_spec
from bench.results import RunStore
from bench.runner import Runner

REPO = Path(__file__).resolve().parents[2]
RUN_ARGS = ["--models", "pool_avg,early_fusion", "--profile", "smoke", "--device", "cpu", "--measure",
            "accuracy,params,flops", "--epochs", "2", "--batch-size", "16", "--train-size", "91", "--val-size", "40"]


@pytest.mark.parametrize("n, batch, world", [(100, 32, 2), (91, 16, 2), (97, 12, 3), (33, 16, 2)])
def test_shards_are_disjoint_slices_of_every_global_batch(n, batch, world):
    base = EpochBatchSampler(n, batch_size=batch, shuffle=True, drop_last=False, seed=3)
    shards = [ShardedBatchSampler(EpochBatchSampler(n, batch_size=batch, shuffle=True, drop_last=False, seed=3),
                                  r, world, drop_short=True) for r in range(world)]
    for _epoch in range(2):
        full = list(base)
        parts = [list(s) for s in shards]
        kept = [b for b in full if len(b) >= world]
        assert all(len(p) == len(kept) == len(s) for p, s in zip(parts, shards))
        for step, b in enumerate(kept):
            pieces = [p[step] for p in parts]
            assert sum(pieces, []) == b  # contiguous, in rank order: together exactly the global batch
            assert max(map(len, pieces)) - min(map(len, pieces)) <= 1


def test_eval_shards_keep_every_item_and_short_batches_drop_on_all_ranks():
    base = lambda: EpochBatchSampler(33, batch_size=16, shuffle=False, drop_last=False, seed=0)  # noqa: E731
    ev = [sum(ShardedBatchSampler(base(), r, 2, drop_short=False), []) for r in range(2)]
    assert sorted(ev[0] + ev[1]) == [(i, 0) for i in range(33)] and not set(ev[0]) & set(ev[1])
    tr = [list(ShardedBatchSampler(base(), r, 2, drop_short=True)) for r in range(2)]
    assert len(tr[0]) == len(tr[1]) == 2  # the 1-clip tail would leave rank 1 idle in a collective: skipped


def test_per_rank_batch_and_torchrun_argv():
    assert per_rank_batch(32, 4) == 8
    with pytest.raises(ValueError, match="not divisible by 3"):
        per_rank_batch(32, 3)
    with pytest.raises(ValueError, match="--nproc must be >= 1"):
        torchrun_argv(0, ["run"])
    argv = torchrun_argv(2, ["run", "-m", "x"])
    assert argv[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert argv[-6:] == ["--nproc_per_node=2", "-m", "bench", "run", "-m", "x"]


def test_nproc_spawns_torchrun_with_the_same_args(tmp_path, monkeypatch):
    seen = {}

    def fake_call(argv):
        seen["argv"] = argv
        return 0

    monkeypatch.setattr(subprocess, "call", fake_call)
    res = CliRunner().invoke(cli.app, ["run", "--models", "pool_avg", "--profile", "smoke", "--nproc", "2",
                                       "--device", "cpu", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    argv = seen["argv"]
    assert argv[:3] == [sys.executable, "-m", "torch.distributed.run"] and "--nproc_per_node=2" in argv
    tail = argv[argv.index("bench") + 1:]
    assert tail[0] == "run" and "--nproc" not in tail and tail[tail.index("--models") + 1] == "pool_avg"
    assert not list(tmp_path.iterdir())  # the parent writes nothing; rank 0 of the children does


@pytest.mark.parametrize("args, needle", [
    (["--nproc", "0"], "--nproc must be >= 1"),
    (["--nproc", "3", "--batch-size", "32"], "not divisible by 3"),
    (["--nproc", "2", "--executor", "ray"], "exclude each other"),
])
def test_bad_nproc_is_one_line(tmp_path, args, needle):
    res = CliRunner().invoke(cli.app, ["run", "--models", "pool_avg", "--profile", "smoke", "--device", "cpu",
                                       "--out", str(tmp_path), *args])
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output


def _single_process(tmp_path):
    spec = build_run_spec(RunOptions(models="pool_avg,early_fusion", profile="smoke", device="cpu",
                                     measure="accuracy,params,flops", epochs=2, batch_size=16, train_size=91,
                                     val_size=40), resolved_device="cpu")
    store = RunStore.create(tmp_path, "single")
    Runner(store).run([spec])
    return {r["key"]: r for r in store.records()}


@pytest.mark.slow
def test_two_process_gloo_ddp_matches_single_process(tmp_path):
    probe, out = tmp_path / "probe", tmp_path / "ddp"
    probe.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(REPO / "tests/bench/ddp_probe.py"), str(probe), "run", *RUN_ARGS, "--out", str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    logs = [json.loads((probe / f"rank{r}.json").read_text()) for r in (0, 1)]
    # Disjoint data: no (split, index, epoch) on both ranks; together every clip of every epoch, once.
    seen = [{tuple(k) for k in log["keys"]} for log in logs]
    assert not seen[0] & seen[1]
    for log in logs:  # each of the 2 models read each of its clips exactly once
        assert set(collections.Counter(map(tuple, log["keys"])).values()) == {2}
    union = seen[0] | seen[1]
    train = {k for k in union if k[0] == "train"}
    # 2 models x 2 epochs x 91 clips; val: 2 models x 40 clips (epoch key 0)
    assert {(i, e) for _, i, e in train} == {(i, e) for i in range(91) for e in range(2)}
    assert {i for s, i, _ in union if s == "val"} == set(range(40))
    # Rank 0 alone wrote: rank 1 never touched the store.
    assert logs[1]["writes"] == [] and "append" in logs[0]["writes"] and "write_meta" in logs[0]["writes"]

    (run_dir,) = list(out.iterdir())
    ddp = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
    keys = [r["key"] for r in ddp]
    assert len(keys) == len(set(keys)) == 2 * (1 + 2 * 2)  # (accuracy + 2 scales x (params, flops)) x 2 models
    assert all(r["status"] == "ok" for r in ddp), [r.get("error") for r in ddp]
    assert all(r["ddp_world_size"] == 2 for r in ddp if r["measurement"] == "accuracy")
    assert all(r["measured_under_ddp"] is False for r in ddp if r["measurement"] != "accuracy")

    single = _single_process(tmp_path)
    assert set(single) == set(keys)
    for r in ddp:
        s = single[r["key"]]
        if r["measurement"] == "accuracy":
            assert s["ddp_world_size"] == 1
            assert r["val_n"] == s["val_n"] == 40
            assert r["final_train_loss"] == pytest.approx(s["final_train_loss"], rel=1e-4)
            assert r["val_loss"] == pytest.approx(s["val_loss"], rel=1e-4)
            assert abs(r["acc_top1"] - s["acc_top1"]) <= 1 / 40 + 1e-9
            for h_ddp, h_one in zip(r["history"], s["history"]):
                assert h_ddp["train_loss"] == pytest.approx(h_one["train_loss"], rel=1e-4)
        elif r["measurement"] == "params":
            assert r["params"] == s["params"]
        else:
            assert r["gmacs"] == pytest.approx(s["gmacs"])
