// /moderate: list the live shows (show.list) and open an invisible tap (a hidden room token) on one.
//
// Every hidden token is audited by the control API; the console socket uses one for its own room
// name (`moderation`), which no show uses.

import { api, explain, requireLogin } from "./lib/api.js";
import { qualityText, watchQuality } from "./lib/media.js";
import { Subscriber } from "./lib/show.js";
import { Signal } from "./lib/signal.js";
import { $, chatLine, say, showConnection } from "./lib/ui.js";

const me = requireLogin();
$("me").textContent = `moderator: ${me.user_id.slice(0, 8)}`;

const hiddenToken = async (room) =>
  (await api(`/rooms/${encodeURIComponent(room)}/token`, { method: "POST", body: { role: "hidden" } })).token;

const consoleSignal = new Signal({ resumeKey: "switchboard.resume.moderate", getToken: () => hiddenToken("moderation") });
showConnection(consoleSignal, () => refresh());
let tap = null; // {room, signal, subscriber, stopQuality}
window.switchboard = { get pc() { return tap?.subscriber.pc; } };

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

async function refresh() {
  const { shows } = await consoleSignal.request("show.list");
  const body = $("shows");
  body.replaceChildren();
  if (!shows.length) {
    const tr = document.createElement("tr");
    tr.append(cell("No live show right now."));
    tr.firstChild.colSpan = 4;
    body.append(tr);
  }
  for (const show of shows) {
    const tr = document.createElement("tr");
    tr.dataset.room = show.room;
    const button = document.createElement("button");
    button.textContent = "Watch";
    button.className = "watch";
    button.addEventListener("click", () => openTap(show.room));
    const td = document.createElement("td");
    td.append(button);
    const viewers = cell(String(show.viewers));
    viewers.title = show.roster.filter((u) => u !== show.owner).join("\n"); // who is watching, on hover
    tr.append(cell(show.room), cell(show.owner.slice(0, 8)), viewers, td);
    body.append(tr);
  }
}

async function openTap(room) {
  closeTap();
  const signal = new Signal({ resumeKey: `switchboard.resume.tap.${room}`, getToken: () => hiddenToken(room) });
  const current = { room, signal, subscriber: null, stopQuality: () => {} };
  tap = current;
  signal.on("show.roster", (m) => { $("viewers").textContent = `${m.viewers} viewers`; $("viewers").dataset.count = String(m.viewers); });
  signal.on("show.chat", (m) => chatLine($("chat"), m.from.slice(0, 8), m.text));
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
  $("tap").hidden = false;
  say("");
}

function closeTap() {
  if (!tap) return;
  tap.stopQuality();
  tap.subscriber?.close();
  tap.signal.notify("show.leave", { room: tap.room }); // closes the SFU peer now, not after the resume window
  tap.signal.close();
  tap = null;
  $("tap").hidden = true;
  $("chat").replaceChildren();
}

async function loadReports() {
  const { items } = await api("/moderation/reports");
  const list = $("reports");
  list.replaceChildren();
  if (!items.length) chatLine(list, "", "No open report.");
  for (const r of items) {
    const about = r.session_id ? `random chat ${r.session_id}` : r.room ? `show ${r.room}` : "";
    chatLine(list, r.created_at.slice(0, 16).replace("T", " "), `${r.user_id.slice(0, 8)} ${about}: ${r.reason}`);
  }
}

$("refresh").addEventListener("click", () => {
  refresh().catch((err) => say(err.message, "error"));
  loadReports().catch((err) => say(explain(err), "error"));
});
$("close-tap").addEventListener("click", closeTap);
$("end-show").addEventListener("click", async () => {
  if (!tap) return;
  await tap.signal.request("show.end", { room: tap.room }).catch((err) => say(err.message, "error"));
});

try {
  await loadReports();
  await consoleSignal.connect();
  await refresh();
} catch (err) {
  if (err.status === 403) say("Only moderators can use this console.", "error");
  else say(err.code ? `Cannot reach the node: ${err.message}` : explain(err), "error");
}
