from __future__ import annotations

import stat
from pathlib import Path

import pytest

from switchboard.errors import SettingsError
from switchboard.keys import KeyPaths, ensure_secrets, load_private_key, load_public_key, load_turn_secret
from switchboard.settings import load_settings
from switchboard.tokens import Grants, TokenSigner, TokenVerifier


def test_secrets_are_made_once_with_mode_0600(tmp_path: Path) -> None:
    settings = load_settings(environ={"SWITCHBOARD_DATA_DIR": str(tmp_path)})
    paths = KeyPaths.from_settings(settings)
    created = ensure_secrets(paths)
    assert set(created) == {paths.private_key, paths.public_key, paths.turn_secret}
    for path in created:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.private_key.parent.stat().st_mode) == 0o700
    before = {p: p.read_bytes() for p in created}
    assert ensure_secrets(paths) == []  # a second start reuses them
    assert {p: p.read_bytes() for p in created} == before
    # the pair matches: what the private key signs, the public key verifies
    token = TokenSigner(load_private_key(paths.private_key), issuer="i", ttl_s=60).sign(Grants(sub="u"))  # type: ignore[arg-type]
    assert TokenVerifier(load_public_key(paths.public_key), issuer="i").verify(token).sub == "u"
    assert len(load_turn_secret(paths.turn_secret)) >= 32


def test_missing_or_wrong_key_files_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"tokens\.public_key_file"):
        load_public_key(tmp_path / "absent.pem")
    (tmp_path / "short").write_text("abc")
    with pytest.raises(SettingsError, match=r"turn\.secret_file"):
        load_turn_secret(tmp_path / "short")
