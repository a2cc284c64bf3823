"""The demo makes its own key for unsubscribe links when none is configured, keeps it between runs in
its out directory (readable by the owner only), and never replaces a configured one."""

from __future__ import annotations

from pathlib import Path

import pytest

from channels.optout import SECRET_ENV, MissingSecret, read_unsubscribe_token, unsubscribe_token
from engine.demo.environment import SECRET_NAME, demo_secret_key


def test_a_key_is_made_once_and_links_sign_and_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    with pytest.raises(MissingSecret):
        unsubscribe_token("C1", "email")
    demo_secret_key(tmp_path)
    key = (tmp_path / SECRET_NAME).read_text(encoding="utf-8")
    assert len(key) >= 32 and (tmp_path / SECRET_NAME).stat().st_mode & 0o077 == 0
    token = unsubscribe_token("C1", "email")
    assert read_unsubscribe_token(token) == ("C1", "email")
    # The next run finds the same key: links of the last run still open.
    monkeypatch.delenv(SECRET_ENV)
    demo_secret_key(tmp_path)
    assert read_unsubscribe_token(token) == ("C1", "email")


def test_a_configured_key_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "configured-" + "k" * 32)
    demo_secret_key(tmp_path)
    assert not (tmp_path / SECRET_NAME).exists()
    import os

    assert os.environ[SECRET_ENV] == "configured-" + "k" * 32
