// A show's chat list: lines with their ids, and the effects of moderation seen live (a line
// deleted, a line pinned, a member muted or removed). With `moderate` (the broadcaster, a
// moderator's tap), each line carries buttons: delete, pin, mute 5 min, remove.

import { chatLine, say } from "./ui.js";

const MUTE_MINUTES = 5;

export class ShowChat {
  constructor(signal, room, list, { me, moderate = false, pinned = null } = {}) {
    this.signal = signal;
    this.room = room;
    this.list = list;
    this.me = me;
    this.moderate = moderate;
    this.pinned = pinned;
    const mine = (m) => m.room === this.room;
    signal.on("show.chat", (m) => { if (mine(m)) this.line(m); });
    signal.on("show.chat_deleted", (m) => { if (mine(m)) this.deleted(m.message_id); });
    signal.on("show.chat_pinned", (m) => { if (mine(m)) this.pin(m.message); });
    signal.on("show.muted", (m) => { if (mine(m)) this.notice(m, "muted until " + clock(m.until)); });
    signal.on("show.kicked", (m) => { if (mine(m)) this.notice(m, "removed from the show"); });
  }

  who(user) {
    return user === this.me ? "you" : user.slice(0, 8);
  }

  line(m) {
    const li = chatLine(this.list, this.who(m.from), m.text);
    li.dataset.id = String(m.id);
    li.dataset.from = m.from;
    if (this.moderate && m.from !== this.me) {
      const tools = document.createElement("span");
      tools.className = "mod-tools";
      tools.append(
        this.button("delete", "Delete", { message_id: m.id }, "show.chat_delete"),
        this.button("pin", "Pin", { message_id: m.id }, "show.chat_pin"),
        this.button("mute", `Mute ${MUTE_MINUTES} min`, { user: m.from, minutes: MUTE_MINUTES }, "show.mute"),
        this.button("kick", "Remove", { user: m.from }, "show.kick"),
      );
      li.append(tools);
    }
  }

  button(action, text, body, type) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "secondary small";
    b.dataset.action = action;
    b.textContent = text;
    b.addEventListener("click", () => {
      this.signal.request(type, { room: this.room, ...body }).catch((err) => say(`${text} failed: ${err.message}`, "error"));
    });
    return b;
  }

  deleted(id) {
    this.list.querySelector(`li[data-id="${id}"]`)?.remove();
    if (this.pinned?.dataset.id === String(id)) this.pin(null);
  }

  pin(message) {
    if (!this.pinned) return;
    this.pinned.hidden = !message;
    this.pinned.dataset.id = message ? String(message.id) : "";
    this.pinned.textContent = message ? `📌 ${this.who(message.from)}: ${message.text}` : "";
  }

  notice(m, what) {
    const li = chatLine(this.list, "★", `${this.who(m.user)} ${what} by the ${m.by}.`);
    li.className = "notice";
    li.dataset.notice = m.type;
    if (m.user === this.me && m.type === "show.muted") say(`You are muted in this show until ${clock(m.until)}.`, "error");
  }
}

function clock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString();
}
