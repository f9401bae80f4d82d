// /u/<id>: a profile (photo, pseudo, age, country, bio, interests, likes received) with follow,
// like, message, block, report, and "Live Cam" when they are online and you follow each other.
// A profile the API hides (a block either way, a deleted account) reads as not available.

import { api, explain } from "./lib/api.js";
import { Presence } from "./lib/presence.js";
import { wireReport } from "./lib/report.js";
import { startSocialPage } from "./lib/social.js";
import { $, say } from "./lib/ui.js";
import { ageAndCountry, avatar, forgetProfile, nameOf, profile } from "./lib/users.js";

const id = decodeURIComponent(location.pathname.split("/")[2] || "");
const { me, signal, livecam } = await startSocialPage("user");
const presence = new Presence(signal);
let user = null;

const LABEL = { online: "online", in_call: "in a call", offline: "offline" };

function friends() {
  return user.relation.following === "accepted" && user.relation.follows_me;
}

function render() {
  document.title = `${nameOf(user)} · Switchboard`;
  $("photo").replaceChildren(avatar(user, "large"));
  $("pseudo").textContent = nameOf(user);
  $("facts").textContent = ageAndCountry(user);
  $("bio").textContent = user.bio || "";
  $("interests").replaceChildren(...user.interests.map((t) => Object.assign(document.createElement("li"), { textContent: t })));
  $("likes").textContent = String(user.total_likes);
  $("likes-word").textContent = user.total_likes === 1 ? "like" : "likes";
  const { following, follows_me: followsMe, liked } = user.relation;
  $("follow").textContent = { none: "Follow", pending: "Cancel follow request", accepted: "Unfollow" }[following];
  $("follow").className = following === "none" ? "" : "secondary";
  $("like").textContent = liked ? "Liked" : "Like";
  $("like").disabled = liked;
  $("relation").textContent = friends() ? "You follow each other."
    : followsMe ? `${nameOf(user)} follows you.` : following === "pending" ? "Follow request sent." : "";
  showPresence();
}

function showPresence() {
  const status = presence.get(id);
  $("presence").dataset.presence = status;
  $("presence").textContent = LABEL[status];
  $("presence").hidden = !friends();
  // Live Cam: only a friend (both follows) who is online and not already in a call.
  $("livecam-call").hidden = !(friends() && status === "online");
}

async function load() {
  forgetProfile(id);
  user = await profile(id, { fresh: true });
  if (!user) {
    $("profile").hidden = true;
    say("This profile is not available (it does not exist, or one of you blocked the other).", "error");
    return;
  }
  $("profile").hidden = false;
  render();
  if (friends()) await presence.watch([id]);
  showPresence();
}

async function act(what, step) {
  try {
    await step();
  } catch (err) {
    say(err.status === 404 ? "This profile is not available any more." : `Could not ${what}: ${explain(err)}`, "error");
  }
}

presence.addEventListener("change", showPresence);
$("follow").addEventListener("click", () => act("follow", async () => {
  const url = `/users/${id}/follow`;
  if (user.relation.following === "none") {
    const { status } = await api(url, { method: "POST" });
    say(status === "accepted" ? `You and ${nameOf(user)} now follow each other.` : "Follow request sent.", "ok");
  } else {
    await api(url, { method: "DELETE" });
    say("Unfollowed.", "ok");
  }
  await load();
}));
$("like").addEventListener("click", () => act("like", async () => {
  const { total_likes: total } = await api(`/users/${id}/like`, { method: "POST" });
  user.total_likes = total;
  user.relation.liked = true;
  render();
}));
$("message").addEventListener("click", () => act("open the conversation", async () => {
  const conv = await api("/conversations", { method: "POST", body: { members: [id] } });
  location.assign(`/messages#${conv.id}`);
}));
$("block").addEventListener("click", () => act("block", async () => {
  if (!confirm(`Block ${nameOf(user)}? You will no longer see each other anywhere. You can unblock them in Space.`)) return;
  await api(`/users/${id}/block`, { method: "POST" });
  $("profile").hidden = true;
  say(`${nameOf(user)} is blocked. Unblock them from your Space.`, "ok");
}));
wireReport($("report-reason"), $("report"), () => ({ user_id: id }), "This profile is not available any more.");
$("livecam-call").addEventListener("click", () => act("call", async () => {
  await livecam.start(user);
}));

if (id === me.user_id) location.replace("/me");
await load().catch((err) => say(explain(err), "error"));
