"""The command's `SecurityConfig`: defaults, then `GUARD_CORE_<FIELD>` variables, then flags.

Every field of `SecurityConfig` can be set from the environment under its own name in capitals
(`redis_url` is `GUARD_CORE_REDIS_URL`) or with `--set FIELD=VALUE`. Text is converted by the
field's type: booleans take 1/0, true/false, yes/no, on/off; tuples and mappings take
comma-separated lists (`AWS,GCP`, `AWS=https://...,GCP=https://...`); an empty
`GUARD_CORE_REDIS_URL` means no URL. The values of secret-carrying fields never appear in
error messages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from guard_core.models import SecurityConfig

ENV_PREFIX = "GUARD_CORE_"
#: Fields whose value may carry a password: never echoed back.
SECRET_FIELDS = frozenset({"redis_url"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class SettingError(ValueError):
    """A setting that cannot be read; the message names it (and never shows a secret)."""


def field_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(SecurityConfig))


def env_name(field: str) -> str:
    """`redis_url` -> `GUARD_CORE_REDIS_URL`."""
    return ENV_PREFIX + field.upper()


def _shown(field: str, text: str) -> str:
    return "(value hidden)" if field in SECRET_FIELDS else f"(got {text!r})"


def _annotation(field: dataclasses.Field[Any]) -> str:
    """The field's type as written (`"str | None"`), whether or not annotations are strings."""
    kind = field.type
    if isinstance(kind, str):
        return kind.replace(" ", "")
    return getattr(kind, "__name__", str(kind)) if isinstance(kind, type) else str(kind)


def _optional_inner(annotation: str) -> str | None:
    parts = annotation.split("|")
    if len(parts) == 2 and "None" in parts:
        return next(part for part in parts if part != "None")
    if annotation.startswith("Optional[") and annotation.endswith("]"):
        return annotation[len("Optional[") : -1]
    return None


def _convert(field: str, annotation: str, text: str, source: str) -> Any:
    """`text` as a value of the field's type (by its annotation)."""
    inner = _optional_inner(annotation)
    if inner is not None:
        if text.strip() == "" or text.strip().lower() == "none":
            return None
        return _convert(field, inner, text, source)
    if annotation == "bool":
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise SettingError(f"{source} must be true or false {_shown(field, text)}")
    if annotation in ("int", "float"):
        try:
            return int(text.strip()) if annotation == "int" else float(text.strip())
        except ValueError:
            kind = "a whole number" if annotation == "int" else "a number"
            raise SettingError(f"{source} must be {kind} {_shown(field, text)}") from None
    if annotation == "str":
        return text
    if annotation == "tuple[str,...]":
        return tuple(part.strip() for part in text.split(",") if part.strip())
    if annotation in ("Mapping[str,str]", "dict[str,str]"):
        mapping: dict[str, str] = {}
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            name, sep, value = item.partition("=")
            if not sep or not name.strip():
                raise SettingError(f"{source} must be NAME=VALUE pairs separated by commas")
            mapping[name.strip()] = value.strip()
        return mapping
    raise SettingError(f"{source} cannot be set from text (its type is {annotation})")


def build_config(
    environ: Mapping[str, str],
    overrides: Mapping[str, str] | None = None,
    *,
    base: SecurityConfig | None = None,
) -> SecurityConfig:
    """A validated `SecurityConfig` from the environment, then the overrides (field -> text),
    over `base` when given (an application's own configuration) instead of the defaults.

    Unknown `GUARD_CORE_*` variables and fields are refused, so that a misspelt setting
    does not silently fall back to the default.
    """
    annotations = {f.name: _annotation(f) for f in dataclasses.fields(SecurityConfig)}
    values: dict[str, Any] = {}
    for name, text in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        field = name[len(ENV_PREFIX) :].lower()
        if field not in annotations:
            raise SettingError(f"{name} is not a setting (no SecurityConfig field {field!r})")
        values[field] = _convert(field, annotations[field], text, name)
    for field, text in (overrides or {}).items():
        if field not in annotations:
            raise SettingError(f"--set {field}: no such SecurityConfig field")
        values[field] = _convert(field, annotations[field], text, f"--set {field}")
    try:
        if base is not None:
            return dataclasses.replace(base, **values)
        return SecurityConfig(**values)
    except (TypeError, ValueError) as exc:  # SecurityConfig masks the URL's secrets itself
        raise SettingError(f"invalid configuration: {exc}") from None


def parse_assignment(text: str) -> tuple[str, str]:
    """`FIELD=VALUE` (as given to `--set`) -> (field, value)."""
    field, sep, value = text.partition("=")
    if not sep or not field.strip():
        raise SettingError("--set takes FIELD=VALUE")
    return field.strip().lower().replace("-", "_"), value
