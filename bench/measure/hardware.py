"""The hardware under a measurement: the device's matmul ceiling, and the machine's state while timing.

The device's measured dense fp32 matmul throughput is the ceiling achieved GFLOP/s is compared to:

    achieved_gflops_s = 2 * gmacs * 1e3 / latency_ms_p50        (gmacs per batch, p50 of that batch)
    fraction_of_peak  = achieved_gflops_s / matmul_peak_gflops_s
"""
from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from ._common import resolve_device
from .stats import percentile


@dataclass(frozen=True)
class MatmulPeak:
    """Dense ``n x n @ n x n`` matmul rate in GFLOP/s (1 multiply-add = 2 FLOPs), measured once per run."""

    matmul_peak_gflops_s: float  # best sample: contention only ever slows a run down
    matmul_median_gflops_s: float
    n: int
    dtype: str
    device: str
    threads: int
    n_samples: int
    samples_gflops_s: list[float] = field(repr=False)

    def __float__(self) -> float:
        return self.matmul_peak_gflops_s

    def as_dict(self) -> dict[str, Any]:
        """Flat run-level fields."""
        return {
            "matmul_peak_gflops_s": self.matmul_peak_gflops_s,
            "matmul_median_gflops_s": self.matmul_median_gflops_s,
            "matmul_n": self.n,
            "matmul_dtype": self.dtype,
            "matmul_device": self.device,
            "matmul_threads": self.threads,
            "matmul_n_samples": self.n_samples,
        }


def measure_matmul_peak(
    device: str | torch.device = "cpu",
    *,
    n: int | None = None,
    budget_s: float = 1.0,
    dtype: torch.dtype = torch.float32,
    num_threads: int | None = None,
) -> MatmulPeak:
    """Time ``A @ B`` (``[n, n]`` fp32, ``n`` = 2048 on CPU, 8192 on CUDA) for about ``budget_s`` seconds.

    TF32 is whatever the process has set (``torch.backends.cuda.matmul.allow_tf32``): the peak is the
    one the models run under. One warm-up product first; at least 3 timed samples. ``num_threads``: CPU
    intra-op threads for this measurement only (use the latency measurements' count).
    """
    dev = torch.device(resolve_device(device))
    old_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        return _measure(dev, n, budget_s, dtype)
    finally:
        if num_threads is not None:
            torch.set_num_threads(old_threads)


def _measure(dev: torch.device, n: int | None, budget_s: float, dtype: torch.dtype) -> MatmulPeak:
    n = n or (8192 if dev.type == "cuda" else 2048)
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen, dtype=dtype).to(dev)
    b = torch.randn(n, n, generator=gen, dtype=dtype).to(dev)
    out = torch.empty(n, n, dtype=dtype, device=dev)
    flop = 2.0 * n**3

    def once() -> float:
        if dev.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            torch.mm(a, b, out=out)
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        return time.perf_counter() - t0

    with torch.inference_mode():
        once()
        samples: list[float] = []
        t_start = time.perf_counter()
        while len(samples) < 3 or time.perf_counter() - t_start < budget_s:
            samples.append(flop / once() / 1e9)
    return MatmulPeak(
        matmul_peak_gflops_s=max(samples),
        matmul_median_gflops_s=percentile(samples, 50),
        n=n,
        dtype=str(dtype).replace("torch.", ""),
        device=str(dev),
        threads=torch.get_num_threads(),
        n_samples=len(samples),
        samples_gflops_s=samples,
    )


def achieved_gflops_s(gmacs: float, latency_ms: float) -> float:
    """Achieved rate, GFLOP/s, of a call costing ``gmacs`` (per batch) that took ``latency_ms``."""
    return 2.0 * gmacs * 1e3 / latency_ms


# ------------------------------------------------------------------------------------- machine state
# What else ran while a latency window was open. Read from /proc (Linux; no dependency), NVML where
# ``nvidia-ml-py`` is installed. Every reading is optional: a field we cannot read is None, never a guess.
#
#     other_cores = (busy CPU time of the whole machine - this process's CPU time) / wall     (cores)
#     steal_cores = hypervisor steal time / wall          (a VM neighbour running on our vCPUs)
#     psi_some    = /proc/pressure/cpu "some" stall time / wall  (share of the window in which a runnable
#                   task -- ours or anyone's -- waited for a CPU)
#
# A window is *contended* when others wanted the cores our threads needed:
#     psi_some > CONTENDED_PSI_SOME                                      (where PSI is readable), or
#     other_cores + steal_cores > max(0, cpus - threads) + CONTENDED_SLACK_CORES
# or, on CUDA, when another process holds a context on our GPU.
CONTENDED_PSI_SOME = 0.10
CONTENDED_SLACK_CORES = 0.25


def _proc_stat() -> tuple[float, float, int | None] | None:
    """(busy seconds, steal seconds, procs_running) summed over all CPUs since boot, or None off Linux."""
    try:
        with open("/proc/stat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    tick = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
    v = [int(x) for x in lines[0].split()[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice (guest is already in user)
    busy = v[0] + v[1] + v[2] + v[5] + v[6]
    steal = v[7] if len(v) > 7 else 0
    running = next((int(ln.split()[1]) for ln in lines if ln.startswith("procs_running")), None)
    return busy / tick, steal / tick, running


def _psi_cpu_some_us() -> float | None:
    try:
        with open("/proc/pressure/cpu") as f:
            first = f.readline()
    except OSError:
        return None
    for part in first.split():
        if part.startswith("total="):
            return float(part[len("total="):])
    return None


def _loadavg() -> float | None:
    try:
        return float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return None


def cpu_mhz() -> float | None:
    """Mean current CPU clock (MHz): cpufreq's ``scaling_cur_freq`` where exposed, else ``/proc/cpuinfo``."""
    vals: list[float] = []
    for p in sorted(glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq")):
        try:
            vals.append(int(open(p).read().strip()) / 1e3)
        except (OSError, ValueError):
            pass
    if not vals:
        try:
            with open("/proc/cpuinfo") as f:
                vals = [float(ln.split(":", 1)[1]) for ln in f if ln.lower().startswith("cpu mhz")]
        except (OSError, ValueError):
            vals = []
    return sum(vals) / len(vals) if vals else None


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def gpu_state(device: torch.device, *, nvml: Any = None) -> dict[str, Any]:
    """SM/memory clocks, temperature, utilisation and other processes on ``device`` (NVML), plus torch's
    cuDNN and allocator state. NVML fields are None without ``nvidia-ml-py``; ``nvml`` injects a module
    with pynvml's API (tests)."""
    out: dict[str, Any] = {
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cuda_alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF"),
        "gpu_sm_clock_mhz": None, "gpu_mem_clock_mhz": None, "gpu_temp_c": None, "gpu_util_pct": None,
        "gpu_other_processes": None,
    }
    if device.type == "cuda" and torch.cuda.is_available():
        out["cuda_mem_allocated_mib"] = torch.cuda.memory_allocated(device) / 2**20
        out["cuda_mem_reserved_mib"] = torch.cuda.memory_reserved(device) / 2**20
    if nvml is None:
        if device.type != "cuda":
            return out
        try:
            import pynvml as nvml  # nvidia-ml-py
        except ImportError:
            return out
    try:
        nvml.nvmlInit()
        h = nvml.nvmlDeviceGetHandleByIndex(device.index or 0)
        out["gpu_sm_clock_mhz"] = int(nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM))
        out["gpu_mem_clock_mhz"] = int(nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_MEM))
        out["gpu_temp_c"] = int(nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU))
        out["gpu_util_pct"] = int(nvml.nvmlDeviceGetUtilizationRates(h).gpu)
        procs = list(nvml.nvmlDeviceGetComputeRunningProcesses(h)) + list(nvml.nvmlDeviceGetGraphicsRunningProcesses(h))
        out["gpu_other_processes"] = len({p.pid for p in procs} - {os.getpid()})
    except Exception:  # noqa: BLE001 - a driver that refuses a query leaves the field unknown, not the run dead
        pass
    return out


@dataclass(frozen=True)
class MachineState:
    """The machine over one measurement window (CPU readings from /proc; GPU readings at its end)."""

    wall_s: float
    cpus: int
    threads: int
    own_cpu_s: float
    other_cores: float | None
    steal_cores: float | None
    psi_cpu_some: float | None
    procs_running: int | None
    loadavg_1m: float | None
    cpu_mhz: float | None
    gpu: dict[str, Any] = field(default_factory=dict)

    @property
    def contention(self) -> str | None:
        """Why this window was contended, or None when nothing says it was."""
        why = []
        if self.psi_cpu_some is not None and self.psi_cpu_some > CONTENDED_PSI_SOME:
            why.append(f"runnable tasks waited for a CPU {100 * self.psi_cpu_some:.0f} % of the window")
        others = (self.other_cores or 0.0) + (self.steal_cores or 0.0)
        free = max(0, self.cpus - self.threads)
        if self.other_cores is not None and others > free + CONTENDED_SLACK_CORES:
            why.append(f"other processes used {others:.2f} of {self.cpus} cores ({free} free for {self.threads} "
                       f"thread{'s' if self.threads != 1 else ''})")
        if self.gpu.get("gpu_other_processes"):
            why.append(f"{self.gpu['gpu_other_processes']} other process(es) on the GPU")
        return "; ".join(why) or None

    def as_dict(self, prefix: str = "machine_") -> dict[str, Any]:
        """Flat record fields ``machine_*`` (GPU ones keep their own names)."""
        out = {f"{prefix}{k}": getattr(self, k) for k in ("wall_s", "cpus", "threads", "own_cpu_s", "other_cores",
                                                           "steal_cores", "psi_cpu_some", "procs_running",
                                                           "loadavg_1m", "cpu_mhz")}
        out.update(self.gpu)
        return out


class MachineWindow:
    """``with MachineWindow(device) as w: ...`` then ``w.state``: what the machine did during the block."""

    def __init__(self, device: str | torch.device = "cpu", *, nvml: Any = None) -> None:
        self.device = torch.device(resolve_device(device))
        self.nvml = nvml
        self.state: MachineState | None = None

    def __enter__(self) -> "MachineWindow":
        self._stat0 = _proc_stat()
        self._psi0 = _psi_cpu_some_us()
        self._own0 = _own_cpu_s()
        self._mhz0 = cpu_mhz()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        wall = max(time.perf_counter() - self._t0, 1e-9)
        own = _own_cpu_s() - self._own0
        stat1, psi1 = _proc_stat(), _psi_cpu_some_us()
        other = steal = None
        running = None
        if self._stat0 is not None and stat1 is not None:
            other = max(0.0, (stat1[0] - self._stat0[0]) - own) / wall
            steal = max(0.0, stat1[1] - self._stat0[1]) / wall
            running = stat1[2]
        psi = (psi1 - self._psi0) / 1e6 / wall if psi1 is not None and self._psi0 is not None else None
        mhz = [m for m in (self._mhz0, cpu_mhz()) if m is not None]
        self.state = MachineState(
            wall_s=wall, cpus=_cpus(), threads=torch.get_num_threads(), own_cpu_s=own, other_cores=other,
            steal_cores=steal, psi_cpu_some=None if psi is None else min(max(psi, 0.0), 1.0), procs_running=running,
            loadavg_1m=_loadavg(), cpu_mhz=sum(mhz) / len(mhz) if mhz else None,
            gpu=gpu_state(self.device, nvml=self.nvml),
        )


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system  # every thread of this process; children only once waited for
