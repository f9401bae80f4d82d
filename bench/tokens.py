"""Token signing and verification cost: every door of a node verifies one."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from switchboard.ids import RoomId, UserId
from switchboard.tokens import Grants, TokenSigner, TokenVerifier

DESCRIPTION = "EdDSA token sign/verify rate and verify latency on one core"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=2.0, help="time spent on each of sign and verify")


def _loop(seconds: float, fn) -> list[float]:  # type: ignore[no-untyped-def]
    samples: list[float] = []
    end = time.perf_counter() + seconds
    while (start := time.perf_counter()) < end:
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(args: argparse.Namespace) -> dict:  # type: ignore[type-arg]
    key = Ed25519PrivateKey.generate()
    signer = TokenSigner(key, issuer="switchboard", ttl_s=300)
    verifier = TokenVerifier(key.public_key(), issuer="switchboard")
    grants = Grants(sub=UserId("bench-user"), room=RoomId("bench-room"), subscribe=True)
    token = signer.sign(grants)
    signs = _loop(args.seconds, lambda: signer.sign(grants))
    verifies = _loop(args.seconds, lambda: verifier.verify(token))
    return {
        "seconds": args.seconds,
        "sign_per_s": round(len(signs) / sum(signs)),
        "verify_per_s": round(len(verifies) / sum(verifies)),
        "verify_p50_us": round(_pct(verifies, 0.50) * 1e6, 1),
        "verify_p99_us": round(_pct(verifies, 0.99) * 1e6, 1),
        "samples_us": [round(s * 1e6, 1) for s in verifies[:: max(1, len(verifies) // 2000)]],
    }


def plot(result: dict, path: Path) -> None:  # type: ignore[type-arg]
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(result["samples_us"], bins=60)
    ax.set_xlabel("verify latency (us)")
    ax.set_ylabel("tokens")
    ax.set_title(f"token verify: {result['verify_per_s']}/s, p99 {result['verify_p99_us']} us")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
