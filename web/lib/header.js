// The header every page shows: links, my pseudo and photo (or "Set up your profile"), the unread
// messages badge and the notifications bell. Every signed-in page has a node socket that makes them
// live (chat.message / chat.read, notification) and shows the moderators' notices (a warning, a
// mute) in the banner: the page's own socket when it has one (a show, random chat), else the one
// the header opens (`/ws-token`, one resume key per page). One module, so no page is left out.

import { api, auth } from "./api.js";
import { Bell } from "./notifications.js";
import { Signal } from "./signal.js";
import { say, showConnection, showModeration } from "./ui.js";
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

/** The page's name for its resume key: the first part of its path ("/u/<id>": "u"; "/": "home"). */
function pageName() {
  return location.pathname.split("/")[1] || "home";
}

/**
 * The header's own node socket for a page that has none: moderation notices always; the
 * connection's states (reconnecting, lost, banned) in the banner only when `connection` (the social
 * pages, whose live parts all ride on it): elsewhere they would overwrite the page's own sentences.
 */
function openSocket(name, connection) {
  const signal = new Signal({
    resumeKey: `switchboard.resume.${name}`,
    getToken: (hint) => api("/ws-token", { method: "POST", body: hint }),
  });
  if (connection) {
    showConnection(signal);
  } else {
    showModeration(signal);
    signal.addEventListener("state", ({ detail }) => {
      if (detail.state === "banned") say("This account is banned: you were disconnected.", "error");
    });
  }
  const connected = signal.connect().catch((err) => {
    if (connection) say(`Live updates are off: ${err.message}. Reload the page to try again.`, "error");
    else console.warn("header: no live updates", err);
  });
  window.addEventListener("pagehide", () => signal.close());
  return { signal, connected };
}

/**
 * Mounts the header into `nav.top` (made if the page has none). Resolves with the Header once
 * /me and the badges are read. A signed-in page's socket makes the badges live and shows the
 * moderators' notices: `signal`, the page's own (it shows the notices itself: showConnection), or
 * else one the header opens (`header.signal`; `header.connected` settles once it is connected or
 * failed). `name` keys its resume token (default: the path's first part); `connection` puts its
 * states in the banner.
 */
export async function mountHeader({ signal, name = pageName(), connection = false } = {}) {
  let nav = document.querySelector("nav.top");
  if (!nav) {
    nav = el("nav", { className: "top" });
    document.body.prepend(nav);
  }
  const header = new Header(nav);
  window.switchboardHeader = header;
  header.connected = Promise.resolve();
  if (!auth()) {
    header.meLink.replaceChildren(el("span", { id: "me-name", textContent: "Log in" }));
    header.meLink.href = "/login";
    return header;
  }
  if (!signal) {
    ({ signal, connected: header.connected } = openSocket(name, connection));
  }
  header.signal = signal;
  signal.on("notification", (m) => header.bell.add(m.notification));
  signal.on("chat.message", () => header.refreshMessages().catch(() => {}));
  signal.on("chat.read", () => header.refreshMessages().catch(() => {}));
  await Promise.all([
    api("/me").then((me) => header.showMe(me)),
    header.refreshMessages(),
    header.bell.load(),
  ]).catch((err) => console.warn("header: could not load everything", err));
  return header;
}
