"""The config we render, and a real coturn judging our credentials."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from aioice import stun, turn

from switchboard.settings import TurnSettings
from tests.turn.coturn import Coturn, start_coturn
from turn.coturn import DENIED_PEER_RANGES, CoturnSecrets, render_config
from turn.credentials import TurnCredential, mint_credential

pytestmark = pytest.mark.coturn

SECRET = "current-secret-0123456789abcdef"
OLD_SECRET = "previous-secret-0123456789abcdef"


def _denied(conf: str) -> list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]]:
    ranges = []
    for line in conf.splitlines():
        if line.startswith("denied-peer-ip="):
            low, high = line.split("=", 1)[1].split("-")
            ranges.append((ipaddress.ip_address(low), ipaddress.ip_address(high)))
    return ranges


def _is_denied(conf: str, address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(type(low) is type(ip) and low <= ip <= high for low, high in _denied(conf))


def test_production_config_denies_private_and_loopback_peers() -> None:
    conf = render_config(TurnSettings(host="turn.example.com"), CoturnSecrets(SECRET))
    for address in ("127.0.0.1", "10.1.2.3", "172.20.0.5", "192.168.1.1", "169.254.169.254", "100.64.0.1",
                    "::1", "fd00::1", "fe80::1", "0.0.0.0"):
        assert _is_denied(conf, address), address
    for address in ("8.8.8.8", "1.1.1.1", "2606:4700::1111"):
        assert not _is_denied(conf, address), address
    lines = set(conf.splitlines())
    for required in ("use-auth-secret", f"static-auth-secret={SECRET}", "fingerprint", "no-cli",
                     "realm=switchboard", "user-quota=12", "total-quota=1200"):
        assert required in lines
    assert "allow-loopback-peers" not in lines


def test_rotation_lists_both_secrets_and_tls_when_configured() -> None:
    settings = TurnSettings(tls_cert_file="/etc/t/cert.pem", tls_key_file="/etc/t/key.pem")
    conf = render_config(settings, CoturnSecrets(SECRET, OLD_SECRET)).splitlines()
    assert conf.count(f"static-auth-secret={SECRET}") == 1 and conf.count(f"static-auth-secret={OLD_SECRET}") == 1
    assert "cert=/etc/t/cert.pem" in conf and "no-tls" not in conf
    assert len(DENIED_PEER_RANGES) == len(_denied("\n".join(conf)))


def test_test_config_allows_loopback() -> None:
    conf = render_config(TurnSettings(), CoturnSecrets(SECRET), allow_loopback=True)
    assert "allow-loopback-peers" in conf.splitlines() and not _is_denied(conf, "127.0.0.1")


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coturn]:
    server = start_coturn(tmp_path_factory.mktemp("coturn"), CoturnSecrets(SECRET, OLD_SECRET))
    yield server
    server.stop()


async def _allocate(server: Coturn, cred: TurnCredential) -> tuple[str, int]:
    """A real TURN allocation; returns the relayed address coturn gave us."""
    transport, _ = await asyncio.wait_for(
        turn.create_turn_endpoint(asyncio.DatagramProtocol, ("127.0.0.1", server.port), cred.username,
                                  cred.password, lifetime=60),
        10,
    )
    try:
        return transport.get_extra_info("sockname")
    finally:
        transport.close()


async def test_coturn_accepts_a_fresh_credential(coturn: Coturn) -> None:
    relayed = await _allocate(coturn, mint_credential(SECRET, "alice", 60))
    assert relayed[0] == "127.0.0.1" and coturn.settings.min_port <= relayed[1] <= coturn.settings.max_port


async def test_coturn_accepts_the_previous_secret_during_rotation(coturn: Coturn) -> None:
    await _allocate(coturn, mint_credential(OLD_SECRET, "bob", 60))


@pytest.mark.parametrize(
    "credential",
    [
        pytest.param(lambda: mint_credential(SECRET, "alice", 60, now=0), id="expired"),
        pytest.param(lambda: mint_credential("some-other-secret-entirely", "alice", 60), id="wrong-secret"),
        pytest.param(lambda: _tampered(mint_credential(SECRET, "alice", 60)), id="tampered-username"),
    ],
)
async def test_coturn_refuses_bad_credentials(coturn: Coturn, credential) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(stun.TransactionFailed) as err:
        await _allocate(coturn, credential())
    assert err.value.response.attributes["ERROR-CODE"][0] == 401


def _tampered(cred: TurnCredential) -> TurnCredential:
    expiry, user = cred.username.split(":")
    return TurnCredential(f"{int(expiry) + 86400}:{user}", cred.password, cred.ttl_s, cred.expires_at + 86400)


def test_coturn_log_has_no_secret(coturn: Coturn, tmp_path: Path) -> None:
    if coturn.log.exists():
        text = coturn.log.read_text(errors="replace")
        assert SECRET not in text and OLD_SECRET not in text


def test_turn_config_command_writes_a_private_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from switchboard.cli import main
    from switchboard.keys import KeyPaths, ensure_secrets
    from switchboard.settings import load_settings

    monkeypatch.setenv("SWITCHBOARD_DATA_DIR", str(tmp_path))
    old = tmp_path / "old_secret"
    old.write_text(OLD_SECRET)
    monkeypatch.setenv("SWITCHBOARD_TURN_PREVIOUS_SECRET_FILE", str(old))
    ensure_secrets(KeyPaths.from_settings(load_settings()))
    out = tmp_path / "turnserver.conf"
    assert main(["turn", "config", "--out", str(out)]) == 0
    assert out.stat().st_mode & 0o777 == 0o600
    conf = out.read_text().splitlines()
    current = (tmp_path / "secrets" / "turn_secret").read_text().strip()
    assert f"static-auth-secret={current}" in conf and f"static-auth-secret={OLD_SECRET}" in conf
    assert "denied-peer-ip=127.0.0.0-127.255.255.255" in conf
    assert current not in capsys.readouterr().out  # the command names the file, never the secret
