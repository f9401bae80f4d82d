// Live presence of friends: presence.watch answers now, presence.changed is pushed by the node
// (friends only: anyone else always reads "offline"). See docs/protocol.md, Presence.

const LABEL = { online: "online", in_call: "in a call", offline: "offline" };

export class Presence extends EventTarget {
  constructor(signal) {
    super();
    this.signal = signal;
    this.status = new Map();
    this.users = [];
    signal.on("presence.changed", (m) => this._set(m.user, m.status));
    // After a reconnect the node has a new session: watch again.
    signal.addEventListener("state", ({ detail }) => {
      if (detail.state === "connected" && this.users.length) this.watch(this.users).catch(() => {});
    });
  }

  /** Watches exactly `users` (replacing the previous list); resolves with their status now. */
  async watch(users) {
    this.users = [...new Set(users)].slice(0, 500);
    if (!this.users.length) return {};
    const { presence } = await this.signal.request("presence.watch", { users: this.users });
    for (const [user, status] of Object.entries(presence)) this._set(user, status);
    return presence;
  }

  get(user) {
    return this.status.get(user) || "offline";
  }

  _set(user, status) {
    if (this.status.get(user) === status) return;
    this.status.set(user, status);
    this.dispatchEvent(new CustomEvent("change", { detail: { user, status } }));
  }
}

/** A pill that follows one user's presence. */
export function presencePill(presence, user) {
  const pill = document.createElement("span");
  pill.className = "pill presence";
  const show = () => {
    const status = presence.get(user);
    pill.dataset.presence = status;
    pill.textContent = LABEL[status] || status;
  };
  show();
  presence.addEventListener("change", ({ detail }) => { if (detail.user === user) show(); });
  return pill;
}
