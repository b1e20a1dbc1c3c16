"""Run by torchrun from test_distributed.py: one rank of `bench run`, logging what it read and wrote.

    torchrun --nproc_per_node=2 tests/bench/ddp_probe.py PROBE_DIR bench-run-args...

Each rank writes PROBE_DIR/rank<R>.json: the (split, index, epoch) keys its loader produced and every
RunStore write it made (append / write_meta / update_meta).
"""
import json
import os
import sys

from bench.cli import app
from bench.data.loader import BatchView
from bench.results import RunStore

probe_dir, args = sys.argv[1], sys.argv[2:]
log = {"keys": [], "writes": []}

_getitem = BatchView.__getitem__


def _spy_getitem(self, keys):
    split = getattr(self.ds, "split", "?")
    log["keys"].extend([split, int(i), int(e)] for i, e in keys)
    return _getitem(self, keys)


def _spy(name):
    real = getattr(RunStore, name)

    def wrapper(self, *a, **kw):
        log["writes"].append(name)
        return real(self, *a, **kw)

    return wrapper


BatchView.__getitem__ = _spy_getitem
for _name in ("append", "write_meta", "update_meta"):
    setattr(RunStore, _name, _spy(_name))

code = 0
try:
    ret = app(args, standalone_mode=False)
    code = ret if isinstance(ret, int) else 0
except SystemExit as exc:  # typer.Exit / fail()
    code = exc.code or 0
finally:
    with open(os.path.join(probe_dir, f"rank{os.environ['RANK']}.json"), "w") as f:
        json.dump(log, f)
sys.exit(code)
