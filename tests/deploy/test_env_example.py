"""`.env.example` lists every setting (and only real ones), each with a comment, and no secret values."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from app.settings import Settings, load_settings
from tests.deploy.support import ROOT

ENV_EXAMPLE = ROOT / ".env.example"
LINE = re.compile(r"^(?:#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


def entries() -> dict[str, tuple[str, bool, str]]:
    """Variable -> (value, commented out, the comment line above it)."""
    found: dict[str, tuple[str, bool, str]] = {}
    previous = ""
    for raw in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = LINE.match(raw.strip())
        if match:
            name, value = match.groups()
            assert name not in found, f"{name} is listed twice"
            found[name] = (value, raw.startswith("#"), previous)
        previous = raw
    return found


def test_every_setting_is_listed_and_every_listed_variable_is_a_setting() -> None:
    settings = {name.upper() for name in Settings.model_fields}
    listed = set(entries())
    assert not settings - listed, f"add to .env.example: {sorted(settings - listed)}"
    assert not listed - settings, f"not settings (remove or add to app/settings.py): {sorted(listed - settings)}"


def test_each_variable_has_a_comment_above_it() -> None:
    for name, (_, _, comment) in entries().items():
        assert comment.startswith("#") and not LINE.match(comment.strip()), f"{name} has no comment line above it"
        assert len(comment.strip("# ")) > 8, f"{name}: say what it does"


def test_secrets_are_blank_and_commented_out() -> None:
    """A blank secret that is set still counts as set (the channel would switch on with an empty token)."""
    secrets = {name.upper() for name, f in Settings.model_fields.items() if "SecretStr" in str(f.annotation)}
    secrets |= {"API_KEYS", "DATABASE_URL"}
    listed = entries()
    for name in secrets:
        value, commented, _ = listed[name]
        assert value == "" and commented, f"{name} must be a blank, commented-out line"


def test_the_shown_values_are_the_defaults_and_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Uncommented into a real .env file, the shown values load and equal the code's defaults."""
    lines = [f"{name}={value}" for name, (value, _, _) in entries().items() if value != ""]
    (tmp_path / ".env").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for key in list(os.environ):
        if key.lower() in Settings.model_fields:
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    from_file = load_settings()
    defaults = Settings(_env_file=None)
    for name in Settings.model_fields:
        assert getattr(from_file, name) == getattr(defaults, name), f"{name.upper()}: .env.example shows another value"
