// /admin: the moderators' console. Tabs: dashboard (counters, DAU/WAU/MAU), reports (filter, open
// one with its context, evidence clip and the user's sanction history, claim, act: warn, mute or ban
// 1h/24h/30d/permanent, or dismiss), live (invisible taps, saved clips: lib/live.js), sanctions
// (active ones, lift, any user's history) and the audit log.
// The API decides who may use it (the role is read from its database): others get 403 everywhere.

import { api, explain, objectUrl, requireLogin } from "./lib/api.js";
import { mountHeader } from "./lib/header.js";
import { startLive } from "./lib/live.js";
import { fillReasons } from "./lib/report.js";
import { $, say } from "./lib/ui.js";

const me = requireLogin();
mountHeader();
fillReasons($("filter-reason"));
const TABS = ["dashboard", "reports", "live", "sanctions", "audit"];
const loaders = { dashboard: loadDashboard, reports: () => loadReports(), live: openLive, sanctions: loadSanctions,
  audit: () => loadAudit() };
let liveStarted = false;
let current = null; // the open report
let reportCursor = null;
let auditCursor = null;

function el(tag, text = "", attrs = {}) {
  const node = document.createElement(tag);
  if (text !== "") node.textContent = text;
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function row(body, cells, attrs = {}) {
  const tr = el("tr", "", attrs);
  for (const c of cells) {
    const td = el("td");
    if (c instanceof Node) td.append(c); else td.textContent = c ?? "";
    tr.append(td);
  }
  body.append(tr);
  return tr;
}

function button(text, onClick, cls = "secondary") {
  const b = el("button", text, { type: "button", class: cls });
  b.addEventListener("click", () => onClick().catch((err) => say(explain(err), "error")));
  return b;
}

const short = (id) => (id ? id.slice(0, 8) : "—");
const when = (iso) => (iso ? iso.slice(0, 16).replace("T", " ") : "until lifted");

function tab() {
  const name = location.hash.slice(1);
  return TABS.includes(name) ? name : "dashboard";
}

async function showTab() {
  const name = tab();
  for (const t of TABS) $(`tab-${t}`).hidden = t !== name;
  for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("active", a.dataset.tab === name);
  await loaders[name]();
}

async function openLive() {
  if (liveStarted) return;
  liveStarted = true;
  await startLive();
}

async function loadDashboard() {
  const s = await api("/moderation/stats");
  const figures = $("figures");
  figures.replaceChildren();
  const add = (label, value, key) => {
    const box = el("div", "", { class: "figure", "data-figure": key });
    box.append(el("b", String(value)), el("span", label));
    figures.append(box);
  };
  add("open reports", s.reports.open, "open");
  add("in review", s.reports.in_review, "in_review");
  add("reports today", s.reports.today, "today");
  add("active bans", s.sanctions_active.ban, "bans");
  add("active mutes", s.sanctions_active.mute, "mutes");
  add("daily active", s.active_users.dau, "dau");
  add("weekly active", s.active_users.wau, "wau");
  add("monthly active", s.active_users.mau, "mau");
  const body = $("actions");
  body.replaceChildren();
  const actions = Object.entries(s.actions_today);
  if (!actions.length) row(body, ["No moderator action yet today."]);
  for (const [who, n] of actions) row(body, [who === me.user_id ? "you" : short(who), String(n)]);
}

async function loadReports(more = false) {
  const query = new URLSearchParams({ limit: "20" });
  if ($("filter-status").value) query.set("status", $("filter-status").value);
  if ($("filter-reason").value) query.set("reason", $("filter-reason").value);
  if (more && reportCursor) query.set("before", String(reportCursor));
  const { items, next_cursor: next } = await api(`/moderation/reports?${query}`);
  const body = $("report-rows");
  if (!more) body.replaceChildren();
  if (!items.length && !more) row(body, ["No report here."]);
  for (const r of items) {
    const about = r.context === "message" ? `message ${r.message_id}` : r.session_id ? `session ${r.session_id}`
      : r.room ? `show ${r.room}` : "profile";
    const status = r.status === "in_review" ? `in review (${r.claimed_by === me.user_id ? "you" : short(r.claimed_by)})`
      : r.status;
    row(body, [String(r.id), r.reason, `${short(r.user_id)} · ${about}`, status,
      button("Open", () => openReport(r.id))], { "data-report": String(r.id) });
  }
  reportCursor = next;
  $("reports-more").hidden = !next;
}

const CLIP_WAIT_MS = 60_000; // how long after a live report the console expects its clip

async function openReport(id, scroll = true) {
  const r = await api(`/moderation/reports/${id}`);
  current = r;
  const ctx = r.context_detail;
  const detail = $("report-detail");
  detail.replaceChildren();
  const item = (term, value) => detail.append(el("dt", term), el("dd", value));
  const target = ctx.target.profile?.pseudo ? `${ctx.target.profile.pseudo} (${short(r.user_id)})` : r.user_id;
  item("Reported user", target);
  item("Reason", r.reason + (r.comment ? ` — “${r.comment}”` : ""));
  item("Where", r.context === "message" ? "a chat message" : r.session_id ? `call or random chat ${r.session_id}`
    : r.room ? `show ${r.room}` : "their profile");
  if (ctx.message) item("Message", ctx.message.text);
  item("Status", r.status + (r.claimed_by ? ` (claimed by ${r.claimed_by === me.user_id ? "you" : short(r.claimed_by)})` : ""));
  item("Earlier reports", ctx.prior_reports.length ? ctx.prior_reports.map((p) => `${p.reason} (${p.status})`).join(", ") : "none");
  item("Sanctions", ctx.sanctions.length
    ? ctx.sanctions.map((s) => `${s.kind}${s.active ? " (active)" : ""} ${when(s.starts_at)}`).join(", ") : "none");
  const clip = $("report-clip");
  clip.hidden = !r.clip;
  if (clip.dataset.clip !== (r.clip?.id ?? "")) {  // a refresh of the same report keeps the player going
    if (clip.src.startsWith("blob:")) URL.revokeObjectURL(clip.src);
    // The clip is staff-only: fetched with the bearer token, played from a blob (a <video src> sends none).
    if (r.clip) clip.src = await objectUrl(r.clip.url.replace(/^\/api/, "")); else clip.removeAttribute("src");
    clip.dataset.clip = r.clip?.id ?? "";
  }
  const live = r.session_id || r.room;
  $("save-clip").hidden = !live || Boolean(r.clip);
  // A report on a live session makes its own clip a moment later (when the SFU carried it): look again.
  const fresh = Date.now() - Date.parse(r.created_at) < CLIP_WAIT_MS;
  $("clip-pending").hidden = !(live && !r.clip && fresh);
  if (live && !r.clip && fresh) {
    setTimeout(() => { if (current?.id === r.id && !current.clip) openReport(r.id, false).catch(() => {}); }, 1500);
  }
  if ($("report-history-box").dataset.user !== r.user_id) $("report-history-box").hidden = true;
  $("report-id").textContent = `#${r.id}`;
  $("report").hidden = false;
  $("report").dataset.status = r.status;
  const closed = r.status === "actioned" || r.status === "dismissed";
  for (const b of $("report-actions").querySelectorAll("button")) b.disabled = closed;
  $("claim").disabled = r.status !== "open";
  if (scroll) $("report").scrollIntoView();
}

async function act(kind, duration) {
  const reason = $("act-reason").value.trim();
  const sanction = { kind, ...(duration ? { duration } : {}), ...(reason ? { reason } : {}) };
  await api(`/moderation/reports/${current.id}/action`, { method: "POST", body: { sanction } });
  say(`Report #${current.id} actioned: ${kind}${duration ? ` ${duration}` : ""}.`, "ok");
  await Promise.all([openReport(current.id), loadReports()]);
  if (!$("report-history-box").hidden) await showHistory($("report-history-list"), current.user_id);
}

$("save-clip").addEventListener("click", async () => {
  const room = current.session_id || current.room;
  try {
    await api("/moderation/clips", { method: "POST", body: { room, report_id: current.id } });
    say(`Clip of ${room} saved with report #${current.id}.`, "ok");
    await openReport(current.id);
  } catch (err) {
    say(err.status === 404 ? "No media of that session on any node: it ended, or never ran through the SFU."
      : explain(err), "error");
  }
});

$("claim").addEventListener("click", () => api(`/moderation/reports/${current.id}/claim`, { method: "POST" })
  .then(() => {
    say(`You are reviewing report #${current.id}.`, "ok");
    return Promise.all([openReport(current.id), loadReports()]);
  })
  .catch((err) => say(explain(err), "error")));
$("dismiss").addEventListener("click", () => api(`/moderation/reports/${current.id}/dismiss`, { method: "POST", body: {} })
  .then(() => { say(`Report #${current.id} dismissed.`, "ok"); return Promise.all([openReport(current.id), loadReports()]); })
  .catch((err) => say(explain(err), "error")));
for (const b of $("report-actions").querySelectorAll("button[data-kind]")) {
  b.addEventListener("click", () => act(b.dataset.kind, b.dataset.duration).catch((err) => say(explain(err), "error")));
}
$("filter-status").addEventListener("change", () => loadReports().catch((err) => say(explain(err), "error")));
$("filter-reason").addEventListener("change", () => loadReports().catch((err) => say(explain(err), "error")));
$("reports-more").addEventListener("click", () => loadReports(true).catch((err) => say(explain(err), "error")));

/** A sanction in a history: kind and length, when, why, and whether it is in force, lifted or over. */
function historyItem(s) {
  const length = s.kind === "warning" ? "" : s.ends_at ? ` until ${when(s.ends_at)}` : " until lifted";
  const inForce = s.active && s.kind !== "warning"; // a warning is a notice: given, never "in force"
  const state = s.lifted_at
    ? `lifted ${when(s.lifted_at)} by ${s.lifted_by === me.user_id ? "you" : short(s.lifted_by)}${s.lift_reason ? `: “${s.lift_reason}”` : ""}`
    : s.kind === "warning" ? "given" : inForce ? "active" : "ended";
  const by = s.created_by === me.user_id ? "you" : short(s.created_by);
  const li = el("li", `${s.kind}${length} · from ${when(s.starts_at)} by ${by} · ${s.reason || "no reason given"} · ${state}`,
    { "data-sanction": String(s.id), "data-kind": s.kind, "data-active": String(inForce) });
  if (s.report_id) li.append(` · report #${s.report_id}`);
  return li;
}

/** Every sanction of one user, newest first, lifted and ended ones too (the API keeps the last 200). */
async function showHistory(list, accountId) {
  const { items } = await api(`/moderation/accounts/${encodeURIComponent(accountId)}/sanctions`);
  list.replaceChildren(...(items.length ? items.map(historyItem) : [el("li", "No sanction, ever.")]));
  return items;
}

$("report-history").addEventListener("click", () => {
  const box = $("report-history-box");
  showHistory($("report-history-list"), current.user_id)
    .then(() => { box.hidden = false; box.dataset.user = current.user_id; box.scrollIntoView(); })
    .catch((err) => say(explain(err), "error"));
});

async function openHistory(accountId) {
  $("history-user").value = accountId;
  await showHistory($("history-list"), accountId);
  $("history-of").textContent = accountId;
  $("history-box").hidden = false;
  $("history-box").scrollIntoView();
}

$("history-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = $("history-user").value.trim();
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) {
    say("A user's id is their full id (36 characters, as on their profile's address /u/<id>).", "error");
    return;
  }
  openHistory(id).catch((err) => say(err.status === 404 ? "No such user." : explain(err), "error"));
});

async function loadSanctions() {
  const { items } = await api("/moderation/sanctions");
  const body = $("sanction-rows");
  body.replaceChildren();
  if (!items.length) row(body, ["No active sanction."]);
  for (const s of items) {
    const lift = s.kind === "warning" ? "" : button("Lift", async () => {
      const reason = $("lift-reason").value.trim() || "lifted from the console";
      await api(`/moderation/sanctions/${s.id}/lift`, { method: "POST", body: { reason } });
      say(`The ${s.kind} of ${short(s.account_id)} was lifted.`, "ok");
      await loadSanctions();
    });
    const actions = el("span");
    actions.append(button("History", () => openHistory(s.account_id)));
    if (lift) actions.append(lift);
    row(body, [s.kind, short(s.account_id), when(s.ends_at), s.reason, actions], { "data-sanction": String(s.id) });
  }
}

async function loadAudit(more = false) {
  const query = new URLSearchParams({ limit: "30" });
  if ($("audit-action").value) query.set("action", $("audit-action").value);
  if (more && auditCursor) query.set("before", String(auditCursor));
  const { items, next_cursor: next } = await api(`/moderation/audit?${query}`);
  const body = $("audit-rows");
  if (!more) body.replaceChildren();
  for (const e of items) {
    row(body, [when(e.at), e.actor_id === me.user_id ? "you" : short(e.actor_id), e.action, e.subject],
      { "data-action": e.action });
  }
  auditCursor = next;
  $("audit-more").hidden = !next;
}
$("audit-action").addEventListener("change", () => loadAudit().catch((err) => say(explain(err), "error")));
$("audit-more").addEventListener("click", () => loadAudit(true).catch((err) => say(explain(err), "error")));

window.addEventListener("hashchange", () => showTab().catch((err) => say(explain(err), "error")));
try {
  await api("/moderation/stats"); // one question decides: staff or not (the API re-reads the role)
  await showTab();
} catch (err) {
  for (const t of TABS) $(`tab-${t}`).hidden = true;
  if (err.status === 403) say("Only moderators can use this console.", "error");
  else say(explain(err), "error");
}
