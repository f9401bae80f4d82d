"""Room and socket tokens through HTTP: grants per role, hidden only for moderators and audited,
and access tokens that a node refuses."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from control_api.models import Account, AuditEntry, Role
from control_api.rooms import grants_for
from control_api.services import SERVICES
from switchboard.errors import TokenError
from switchboard.tokens import TokenVerifier
from tests.control_api.conftest import Api


def test_grants_per_role() -> None:
    assert grants_for("u", "r", "broadcaster").publish is True
    viewer = grants_for("u", "r", "viewer")
    assert (viewer.publish, viewer.subscribe, viewer.hidden) == (False, True, False)
    hidden = grants_for("u", "r", "hidden")
    assert hidden.hidden and hidden.moderate and not hidden.publish
    with pytest.raises(ValueError):
        grants_for("u", "r", "owner")


async def test_room_tokens_verify_on_a_node(api: Api) -> None:
    user = await api.user()
    verifier = TokenVerifier(api.key.public_key(), issuer="switchboard")
    status, body = await api.call("POST", "/rooms/show-1/token", user, json={"role": "broadcaster"})
    assert status == 200
    grants = verifier.verify(body["token"])
    assert (grants.sub, grants.room, grants.publish, grants.hidden) == (user.id, "show-1", True, False)
    status, body = await api.call("POST", "/ws-token", user)
    grants = verifier.verify(body["token"])
    assert grants.sub == user.id and grants.room is None
    with pytest.raises(TokenError):
        verifier.verify(user.access)  # an API access token never opens a node
    assert (await api.call("POST", "/rooms/show-1/token", json={"role": "viewer"}))[0] == 401
    assert (await api.call("POST", "/rooms/bad room/token", user, json={}))[0] == 422


async def test_hidden_grant_only_for_moderators_and_audited(api: Api) -> None:
    user = await api.user()
    status, body = await api.call("POST", "/rooms/call-9/token", user, json={"role": "hidden"})
    assert status == 403
    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    async with services.sessions() as session, session.begin():
        account = await session.get(Account, uuid.UUID(user.id))
        assert account is not None
        account.role = Role.MODERATOR
    status, body = await api.call("POST", "/rooms/call-9/token", user, json={"role": "hidden"})
    assert status == 200 and body["grants"]["hidden"] is True
    grants = TokenVerifier(api.key.public_key(), issuer="switchboard").verify(body["token"])
    async with services.sessions() as session:
        entries = list(await session.scalars(select(AuditEntry).where(AuditEntry.action == "token.hidden")))
    assert len(entries) == 1 and entries[0].detail["jti"] == grants.jti and entries[0].subject == "call-9"


async def test_live_invite_notifies_and_respects_blocks(api: Api) -> None:
    host, guest, blocker = await api.user("host"), await api.user("guest"), await api.user("blocker")
    status, body = await api.call("POST", f"/users/{guest.id}/invite", host, json={"room": "show-7"})
    assert status == 201
    notes = (await api.call("GET", "/notifications?unread_only=true", guest))[1]
    invites = [n["data"]["room"] for n in notes["items"] if n["kind"] == "live_invite"]
    assert invites == ["show-7"]
    await api.call("POST", f"/users/{host.id}/block", blocker)
    assert (await api.call("POST", f"/users/{blocker.id}/invite", host, json={"room": "show-7"}))[0] == 404
    status, body = await api.call("POST", "/notifications/read", guest, json={})
    assert body["unread"] == 0


async def test_ws_token_carries_premium_from_the_account(api: Api) -> None:
    user = await api.user()
    verifier = TokenVerifier(api.key.public_key(), issuer="switchboard")
    status, body = await api.call("POST", "/ws-token", user)
    assert status == 200 and body["grants"]["premium"] is False
    assert verifier.verify(body["token"]).premium is False
    services = api.app._subapps[0][SERVICES]  # type: ignore[attr-defined]
    async with services.sessions() as session, session.begin():
        account = await session.get(Account, uuid.UUID(user.id))
        assert account is not None
        account.premium = True
    # The same access token (signed while the account was not premium): the flag is read afresh.
    status, body = await api.call("POST", "/ws-token", user)
    assert status == 200 and body["grants"]["premium"] is True
    grants = verifier.verify(body["token"])
    assert grants.premium is True and grants.sub == user.id
