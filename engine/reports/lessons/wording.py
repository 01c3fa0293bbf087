"""Small words the takeaways share: where a run was measured, a speedup, an accuracy change,
a run's paired speeds against its parent."""

from __future__ import annotations

from typing import Any

HERE = "On this machine"


def where(origin: str | None) -> str:
    return HERE if origin is None else "Where the pack was measured"


def _bs(metrics: dict[str, Any], key: str = "speedup_vs_parent") -> list[str]:
    return sorted(metrics.get(key) or {}, key=int)


def _x(x: float) -> str:
    return f"{x:.2f}x" if x < 1.95 else f"{x:.1f}x"


def _points(delta: float | None) -> str:
    """An accuracy change (0..1 scale) in points, as a verb phrase."""
    if delta is None or delta != delta:  # None or NaN
        return "its accuracy was not measured"
    p = 100 * delta
    if abs(p) < 0.05:
        return "kept the same accuracy"
    return f"cost {-p:.1f} points of accuracy" if p < 0 else f"gained {p:.1f} points of accuracy"


def _speeds(run: dict[str, Any]) -> str:
    """"3.1x faster at batch 1 and 3.5x at batch 32 (compiled against compiled, paired)"."""
    m = run["metrics"]
    sizes, rt = _bs(m), m.get("parent_runtime") or "eager"
    if not sizes:
        return "its speed against the teacher was not measured"
    x = m["speedup_vs_parent"]
    first = x[sizes[0]]
    text = (f"{_x(first)} faster" if first >= 1 else f"slower ({_x(first)} the speed)") + \
        f" at batch {sizes[0]}"
    if len(sizes) > 1:
        text += f" and {_x(x[sizes[-1]])} at batch {sizes[-1]}"
    return text + f" ({rt} against {rt}, paired)"


def _device_note(run: dict[str, Any]) -> str:
    device = run["metrics"].get("device") or ""
    return f" on {device}" if device.startswith("cuda") else ""
