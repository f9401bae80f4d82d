// The bell: unread badge, a list (newest first), mark read; new ones arrive on the node's socket
// ({"type": "notification"} from the control API, docs/api.md Realtime). A notification about a
// user the API now hides (a block either way) is left out.

import { api, explain } from "./api.js";
import { nameOf, profile } from "./users.js";

const TEXT = {
  follow_request: (who) => `${who} wants to follow you`,
  follow_accepted: (who) => `${who} and you now follow each other`,
  like: (who) => `${who} liked you`,
  message: (who) => `New message from ${who}`,
  live_invite: (who) => `${who} invites you to a live show`,
  call_missed: (who) => `Missed call from ${who}`,
  welcome: () => "Welcome to Switchboard! Set up your profile to meet people.",
  moderation_warning: (_who, data) => `Warning from the moderators: ${data.message || "mind the rules"}`,
  report_outcome: (_who, data) => (data.outcome === "actioned"
    ? "The moderators acted on a report you made. Thank you."
    : "The moderators looked at a report you made and took no action."),
};

function target(note) {
  const d = note.data || {};
  if (note.kind === "follow_request" || note.kind === "follow_accepted") return "/space";
  if (note.kind === "like" || note.kind === "call_missed") return d.user_id ? `/u/${d.user_id}` : "/space";
  if (note.kind === "message") return `/messages#${d.conversation_id || ""}`;
  if (note.kind === "live_invite" && d.room) return `/watch/${d.room}`;
  if (note.kind === "welcome") return "/me";
  return null;
}

export class Bell {
  constructor(button, badge, panel) {
    this.button = button;
    this.badge = badge;
    this.panel = panel;
    this.list = panel.querySelector("ul");
    this.unread = 0;
    this.seen = new Set();
    button.addEventListener("click", () => this.toggle());
    panel.querySelector("[data-action=read]").addEventListener("click", () => this.markRead());
    panel.addEventListener("keydown", (e) => { if (e.key === "Escape") { this.toggle(false); button.focus(); } });
  }

  async load() {
    const page = await api("/notifications?limit=30");
    this._count(page.unread);
    for (const note of page.items.reverse()) await this.add(note, { live: false });
  }

  _count(n) {
    this.unread = Math.max(0, n);
    this.badge.textContent = String(this.unread);
    this.badge.hidden = this.unread === 0;
    this.button.setAttribute("aria-label", `Notifications, ${this.unread} unread`);
  }

  /** Adds one notification at the top (live ones count as unread). */
  async add(note, { live = true } = {}) {
    if (note.id != null && this.seen.has(note.id)) return;
    if (note.id != null) this.seen.add(note.id);
    const userId = note.data?.user_id || note.data?.from;
    let who = "";
    if (userId) {
      const user = await profile(userId).catch(() => null);
      if (!user) return; // hidden by a block (or gone): never shown
      who = nameOf(user);
    }
    const li = document.createElement("li");
    li.className = `note${note.read ? "" : " unread"}`;
    li.dataset.kind = note.kind;
    const text = (TEXT[note.kind] || (() => note.kind))(who, note.data || {});
    const href = target(note);
    const body = href ? Object.assign(document.createElement("a"), { href, textContent: text }) : document.createTextNode(text);
    const when = document.createElement("time");
    when.className = "muted";
    when.textContent = note.created_at ? new Date(note.created_at).toLocaleString() : "now";
    li.append(body, " ", when);
    this.list.prepend(li);
    if (live && !note.read) this._count(this.unread + 1);
  }

  toggle(open = this.panel.hidden) {
    this.panel.hidden = !open;
    this.button.setAttribute("aria-expanded", String(open));
    if (open) this.panel.querySelector("button, a")?.focus();
  }

  async markRead() {
    try {
      const answer = await api("/notifications/read", { method: "POST", body: {} });
      this._count(answer.unread);
      for (const li of this.list.querySelectorAll(".unread")) li.classList.remove("unread");
    } catch (err) {
      this.list.prepend(Object.assign(document.createElement("li"), { className: "error", textContent: explain(err) }));
    }
  }
}
