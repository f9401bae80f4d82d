// /watch/<room>: play a show, see its viewer count and chat. A reload within 15 s resumes. A drain's
// move is make-before-break: the show keeps playing from the draining node until the new node's
// connection has decoded its first frame (moveSubscriber, web/lib/show.js).

import { ApiError, api, explain, requireLogin } from "./lib/api.js";
import { mountHeader } from "./lib/header.js";
import { qualityText, watchQuality } from "./lib/media.js";
import { Subscriber, moveSubscriber } from "./lib/show.js";
import { Signal, jittered } from "./lib/signal.js";
import { ShowChat } from "./lib/show_chat.js";
import { $, chatForm, say, showConnection } from "./lib/ui.js";
import { giftButton, needsPayment, offerTicket, showGifts } from "./lib/paid.js";
import { wireReport } from "./lib/report.js";

const me = requireLogin();
const room = decodeURIComponent(location.pathname.split("/").pop());
const NOT_LIVE = "This show is not live (it has not started, or it ended).";
// After a lost node the show comes back on the node the API sends everyone to once its broadcaster's
// page has reconnected and published again: ask for it this long before calling the show over.
const REJOIN_WINDOW_MS = 20000;
$("title").textContent = room;
document.title = `${room} · Switchboard`;

let subscriber = null;
let owner = null; // the broadcaster (GET /api/rooms/<room>): who a report of this show is about
let stopQuality = () => {};
let moves = 0; // drains' moves done without a gap (the tests read it)
const signal = new Signal({
  makeBeforeBreak: true,
  resumeKey: `switchboard.resume.watch.${room}`,
  getToken: (hint) => api(`/rooms/${encodeURIComponent(room)}/token`, { method: "POST", body: { role: "viewer", ...hint } }),
});
// For people debugging, and the tests.
mountHeader({ signal });
window.switchboard = { signal, get pc() { return subscriber?.pc; }, get subscriber() { return subscriber; },
  get moves() { return moves; } };

function setViewers(count) {
  $("viewers").textContent = `${count} viewer${count === 1 ? "" : "s"}`;
  $("viewers").dataset.count = String(count);
}

async function subscribe() {
  stopQuality();
  subscriber?.close();
  subscriber = new Subscriber(signal, room, signal.hello.ice_servers, $("video"));
  await subscriber.subscribe();
  stopQuality = watchQuality(subscriber.pc, qualityText($("quality")));
}

/** A drain's move (the old socket still open): the show goes on from the new node, then the old
 *  connection and socket close. Anything wrong: join again the usual way. */
async function move() {
  const old = subscriber;
  try {
    if (!old || old.pc.connectionState === "closed") throw new Error("nothing playing to keep");
    const answer = await signal.request("show.join", { room });
    setViewers(answer.viewers);
    chat.pin(answer.pinned);
    // null: the show ended, or the page left or subscribed again meanwhile
    const next = await moveSubscriber(signal, room, old, $("video"), () => subscriber === old);
    if (!next) return;
    stopQuality();
    subscriber = next;
    stopQuality = watchQuality(next.pc, qualityText($("quality")));
    moves += 1;
  } catch (err) {
    signal.moveDone();
    if (subscriber !== old) return;
    if (old) console.warn("moving to the new node without a gap failed: joining again", err);
    await enter(Date.now() + REJOIN_WINDOW_MS);
  }
}

async function enter(waitUntil = 0) {
  let answer;
  try {
    answer = await signal.request("show.join", { room });
  } catch (err) {
    if (needsPayment(err)) {
      // A paid show: buy the ticket, then a new token carries it (the node checks it on show.join).
      await offerTicket(room, $("banner"));
      await signal.request("token.refresh", { token: await signal.getToken() });
      return enter();
    }
    if (err.code === "not_found" && Date.now() < waitUntil) {
      say("The show's server was lost: waiting for the broadcaster to come back…", "info");
      await new Promise((r) => setTimeout(r, jittered(1000)));
      return enter(waitUntil);
    }
    if (err.code === "not_found") {
      say(waitUntil ? "The show's server was lost and the broadcaster did not come back: the show is over."
        : NOT_LIVE, "info");
      return;
    }
    throw err;
  }
  setViewers(answer.viewers);
  chat.pin(answer.pinned);
  await subscribe();
  say("");
}

signal.on("show.roster", (m) => { if (m.room === room) setViewers(m.viewers); });
const chat = new ShowChat(signal, room, $("chat"), { me: me.user_id, pinned: $("pinned") });
showGifts(signal, room, $("chat"), me.user_id);
giftButton(room, $("gift-form"));
signal.on("show.ended", (m) => {
  if (m.room !== room) return;
  stopQuality();
  subscriber?.close();
  subscriber = null;
  if (m.reason === "removed") say("You were removed from this show.", "error");
  else say(m.reason === "owner left" ? "The broadcaster left: the show is over." : "The show is over.", "info");
});
signal.on("show.peer_closed", (m) => { if (m.room === room) subscribe().catch((err) => say(err.message, "error")); });
showConnection(signal, (resumed, { overlap }) => {
  // Resumed after a blip: the media connection usually survived; if not, subscribe again. A drain's
  // move (the old node still plays) moves the media without a gap. A new session (a lost node) joins
  // again, waiting a while for a show that is being restarted.
  if (overlap) move().catch((err) => say(err.message, "error"));
  else if (!resumed) enter(Date.now() + REJOIN_WINDOW_MS).catch((err) => say(err.message, "error"));
  else if (subscriber?.pc.connectionState === "failed") enter().catch((err) => say(err.message, "error"));
});

$("sound").addEventListener("click", () => {
  const video = $("video");
  video.muted = !video.muted;
  $("sound").textContent = video.muted ? "Sound on" : "Sound off";
});
$("leave").addEventListener("click", async () => {
  await signal.request("show.leave", { room }).catch(() => {});
  stopQuality();
  subscriber?.close();
  subscriber = null;
  signal.close();
  say("You left the show.", "info");
});
chatForm($("chat-form"), (text) => signal.request("show.chat", { room, text }));
// A report of the live show (the room's context): the API saves the show's last seconds as its clip.
wireReport($("report-reason"), $("report"), () => (owner ? { user_id: owner, room } : null),
  "This show's broadcaster is not available any more.");

try {
  // The room's owner and title; a room that does not exist (or whose owner we blocked) is never live.
  const info = await api(`/rooms/${encodeURIComponent(room)}`);
  owner = info.owner;
  $("report").hidden = $("report-reason").hidden = owner === me.user_id;
  if (info.title) {
    $("title").textContent = info.title;
    document.title = `${info.title} · Switchboard`;
  }
  let hello;
  try {
    hello = await signal.connect();
  } catch (err) {
    if (!needsPayment(err)) throw err;
    await offerTicket(room, $("banner")); // the room token is refused without a ticket (402)
    hello = await signal.connect();
  }
  // A reloaded page resumes its session: it is still in the show (and counted once); the old
  // page's peer connection is gone, so subscribe again (the node replaces the SFU peer).
  await enter();
  if (hello.resumed) say("Resumed.", "ok");
} catch (err) {
  if (err instanceof ApiError && err.status === 404) say(NOT_LIVE, "info");
  else say(err.code ? `Cannot watch: ${err.message}` : explain(err), "error");
}
