// "Live Cam": a 1:1 video call with a friend through the node's call.invite flow (docs/protocol.md,
// 1:1 calls). Outgoing from a profile page, incoming on any social page (a dialog to accept or
// decline). The media is the random chat's: P2PCall, or SfuCall when call.accepted says "sfu".
// A call outlives its node: when the socket comes back on another node (a new session), the page
// takes the call on there (call.rejoin) and, through the SFU, publishes and subscribes again.

import { openCamera, play } from "./media.js";
import { P2PCall } from "../random/call.js";
import { SfuCall } from "../random/sfu.js";
import { nameOf, profile } from "./users.js";
import { CallCost } from "./paid.js";

const ENDED = {
  declined: "They declined the call.", cancelled: "The call was cancelled.", hangup: "The call ended.",
  timeout: "Nobody answered.", offline: "They went offline.", left: "They left.",
  insufficient_credits: "The call ended: the caller's credits ran out.",
  node_lost: "The call ended: the connection to the call's server was lost.",
};

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

export class LiveCam {
  constructor(signal) {
    this.signal = signal;
    this.callId = null;
    this.role = null;
    this.peer = null;
    this.stream = null;
    this.call = null;
    this.ringing = false;
    this.title = el("h2", { id: "livecam-title" });
    this.state = el("p", { id: "livecam-state", className: "muted" });
    this.remote = el("video", { id: "livecam-remote", autoplay: true, playsInline: true, muted: true });
    this.self = el("video", { id: "livecam-self", className: "self", autoplay: true, playsInline: true, muted: true });
    this.accept = el("button", { type: "button", id: "livecam-accept", textContent: "Accept" });
    this.decline = el("button", { type: "button", id: "livecam-decline", className: "danger", textContent: "Decline" });
    this.hangup = el("button", { type: "button", id: "livecam-hangup", className: "danger", textContent: "Hang up" });
    this.sound = el("button", { type: "button", className: "secondary", textContent: "Sound on" });
    this.box = el("section", { id: "livecam", className: "livecam card", hidden: true },
      this.title, this.state, el("div", { className: "stage" }, this.remote, this.self),
      el("div", { className: "controls" }, this.accept, this.decline, this.sound, this.hangup));
    this.box.setAttribute("role", "dialog");
    this.box.setAttribute("aria-labelledby", "livecam-title");
    document.querySelector("main").prepend(this.box);
    this.cost = new CallCost(signal, this.box);
    this.accept.addEventListener("click", () => this._accept());
    this.decline.addEventListener("click", () => this._send("call.decline"));
    this.hangup.addEventListener("click", () => this._send(this.ringing && this.role === "caller" ? "call.cancel" : "call.hangup"));
    this.sound.addEventListener("click", () => {
      this.remote.muted = !this.remote.muted;
      this.sound.textContent = this.remote.muted ? "Sound on" : "Sound off";
    });
    signal.on("call.incoming", (m) => this._incoming(m));
    signal.on("call.ringing", (m) => { if (m.call_id === this.callId) this._show("Ringing…"); });
    signal.on("call.accepted", (m) => this._accepted(m));
    signal.on("call.ended", (m) => this._ended(m));
    signal.on("call.rejoined", (m) => { if (m.call_id === this.callId) this._show("Connected."); });
    signal.addEventListener("state", ({ detail }) => {
      if (detail.state === "connected" && !detail.resumed && this.call) this._rejoin();
    });
  }

  /** The socket came back on another node (its own was lost): the call goes on there, or has ended. */
  async _rejoin() {
    const callId = this.callId;
    this._show("Reconnecting the call…");
    let reply;
    try {
      reply = await this.signal.request("call.rejoin", { call_id: callId });
    } catch (err) {
      if (err.code === "not_found" || err.code === "conflict") this._ended({ call_id: callId, reason: "node_lost" });
      else this._show(`Could not reconnect the call: ${err.message}`);
      return;
    }
    if (reply.media !== "sfu" || callId !== this.callId) { this._show("Connected."); return; } // P2P media went on
    this.call?.close(); // its SFU legs were on the lost node
    this.call = null;
    this._accepted({ call_id: callId, media: "sfu" });
  }

  get pc() { return this.call?.pc; }

  _show(state, { accept = false } = {}) {
    this.box.hidden = false;
    this.state.textContent = state;
    this.accept.hidden = !accept;
    this.decline.hidden = !accept;
    this.hangup.hidden = accept;
  }

  /** Calls `user` (a profile); errors are thrown as sentences. */
  async start(user) {
    if (this.callId) throw new Error("You are already in a call.");
    this.peer = user;
    this.role = "caller";
    this.title.textContent = `Live Cam with ${nameOf(user)}`;
    this._show("Opening your camera…");
    try {
      this.stream = await openCamera();
      play(this.self, this.stream);
      this._show("Calling…");
      const reply = await this.signal.request("call.invite", { to: user.id });
      this.callId = reply.call_id;
      this.ringing = true;
    } catch (err) {
      this._reset();
      if (err.code === "not_found") throw new Error(`${nameOf(user)} is offline.`);
      if (err.code === "busy") throw new Error(`${nameOf(user)} is busy (or you are already in a call).`);
      if (err.code === "forbidden") throw new Error(err.message);
      if (err.code === "payment_required") throw new Error(`${nameOf(user)} charges per minute: you need credits for the first minute.`);
      throw err;
    }
  }

  async _incoming(m) {
    if (this.callId) return; // already in a call: the node ends theirs when it times out
    const user = await profile(m.from).catch(() => null);
    if (!user) return; // hidden from us: never shown
    this.callId = m.call_id;
    this.role = "callee";
    this.ringing = true;
    this.peer = user;
    this.title.textContent = `${nameOf(user)} is calling (Live Cam)`;
    this._show("Accept to turn on your camera.", { accept: true });
    this.accept.focus();
  }

  async _accept() {
    this._show("Opening your camera…");
    try {
      this.stream ??= await openCamera();
      play(this.self, this.stream);
      await this.signal.request("call.accept", { call_id: this.callId });
    } catch (err) {
      this._show(`Could not accept: ${err.message}`);
      this._send("call.decline");
    }
  }

  _accepted(m) {
    if (m.call_id !== this.callId || this.call) return;
    this.ringing = false;
    this._show("Connecting…");
    const Call = m.media === "sfu" ? SfuCall : P2PCall;
    this.call = new Call(this.signal, m.call_id, this.stream, this.signal.hello?.ice_servers, (remote) => play(this.remote, remote));
    this.call.pc.addEventListener("connectionstatechange", () => {
      const s = this.call?.pc.connectionState;
      if (s === "connected") this._show("Connected.");
      if (s === "failed") this._show("The video connection failed: hang up and try again.");
    });
    const setup = m.media === "sfu" ? this.call.start() : this.role === "caller" ? this.call.offer() : null;
    setup?.catch((err) => this._show(`Call setup failed: ${err.message}`));
  }

  _ended(m) {
    if (m.call_id !== this.callId) return;
    const text = ENDED[m.reason] || "The call ended.";
    this._reset();
    this.box.hidden = false;
    this.state.textContent = text;
    this.hangup.hidden = true;
    this.accept.hidden = true;
    this.decline.hidden = true;
    setTimeout(() => { if (!this.callId) this.box.hidden = true; }, 4000);
  }

  async _send(type) {
    if (!this.callId) { this._reset(); this.box.hidden = true; return; }
    await this.signal.request(type, { call_id: this.callId }).catch(() => {});
  }

  _reset() {
    this.call?.close();
    this.call = null;
    for (const track of this.stream?.getTracks() || []) track.stop();
    this.stream = null;
    this.remote.srcObject = null;
    this.self.srcObject = null;
    this.callId = null;
    this.ringing = false;
  }
}
