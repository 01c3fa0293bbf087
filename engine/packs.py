"""Demo packs: chosen runs in one file that any lab can load (issue 15).

    python -m engine pack export FILE [--jobs ID ...] [--with-models]
    python -m engine pack import FILE

A pack is a zip: `manifest.json` (format, version, where and on what hardware the runs were
measured, a SHA-256 of every member), `runs.json` (jobs with their metrics, latencies,
per-example predictions, head scores and curves, and every ancestor so lineage is whole) and,
with --with-models, `models/<old job id>/...` (each run's model folder). Importing checks the
whole file before it writes anything, then writes the rows in one transaction; a corrupt,
truncated, foreign or newer-version pack is refused with a clear message and changes nothing.
Imported runs carry `origin` (where they were measured): pages say so, and their timings are
never paired with local ones. No torch here.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import socket
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.toolkit.config import LabError
from storage import packs as rows
from storage import settings

FORMAT, VERSION = "compression-lab-pack", 1
MAX_MEMBER_BYTES = 8 * 1024 ** 3  # a model folder is < 2 GB; anything larger is not ours


def _hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return cpu


def export_pack(path: str | Path, job_ids: list[int] | None = None,
                with_models: bool = False) -> dict[str, Any]:
    """Write the pack; return its manifest. Raises LabError for an unknown or unfinished job."""
    try:
        runs = rows.runs_rows(job_ids)
    except (LookupError, ValueError) as exc:
        raise LabError(f"pack export: {exc}") from exc
    if not runs:
        raise LabError("pack export: no finished runs to pack; run a job first")
    devices = sorted({r["metrics"].get("device") for r in runs if r["metrics"]} - {None})
    manifest: dict[str, Any] = {
        "format": FORMAT, "version": VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(), "hardware": _hardware(), "devices": devices,
        "runs": len(runs), "with_models": with_models, "sha256": {}}
    members: dict[str, bytes] = {"runs.json": json.dumps(runs, default=str).encode()}
    if with_models:
        for run in runs:
            folder = Path(run["model"]["path"]) if run["model"] else None
            if folder is not None and folder.is_dir():
                for f in sorted(folder.rglob("*")):
                    if f.is_file():
                        members[f"models/{run['id']}/{f.relative_to(folder)}"] = f.read_bytes()
    manifest["sha256"] = {name: hashlib.sha256(data).hexdigest()
                          for name, data in members.items()}
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps(manifest, indent=2))
        for name, data in members.items():
            z.writestr(name, data)
    tmp.replace(path)  # a pack on disk is always whole
    return manifest


def _read(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]], zipfile.ZipFile]:
    """Open and check a pack completely; LabError naming what is wrong."""
    name = path.name
    if not path.is_file():
        raise LabError(f"pack import: no file {name}")
    try:
        z = zipfile.ZipFile(path)
        bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise LabError(f"pack import: {name} is not a readable pack (corrupt or truncated: "
                       f"{exc}); export it again") from exc
    if bad is not None:
        raise LabError(f"pack import: {name} is corrupt ({bad} fails its checksum); export it "
                       f"again")
    try:
        manifest = json.loads(z.read("manifest.json"))
    except (KeyError, ValueError) as exc:
        raise LabError(f"pack import: {name} is not a Compression Lab pack (no readable "
                       f"manifest.json)") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise LabError(f"pack import: {name} is not a Compression Lab pack")
    version = manifest.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise LabError(f"pack import: {name} was made by a newer lab (pack version {version}, "
                       f"this lab reads up to {VERSION}); upgrade the lab")
    sums = manifest.get("sha256") or {}
    for member, digest in sums.items():
        info = z.getinfo(member) if member in z.namelist() else None
        if info is None or info.file_size > MAX_MEMBER_BYTES or \
                hashlib.sha256(z.read(member)).hexdigest() != digest:
            raise LabError(f"pack import: {name} is damaged ({member} is missing or does not "
                           f"match its checksum); export it again")
    if set(z.namelist()) - set(sums) - {"manifest.json"}:
        raise LabError(f"pack import: {name} holds files its manifest does not list")
    try:
        runs = json.loads(z.read("runs.json"))
        assert isinstance(runs, list) and all(isinstance(r, dict) and "job" in r for r in runs)
    except (KeyError, ValueError, AssertionError) as exc:
        raise LabError(f"pack import: {name} has no readable runs.json") from exc
    for member in z.namelist():  # never write outside the lab's folders
        if member.startswith("/") or ".." in Path(member).parts:
            raise LabError(f"pack import: {name} holds an unsafe path {member!r}")
    return manifest, runs, z


def import_pack(path: str | Path, keep_alias: bool = True,
                origin: str | None = None) -> dict[int, int]:
    """Load a pack into this lab; return {old job id: new job id}. Checks first, then copies
    model folders into the artifacts folder and writes the rows in one transaction; any
    failure removes what was copied."""
    path = Path(path)
    manifest, runs, z = _read(path)
    origin = (f"{origin or 'imported from ' + path.name}: measured on {manifest.get('host')} "
              f"({manifest.get('hardware')}; {', '.join(manifest.get('devices') or []) or '?'}) "
              f"on {manifest.get('created_at')}")
    staging = settings.artifacts_dir() / f"pack-{hashlib.sha1(path.name.encode()).hexdigest()[:8]}"
    shutil.rmtree(staging, ignore_errors=True)
    paths: dict[int, str] = {}
    try:
        with z:
            for member in z.namelist():
                if member.startswith("models/"):
                    _, old, rel = member.split("/", 2)
                    target = staging / old / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with z.open(member) as src, target.open("wb") as dst:
                        shutil.copyfileobj(src, dst)
                    paths[int(old)] = str(staging / old)
        ids = rows.insert_runs(runs, origin, paths, keep_alias=keep_alias)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # each model folder moves to its new job's place (rows already point there)
    for old, new in ids.items():
        if old in paths:
            final = settings.artifacts_dir() / f"job-{new}"
            shutil.rmtree(final, ignore_errors=True)
            Path(paths[old]).rename(final)
            rows.move_model_path(f"job:{new}", str(final))
    shutil.rmtree(staging, ignore_errors=True)
    return ids


def pack_bytes(job_ids: list[int] | None = None, with_models: bool = False) -> bytes:
    """The pack as bytes (a page's download button)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "runs.labpack"
        export_pack(f, job_ids, with_models)
        return f.read_bytes()


def import_upload(data: bytes, name: str = "upload.labpack") -> dict[int, int]:
    """Import a pack uploaded through a page."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / Path(name).name
        f.write_bytes(data)
        return import_pack(f)



