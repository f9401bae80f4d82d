// /broadcast: start a show from the camera; viewer count, show chat, camera/mic toggles, end.
// The show's room is created by the API (POST /api/rooms): the server names it (unguessable) and
// records us as its owner, the only one who gets a broadcaster token for it. A title is metadata.

import { api, explain, requireLogin } from "./lib/api.js";
import { mountHeader } from "./lib/header.js";
import { openCamera, play, qualityText, toggle, watchQuality } from "./lib/media.js";
import { Publisher } from "./lib/show.js";
import { Signal } from "./lib/signal.js";
import { ShowChat } from "./lib/show_chat.js";
import { setTicketPrice, showGifts } from "./lib/paid.js";
import { $, chatForm, say, showConnection } from "./lib/ui.js";

const me = requireLogin();
let rosterUpdates = 0; // show.roster messages seen (the tests check a tap adds none)
mountHeader();
const saved = sessionStorage.getItem("switchboard.broadcast.room");

let signal = null;
let publisher = null;
let stream = null;
let stopQuality = () => {};
// For people debugging, and the tests.
window.switchboard = {
  get signal() { return signal; }, get pc() { return publisher?.pc; }, get rosterUpdates() { return rosterUpdates; },
};

function setViewers(count, roster = []) {
  $("viewers").textContent = `${count} viewer${count === 1 ? "" : "s"}`;
  $("viewers").dataset.count = String(count);
  const others = roster.filter((u) => u !== me.user_id);
  $("roster").textContent = others.length ? others.map((u) => u.slice(0, 8)).join(", ") : "nobody yet";
  $("roster").dataset.users = others.join(" ");
}

let publishing = null; // the publish under way: a failure seen twice (here and by the SFU) restarts once

function publish(room) {
  publishing ??= (async () => {
    publisher?.close();
    stopQuality();
    const current = new Publisher(signal, room, signal.hello.ice_servers);
    publisher = current;
    current.pc.addEventListener("connectionstatechange", () => {
      if (current.pc.connectionState !== "failed" || publisher !== current) return;
      say("The media connection failed: restarting it…", "error");
      publish(room).then(() => say("You are live again.", "ok"), (err) => say(err.message, "error"));
    });
    await current.publish(stream);
    stopQuality = watchQuality(current.pc, qualityText($("quality")));
  })().finally(() => { publishing = null; });
  return publishing;
}

async function enter(room) {
  // A resumed session is still in its show; a new one creates it (or re-joins its own show).
  let answer;
  try {
    answer = await signal.request("show.create", { room });
  } catch (err) {
    if (err.code !== "conflict") throw err;
    answer = await signal.request("show.join", { room });
  }
  setViewers(answer.viewers, answer.roster);
  await publish(room);
}

async function start(room, title = "") {
  $("start").disabled = true;
  try {
    stream = await openCamera();
  } catch (err) {
    say(err.message, "error");
    $("start").disabled = false;
    return;
  }
  if (!room) {
    try {
      room = (await api("/rooms", { method: "POST", body: title ? { title } : {} })).room;
    } catch (err) {
      say(`Could not create the show: ${explain(err)}`, "error");
      for (const track of stream.getTracks()) track.stop();
      $("start").disabled = false;
      return;
    }
  }
  try {
    // Before the show starts: a show is paid or free as its room's price is when it starts.
    if ($("price")?.value) await setTicketPrice(room, $("price").value);
  } catch (err) {
    say(`Could not set the ticket price: ${explain(err)}`, "error");
  }
  play($("preview"), stream);
  signal = new Signal({
    resumeKey: `switchboard.resume.broadcast.${room}`,
    getToken: (hint) => api(`/rooms/${encodeURIComponent(room)}/token`, { method: "POST", body: { role: "broadcaster", ...hint } }),
  });
  signal.on("show.roster", (m) => { if (m.room === room) { rosterUpdates += 1; setViewers(m.viewers, m.roster); } });
  new ShowChat(signal, room, $("chat"), { me: me.user_id, moderate: true, pinned: $("pinned") });
  showGifts(signal, room, $("chat"), me.user_id);
  signal.on("show.ended", (m) => { if (m.room === room) stop(`The show ended (${m.reason}).`); });
  signal.on("show.peer_closed", (m) => { if (m.room === room) publish(room).catch((err) => say(err.message, "error")); });
  showConnection(signal, (resumed) => {
    // After a blip the media usually survived; a lost session must create the show again.
    if (!resumed) enter(room).catch((err) => say(`Could not restart the show: ${err.message}`, "error"));
  });
  try {
    await signal.connect();
    await enter(room);
  } catch (err) {
    say(err.code ? `Could not start the show: ${err.message}` : explain(err), "error");
    signal.close();
    $("start").disabled = false;
    return;
  }
  sessionStorage.setItem("switchboard.broadcast.room", room);
  const link = new URL(`/watch/${encodeURIComponent(room)}`, location.href).href;
  $("share").href = link;
  $("share").textContent = link;
  $("share").dataset.room = room;
  $("setup").hidden = true;
  $("live").hidden = false;
  say("You are live.", "ok");
}

function stop(message) {
  stopQuality();
  publisher?.close();
  signal?.close();
  for (const track of stream?.getTracks() || []) track.stop();
  sessionStorage.removeItem("switchboard.broadcast.room");
  $("live").hidden = true;
  $("setup").hidden = false;
  $("start").disabled = false;
  say(message, "info");
}

$("setup").addEventListener("submit", (event) => {
  event.preventDefault();
  start(null, $("title").value.trim());
});
$("camera").addEventListener("click", () => { $("camera").textContent = toggle(stream, "video") ? "Camera off" : "Camera on"; });
$("mic").addEventListener("click", () => { $("mic").textContent = toggle(stream, "audio") ? "Mute" : "Unmute"; });
$("end").addEventListener("click", async () => {
  const room = publisher?.room;
  await signal.request("show.end", { room }).catch(() => {});
  stop("You ended the show.");
});
chatForm($("chat-form"), (text) => signal.request("show.chat", { room: publisher.room, text }));

// A reload while live: resume the same show.
if (saved && sessionStorage.getItem(`switchboard.resume.broadcast.${saved}`)) start(saved);
