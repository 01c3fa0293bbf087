"""Every setting of the lab, declared once with its help text.

Settings are environment variables read at call time (never cached at import), so tests can
point LAB_HOME at a temporary folder. The README's settings table is checked against
`SETTINGS` by a test.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("LAB_HOME", "~/.compression-lab", "Folder for the database, artifacts and logs."),
    Setting(
        "LAB_DATABASE_URL",
        "sqlite:///$LAB_HOME/lab.db",
        "SQLAlchemy URL of the database (SQLite in WAL mode by default).",
    ),
    Setting(
        "LAB_THREADS",
        "min(cores, 8)",
        "CPU threads for torch in jobs; fixed so that latencies are comparable.",
    ),
    Setting("LAB_DEVICE", "auto", "`auto` (CUDA when present, else CPU), `cpu` or `cuda`."),
    Setting(
        "LAB_HEARTBEAT_TIMEOUT_S",
        "60",
        "Seconds without a heartbeat after which a running job's worker is taken as dead.",
    ),
    Setting(
        "LAB_MAX_ATTEMPTS",
        "2",
        "Times a job is started before a dead worker makes it fail instead of re-queueing it.",
    ),
    Setting(
        "LAB_MODEL_DIRS",
        "$LAB_HOME/models:~/models",
        "Folders (separated by `:`) inside which local model directories may be loaded.",
    ),
    Setting(
        "LAB_BUILD_TEACHER",
        "1",
        "`1`: the dashboard queues the default teacher's finetune when it is missing; `0`: not.",
    ),
    Setting(
        "LAB_TIMING_RUNTIMES",
        "eager,compiled",
        "Runtimes every evaluated model is timed under (besides its own); `eager` skips compiling.",
    ),
    Setting(
        "LAB_WORKER_AUTOSTART",
        "1",
        "`1`: the dashboard starts a background worker when none is alive; `0`: it does not.",
    ),
    Setting(
        "LAB_CACHE_DIR",
        "~/.cache/compression-lab",
        "Per-machine cache shared by every LAB_HOME: the built default teacher, keyed by its "
        "recipe and library versions.",
    ),
    Setting(
        "LAB_WORKERS",
        "auto",
        "Workers the dashboard keeps alive on this machine; `auto`: one per GPU (each pinned "
        "to its GPU) when CUDA is present, else cores // `LAB_THREADS` (at least 1).",
    ),
    Setting(
        "LAB_EXECUTOR",
        "local",
        "`local`: workers run claimed jobs in their own process; `ray`: as Ray tasks.",
    ),
    Setting(
        "LAB_RAY_ADDRESS",
        "local",
        "Ray cluster address for `LAB_EXECUTOR=ray` (e.g. `ray://head:10001`); `local` starts "
        "a local Ray instance.",
    ),
    Setting(
        "LAB_MAX_QUEUED_PER_OWNER",
        "100",
        "Queued jobs one owner (attendee) may have at a time; `0`: no limit.",
    ),
    Setting(
        "LAB_INSTRUCTOR_TOKEN",
        "unset",
        "When set, whoever enters this token may cancel or delete anyone's jobs; attendees "
        "can touch only their own.",
    ),
)

_DEFAULTS = {s.name: s.default for s in SETTINGS}


def _get(name: str) -> str | None:
    assert name in _DEFAULTS, f"undeclared setting {name}: add it to SETTINGS with a help text"
    value = os.environ.get(name, "").strip()
    return value or None


def lab_home() -> Path:
    """The lab's folder (created on first use)."""
    home = Path(_get("LAB_HOME") or _DEFAULTS["LAB_HOME"]).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def artifacts_dir() -> Path:
    path = lab_home() / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    return Path(_get("LAB_CACHE_DIR") or _DEFAULTS["LAB_CACHE_DIR"]).expanduser()


def logs_dir() -> Path:
    path = lab_home() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str:
    return _get("LAB_DATABASE_URL") or f"sqlite:///{lab_home() / 'lab.db'}"


def threads() -> int:
    raw = _get("LAB_THREADS")
    if raw is None:
        return max(1, min(os.cpu_count() or 1, 8))
    value = int(raw)
    if value < 1:
        raise ValueError(f"LAB_THREADS must be at least 1, got {value}")
    return value


def device() -> str:
    value = (_get("LAB_DEVICE") or "auto").lower()
    if value not in ("auto", "cpu", "cuda"):
        raise ValueError(f"LAB_DEVICE must be auto, cpu or cuda, got {value!r}")
    return value


def heartbeat_timeout_s() -> float:
    return float(_get("LAB_HEARTBEAT_TIMEOUT_S") or _DEFAULTS["LAB_HEARTBEAT_TIMEOUT_S"])


def max_attempts() -> int:
    return int(_get("LAB_MAX_ATTEMPTS") or _DEFAULTS["LAB_MAX_ATTEMPTS"])


def model_dirs() -> list[Path]:
    """Folders a local model path must lie in (resolved, so links cannot escape them); the
    lab's own artifacts folder is always allowed."""
    raw = _get("LAB_MODEL_DIRS") or _DEFAULTS["LAB_MODEL_DIRS"].replace(
        "$LAB_HOME", str(lab_home()))  # the declared default names the resolved LAB_HOME
    dirs = [Path(os.path.expandvars(e)).expanduser().resolve()
            for e in raw.split(os.pathsep) if e.strip()]
    return dirs + [artifacts_dir().resolve()]


def _flag(name: str) -> bool:
    """An on/off setting: 0, false or no turn it off; unset takes the declared default."""
    return (_get(name) or _DEFAULTS[name]).lower() not in ("0", "false", "no")


def build_teacher() -> bool:
    return _flag("LAB_BUILD_TEACHER")


def worker_autostart() -> bool:
    return _flag("LAB_WORKER_AUTOSTART")


def timing_runtimes() -> list[str] | None:
    """The runtimes LAB_TIMING_RUNTIMES allows (comma-separated); None: all configured."""
    raw = _get("LAB_TIMING_RUNTIMES")
    return [r.strip() for r in raw.split(",") if r.strip()] if raw else None
def workers() -> int:
    """How many workers the dashboard keeps alive on this machine (LAB_WORKERS)."""
    raw = (_get("LAB_WORKERS") or "auto").lower()
    if raw == "auto":
        gpus = gpu_count()
        return gpus if gpus else max(1, (os.cpu_count() or 1) // threads())
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"LAB_WORKERS must be auto or a whole number, got {raw!r}") from None
    if value < 0:
        raise ValueError(f"LAB_WORKERS must be 0 or more, got {value}")
    return value


def gpu_count() -> int:
    """CUDA GPUs a worker could use, without importing torch: 0 when LAB_DEVICE=cpu; else the
    ids in CUDA_VISIBLE_DEVICES when set, else the NVIDIA driver's GPU entries."""
    if device() == "cpu":
        return 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([v for v in visible.split(",") if v.strip() and v.strip() != "-1"])
    gpus = Path("/proc/driver/nvidia/gpus")
    return len(list(gpus.iterdir())) if gpus.is_dir() else 0


def executor() -> str:
    value = (_get("LAB_EXECUTOR") or _DEFAULTS["LAB_EXECUTOR"]).lower()
    if value not in ("local", "ray"):
        raise ValueError(f"LAB_EXECUTOR must be local or ray, got {value!r}")
    return value


def ray_address() -> str | None:
    """The Ray cluster to join, or None to start a local Ray instance."""
    value = _get("LAB_RAY_ADDRESS")
    return None if value in (None, "local") else value


def max_queued_per_owner() -> int:
    """The cap on one owner's queued jobs; 0 means no cap."""
    raw = _get("LAB_MAX_QUEUED_PER_OWNER") or _DEFAULTS["LAB_MAX_QUEUED_PER_OWNER"]
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"LAB_MAX_QUEUED_PER_OWNER must be a whole number, got {raw!r}") \
            from None
    return max(0, value)


def instructor_token() -> str | None:
    """The instructor's token, or None when unset (then nobody can touch others' jobs)."""
    value = _get("LAB_INSTRUCTOR_TOKEN")
    return None if value in (None, "unset") else value
