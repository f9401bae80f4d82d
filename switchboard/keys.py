"""Secrets on disk: the Ed25519 token key pair and the TURN shared secret.

``switchboard up`` makes them on first start under ``<data_dir>/secrets`` (directory 0700, files
0600). Their contents are never logged; only their paths are.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from switchboard.errors import SettingsError
from switchboard.settings import Settings

PRIVATE_KEY = "token_ed25519.pem"
PUBLIC_KEY = "token_ed25519.pub.pem"
TURN_SECRET = "turn_secret"


@dataclass(frozen=True)
class KeyPaths:
    """Where each secret is read from (settings override the data-dir defaults)."""

    private_key: Path
    public_key: Path
    turn_secret: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyPaths:
        base = settings.secrets_dir
        return cls(
            private_key=Path(settings.tokens.private_key_file or base / PRIVATE_KEY),
            public_key=Path(settings.tokens.public_key_file or base / PUBLIC_KEY),
            turn_secret=Path(settings.turn.secret_file or base / TURN_SECRET),
        )


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def ensure_secrets(paths: KeyPaths) -> list[Path]:
    """Creates whichever secret is missing; returns the paths it created (never their contents)."""
    created: list[Path] = []
    if not paths.private_key.exists():
        key = Ed25519PrivateKey.generate()
        _write_private(
            paths.private_key,
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
        created.append(paths.private_key)
        if paths.public_key.exists():
            paths.public_key.unlink()
    if not paths.public_key.exists():
        _write_private(
            paths.public_key,
            load_private_key(paths.private_key)
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        )
        created.append(paths.public_key)
    if not paths.turn_secret.exists():
        _write_private(paths.turn_secret, secrets.token_urlsafe(32).encode())
        created.append(paths.turn_secret)
    return created


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(_read(path, "tokens.private_key_file"), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SettingsError("tokens.private_key_file", f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(_read(path, "tokens.public_key_file"))
    if not isinstance(key, Ed25519PublicKey):
        raise SettingsError("tokens.public_key_file", f"{path} is not an Ed25519 public key")
    return key


def load_turn_secret(path: Path) -> str:
    secret = _read(path, "turn.secret_file").decode().strip()
    if len(secret) < 16:
        raise SettingsError("turn.secret_file", f"{path} holds a secret shorter than 16 characters")
    return secret


def _read(path: Path, key: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SettingsError(key, f"cannot read {path}: {exc.strerror} (run `switchboard up` once, or set it)") from None
