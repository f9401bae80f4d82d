// Small DOM helpers shared by the pages.

export const $ = (id) => document.getElementById(id);

/** Shows a message in the page's banner; kind is "info", "ok" or "error"; "" hides it. */
export function say(text, kind = "info") {
  const el = $("banner");
  el.textContent = text;
  el.className = `banner ${kind}`;
  el.hidden = !text;
}

/** Appends one chat line ("who: text"), keeps the newest in view, and returns it. */
export function chatLine(list, who, text) {
  const li = document.createElement("li");
  const name = document.createElement("b");
  name.textContent = who;
  li.append(name, document.createTextNode(` ${text}`));
  list.append(li);
  list.scrollTop = list.scrollHeight;
  return li;
}

/** Wires a chat form: `send(text)` is awaited; the field is cleared when it worked. */
export function chatForm(form, send) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = form.querySelector("input");
    const text = input.value.trim();
    if (!text) return;
    try {
      await send(text);
      input.value = "";
    } catch (err) {
      if (err.code === "rate_limited") say("Slow down: chat is rate limited.", "error");
      else if (err.code === "muted") say(`You cannot chat: ${err.message}.`, "error");
      else say(`Chat failed: ${err.message}`, "error");
    }
  });
}

/**
 * Mirrors the socket's state into the banner (reconnecting, lost) and calls `onReconnected(resumed,
 * detail)` after each reconnect (not after the first connect): resumed is false when the node had let
 * the session go, and the page must join again; `detail.overlap` is true after a drain's move whose
 * old socket is still open (a `makeBeforeBreak` signal): the page moves its media, then calls
 * `signal.moveDone()`. Such a move shows nothing: nothing stopped.
 */
export function showConnection(signal, onReconnected) {
  let connects = 0;
  showModeration(signal);
  signal.addEventListener("state", ({ detail }) => {
    if (detail.state === "reconnecting") say(`Connection lost, reconnecting (attempt ${detail.attempt})…`, "error");
    if (detail.state === "lost") say(`Connection lost: ${detail.reason}. Reload the page.`, "error");
    if (detail.state === "banned") say("This account is banned: you were disconnected.", "error");
    if (detail.state === "too_many_sockets") {
      say("Too many open tabs or devices on this account: close one, then reload.", "error");
    }
    if (detail.state === "connected" && connects++ > 0) {
      if (!detail.overlap) say(detail.resumed ? "Reconnected." : "Reconnected (new session).", "ok");
      onReconnected?.(detail.resumed, detail);
    }
  });
}

/** Shows the moderators' messages to this user (a warning, a mute and its lift) in the banner. */
export function showModeration(signal) {
  signal.on("moderation.warning", (m) => say(`Warning from the moderators: ${m.message}`, "error"));
  signal.on("moderation.muted", (m) => say(m.until
    ? `A moderator muted you until ${new Date(m.until * 1000).toLocaleString()}: you cannot chat meanwhile.`
    : "A moderator muted you: you cannot chat until they lift it.", "error"));
  signal.on("moderation.unmuted", () => say("Your mute was lifted: you can chat again.", "ok"));
}
