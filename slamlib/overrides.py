"""Settings changed by dotted key, as `--set key=value` and a notebook's `OVERRIDES` give them.

A value given as text is read as the type of the setting it replaces (`"100"` for a whole
number, `"true"` for a flag, `'[["ssc", "DIR"]]'` for a list, `en-us@175wpm/p50` for a voice);
a corpus of `data.hub` is reached by its name (`data.hub.librispeech.rows`).

    >>> from slamlib.settings import TrainConfig
    >>> apply_overrides(TrainConfig(corpora=("a",)), {"lr": "0.002"}).lr
    0.002

Not here: whether the new value is sensible (`slamlib.checks`).
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Mapping

from slamlib.settings import Voice


def apply_overrides(settings, overrides: Mapping[str, Any] | None):
    """`settings` (a settings dataclass, a whole `Profile` included) with each dotted key set."""
    for key, value in (overrides or {}).items():
        settings = _replace_path(settings, key.split("."), value, key)
    return settings


def _replace_path(obj, path: list[str], value, key: str):
    if _is_named_tuple_of_settings(obj):  # `data.hub.librispeech.rows`: one corpus of the tuple, by name
        names = [item.name for item in obj]
        if path[0] not in names:
            raise ValueError(f"no setting {key!r}: {path[0]!r} is not one of {names}")
        if len(path) == 1:
            raise ValueError(f"no setting {key!r}: name a field of {path[0]!r}, e.g. {key}.rows")
        return tuple(_replace_path(item, path[1:], value, key) if item.name == path[0] else item for item in obj)
    if not dataclasses.is_dataclass(obj):
        raise ValueError(f"no setting {key!r}: {path[0]!r} is inside a {type(obj).__name__}, not a settings group")
    names = {f.name for f in dataclasses.fields(obj)}
    if path[0] not in names:
        raise ValueError(f"no setting {key!r}: {type(obj).__name__} has {sorted(names)}")
    current = getattr(obj, path[0])
    if len(path) > 1:
        return dataclasses.replace(obj, **{path[0]: _replace_path(current, path[1:], value, key)})
    hint = str(next(f.type for f in dataclasses.fields(obj) if f.name == path[0]))
    return dataclasses.replace(obj, **{path[0]: _coerce(value, current, key, hint)})


def _is_named_tuple_of_settings(obj) -> bool:
    """A tuple of settings groups that each have a `name` (the corpora of `data.hub`)."""
    return (isinstance(obj, tuple) and bool(obj)
            and all(dataclasses.is_dataclass(item) and isinstance(getattr(item, "name", None), str) for item in obj))


def _voice(text: str, key: str) -> Voice:
    """`en-us@175wpm/p50` (as profiles print voices) -> Voice("en-us", rate=175, pitch=50)."""
    match = re.fullmatch(r"([\w+-]+)@(\d+)wpm/p(\d+)", text)
    if not match:
        raise ValueError(f"{key}={text!r}: expected a voice like en-us@175wpm/p50")
    return Voice(match[1], rate=int(match[2]), pitch=int(match[3]))


def _coerce(value, current, key: str, hint: str = ""):
    """Parse a command-line string to the type of the setting it replaces (`hint`: the field's
    annotation, which says the type of a setting that is now None)."""
    if not isinstance(value, str):
        return value
    if (current is None or "None" in hint) and value.lower() in ("none", "null"):
        return None
    if isinstance(current, str):
        return value
    if current is None:
        kind = {"int": int, "float": float}.get(hint.split("|")[0].strip())
        if kind is None:
            return value
        try:
            return kind(value)
        except ValueError:
            raise ValueError(f"{key}={value!r}: expected a {'whole number' if kind is int else 'number'}") from None
    if isinstance(current, Voice) or (isinstance(current, tuple) and current and isinstance(current[0], Voice)):
        voices = tuple(_voice(v.strip(), key) for v in value.split(",") if v.strip())
        return voices[0] if isinstance(current, Voice) and len(voices) == 1 else voices
    if isinstance(current, float):  # float() reads nan and inf too, which the checks then name
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"{key}={value!r}: expected a number") from None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        raise ValueError(f"{key}={value!r}: expected {_kind(current)}") from None
    if isinstance(current, tuple) and isinstance(parsed, list):  # JSON has lists; settings hold tuples
        return _tuples(parsed)
    if isinstance(current, bool) != isinstance(parsed, bool) or not isinstance(parsed, (type(current), int)):
        raise ValueError(f"{key}={value!r}: expected {_kind(current)}")
    return type(current)(parsed)


def _kind(current) -> str:
    """The kind of value a setting holds, in words (for errors)."""
    return {bool: "true or false", int: "a whole number", float: "a number", str: "text",
            tuple: "a list"}.get(type(current), f"a {type(current).__name__}")


def _tuples(value):
    """JSON lists -> tuples, nested (`[["ssc", "a"]]` -> `(("ssc", "a"),)`): frozen settings stay hashable."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """`["a.b=1", "c=x"]` -> `{"a.b": "1", "c": "x"}` (values are parsed against the profile)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value (e.g. tokenizer.n_units=100)")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out
