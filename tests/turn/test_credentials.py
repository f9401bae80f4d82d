from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from switchboard.settings import TurnSettings
from turn.credentials import mint_credential, turn_password
from turn.ice import ice_servers


def test_known_vector() -> None:
    # Computed independently: printf '1700000000:alice' | openssl dgst -sha1 -hmac s3cret -binary | base64
    assert turn_password("s3cret", "1700000000:alice") == "TtElzSjT0GdnTQ9xdcRNxx96yQs="


@pytest.mark.parametrize(("secret", "user", "ttl"), [("a" * 32, "u1", 3600), ("ü-secret-ünicode", "42", 60)])
def test_credential_matches_an_independent_hmac(secret: str, user: str, ttl: int) -> None:
    cred = mint_credential(secret, user, ttl, now=1_800_000_000)
    assert cred.username == f"{1_800_000_000 + ttl}:{user}"
    expected = base64.b64encode(hmac.new(secret.encode(), cred.username.encode(), hashlib.sha1).digest()).decode()
    assert cred.password == expected
    assert cred.expires_at == 1_800_000_000 + ttl and cred.ttl_s == ttl


@pytest.mark.parametrize("user", ["", "a:b"])
def test_bad_user_ids_are_refused(user: str) -> None:
    with pytest.raises(ValueError):
        mint_credential("secret-secret-secret", user, 60)


def test_ice_servers_list() -> None:
    cred = mint_credential("secret-secret-secret", "u1", 60, now=0)
    assert ice_servers(TurnSettings(), cred) == []  # no host configured: nothing to offer
    servers = [s.to_json() for s in ice_servers(TurnSettings(host="turn.example.com"), cred)]
    assert servers == [
        {"urls": ["stun:turn.example.com:3478"]},
        {"urls": ["turn:turn.example.com:3478?transport=udp", "turn:turn.example.com:3478?transport=tcp"],
         "username": "60:u1", "credential": cred.password},
    ]
    tls = TurnSettings(host="2001:db8::1", tls_cert_file="/c.pem", tls_key_file="/k.pem")
    urls = ice_servers(tls, cred)[1].urls
    assert urls[-1] == "turns:[2001:db8::1]:5349?transport=tcp"
