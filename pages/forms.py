"""Config forms generated from a method's config fields (not a page itself).

Every field becomes a widget from its type, bounds and choices; advanced fields go in an
expander; a field whose `applies_when` does not hold for the current choices is hidden (it
keeps its default). Adding a method never means writing a form.
"""

from __future__ import annotations

from typing import Any

import streamlit as st


def _key(method: str, info: dict[str, Any]) -> str:
    return f"cfg_{method}_{info['name']}"


def _out_of_range(info: dict[str, Any], value: Any) -> str | None:
    """Why a number is outside its field's bounds, in plain words; None when it is inside."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    lo, hi = info.get("min"), info.get("max")
    if lo is not None and value < lo:
        return f"{info['name'].replace('_', ' ')} must be at least {lo:g} (it is {value:g})"
    if hi is not None and value > hi:
        return f"{info['name'].replace('_', ' ')} must be at most {hi:g} (it is {value:g})"
    return None


def _widget(info: dict[str, Any], key: str) -> Any:
    name, default, kind = info["name"], info["default"], info["type"]
    label, help_text = name.replace("_", " "), info["help"]
    if info.get("choices") and isinstance(default, list):  # several of the choices
        return st.multiselect(label, list(info["choices"]), default=default, help=help_text,
                              key=key)
    if info.get("choices"):
        options = list(info["choices"])
        return st.selectbox(label, options, index=options.index(default), help=help_text,
                            key=key)
    if kind == "bool":
        return st.checkbox(label, value=default, help=help_text, key=key)
    if kind in ("int", "float"):
        # No min/max on the widget: the browser would only turn an out-of-range value red and
        # keep the old one; here the value is taken and its problem is said in plain text.
        cast = int if kind == "int" else float
        step = None if kind == "int" else (abs(default) / 10 if default else 0.01)
        bounds = [f"{k} {info[k]:g}" for k in ("min", "max") if info.get(k) is not None]
        return st.number_input(label, value=cast(default), step=step,
                               format="%g" if kind == "float" else None,
                               help=help_text + (f" ({', '.join(bounds)})" if bounds else ""),
                               key=key)
    # lists, unions and strings: typed as text and parsed by the config (YAML-like)
    text = ", ".join(map(str, default)) if isinstance(default, list) else str(default)
    return st.text_input(label, value=text, help=f"{help_text} ({kind})", key=key)


def applies(info: dict[str, Any], current: dict[str, Any]) -> bool:
    """Does the field matter for the current values of the fields it depends on?"""
    return all(current.get(other) in allowed
               for other, allowed in (info.get("applies_when") or {}).items())


def config_form(method: str, fields: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """Render the fields of `method` that apply to the current choices; return their values as
    typed by the user and the problems found (out-of-range numbers, in plain words). Hidden
    fields are left out of the values, so the config gives them their defaults."""
    current = {f["name"]: st.session_state.get(_key(method, f), f["default"]) for f in fields}
    shown = [f for f in fields if applies(f, current)]
    values: dict[str, Any] = {}
    problems: list[str] = []

    def render(group: list[dict[str, Any]]) -> None:
        cols = st.columns(3)
        for i, info in enumerate(group):
            with cols[i % 3]:
                values[info["name"]] = _widget(info, _key(method, info))
                problem = _out_of_range(info, values[info["name"]])
                if problem:
                    st.error(problem, icon=":material/error:")
                    problems.append(problem)

    render([f for f in shown if not f.get("advanced")])
    advanced = [f for f in shown if f.get("advanced")]
    if advanced:
        with st.expander("Advanced settings"):
            render(advanced)
    # Text fields hold lists or unions: let the config parse them like the CLI does.
    for info in shown:
        value = values[info["name"]]
        if isinstance(value, str) and info["type"] != "str" and not info.get("choices"):
            values[info["name"]] = _parse(value)
    return values, problems


def _parse(text: str) -> Any:
    import yaml

    text = text.strip()
    if "," in text and not text.startswith("["):
        text = f"[{text}]"
    try:
        return yaml.safe_load(text) if text else []
    except yaml.YAMLError:
        return text
