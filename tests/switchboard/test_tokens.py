from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from switchboard.errors import TokenError
from switchboard.ids import RoomId, UserId
from switchboard.tokens import Grants, TokenSigner, TokenVerifier, encode_jwt


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def signer(key: Ed25519PrivateKey) -> TokenSigner:
    return TokenSigner(key, issuer="switchboard", ttl_s=60)


@pytest.fixture
def verifier(key: Ed25519PrivateKey) -> TokenVerifier:
    return TokenVerifier(key.public_key(), issuer="switchboard", leeway_s=0)


def _b64(data: dict) -> str:  # type: ignore[type-arg]
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_round_trip_keeps_every_grant(signer: TokenSigner, verifier: TokenVerifier) -> None:
    grants = Grants(sub=UserId("u1"), room=RoomId("show1"), publish=True, subscribe=True, hidden=True, moderate=True,
                    verified=True)
    got = verifier.verify(signer.sign(grants))
    assert (got.sub, got.room, got.publish, got.subscribe, got.hidden, got.moderate, got.verified) == (
        "u1", "show1", True, True, True, True, True,
    )
    assert got.exp > time.time() and got.jti
    assert time.time() - 5 <= got.iat <= time.time()


def test_defaults_grant_nothing(signer: TokenSigner, verifier: TokenVerifier) -> None:
    got = verifier.verify(signer.sign(Grants(sub=UserId("u2"))))
    assert got.room is None
    assert not (got.publish or got.subscribe or got.hidden or got.moderate or got.verified)


def test_expired_token_is_refused(signer: TokenSigner, verifier: TokenVerifier) -> None:
    token = signer.sign(Grants(sub=UserId("u1")), now=time.time() - 120)
    with pytest.raises(TokenError, match="expired"):
        verifier.verify(token)


def test_token_from_another_key_is_refused(signer: TokenSigner) -> None:
    other = TokenVerifier(Ed25519PrivateKey.generate().public_key(), issuer="switchboard")
    with pytest.raises(TokenError, match="invalid"):
        other.verify(signer.sign(Grants(sub=UserId("u1"))))


def test_tampered_payload_is_refused(signer: TokenSigner, verifier: TokenVerifier) -> None:
    header, payload, sig = signer.sign(Grants(sub=UserId("u1"))).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["publish"] = True
    with pytest.raises(TokenError):
        verifier.verify(f"{header}.{_b64(claims)}.{sig}")


def test_alg_none_is_refused(verifier: TokenVerifier) -> None:
    claims = {"sub": "u1", "iss": "switchboard", "iat": int(time.time()), "exp": int(time.time()) + 60,
              "jti": "x", "moderate": True, "hidden": True}
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    with pytest.raises(TokenError):
        verifier.verify(token)


def test_hmac_signed_with_the_public_key_is_refused(key: Ed25519PrivateKey, verifier: TokenVerifier) -> None:
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = {"sub": "u1", "iss": "switchboard", "iat": int(time.time()), "exp": int(time.time()) + 60, "jti": "x"}
    forged = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims)}"
    import hashlib
    import hmac

    sig = base64.urlsafe_b64encode(hmac.new(public_pem, forged.encode(), hashlib.sha256).digest()).rstrip(b"=")
    with pytest.raises(TokenError):
        verifier.verify(f"{forged}.{sig.decode()}")


def test_wrong_issuer_and_missing_claims_are_refused(key: Ed25519PrivateKey, verifier: TokenVerifier) -> None:
    now = int(time.time())
    wrong_iss = jwt.encode({"sub": "u", "iss": "evil", "iat": now, "exp": now + 60, "jti": "x"}, key, algorithm="EdDSA")
    with pytest.raises(TokenError):
        verifier.verify(wrong_iss)
    no_exp = jwt.encode({"sub": "u", "iss": "switchboard", "iat": now, "jti": "x"}, key, algorithm="EdDSA")
    with pytest.raises(TokenError):
        verifier.verify(no_exp)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "....", "\x00"])
def test_garbage_is_refused(verifier: TokenVerifier, garbage: str) -> None:
    with pytest.raises(TokenError):
        verifier.verify(garbage)


def test_hidden_grant_requires_moderate() -> None:
    with pytest.raises(ValueError, match="moderators only"):
        Grants(sub=UserId("u1"), hidden=True)


def test_tokens_are_the_bytes_pyjwt_would_sign(key: Ed25519PrivateKey) -> None:
    """encode_jwt (the signer's own encoding, without PyJWT's per-call work) makes exactly PyJWT's
    token for the same claims (Ed25519 signatures are deterministic), so any JWT library reads it."""
    claims = {"iss": "switchboard", "sub": "u1", "iat": 1, "exp": 61, "jti": "j1", "publish": True,
              "room": "show-\u00e9\u2603", "premium": False}
    assert encode_jwt(claims, key) == jwt.encode(claims, key, algorithm="EdDSA")
    grants = Grants(sub=UserId("u1"), room=RoomId("r1"), subscribe=True, jti="j2")
    signed = TokenSigner(key, issuer="switchboard", ttl_s=60).sign(grants, now=100)
    header = json.loads(base64.urlsafe_b64decode(signed.split(".")[0] + "=="))
    assert header == {"alg": "EdDSA", "typ": "JWT"}
    assert jwt.decode(signed, key.public_key(), algorithms=["EdDSA"], options={"verify_exp": False})["jti"] == "j2"
