// The header every page shows: links, my pseudo and photo (or "Set up your profile"), the unread
// messages badge and the notifications bell. With the page's node socket (`signal`) both badges
// are live: chat.message / chat.read and notification messages arrive on it.

import { api, auth } from "./api.js";
import { Bell } from "./notifications.js";
import { avatar } from "./users.js";

const LINKS = [["/people", "People"], ["/space", "Space"], ["/random", "Random"], ["/broadcast", "Broadcast"], ["/wallet", "Wallet"]];

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function bellIcon() {
  // Drawn, not an emoji: a phone or a headless browser may have no emoji font.
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "20");
  svg.setAttribute("height", "20");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("fill", "currentColor");
  path.setAttribute("d", "M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22Zm7-6V11a7 7 0 0 0-5.5-6.84V3.5a1.5 1.5 0 0 0-3 0v.66A7 7 0 0 0 5 11v5l-2 2v1h18v-1Z");
  svg.append(path);
  return svg;
}

LINKS.push(["/earnings", "Earnings"]); // creators: prices, earnings, payouts (docs/payments.md)

export class Header {
  constructor(nav) {
    this.nav = nav;
    this.me = null;
    const links = LINKS.map(([href, text]) => el("a", { href, textContent: text }));
    this.msgBadge = el("span", { className: "badge", id: "msg-badge", hidden: true });
    const messages = el("a", { href: "/messages", id: "messages-link" }, "Messages ", this.msgBadge);
    this.bellBadge = el("span", { className: "badge", id: "bell-badge", hidden: true });
    const bell = el("button", { type: "button", className: "bell", id: "bell", title: "Notifications" }, bellIcon(), this.bellBadge);
    bell.setAttribute("aria-expanded", "false");
    bell.setAttribute("aria-controls", "notes");
    const panel = el("section", { id: "notes", className: "notes card", hidden: true },
      el("div", { className: "row" }, el("h2", { textContent: "Notifications" }),
        el("button", { type: "button", className: "secondary", textContent: "Mark all read" })),
      el("ul", { id: "notes-list" }));
    panel.querySelector("button").dataset.action = "read";
    this.meLink = el("a", { href: "/me", id: "me", className: "me" });
    nav.replaceChildren(el("a", { href: "/", textContent: "Switchboard" }), ...links, messages, bell, this.meLink);
    nav.after(panel);
    this.bell = new Bell(bell, this.bellBadge, panel);
  }

  showMe(me) {
    this.me = me;
    const p = me.profile || {};
    const name = el("span", { id: "me-name", textContent: p.pseudo || "Set up your profile" });
    const photo = avatar(p, "small");
    photo.id = "me-photo";
    this.meLink.replaceChildren(photo, name);
  }

  async refreshMessages() {
    const { unread_total: total } = await api("/conversations?limit=50");
    this.msgBadge.textContent = String(total);
    this.msgBadge.hidden = !total;
    return total;
  }
}

/**
 * Mounts the header into `nav.top` (made if the page has none). Resolves with the Header once
 * /me and the badges are read; `signal` (optional) makes the badges live.
 */
export async function mountHeader({ signal } = {}) {
  let nav = document.querySelector("nav.top");
  if (!nav) {
    nav = el("nav", { className: "top" });
    document.body.prepend(nav);
  }
  const header = new Header(nav);
  window.switchboardHeader = header;
  if (!auth()) {
    header.meLink.replaceChildren(el("span", { id: "me-name", textContent: "Log in" }));
    header.meLink.href = "/login";
    return header;
  }
  if (signal) {
    signal.on("notification", (m) => header.bell.add(m.notification));
    signal.on("chat.message", () => header.refreshMessages().catch(() => {}));
    signal.on("chat.read", () => header.refreshMessages().catch(() => {}));
  }
  await Promise.all([
    api("/me").then((me) => header.showMe(me)),
    header.refreshMessages(),
    header.bell.load(),
  ]).catch((err) => console.warn("header: could not load everything", err));
  return header;
}
