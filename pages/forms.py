"""Config forms generated from a method's config fields (not a page itself).

Every field becomes a widget from its type, bounds and choices; advanced fields go in an
expander. Adding a method never means writing a form.
"""

from __future__ import annotations

from typing import Any

import streamlit as st


def _widget(info: dict[str, Any], key: str) -> Any:
    name, default, kind = info["name"], info["default"], info["type"]
    label, help_text = name.replace("_", " "), info["help"]
    if info.get("choices"):
        options = list(info["choices"])
        return st.selectbox(label, options, index=options.index(default), help=help_text,
                            key=key)
    if kind == "bool":
        return st.checkbox(label, value=default, help=help_text, key=key)
    if kind in ("int", "float"):
        cast = int if kind == "int" else float
        lo = cast(info["min"]) if info.get("min") is not None else None
        hi = cast(info["max"]) if info.get("max") is not None else None
        step = None if kind == "int" else (abs(default) / 10 if default else 0.01)
        return st.number_input(label, min_value=lo, max_value=hi, value=cast(default),
                               step=step, format="%g" if kind == "float" else None,
                               help=help_text, key=key)
    # lists, unions and strings: typed as text and parsed by the config (YAML-like)
    text = ", ".join(map(str, default)) if isinstance(default, list) else str(default)
    return st.text_input(label, value=text, help=f"{help_text} ({kind})", key=key)


def config_form(method: str, fields: list[dict[str, Any]]) -> dict[str, Any]:
    """Render the fields of `method` and return their values as typed by the user."""
    values: dict[str, Any] = {}
    basic = [f for f in fields if not f.get("advanced")]
    advanced = [f for f in fields if f.get("advanced")]
    cols = st.columns(3)
    for i, info in enumerate(basic):
        with cols[i % 3]:
            values[info["name"]] = _widget(info, f"cfg_{method}_{info['name']}")
    if advanced:
        with st.expander("Advanced settings"):
            cols = st.columns(3)
            for i, info in enumerate(advanced):
                with cols[i % 3]:
                    values[info["name"]] = _widget(info, f"cfg_{method}_{info['name']}")
    # Text fields hold lists or unions: let the config parse them like the CLI does.
    for info in fields:
        value = values[info["name"]]
        if isinstance(value, str) and info["type"] != "str" and not info.get("choices"):
            values[info["name"]] = _parse(value)
    return values


def _parse(text: str) -> Any:
    import yaml

    text = text.strip()
    if "," in text and not text.startswith("["):
        text = f"[{text}]"
    try:
        return yaml.safe_load(text) if text else []
    except yaml.YAMLError:
        return text
