// The console's live tab (/admin#live; /moderate redirects there): list the live shows (show.list)
// and calls/matches (call.list), save a clip of one (its last 30 s, no report needed: POST
// /api/moderation/clips, played below the lists), and open an invisible tap on one: a show through
// its own socket (a hidden room token), a call through the console socket (call.tap: a hidden receiving leg in the
// call's SFU room; a P2P call cannot be tapped). In a tapped show the moderator may delete or pin a
// line, mute or remove a viewer, without appearing (the others see "by the moderator").
//
// Every hidden token is audited by the control API; the console socket uses one for its own room
// name (`moderation`), which no show uses. Every tap is an event in the audit stream.

import { api, explain, objectUrl } from "./api.js";
import { qualityText, watchQuality } from "./media.js";
import { CallReceiver } from "./call_media.js";
import { Subscriber, moveSubscriber } from "./show.js";
import { ShowChat } from "./show_chat.js";
import { Signal } from "./signal.js";
import { $, say, showConnection } from "./ui.js";

const hiddenToken = async (room) =>
  (await api(`/rooms/${encodeURIComponent(room)}/token`, { method: "POST", body: { role: "hidden" } })).token;

const consoleSignal = new Signal({ resumeKey: "switchboard.resume.moderate", getToken: () => hiddenToken("moderation") });
showConnection(consoleSignal, () => refresh());
let tap = null; // a show: {room, signal, subscriber, stopQuality}; a call: {callId, receiver, stopQuality}
window.switchboard = { get pc() { return (tap?.subscriber || tap?.receiver)?.pc; } };
consoleSignal.on("call.sfu_closed", (m) => {
  if (tap?.callId !== m.call_id || m.leg !== "tap") return;
  say(m.reason === "ended" ? "The call ended." : `The tap closed (${m.reason}).`, "info");
  closeTap();
  refresh().catch(() => {});
});

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function emptyRow(body, text, columns) {
  const tr = document.createElement("tr");
  tr.append(cell(text));
  tr.firstChild.colSpan = columns;
  body.append(tr);
}

function watchButton(onClick) {
  const button = document.createElement("button");
  button.textContent = "Watch";
  button.className = "watch";
  button.addEventListener("click", onClick);
  const td = document.createElement("td");
  td.append(button);
  return td;
}

function clipButton(room, label) {
  const button = document.createElement("button");
  button.textContent = "Save clip";
  button.className = "secondary save-clip";
  button.setAttribute("aria-label", `Save a clip of ${label} (its last 30 seconds)`);
  button.addEventListener("click", () => saveClip(room, label, button));
  return button;
}

/** A moderator's clip of a live SFU room (a show, or a call's id), without a report; then plays it. */
async function saveClip(room, label, button) {
  button.disabled = true;
  say(`Saving the last 30 seconds of ${label}…`, "info");
  try {
    const clip = await api("/moderation/clips", { method: "POST", body: { room } });
    const video = $("live-clip");
    if (video.src.startsWith("blob:")) URL.revokeObjectURL(video.src);
    video.src = await objectUrl(clip.url.replace(/^\/api/, "")); // staff-only: fetched with the token
    video.dataset.clip = clip.id;
    $("live-clip-room").textContent = label;
    $("live-clip-facts").textContent = `${clip.content_type}, ${clip.tracks} tracks, ${Math.round(clip.duration_ms / 1000)} s, `
      + `${Math.round(clip.size / 1024)} KiB · saved ${new Date(clip.created_at).toLocaleTimeString()} · clip ${clip.id}`;
    $("live-clip-box").hidden = false;
    say(`Clip of ${label} saved.`, "ok");
  } catch (err) {
    say(err.status === 404 ? "No media of that session on any node: it ended, or never ran through the SFU."
      : explain(err), "error");
  } finally {
    button.disabled = false;
  }
}

async function refresh() {
  await Promise.all([refreshShows(), refreshCalls()]);
}

async function refreshCalls() {
  const { calls } = await consoleSignal.request("call.list");
  const body = $("calls");
  body.replaceChildren();
  if (!calls.length) emptyRow(body, "No live call or random-chat session right now.", 5);
  for (const c of calls) {
    const tr = document.createElement("tr");
    tr.dataset.call = c.call_id;
    tr.dataset.media = c.media;
    const since = new Date(c.started_at).toLocaleTimeString();
    const label = `the ${c.kind === "match" ? "random chat" : "call"} ${c.users.map((u) => u.slice(0, 8)).join(" · ")}`;
    const watch = c.media === "sfu" ? watchButton(() => openCallTap(c)) : cell("peer-to-peer: cannot be tapped");
    if (c.media === "sfu") watch.append(clipButton(c.call_id, label));
    tr.append(cell(c.kind === "match" ? "random chat" : "call"), cell(c.users.map((u) => u.slice(0, 8)).join(" · ")),
      cell(c.media), cell(since), watch);
    body.append(tr);
  }
}

async function refreshShows() {
  const { shows } = await consoleSignal.request("show.list");
  const body = $("shows");
  body.replaceChildren();
  if (!shows.length) emptyRow(body, "No live show right now.", 4);
  for (const show of shows) {
    const tr = document.createElement("tr");
    tr.dataset.room = show.room;
    const td = watchButton(() => openTap(show.room));
    td.append(clipButton(show.room, `the show ${show.room}`));
    const viewers = cell(String(show.viewers));
    viewers.title = show.roster.filter((u) => u !== show.owner).join("\n"); // who is watching, on hover
    tr.append(cell(show.room), cell(show.owner.slice(0, 8)), viewers, td);
    body.append(tr);
  }
}

async function openTap(room) {
  closeTap();
  const signal = new Signal({ resumeKey: `switchboard.resume.tap.${room}`, getToken: () => hiddenToken(room),
    makeBeforeBreak: true });
  const current = { room, signal, subscriber: null, stopQuality: () => {} };
  tap = current;
  signal.addEventListener("state", ({ detail }) => {
    if (detail.state === "connected" && detail.overlap) moveTap(current);
  });
  signal.on("show.roster", (m) => { $("viewers").textContent = `${m.viewers} viewers`; $("viewers").dataset.count = String(m.viewers); });
  new ShowChat(signal, room, $("chat"), { me: "", moderate: true, pinned: $("pinned") });
  signal.on("show.ended", () => { say(`The show ${room} ended.`, "info"); closeTap(); refresh(); });
  try {
    await signal.connect();
    const joined = await signal.request("show.join", { room });
    $("viewers").textContent = `${joined.viewers} viewers`;
    $("viewers").dataset.count = String(joined.viewers);
    current.subscriber = new Subscriber(signal, room, signal.hello.ice_servers, $("video"));
    await current.subscriber.subscribe();
    current.stopQuality = watchQuality(current.subscriber.pc, qualityText($("quality")));
  } catch (err) {
    say(err.code ? `Cannot watch ${room}: ${err.message}` : explain(err), "error");
    closeTap();
    return;
  }
  $("tap-room").textContent = room;
  $("end-show").hidden = false;
  $("tap").hidden = false;
  say("");
}

/** The tapped show's node drains: the tap follows it to the new node without a gap (as /watch does). */
async function moveTap(current) {
  const old = current.subscriber;
  try {
    if (!old) throw new Error("nothing playing");
    await current.signal.request("show.join", { room: current.room });
    const next = await moveSubscriber(current.signal, current.room, old, $("video"),
      () => tap === current && current.subscriber === old);
    if (!next) return;
    current.stopQuality();
    current.subscriber = next;
    current.stopQuality = watchQuality(next.pc, qualityText($("quality")));
  } catch (err) {
    current.signal.moveDone();
    if (tap === current) say(`The tap could not follow the show to another node: ${err.message}`, "error");
  }
}

async function openCallTap(c) {
  closeTap();
  const videos = [$("video"), $("video2")];
  let shown = 0;
  const current = { callId: c.call_id, receiver: null, stopQuality: () => {} };
  tap = current;
  // One picture per party: each video track the SFU sends gets its own element.
  current.receiver = new CallReceiver(consoleSignal, c.call_id, "tap", consoleSignal.hello.ice_servers, (track) => {
    if (track.kind !== "video" || shown >= videos.length) return;
    const video = videos[shown++];
    video.style.display = ""; // the second party: a picture in the corner, as on /random
    video.srcObject = new MediaStream([track]);
    video.play().catch(() => {});
  });
  try {
    await current.receiver.open("call.tap");
    current.stopQuality = watchQuality(current.receiver.pc, qualityText($("quality")));
  } catch (err) {
    say(err.code ? `Cannot watch this call: ${err.message}` : explain(err), "error");
    closeTap();
    return;
  }
  $("tap-room").textContent = `${c.kind === "match" ? "random chat" : "call"} ${c.users.map((u) => u.slice(0, 8)).join(" · ")}`;
  $("viewers").textContent = "2 parties";
  $("end-show").hidden = true;
  $("tap").hidden = false;
  say("");
}

function closeTap() {
  if (!tap) return;
  tap.stopQuality();
  if (tap.receiver) {
    tap.receiver.close();
    consoleSignal.notify("call.untap", { call_id: tap.callId });
    $("video2").style.display = "none";
    $("video2").srcObject = null;
  } else {
    tap.subscriber?.close();
    tap.signal.notify("show.leave", { room: tap.room }); // closes the SFU peer now, not after the resume window
    tap.signal.close();
  }
  $("video").srcObject = null;
  tap = null;
  $("tap").hidden = true;
  $("chat").replaceChildren();
}

$("refresh").addEventListener("click", () => {
  refresh().catch((err) => say(err.message, "error"));
});
$("close-tap").addEventListener("click", closeTap);
$("end-show").addEventListener("click", async () => {
  if (!tap?.signal) return;
  await tap.signal.request("show.end", { room: tap.room }).catch((err) => say(err.message, "error"));
});

/** Connects the console socket and lists what is live. */
export async function startLive() {
  try {
    await consoleSignal.connect();
    await refresh();
  } catch (err) {
    say(err.code ? `Cannot reach the node: ${err.message}` : explain(err), "error");
  }
}
