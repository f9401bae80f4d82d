// /random: queue with filters, get matched, a call with chat, like, follow, report; next, stop.
// The call is P2P or through the SFU, as match.found's `media` says (node.call_media).

import { api, explain, requireLogin } from "./lib/api.js";
import { mountHeader } from "./lib/header.js";
import { openCamera, play, qualityText, toggle, watchQuality } from "./lib/media.js";
import { wireReport } from "./lib/report.js";
import { Signal } from "./lib/signal.js";
import { $, chatForm, chatLine, say, showConnection } from "./lib/ui.js";
import { P2PCall } from "./random/call.js";
import { SfuCall } from "./random/sfu.js";

const me = requireLogin();

let stream = null;
let ticket = null;
let call = null; // the live P2PCall or SfuCall
let match = null; // the last match.found
let waitingSince = 0;
let stopQuality = () => {};

const signal = new Signal({
  resumeKey: "switchboard.resume.random",
  getToken: (hint) => api("/ws-token", { method: "POST", body: hint }),
});
// For people debugging, and the tests: the live peer connection and match, the last queue reply.
mountHeader({ signal });
window.switchboard = { signal, get pc() { return call?.pc; }, get match() { return match; }, queued: null };

function state(name, text) {
  $("state").dataset.state = name;
  $("state").textContent = text;
}

function list(value) {
  return value.split(",").map((s) => s.trim()).filter(Boolean);
}

function ticketFrom(form) {
  const f = Object.fromEntries(new FormData(form).entries());
  const filters = { countries: list(f.countries.toUpperCase()) };
  if (f.age_min) filters.age_min = Number(f.age_min);
  if (f.age_max) filters.age_max = Number(f.age_max);
  if (f.want_tags) filters.tags = list(f.want_tags.toLowerCase());
  return { country: f.country.toUpperCase(), age: Number(f.age), tags: list(f.tags.toLowerCase()), filters };
}

function hangUp() {
  stopQuality();
  call?.close();
  call = null;
  $("remote").srcObject = null;
  $("peer").textContent = "";
}

function looking(text) {
  hangUp();
  waitingSince = Date.now();
  state("looking", "looking…");
  say(text, "info");
}

async function queue() {
  const answer = await signal.request("queue.join", { ticket });
  window.switchboard.queued = { join: answer.queued };
  if (answer.ignored_filters.length) {
    say(`Looking… (premium filters ignored: ${answer.ignored_filters.join(", ")})`, "info");
  }
}

signal.on("match.found", (m) => {
  match = m;
  startCall(m);
});

/** The match's media, from scratch (a new match, or one taken on by a new session on another node). */
function startCall(m) {
  hangUp();
  const who = m.peer.profile?.display_name || m.peer.user_id.slice(0, 8);
  $("peer").textContent = `${who} · ${m.peer.country}`;
  state("matched", "connecting…");
  say("");
  const Call = m.media === "sfu" ? SfuCall : P2PCall;
  call = new Call(signal, m.session_id, stream, signal.hello.ice_servers, (remote) => play($("remote"), remote));
  call.pc.addEventListener("connectionstatechange", () => {
    if (!call) return;
    if (call.pc.connectionState === "connected") state("connected", "connected");
    if (call.pc.connectionState === "failed") say("The video connection failed: press Next to meet someone else.", "error");
  });
  stopQuality = watchQuality(call.pc, qualityText($("quality")));
  const setup = m.media === "sfu" ? call.start() : m.offerer ? call.offer() : null;
  setup?.catch((err) => say(`Call setup failed: ${err.message}`, "error"));
}

/** A new session (our node was lost or drained): the match goes on there (call.rejoin with its
 * session id; through the SFU our legs were on the lost node: they open again), or we queue again. */
async function rejoin(m) {
  try {
    const reply = await signal.request("call.rejoin", { call_id: m.session_id });
    if (match !== m) return;
    say("Reconnected: the stranger is still here.", "ok");
    if (reply.media === "sfu") startCall(m); // P2P media never went through the node: it went on
  } catch {
    if (match !== m) return;
    match = null;
    looking("Reconnected: looking again…");
    queue().catch(() => {});
  }
}
signal.on("match.ended", (m) => {
  if (match?.session_id !== m.session_id) return;
  match = null;
  looking(m.reason === "node_lost" ? "The stranger's connection was lost. Looking for someone new…"
    : "The stranger left. Looking for someone new…");
  queue().catch((err) => say(explain(err), "error"));
});
signal.on("call.chat", (m) => { if (m.call_id === match?.session_id) chatLine($("chat"), "stranger:", m.text); });
signal.on("call.like", (m) => { if (m.call_id === match?.session_id) chatLine($("chat"), "★", "The stranger liked you."); });
signal.on("call.follow_request", (m) => {
  if (m.call_id === match?.session_id) chatLine($("chat"), "★", "The stranger wants to follow you (see your follow requests).");
});
showConnection(signal, (resumed) => {
  // A resumed session kept its pair or ticket; a new one takes its match on, or queues again.
  if (resumed || !ticket) return;
  if (match) { rejoin(match); return; }
  looking("Reconnected: looking again…");
  queue().catch(() => {});
});

setInterval(() => {
  if ($("state").dataset.state !== "looking") return;
  const waited = Math.round((Date.now() - waitingSince) / 1000);
  if (waited >= 10) say(`Nobody matching is free right now (waited ${waited} s). Keep this page open, or widen your filters.`, "info");
}, 1000);

$("filters").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("start").disabled = true;
  try {
    stream ??= await openCamera();
    play($("self"), stream);
    ticket = ticketFrom(event.target);
    if (!signal.hello) await signal.connect();
    looking("Looking for someone…");
    $("filters").hidden = true;
    $("call").hidden = false;
    await queue();
  } catch (err) {
    $("filters").hidden = false;
    $("call").hidden = true;
    if (err.code === "bad_ticket") say(`Check your filters: ${err.message}`, "error");
    else say(err.code ? err.message : explain(err), "error");
  } finally {
    $("start").disabled = false;
  }
});

$("next").addEventListener("click", async () => {
  match = null;
  looking("Looking for someone new…");
  try {
    const answer = await signal.request("queue.next");
    window.switchboard.queued = { next: answer.outcome };
  } catch (err) {
    if (err.code === "not_queued") await queue();
    else say(err.message, "error");
  }
});

$("stop").addEventListener("click", async () => {
  await signal.request("queue.leave").catch(() => {});
  match = null;
  hangUp();
  state("idle", "idle");
  $("call").hidden = true;
  $("filters").hidden = false;
  say("Stopped.", "info");
});

$("like").addEventListener("click", () => {
  if (!match) return;
  signal.notify("call.like", { call_id: match.session_id });
  chatLine($("chat"), "★", "You liked the stranger.");
});
$("follow").addEventListener("click", () => {
  if (!match) return;
  signal.notify("call.follow_request", { call_id: match.session_id });
  chatLine($("chat"), "★", "Follow request sent.");
});
// The session's context: the report makes the session's evidence clip when the SFU carries it.
wireReport($("report-reason"), $("report"), () => (match ? { user_id: match.peer.user_id, session_id: match.session_id } : null),
  "The stranger's account is gone.");
$("camera").addEventListener("click", () => { $("camera").textContent = toggle(stream, "video") ? "Camera off" : "Camera on"; });
$("mic").addEventListener("click", () => { $("mic").textContent = toggle(stream, "audio") ? "Mute" : "Unmute"; });
$("sound").addEventListener("click", () => {
  $("remote").muted = !$("remote").muted;
  $("sound").textContent = $("remote").muted ? "Sound on" : "Sound off";
});
chatForm($("chat-form"), async (text) => {
  if (!match) throw new Error("nobody to talk to yet");
  await signal.request("call.chat", { call_id: match.session_id, text });
  chatLine($("chat"), "you:", text);
});
// Leaving or reloading the page: a P2P call cannot survive it, so let the stranger go at once
// (they are re-queued) instead of after the resume window.
window.addEventListener("pagehide", () => {
  if (!ticket) return;
  signal.notify("queue.leave");
  hangUp();
});
