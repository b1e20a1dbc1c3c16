#!/usr/bin/env bash
# What the GPU issues (13, 15, 19) need from one lent device call (time limits add up to 560 s: run it with
# timeout_s=600), in order of value, each step time-boxed
# and allowed to fail without stopping the rest; logs and results go to $OUT (the device tool brings them back).
#
#   device run, carry [".gpu_wheels"]:   bash scripts/gpu_session.sh
#   on a CPU, to check the script:        OUT=/tmp/gpu DEVICE=cpu QUICK=1 bash scripts/gpu_session.sh
#
# .gpu_wheels/ (git-ignored; fill it here, the device reaches no registry):
#   pip download --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 --no-deps \
#       -d .gpu_wheels numba==0.68.1 llvmlite iopath yacs portalocker termcolor tabulate
#   pip download --no-deps -d .gpu_wheels fvcore==0.1.5.post20221221      # an sdist: unpacked, pure Python
set -u
OUT=${OUT:?set OUT}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-0}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
log() { echo "== $(date -u +%H:%M:%S) $*" | tee -a "$OUT/steps.log"; }
step() {  # step NAME SECONDS CMD...: time-boxed, output to $OUT/NAME.log, status to steps.log
    local name=$1 limit=$2; shift 2
    log "start $name (limit ${limit}s)"
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    log "end $name rc=$?"
}

# 0. wheels unpacked onto PYTHONPATH (no pip install: wheels are zips, fvcore is pure Python)
SITE=$(mktemp -d)
if [ -d .gpu_wheels ] && "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))'; then  # cp312 wheels
    for w in .gpu_wheels/*.whl; do "$PY" -m zipfile -e "$w" "$SITE" || true; done
    for s in .gpu_wheels/*.tar.gz; do tar xzf "$s" -C "$SITE" && cp -r "$SITE"/fvcore-*/fvcore "$SITE"/ || true; done
fi
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
{ date -u; nvidia-smi 2>&1 | head -20; "$PY" -c "import torch, sys; print(sys.version); print('torch', torch.__version__,
'cuda', torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name(0))";
  "$PY" -c "import numba, fvcore; print('numba', numba.__version__, 'fvcore ok')" 2>&1; nproc; } > "$OUT/env.txt" 2>&1

if [ "$QUICK" = 1 ]; then SIZES=32,64; CPU_SIZES=64; CLIP=T4x32x32; BB=small_cnn; PROFILE=smoke
else SIZES=32,64,112,224; CPU_SIZES=112; CLIP=T16x112x112; BB=resnet18; PROFILE=quick; fi

# 1. Horn–Schunck: device vs CPU (issue 13: >= 20x its CPU throughput at 112^2 batch 32; issue 19: 32-224^2 x 1/32)
step flow_device 60 "$PY" -m bench flow throughput --device "$DEVICE" --sizes "$SIZES" --batches 1,32 \
    --backends torch --no-epe --no-farneback --csv "$OUT/flow_device.csv"
step flow_cpu2 60 "$PY" -m bench flow throughput --device cpu --sizes "$CPU_SIZES" --batches 32 --threads 2 \
    --backends auto,torch --no-epe --csv "$OUT/flow_cpu2.csv"
# 2. CUDA events vs torch.utils.benchmark.Timer on three models (issue 15: within 5 %)
step latency_check 60 "$PY" scripts/gpu_latency_check.py --device "$DEVICE" --clip "$CLIP" --backbone "$BB" \
    --out "$OUT/latency_check.csv"
# 3. the tests that need a device, then the rest of the measurement tests
step tests_device 60 "$PY" -m pytest -q -rs -p no:cacheprovider tests -k "cuda or gpu or device"
# 4. the default run on the device (issue 19), its report and the comparison with the committed CPU run
step run_device 240 "$PY" -m bench run --models all --device "$DEVICE" --profile "$PROFILE" --out "$OUT/results"
RUN=$(ls -t "$OUT/results" 2>/dev/null | head -1)
if [ -n "$RUN" ]; then
    rm -f "$OUT/results/$RUN/run.lock"
    step report_device 40 "$PY" -m bench report "$RUN" --results "$OUT/results" --out "$OUT/reports"
    # the committed CPU default run (README) against this one, and this run's strategies against single_frame
    step compare_cpu_device 20 "$PY" -m bench compare results/example/run-20261207-062247-1492 \
        "$OUT/results/$RUN" --out "$OUT/compare_cpu_device"
    step compare_strategies 20 "$PY" -m bench compare "$OUT/results/$RUN" --out "$OUT/compare_strategies"
fi
log "done"
