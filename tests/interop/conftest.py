"""The interop tests drive the real node app, with the signaling tests' fixtures (node, tokens)."""

from tests.signaling.conftest import make_node, signer, token, token_key  # noqa: F401 (fixtures)
