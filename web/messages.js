// /messages: conversations with unread counts; a thread (30 at a time, "Older messages" pages back)
// with read receipts and image attachments (private ones blurred; a priced one is unlocked by paying
// its price: pay-per-view, docs/payments.md); groups (create, add members). New messages and read
// receipts arrive on the node's socket (chat.message, chat.read: docs/api.md, Realtime).

import { api, explain, objectUrl, upload } from "./lib/api.js";
import { reportToggle } from "./lib/report.js";
import { startSocialPage } from "./lib/social.js";
import { $, say } from "./lib/ui.js";
import { avatar, nameOf, profile } from "./lib/users.js";

const PAGE = 30;
const { me, signal, header } = await startSocialPage("messages");
let open = null; // {conv, cursor, newest}
const shown = new Set(); // message ids in the open thread

async function visibleMembers(conv) {
  const others = conv.members.filter((m) => m.user_id !== me.user_id);
  const people = await Promise.all(others.map((m) => profile(m.user_id).catch(() => null)));
  return people.filter(Boolean); // a blocked or deleted member is never shown
}

async function titleOf(conv) {
  if (conv.kind === "group" && conv.title) return conv.title;
  const names = (await visibleMembers(conv)).map(nameOf);
  return names.join(", ") || "(nobody)";
}

async function loadList() {
  const { items } = await api("/conversations?limit=50");
  const rows = await Promise.all(items.map(async (conv) => {
    const li = document.createElement("li");
    li.dataset.conv = conv.id;
    const link = document.createElement("a");
    link.href = `#${conv.id}`;
    const people = await visibleMembers(conv);
    link.append(people.length === 1 ? avatar(people[0]) : "", ` ${await titleOf(conv)}`);
    const badge = document.createElement("span");
    badge.className = "badge unread";
    badge.textContent = String(conv.unread);
    badge.hidden = !conv.unread;
    badge.setAttribute("aria-label", `${conv.unread} unread`);
    li.append(link, badge);
    return li;
  }));
  $("convs").replaceChildren(...rows);
  $("convs-none").hidden = rows.length > 0;
}

function receipt(msg) {
  if (msg.sender_id !== me.user_id) return "";
  const readers = open.conv.members.filter((m) => m.user_id !== me.user_id && m.last_read_id >= msg.id);
  if (!readers.length) return "Sent";
  return open.conv.kind === "direct" ? "Seen" : `Seen by ${readers.length}`;
}

async function messageItem(msg) {
  const li = document.createElement("li");
  li.dataset.id = msg.id;
  const mine = msg.sender_id === me.user_id;
  li.className = mine ? "mine" : "";
  if (!mine && open.conv.kind === "group") {
    const who = await profile(msg.sender_id).catch(() => null);
    if (!who) return null;
    li.append(Object.assign(document.createElement("b"), { textContent: `${nameOf(who)}: ` }));
  }
  li.append(msg.text || "");
  for (const att of msg.attachments || []) li.append(attachmentView(att));
  const r = document.createElement("span");
  r.className = "receipt";
  r.textContent = receipt(msg);
  li.append(r);
  // Someone else's message can be reported (the message's context: the console shows its text).
  if (!mine && msg.sender_id) li.append(reportToggle({ message_id: msg.id }, { notFound: "This message is not available any more." }));
  li.message = msg;
  return li;
}

function showImage(img, path, alt) {
  objectUrl(path.replace(/^\/api/, "")).then((url) => { img.src = url; img.alt = alt; })
    .catch(() => { img.alt = "image not available"; });
}

/** An attachment: the image; a private one not mine is its blurred preview, with an "Unlock" button
 * when it has a price (paying replaces the preview with the image). */
function attachmentView(att) {
  const box = document.createElement("figure");
  box.className = "attachment";
  box.dataset.media = att.media_id;
  const img = document.createElement("img");
  box.append(img);
  if (att.url) {
    showImage(img, att.url, "image attachment");
    if (att.price) box.append(caption(`Private · ${att.price} credits`));
    return box;
  }
  box.classList.add("locked");
  showImage(img, att.preview_url, "blurred private image");
  if (!att.price) {
    box.append(caption("Private image"));
    return box;
  }
  const unlock = Object.assign(document.createElement("button"), {
    type: "button", className: "unlock", textContent: `Unlock for ${att.price} credits`,
  });
  unlock.addEventListener("click", async () => {
    unlock.disabled = true;
    try {
      const paid = await api(att.unlock_url.replace(/^\/api/, ""), { method: "POST" });
      box.classList.remove("locked");
      showImage(img, paid.url, "image attachment");
      unlock.replaceWith(caption(`Unlocked · ${att.price} credits`));
      say("");
    } catch (err) {
      unlock.disabled = false;
      if (err.status === 402) {
        say(`Not enough credits to unlock this image (${att.price}): buy some on your wallet.`, "error");
        const link = Object.assign(document.createElement("a"), { href: "/wallet", textContent: " Open the wallet" });
        $("banner").append(link);
      } else {
        say(err.status === 404 ? "This image is not available any more." : explain(err), "error");
      }
    }
  });
  box.append(unlock);
  return box;
}

function caption(text) {
  return Object.assign(document.createElement("figcaption"), { textContent: text });
}

function refreshReceipts() {
  for (const li of $("thread").querySelectorAll("li.mine")) li.querySelector(".receipt").textContent = receipt(li.message);
}

async function markRead() {
  if (!open || !open.newest || document.visibilityState !== "visible") return;
  await api(`/conversations/${open.conv.id}/read`, { method: "POST", body: { message_id: open.newest } });
  await header.refreshMessages();
}

async function append(msg) {
  if (shown.has(msg.id)) return;
  shown.add(msg.id);
  const li = await messageItem(msg);
  if (!li) return;
  $("thread").append(li);
  $("thread").scrollTop = $("thread").scrollHeight;
  open.newest = Math.max(open.newest || 0, msg.id);
}

async function older() {
  const query = `limit=${PAGE}${open.cursor ? `&before=${open.cursor}` : ""}`;
  const page = await api(`/conversations/${open.conv.id}/messages?${query}`);
  const items = [];
  for (const msg of page.items.reverse()) {
    if (shown.has(msg.id)) continue;
    shown.add(msg.id);
    const li = await messageItem(msg);
    if (li) items.push(li);
    open.newest = Math.max(open.newest || 0, msg.id);
  }
  const before = $("thread").scrollHeight;
  $("thread").prepend(...items);
  $("thread").scrollTop += $("thread").scrollHeight - before; // keep what was in view
  open.cursor = page.next_cursor;
  $("older").hidden = !open.cursor;
}

async function openThread(id) {
  shown.clear();
  $("thread").replaceChildren();
  try {
    open = { conv: await api(`/conversations/${id}`), cursor: null, newest: 0 };
  } catch (err) {
    open = null;
    say(err.status === 404 ? "This conversation is not available." : explain(err), "error");
    return;
  }
  $("thread-title").textContent = await titleOf(open.conv);
  $("add").hidden = open.conv.kind !== "group";
  $("list").hidden = true;
  $("thread-box").hidden = false;
  await older();
  $("thread").scrollTop = $("thread").scrollHeight;
  await markRead();
  await loadList();
  // The composer takes the focus unless the reader already put it somewhere (a Report picker opened
  // while the list was still loading must keep it).
  if (!document.activeElement || document.activeElement === document.body) $("text").focus();
}

function closeThread() {
  open = null;
  $("thread-box").hidden = true;
  $("list").hidden = false;
  loadList().catch((err) => say(explain(err), "error"));
}

async function idForPseudo(pseudo) {
  const { items } = await api(`/search/users?q=${encodeURIComponent(pseudo)}&limit=5`);
  const found = items.find((u) => u.pseudo?.toLowerCase() === pseudo.toLowerCase());
  if (!found) throw new Error(`Nobody is called “${pseudo}”.`);
  return found.id;
}

signal.on("chat.message", async ({ message }) => {
  if (open && message.conversation_id === open.conv.id) {
    await append(message);
    await markRead().catch(() => {});
  } else {
    await loadList().catch(() => {});
  }
});
signal.on("chat.read", ({ conversation_id: convId, user_id: userId, message_id: read }) => {
  if (!open || convId !== open.conv.id) return;
  const member = open.conv.members.find((m) => m.user_id === userId);
  if (member) member.last_read_id = Math.max(member.last_read_id, read);
  refreshReceipts();
});
document.addEventListener("visibilitychange", () => markRead().catch(() => {}));

$("send").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("text").value.trim();
  const file = $("attach").files[0];
  if (!text && !file) return;
  const body = {};
  if (text) body.text = text;
  try {
    if (file) {
      const item = { media_id: (await upload("/media", file)).id };
      const price = $("price").value.trim();
      if (price) {
        if (!/^[0-9]+$/.test(price) || Number(price) < 1) throw new Error("A price is a whole number of credits (1 or more).");
        item.price = Number(price);
      } else if ($("private").checked) {
        item.private = true;
      }
      body.attachments = [item];
    }
    const msg = await api(`/conversations/${open.conv.id}/messages`, { method: "POST", body });
    $("text").value = "";
    $("attach").value = "";
    $("price").value = "";
    $("private").checked = false;
    say("");
    await append(msg);
  } catch (err) {
    say(err.status === 404 ? "You cannot message this conversation any more." : `Not sent: ${explain(err)}`, "error");
  }
});
$("older").addEventListener("click", () => older().catch((err) => say(explain(err), "error")));
$("back").addEventListener("click", () => { history.pushState(null, "", "/messages"); closeThread(); });
$("group").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const names = $("group-members").value.split(",").map((s) => s.trim()).filter(Boolean);
    if (!names.length) throw new Error("Name at least one person.");
    const members = await Promise.all(names.map(idForPseudo));
    const conv = await api("/conversations", { method: "POST", body: { members, title: $("group-title").value.trim() || "Group" } });
    location.hash = conv.id;
  } catch (err) {
    say(explain(err), "error");
  }
});
$("add").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const id = await idForPseudo($("add-member").value.trim());
    open.conv = await api(`/conversations/${open.conv.id}/members`, { method: "POST", body: { members: [id] } });
    $("add-member").value = "";
    say("Added.", "ok");
  } catch (err) {
    say(err.status === 404 ? "You cannot add this person." : explain(err), "error");
  }
});

async function route() {
  const id = location.hash.slice(1);
  if (id) await openThread(id);
  else closeThread();
}
window.addEventListener("hashchange", () => route().catch((err) => say(explain(err), "error")));
await loadList().catch((err) => say(explain(err), "error"));
await route().catch((err) => say(explain(err), "error"));
