"""Redis: every key and channel name, in one place (:mod:`switchboard.redis_client` opens Redis).

Keys are functions or constants here and nowhere else; Lua scripts live next to this file.

Redis Cluster: keys that one script or transaction touches together share a hash tag (the part of
the name in ``{}``), so they live in one slot. The tags: ``{mm}`` for the whole matchmaker (its queue,
feed, tickets, pairs, sessions, rematch sets, the block sets it reads and the events stream it
writes: a claim pairs any two users, so it must see them all in one slot); ``{<user id>}`` for a
user's presence, ban and token epoch (checked together when a socket arrives) and premium mark (read
with the ban and epoch on every API request); ``{calls}`` for the
1:1 call hashes and the users' current-call keys; ``{clips}`` for saved clips and their lists.
Reads of many users' keys at once go through :func:`switchboard.redis_client.mget`, which splits them
by slot on a cluster.
"""

from __future__ import annotations

EVENTS_STREAM = "events:{mm}"
"""Stream of durable facts from nodes and matchmakers to the control API (likes, follows, taps). In
the matchmaker's slot: ``claim.lua`` adds ``match.paired`` in the same script that pairs."""


def user_channel(user_id: str) -> str:
    """Pub/sub channel that reaches whichever node holds this user's socket."""
    return f"user:{user_id}"


# --- matchmaker (issue 5). Scripts that touch these keys: matchmaker/lua/*.lua -----------------

MATCH_QUEUE = "{mm}:queue"
"""Sorted set: user id -> enqueued time (microseconds since the epoch). Oldest first. Written with
the ticket by ``queue.join``; a member whose ticket key is gone is stale and is removed by the
matchmaker."""

MATCH_FEED = "{mm}:feed"
"""Stream (capped, ~100k entries): every change to :data:`MATCH_QUEUE`, so matchmakers mirror the
queue without re-reading it. Entries: ``op=join user=<id> at=<enqueued us>`` (the ticket key is
written before) and ``op=gone users=<ids, space-separated>`` (paired, left, swept). Whoever writes
the queue writes the feed in the same step (the scripts in matchmaker/lua, the bench)."""

MATCH_SCORERS = "{mm}:scorers"
"""Sorted set: matchmaker process id -> last heartbeat (ms). A process's rank in it picks its shard."""


def match_ticket(user_id: str) -> str:
    """String (JSON, expires with the ticket TTL): the user's queued ticket, in the format of
    docs/matchmaker.md: ``{"user_id", "country", "age", "lat", "lon", "tags", "premium", "filters":
    {"countries", "age_min", "age_max", "max_km", "tags"}, "profile"}``."""
    return f"{{mm}}:ticket:{user_id}"


def match_pair(user_id: str) -> str:
    """String: the ``session_id`` of the user's live pair; absent when not paired."""
    return f"{{mm}}:pair:{user_id}"


def match_last(user_id: str) -> str:
    """String: the ``session_id`` of the user's last pair (``queue.next`` requeues from it)."""
    return f"{{mm}}:last:{user_id}"


def match_session(session_id: str) -> str:
    """Hash: one pair: ``a``, ``b`` (user ids), ``at_us`` (time), ``ta``, ``tb`` (their tickets)."""
    return f"{{mm}}:session:{session_id}"


def match_recent(user_id: str) -> str:
    """Sorted set: peer user id -> time paired (us); no rematch while within the window."""
    return f"{{mm}}:recent:{user_id}"


def blocks(user_id: str) -> str:
    """Set of user ids this user blocked. Written by the control API; the matchmaker never pairs
    two users when either blocks the other, and nodes read the pair's two sets at their doors
    (invite, accept, presence: signaling/relations.py)."""
    return f"blocks:{{mm}}:{user_id}"


# --- control API (issue 6) ------------------------------------------------------------------------

EVENTS_GROUP_API = "control_api"
"""Consumer group of the control API on :data:`EVENTS_STREAM`. An entry has the fields ``type``
(``like``, ``follow_request``, ``tap``...) and ``data`` (a JSON object); see docs/api.md."""


def rate_window(scope: str, ident: str, window: int) -> str:
    """String counter (expires after two windows): requests of ``ident`` (a user id or an IP) in
    fixed window number ``window`` of ``scope`` (``user`` or ``ip``); two windows make a sliding one."""
    return f"rl:{scope}:{ident}:{window}"


def premium_tier(user_id: str) -> str:
    """String ``1`` or ``0`` (no expiry): the user's premium as of the last change, written by the
    control API's payments on every change, so the rate-limit tier follows it at once (an access
    token's ``premium`` claim may be older). Absent: never changed; the token's claim holds. In the
    user's slot (``{<user id>}``): the API reads it with :func:`token_epoch` and :func:`banned`."""
    return f"premium:{{{user_id}}}"


def idempotency(scope: str, key: str) -> str:
    """String (JSON, expires after 24 h): the saved answer to a creating POST sent with
    ``Idempotency-Key: key`` by ``scope`` (a user id); ``{"state": "pending"}`` while it runs."""
    return f"idem:{scope}:{key}"


# --- signaling (issue 4). Script that touches these keys: signaling/lua/call_transition.lua -------


def presence(user_id: str) -> str:
    """String (expires after ``node.presence_ttl_s``): the node id holding the user's socket; absent:
    offline. A socket with a hidden grant (a moderator's console or tap) writes none."""
    return f"presence:{{{user_id}}}"


def call(call_id: str) -> str:
    """Hash of one 1:1 call: ``caller``, ``callee`` (user ids), ``state`` (ringing, active, ended)."""
    return f"call:{{calls}}:{call_id}"


def user_call(user_id: str) -> str:
    """String: the id of the call the user is in (ringing or active); set NX, so a second call is ``busy``."""
    return f"call:{{calls}}:user:{user_id}"


SANCTIONS_CHANNEL = "sanctions"
"""Pub/sub channel every node subscribes. Messages (JSON), all written by the control API:

- ``{"user": <id>, "kind": "ban"}``: the user is banned; each node ends the user's sessions at once
  (close 4003).
- ``{"user": <id>, "kind": "revoke"}``: the user's tokens issued before :func:`token_epoch` are dead
  (deletion, logout everywhere, password reset); each node ends the user's sessions (close 4001).
- ``{"user": <blocker>, "kind": "block", "other": <blocked>}``: a block was made; each node ends any
  call or match between the two at once and stops relaying between them.
- ``{"user": <id>, "kind": "premium", "premium": true|false}``: the user's premium changed (a Stripe
  subscription became active, or lapsed, was canceled or refunded); each node sets ``premium`` in the
  grants of the user's live sessions, so their next ``queue.join`` uses it without a new token.
- ``{"user": <id>, "kind": "mute", "until": <unix seconds> | null}``: the user may not chat (show chat,
  call chat) until then (null: until lifted); each node marks the user's sessions at once and tells
  them (``moderation.muted``). :func:`muted` holds the same fact for sockets that connect later.
- ``{"user": <id>, "kind": "unmute"}``: the mute was lifted (or a shorter one ended early).
- ``{"user": <id>, "kind": "warning", "message": <text>}``: a moderator's warning; each node sends it
  to the user's open sockets (``moderation.warning``).

Apart from the per-user channels, which carry messages relayed for other users, so no participant can forge one."""


def banned(user_id: str) -> str:
    """String (expires when the ban does; none for a ban until revoked): the user is banned. Written
    by the control API; a node refuses the user's sockets while it exists."""
    return f"ban:{{{user_id}}}"


def muted(user_id: str) -> str:
    """String (unix seconds the mute ends, or ``0`` for until lifted; expires when the mute does): the
    user may not chat. Written by the control API (control_api/sanctions.py); nodes read it when the
    user connects and otherwise follow the ``mute``/``unmute`` sanctions notices."""
    return f"mute:{user_id}"


def token_epoch(user_id: str) -> str:
    """String (unix seconds; no expiry): tokens of this user issued (``iat``) before this second are
    revoked, on every door of the API and the node. Written by the control API on ban, deletion,
    logout everywhere and password reset."""
    return f"auth:epoch:{{{user_id}}}"


# --- node doors (issue 12: blocks, presence along accepted follows, revocation) ---------------------------


def friends(user_id: str) -> str:
    """Set of user ids joined to this user by an accepted follow, either way (this user follows them
    and they accepted, or they follow this user and this user accepted): the people ``/space`` lists,
    whose presence this user may see and who may see this user's. Pending or declined requests are
    not in it; a block deletes the follows, so it leaves it. Written by the control API
    (control_api/friends.py) on follow, accept, decline, unfollow, follower removal and block; rebuilt
    from Postgres by ``control_api.friends.rebuild``. Symmetric: ``b`` in ``friends(a)`` iff ``a`` in
    ``friends(b)``. Nodes only read it (``presence.query``, ``presence.watch``)."""
    return f"friends:{user_id}"


def node_channel(node_id: str) -> str:
    """Pub/sub channel of one node process (subscribed from start-up): commands to it, as JSON.
    ``{"kind": "drain"}`` (``switchboard node drain``): the node drains (signaling/drain.py). Between
    nodes (the cascade, docs/scaling.md): ``pipe.open``/``pipe.ready``/``pipe.refused``/``pipe.close``/
    ``pipe.gone`` (signaling/cascade.py), ``show.span`` (signaling/show_span.py), ``call.spread``
    (signaling/call_span.py)."""
    return f"node:{node_id}"


# --- many nodes (issue 16): the node registry and room placement (switchboard/registry.py, placement.py) ---

NODES = "nodes:{nodes}"
"""Sorted set: node id -> the time (unix ms) its entry expires; readers prune ids past it."""


def node_entry(node_id: str) -> str:
    """String (JSON of ``switchboard.registry.NodeEntry``, expires after ``node.registry_ttl_s``): one
    live node; its heartbeat rewrites it every ``node.heartbeat_s``."""
    return f"nodes:{{nodes}}:{node_id}"


def room_node(room: str) -> str:
    """String (expires after ``ROOM_PIN_TTL_S`` unless refreshed): the id of the node a show's room is
    pinned to while it is live (its origin). Set NX by placement; refreshed by the origin's heartbeat."""
    return f"nodes:{{nodes}}:room:{room}"


ROOM_PIN_TTL_S = 30
"""A room pin outlives its node's last heartbeat by this much, so a dead origin's rooms move on."""


def node_reports(node_id: str, updated_ms: int) -> str:
    """Set of the user ids who reported ``node_id`` lost (a token request's ``avoid``) while its registry
    entry was the one written at ``updated_ms`` (expires after ``NODE_REPORTS_TTL_S``). Placement skips
    the node for every client once ``placement.REPORTERS`` distinct users are in it (switchboard/placement.py)."""
    return f"nodes:{{nodes}}:reports:{node_id}:{updated_ms}"


NODE_REPORTS_TTL_S = 30
"""A report set outlives the heartbeat it counts against (a newer heartbeat makes it moot anyway)."""


def node_suspect(node_id: str) -> str:
    """The ``updated_ms`` of the registry entry of ``node_id`` that ``placement.REPORTERS`` users reported
    lost (set by switchboard/lua/node_report.lua, read with the entries): while the entry listed is that
    one, every API process skips the node; a newer heartbeat makes the marker moot."""
    return f"nodes:{{nodes}}:suspect:{node_id}"


NODE_SUSPECT_TTL_S = 300
"""A suspect marker outlives any registry entry it can match (``node.registry_ttl_s``)."""


def node_placed(node_id: str, user_id: str) -> str:
    """Set while the API recently gave ``user_id`` a token naming ``node_id`` (its node or an alternate):
    only such a user's report that the node is lost counts (switchboard/lua/node_report.lua)."""
    return f"nodes:{{nodes}}:placed:{node_id}:{user_id}"


NODE_PLACED_TTL_S = 600
"""How long a placement marker lives when the token's own lifetime is not known; a token answer's
marker lives as long as its token plus a minute (a client refreshes its token through the API)."""


# --- cascade (issue 16): one show over several nodes (signaling/cascade.py, signaling/show_span.py) ---


def show_origin(room: str) -> str:
    """String (JSON, expires after ``SHOW_ORIGIN_TTL_S`` unless refreshed): where a live show's media is,
    ``{"node", "owner", "show_id", "started_ms", "paid"}``. Written by the origin node when the show
    starts and refreshed while it lives; an edge node reads it to pull the show. Deleted at the end."""
    return f"show:origin:{room}"


SHOW_ORIGIN_TTL_S = 30
"""A show's origin record outlives its node's last refresh by this much (a killed origin's expires)."""


def show_members(room: str, node: str) -> str:
    """Hash ``<session id>`` -> user id: the visible members of a show on one of its nodes (never a
    hidden tap). Each node writes its own and refreshes the key's TTL (``SHOW_MEMBERS_TTL_S``) every
    second: a killed node's members leave every roster when it expires. Every node's roster and count
    are read from the hashes of the nodes in :func:`show_nodes`."""
    return f"show:members:{room}:{node}"


SHOW_MEMBERS_TTL_S = 3
"""A node's member hash of a show outlives its node's last refresh by this much."""


def show_viewers(room: str) -> str:
    """Set of the user ids ever seen as visible members of a show (its broadcaster and viewers, never
    a hidden tap), on any of its nodes; each node adds a member when it joins and renews the TTL
    (:data:`SHOW_VIEWERS_TTL_S`). The control API reads it to accept a report on the show only from
    (and about) someone who was in it (control_api/live_parties.py)."""
    return f"show:viewers:{room}"


SHOW_VIEWERS_TTL_S = 86400
"""How long after its last join a show's viewers can still report it (as long as a random-chat
session's record, ``matchmaker.session_ttl_s``'s default)."""


def show_chat_seq(room: str) -> str:
    """Counter (INCR): the id of a show's next chat line, one sequence for all the show's nodes, so a
    delete or pin names the same line everywhere. Refreshed and removed with :func:`show_nodes`."""
    return f"show:chatseq:{room}"


def show_moderation(room: str) -> str:
    """String (JSON ``{"pinned", "muted", "kicked"}``): a show's pin, mutes and kicks, written by the
    node that took the act; an edge joining the show later starts from it."""
    return f"show:moderation:{room}"


SHOW_SHARED_TTL_S = 30
"""A show's node set, line counter and moderation state outlive the last refresh by any of its nodes
by this much (a show whose every node died leaves nothing behind)."""


def match_nodes(session_id: str) -> str:
    """Hash (expires with :data:`MATCH_NODES_TTL_S`): user id -> the node holding that party of a random-chat
    match (``session_id``), written by each party's node when the match is found or rejoined (and
    ``:media``: the match's media); a node whose party's peer sits on a node that left the registry, and
    does not come back within ``node.call_rejoin_s``, ends the match (``node_lost``: signaling/call_lease.py)."""
    return f"matchnodes:{session_id}"


MATCH_NODES_TTL_S = 6 * 3600
"""A match's node record outlives the match by at most this much."""


def call_nodes(room: str) -> str:
    """Set of the node ids holding a party of a call or match through the SFU (``room``: the call id or
    the match's session id); each pulls the other's party. Expires after ``CALL_SPREAD_TTL_S``."""
    return f"callmedia:nodes:{room}"


def call_spread(room: str) -> str:
    """String (JSON ``{"kind", "users", "started_at"}``): a call through the SFU whose parties are on two
    nodes, for a moderator's tap from any node. Written with :func:`call_nodes`, deleted with it."""
    return f"callmedia:{room}"


CALL_SPREAD_TTL_S = 86400
"""A call's cross-node records outlive a killed node's calls by at most this much."""


def show_nodes(room: str) -> str:
    """Set of the node ids holding a show (its origin and its edges): a show's roster changes and chat
    lines are published to each of their node channels."""
    return f"show:nodes:{room}"


# --- control API: sign-in abuse limits (issue 12, items 6-8). Written by control_api/auth_limits.py -----
# ``digest`` below is the SHA-256 (hex) of the lower-cased email: limits follow the address whether or
# not an account has it (so they reveal nothing), and no address is written to Redis in clear.


def code_failures(purpose: str, digest: str) -> str:
    """String counter (expires ``api.code_lockout_s`` after the last counted try): tries at emailed
    codes (``purpose`` ``verify`` or ``reset``) for one address, over every code minted for it, each
    counted before the code is compared and all cleared by a right one. Past ``api.code_failures``
    the address is locked (every code refused) until the key expires."""
    return f"auth:codefail:{purpose}:{digest}"


def auth_mails(digest: str) -> str:
    """String counter (expires an hour after the first mail of the hour): sign-in mails (codes,
    notices) sent to one address; at ``api.mails_per_hour`` further mails are dropped silently."""
    return f"auth:mails:{digest}"


# --- evidence clips (issue 14) ----------------------------------------------------------------------

CLIPS_PENDING = "clips:{clips}:pending"
"""List of clip ids a node saved and the control API has not stored yet (LPUSH by the node; the API
moves each to :data:`CLIPS_INGESTING` while it stores it, so one that dies mid-way is retried)."""
CLIPS_INGESTING = "clips:{clips}:ingesting"
CLIP_TTL_S = 3600
"""A clip waits in Redis at most this long for the control API."""


def clip(clip_id: str) -> str:
    """Hash of one saved clip on its way to the control API: ``data`` (the file), ``content_type``,
    ``room``, ``moderator`` (user id), ``duration_ms``, ``tracks``, ``created_ms``."""
    return f"clip:{{clips}}:{clip_id}"


CLIPS_CHANNEL = "clips:requests"
"""Pub/sub channel every node subscribes: the control API asks for a clip of a room
(``{"clip_id", "room", "moderator", "report_id"?}``); each node answers on :func:`clip_answers`."""


def clip_auto(room: str) -> str:
    """String (TTL ``control_api.clips.AUTO_CLIP_S``): the clip id a report on this room asked for;
    while it lives, further reports on the room share that clip instead of asking again."""
    return f"clips:auto:{room}"


def clip_answers(clip_id: str) -> str:
    """List where each node that got a clip request pushes ``saved`` (it had the room and handed the
    clip over under that id), ``absent`` (no media of that room in its SFU) or ``taken`` (it had the
    room, but another node handed its clip over first: :func:`clip_owner`). TTL 60 s."""
    return f"clip:{{clips}}:{clip_id}:answers"


def clip_owner(clip_id: str) -> str:
    """String (TTL 60 s, as :func:`clip_answers`): the node that hands over the clip of this request.
    A call whose parties are on two nodes is in both nodes' SFUs, each with every track (the far
    party's through its pipe): both can answer one request, and the first to set this (NX) hands its
    file over. A claim, not a clip: it outlives the hand-off (``clip:*`` keys) until it expires, so
    a slower node never hands a second file over under the same id."""
    return f"clips:{{clips}}:owner:{clip_id}"
