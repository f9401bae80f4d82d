// The node's /ws socket: requests with ids, server messages by type, reconnect with resume.
//
// The resume token is kept in sessionStorage under `resumeKey`, so a reloaded page resumes too
// (within the node's resume window, 15 s). A new token is asked of `getToken` at every connect:
// room tokens are short-lived, and a socket lives no longer than its token, so a fresh one is also
// sent with `token.refresh` ahead of `token_expires_at` (a failed refresh still ends in a resume).
//
// Many nodes (docs/scaling.md): `getToken` may resolve with the API's whole token answer
// ({token, node}) instead of the token alone; the socket then opens at `node` (the node the API
// placed this client on; null or absent: this page's own host). A `reconnect` message from a
// draining node names another node: the socket moves there at once, make-before-break. The new
// socket opens while the old one stays open (the draining node keeps serving it, and its media);
// requests and events go on through the old one until the new session's `hello`, then to the new
// one (`connected` with `moved: true` and `overlap`). A page created with `makeBeforeBreak: true`
// keeps the old socket (`overlap: true`) until it calls `moveDone()` (its media plays from the new
// node), at most MOVE_HOLD_MS; any other page's old socket closes at the new `hello`. The old socket's close is the
// `left` state. A named node that does not take the socket (refused, or no `hello` within
// HELD_CONNECT_MS) ends the move: the old socket closes and the usual reconnect asks `getToken`.
//
// A lost node (killed, its socket just drops) is a plain reconnect: every attempt asks `getToken`
// again; once a connect to the lost node fails, `getToken` is called with `{ avoid: <its id> }`
// (pages pass it in the token request's body) and the API names another node, though the registry
// may list the dead one for up to 3 s more. The waits between attempts are drawn between half and
// all of the backoff step, so the clients of one dead node do not all come back in the same
// instant. On another node the session is new (`connected` with `resumed: false, moved: true`):
// the page joins its show or call again.
//
// A viewer's token answer also names `alternates` (base URLs, best first). The last answer is kept,
// and after a lost socket, while its token has 20 s or more to live, the first attempts use it
// without calling `getToken`: the same node (resume), then each alternate; only when none takes it
// is `getToken` asked (with `avoid`). A dead node's viewers then come back without a token request.

const REQUEST_TIMEOUT_MS = 15000;
const BACKOFF_MS = [250, 500, 1000, 1000, 1000, 2000, 3000];
const HELD_MARGIN_MS = 20000; // a kept token reconnects without getToken only with this long to live
// A connect with the kept token that has no `hello` by then is given up (the next target is tried): a
// dead box that sends no reset, or a hung node, would otherwise hold the page for the browser's TCP
// timeout. It covers a busy node's gate (up to 2 s) and the hello; the SDK's bounds add up the same.
const HELD_CONNECT_MS = 7000;
// The node that just dropped the socket, once it upgraded the socket, gets this long to say `hello`
// before the alternates are tried: a hung node held the page the whole 7 s. Until the upgrade the 7 s
// hold (a busy node's gate, a slow link), and a node our own timer gave up on is never named lost.
const LOST_NODE_MS = 2500;
// A session that lasted this long starts the backoff over; shorter ones (a node that drops each socket
// right after its hello) keep it growing, so the page does not open a socket every 250 ms.
const STABLE_MS = 5000;
// A drain's move, for a `makeBeforeBreak` page: the old socket (and the media the draining node serves
// it) is kept this long after the new session's `hello` unless the page calls `moveDone()` first. It
// covers a loaded page's join, ICE and first decoded frame on the new node, well within the draining
// node's `node.drain_grace_s` (30 s): the node exits once every socket left.
const MOVE_HOLD_MS = 10000;

/** A wait between half and all of `ms` ("equal jitter"). */
export function jittered(ms) {
  return ms / 2 + Math.random() * (ms / 2);
}

export class SignalError extends Error {
  constructor(frame) {
    super(frame.message || frame.code);
    this.code = frame.code;
  }
}

export class Signal extends EventTarget {
  constructor({ getToken, resumeKey, makeBeforeBreak = false }) {
    super();
    this.getToken = getToken;
    this.resumeKey = resumeKey;
    this.makeBeforeBreak = makeBeforeBreak; // a drain's move keeps the old socket until moveDone()
    this.handlers = new Map();
    this.pending = new Map();
    this.nextId = 1;
    this.ws = null;
    this.closedByUs = false;
    this.closes = 0; // close() calls: a reconnect waiting out its delay gives up when the page closed meanwhile
    this.attempt = 0;
    this.hello = null;
    this.refreshTimer = null;
    this.tokenExpiresAt = 0; // seconds since the epoch, from hello and token.refresh replies
    this.moveTo = null; // a node's base URL from a `reconnect` message: the next connect goes there
    this.moving = null; // a drain's move until the new hello: {from: the old socket (null once closed), to: the new}
    this.leaving = null; // after it: {ws: the old socket, node: its node's id, timer}, until that socket closed
    this.node = null; // the base URL of the node this socket is on (null: this page's host)
    this.lost = null; // {url, id} of the node whose socket dropped, until the next hello
    this.avoid = null; // that node's id once a connect to it failed: getToken({avoid}) asks the API to skip it
    this.held = null; // getToken's last whole answer ({token, expires_at, node, alternates})
    this.heldTargets = null; // after a lost socket: the nodes still to try with the held token
    this.helloAt = 0; // Date.now() of the last hello
    this.heldFresh = false; // heldTargets was just filled: none of them tried yet
  }

  /** The token and the node from `getToken`'s answer (a token string, or the API's {token, node}). */
  async _ticket() {
    const answer = await this.getToken(this.avoid ? { avoid: this.avoid } : {});
    if (typeof answer === "string") return { token: answer, node: null };
    this.held = answer;
    return { token: answer.token, node: answer.node || null };
  }

  _scheduleRefresh(expiresAt) {
    clearTimeout(this.refreshTimer);
    this.tokenExpiresAt = expiresAt || 0;
    if (!expiresAt) return;
    const remaining = expiresAt * 1000 - Date.now();
    // A minute ahead; half the remaining time for short tokens (clock skew is the margin's job).
    const delay = Math.max(1000, remaining > 120000 ? remaining - 60000 : remaining / 2);
    this.refreshTimer = setTimeout(() => this._refresh(), delay);
  }

  async _refresh() {
    try {
      const reply = await this.request("token.refresh", { token: (await this._ticket()).token });
      this._scheduleRefresh(reply.token_expires_at);
      this.dispatchEvent(new CustomEvent("state", { detail: { state: "refreshed" } }));
    } catch (err) {
      console.warn("token refresh failed; the socket will reconnect when its token expires", err);
    }
  }

  /** Handles every server message of `type` (relayed call.* messages, show.roster, ...). */
  on(type, handler) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    this.handlers.get(type).push(handler);
    return this;
  }

  _emit(type, message) {
    for (const handler of this.handlers.get(type) || []) {
      try { handler(message); } catch (err) { console.error(`handler for ${type} failed`, err); }
    }
  }

  _state(state, detail = {}) {
    this.dispatchEvent(new CustomEvent("state", { detail: { state, ...detail } }));
  }

  /** Fails the requests sent on `ws` (it closed): their answers will never come. */
  _failPending(ws) {
    for (const [id, { reject: fail, timer, ws: on }] of this.pending) {
      if (on !== ws) continue;
      clearTimeout(timer);
      this.pending.delete(id);
      fail(new SignalError({ code: "disconnected", message: "connection lost" }));
    }
  }

  /** Connects (resuming when a resume token is stored); resolves with the `hello` message. */
  async connect() {
    this.closedByUs = false;
    const move = this.moving; // a drain's move: the old socket stays `this.ws` until the new hello
    const direct = this.heldTargets?.length > 0;
    const { token, node } = direct ? { token: this.held.token, node: this.heldTargets.shift() } : await this._ticket();
    if (move && (this.closedByUs || this.moving !== move)) {
      throw new SignalError({ code: "closed", message: "closed during the move" });
    }
    const resume = sessionStorage.getItem(this.resumeKey);
    const before = this.hello ? this.node : undefined;
    this.node = this.moveTo || node;
    this.moveTo = null;
    const moved = before !== undefined && before !== this.node;
    const url = new URL("/ws", this.node || location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("token", token);
    // Resume tokens are per node: another node would only drop it.
    if (resume && !moved) url.searchParams.set("resume", resume);
    const ws = new WebSocket(url);
    if (move) move.to = ws;
    else this.ws = ws;
    return new Promise((resolve, reject) => {
      let welcomed = false;
      let answered = false; // the node upgraded the socket: it lives, whatever comes next
      // A kept token's connect, and a move's, is bounded: closing the socket ends in onclose (not
      // welcomed: 1006 from the browser, as a refused connect), which rejects and moves on to the next
      // target (a move: its end, see _move).
      const giveUp = () => { if (!welcomed) ws.close(); };
      let timer = direct || move ? setTimeout(giveUp, HELD_CONNECT_MS) : null;
      ws.onopen = () => {
        answered = true;
        if (timer !== null && this.lost && this.node === this.lost.url) {
          clearTimeout(timer);
          timer = setTimeout(giveUp, LOST_NODE_MS);
        }
      };
      ws.onmessage = (event) => {
        let message;
        try { message = JSON.parse(event.data); } catch { return; }
        if (message.type === "hello") {
          if (move && this.moving !== move) { ws.close(1000, "bye"); return; } // closed by the page meanwhile
          welcomed = true;
          clearTimeout(timer);
          const overlap = move ? this._switch(move, ws) : null;
          this.helloAt = Date.now();
          this.lost = null;
          this.avoid = null;
          this.heldTargets = null;
          this.hello = message;
          sessionStorage.setItem(this.resumeKey, message.resume_token);
          this._scheduleRefresh(message.token_expires_at);
          this._state("connected", { resumed: message.resumed, moved, node: message.node,
            ...(move ? { overlap } : {}) });
          resolve(message);
        }
        this._receive(message, ws);
      };
      ws.onclose = (event) => {
        clearTimeout(timer);
        this._failPending(ws);
        if (this.leaving?.ws === ws) {
          // A move's old socket, closed by moveDone(), its bound or its node: the move is over.
          clearTimeout(this.leaving.timer);
          const { node: left } = this.leaving;
          this.leaving = null;
          this._state("left", { node: left });
          return;
        }
        if (this.moving?.from === ws) {
          // The old socket closed before the new session's hello (its node's grace ran out, or it
          // died): the move goes on, its new socket decides what comes next.
          if (this.ws === ws) this.ws = null;
          this.moving.from = null;
          return;
        }
        const opening = move !== null && !welcomed; // a move's new socket, refused or given up
        if (this.ws !== ws && !opening) return;
        if (this.ws === ws) {
          this.ws = null;
          clearTimeout(this.refreshTimer);
        }
        if (event.code === 4003) {
          // Banned (at connect, or live by a moderator): the session is over; never reconnect.
          this.closedByUs = true;
          sessionStorage.removeItem(this.resumeKey);
          if (!welcomed) reject(new SignalError({ code: "banned", message: "this account is banned" }));
          this._state("banned");
          return;
        }
        if (event.code === 4029) {
          // Too many sockets for this token or account: reconnecting would only be refused again.
          this.closedByUs = true;
          const message = "too many open tabs or devices on this account: close one, then reload";
          if (!welcomed) reject(new SignalError({ code: "too_many_sockets", message }));
          this._state("too_many_sockets");
          return;
        }
        if (welcomed && Date.now() - this.helloAt >= STABLE_MS) this.attempt = 0; // a session that lasted
        if (welcomed && !this.closedByUs && !this.moveTo) {
          this.lost = { url: this.node, id: this.hello?.node || null };
          const held = this.held;
          if (held && held.expires_at * 1000 - Date.now() >= HELD_MARGIN_MS) {
            this.heldTargets = [this.node, ...(held.alternates || []).filter((u) => u !== this.node)];
            this.heldFresh = true; // its first target waits the backoff, the others follow 100 ms apart
          }
        } else if (!welcomed && !answered && this.lost?.id && this.node === this.lost.url && event.code === 1006) {
          // The node we lost refuses connects (killed) or never answers: ask the API for another one.
          // A node that upgraded the socket (then said `overloaded`, say) lives: it is never named.
          this.avoid = this.lost.id;
        }
        if (!welcomed) {
          // 4001: the token was refused; a stale resume token is simply dropped by the node.
          const err = new SignalError({ code: event.code === 4001 ? "unauthorized" : "disconnected",
            message: event.reason || "could not connect" });
          err.held = direct; // a kept token refused: getToken decides (the API refuses a revoked login too)
          reject(err);
        }
        if (this.closedByUs) {
          this._state("closed");
        } else if (welcomed) {
          this._reconnect();
        }
      };
    });
  }

  _receive(message, ws) {
    const current = ws === this.ws; // else a move's old socket: only the answers to its requests count
    if (message.type === "reconnect") {
      // The node is draining (docs/protocol.md): move to the node it names, make-before-break.
      if (current && !this.moving) this._move(message, ws);
      return;
    }
    if ((message.type === "reply" || message.type === "error") && this.pending.has(message.ref)) {
      const { resolve, reject, timer } = this.pending.get(message.ref);
      clearTimeout(timer);
      this.pending.delete(message.ref);
      if (message.type === "reply") resolve(message);
      else reject(new SignalError(message));
      return;
    }
    if (current) this._emit(message.type, message);
  }

  /** A drain's `reconnect` on `from` (the open socket): opens the named node while `from` stays open. */
  async _move(message, from) {
    const move = { from, to: null };
    this.moving = move;
    this.moveTo = message.url || null;
    this.attempt = 0;
    this._state("moving", { node: message.node, reason: message.reason });
    try {
      await this.connect();
    } catch (err) {
      if (this.moving === move) this.moving = null;
      if (move.from) {
        // The named node did not take us: leave the draining node (as a move did before it was
        // make-before-break) and reconnect the usual way; the API names a node that is not draining.
        if (this.ws === move.from) this.ws = null;
        clearTimeout(this.refreshTimer);
        this._failPending(move.from);
        move.from.close(1000, "moving");
      }
      if (this.closedByUs || this.moving) return; // banned, too many sockets, closed by the page
      this._failed(err);
    }
  }

  /** The move's new session said hello: requests and events go there from now on. The old socket is
   *  kept for a `makeBeforeBreak` page (until moveDone(), at most MOVE_HOLD_MS: true, an overlap), else
   *  closed now (false). */
  _switch(move, ws) {
    this.moving = null;
    this.ws = ws;
    this.moveDone(); // the old socket of an earlier move, if it is still open
    if (!move.from) return false;
    this.leaving = { ws: move.from, node: this.hello?.node || null, timer: null };
    if (!this.makeBeforeBreak) {
      move.from.close(1000, "moved");
      return false;
    }
    this.leaving.timer = setTimeout(() => this.moveDone(), MOVE_HOLD_MS);
    return true;
  }

  /** The page's media plays from the new node (after a drain's move): the old socket closes now (the
   *  `left` state follows) and the draining node lets this client go. Nothing when no move is open. */
  moveDone() {
    if (!this.leaving) return;
    clearTimeout(this.leaving.timer);
    this.leaving.ws.close(1000, "moved");
  }

  async _reconnect() {
    // A lost socket backs off (with jitter) while the API still names a node that may be dead.
    // The alternates of a kept token are tried one after the other, a moment apart.
    const next = this.heldTargets?.length > 0 && !this.heldFresh;
    this.heldFresh = false;
    const delay = this.moveTo ? 0 : jittered(next ? 100 : BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)]);
    this.attempt += 1;
    const closes = this.closes;
    this._state("reconnecting", { attempt: this.attempt });
    await new Promise((r) => setTimeout(r, delay));
    // Closed meanwhile, even if the page has connected again since (connect() clears closedByUs).
    if (this.closedByUs || this.closes !== closes) return;
    try {
      await this.connect();
    } catch (err) {
      this._failed(err);
    }
  }

  /** After a failed connect: the next attempt, or the end. */
  _failed(err) {
    // A refused token, or a login the API no longer honours (logged out, banned): retrying is useless.
    if (err.code === "banned") return;  // the "banned" state is already out
    if (err.held && err.code === "unauthorized") {
      this.heldTargets = null;
      this._reconnect();
      return;
    }
    if (err.code === "unauthorized" || err.status === 401 || err.status === 403) {
      this._state("lost", { reason: err.message });
      return;
    }
    this._reconnect();
  }

  /** Sends a request and resolves with its reply (rejects with a SignalError). */
  request(type, body = {}) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new SignalError({ code: "disconnected", message: "not connected" }));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new SignalError({ code: "timeout", message: `no answer to ${type}` }));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer, ws });
      ws.send(JSON.stringify({ type, id, ...body }));
    });
  }

  /** Sends a message that needs no reply (trickled ICE, relayed call messages). */
  notify(type, body = {}) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type, ...body }));
  }

  /** Clean hang-up: no reconnect, and the resume token is forgotten. */
  close() {
    this.closedByUs = true;
    this.closes += 1;
    clearTimeout(this.refreshTimer);
    sessionStorage.removeItem(this.resumeKey);
    // A later connect() asks getToken anew: never an old token, node or lost node of this session.
    this.held = null;
    this.heldTargets = null;
    this.lost = null;
    this.avoid = null;
    this.moveTo = null;
    this.heldFresh = false;
    const { moving, leaving } = this;
    this.moving = null;
    moving?.to?.close(1000, "bye");
    if (leaving) {
      clearTimeout(leaving.timer);
      leaving.ws.close(1000, "bye");
    }
    this.ws?.close(1000, "bye");
  }
}
