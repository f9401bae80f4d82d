// /space: follow requests (accept, accept and follow back, decline), the people I follow and who
// follow me (newest first), each with live presence (an accepted follow either way shows each side to
// the other: the node's rule), and the users I blocked (unblock).
// Lists reload when a follow notification arrives; presence is pushed (presence.watch).

import { api, explain } from "./lib/api.js";
import { Presence, presencePill } from "./lib/presence.js";
import { startSocialPage } from "./lib/social.js";
import { $, say } from "./lib/ui.js";
import { button, nameOf, personRow } from "./lib/users.js";

const { signal } = await startSocialPage("space");
const presence = new Presence(signal);

function act(what, step) {
  return async () => {
    try {
      await step();
      await load();
    } catch (err) {
      say(`Could not ${what}: ${explain(err)}`, "error");
    }
  };
}

function people(follows, followers) {
  const byId = new Map();
  for (const [list, key] of [[follows, "iFollow"], [followers, "followsMe"]]) {
    for (const u of list) {
      const entry = byId.get(u.id) || { user: u, since: u.since, iFollow: false, followsMe: false };
      entry[key] = true;
      if (u.since > entry.since) entry.since = u.since;
      byId.set(u.id, entry);
    }
  }
  return [...byId.values()].sort((a, b) => (a.since < b.since ? 1 : -1));
}

function friendRow({ user, iFollow, followsMe }) {
  const friend = iFollow && followsMe;
  const label = friend ? "friend" : iFollow ? "you follow" : "follows you";
  const extra = [presencePill(presence, user.id)];
  if (followsMe && !iFollow) {
    extra.push(button("Follow back", act("follow", () => api(`/users/${user.id}/follow`, { method: "POST" }))));
  }
  if (iFollow) extra.push(button("Unfollow", act("unfollow", () => api(`/users/${user.id}/follow`, { method: "DELETE" }))));
  return personRow(user, label, ...extra);
}

function requestRow(user) {
  const id = user.id;
  return personRow(user, "wants to follow you",
    button("Accept & follow back", act("accept", () => api(`/users/${id}/follow`, { method: "POST" })), ""),
    button("Accept", act("accept", () => api(`/me/follow-requests/${id}/accept`, { method: "POST" }))),
    button("Decline", act("decline", () => api(`/me/follow-requests/${id}/decline`, { method: "POST" })), "danger"));
}

function blockedRow(person) {
  const li = document.createElement("li");
  li.dataset.user = person.id;
  li.append(`${nameOf(person)} `,
    button("Unblock", act("unblock", () => api(`/users/${person.id}/block`, { method: "DELETE" }))));
  return li;
}

function fill(list, none, rows) {
  $(list).replaceChildren(...rows);
  $(none).hidden = rows.length > 0;
}

async function load() {
  const [follows, followers, requests, blocks] = await Promise.all([
    api("/me/follows?limit=200"), api("/me/followers?limit=200"), api("/me/follow-requests?limit=200"), api("/me/blocks"),
  ]);
  const everyone = people(follows.items, followers.items);
  await presence.watch(everyone.map((e) => e.user.id)).catch((err) => console.warn("presence.watch failed", err));
  fill("requests", "requests-none", requests.items.map(requestRow));
  fill("friends", "friends-none", everyone.map(friendRow));
  fill("blocked", "blocked-none", (blocks.people || blocks.items.map((id) => ({ id }))).map(blockedRow));
}

signal.on("notification", (m) => {
  if (["follow_request", "follow_accepted"].includes(m.notification.kind)) load().catch(() => {});
});
await load().catch((err) => say(explain(err), "error"));
