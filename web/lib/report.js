// Reporting a user, the same everywhere (a profile, a random-chat match, a show, a message): the
// API's closed set of reasons (control_api/reports.py REASONS) picked beside a Report button, and
// the one POST /api/reports with the place it was made from (its context).

import { api, explain } from "./api.js";
import { say } from "./ui.js";

/** [value, label]: the API refuses any other value. */
export const REASONS = [
  ["harassment", "Harassment"],
  ["nudity_minor", "Nudity or a minor"],
  ["spam_scam", "Spam or scam"],
  ["hate_violence", "Hate or violence"],
  ["other", "Something else"],
];

export const THANKS = "Thank you: the moderators will look at it.";

/** Appends the reasons to a <select> (after what it holds, e.g. the console's "Any reason"). */
export function fillReasons(select) {
  for (const [value, label] of REASONS) select.append(new Option(label, value));
  return select;
}

/**
 * Wires a page's reason <select> and Report button. `context()` gives the report's place
 * ({user_id}, {user_id, session_id}, {user_id, room} or {message_id}), or null when there is nothing
 * to report now; `notFound` is what a 404 means on that page.
 */
export function wireReport(select, button, context, notFound = "There is nobody to report here any more.") {
  fillReasons(select);
  button.addEventListener("click", async () => {
    const where = await context();
    if (!where) return;
    button.disabled = true;
    try {
      await sendReport(where, select.value, notFound);
    } finally {
      button.disabled = false;
    }
  });
}

/** Sends one report and says how it went in the page's banner; resolves true when it was taken. */
export async function sendReport(where, reason, notFound = "There is nobody to report here any more.") {
  try {
    await api("/reports", { method: "POST", body: { ...where, reason } });
    say(THANKS, "ok");
    return true;
  } catch (err) {
    say(err.status === 404 ? notFound : `Could not report: ${explain(err)}`, "error");
    return false;
  }
}

/**
 * A Report button that opens, in place, a reason picker with "Send report" and "Cancel" (for a
 * list of many things, e.g. each message of a thread). `where` is the report's context.
 */
export function reportToggle(where, { notFound } = {}) {
  const box = document.createElement("span");
  box.className = "report-toggle";
  const open = Object.assign(document.createElement("button"), { type: "button", className: "small secondary report", textContent: "Report" });
  const form = document.createElement("span");
  form.className = "report-form";
  form.hidden = true;
  const select = fillReasons(document.createElement("select"));
  select.setAttribute("aria-label", "Report reason");
  const send = Object.assign(document.createElement("button"), { type: "button", className: "small danger", textContent: "Send report" });
  const cancel = Object.assign(document.createElement("button"), { type: "button", className: "small secondary", textContent: "Cancel" });
  form.append(select, send, cancel);
  const show = (shown) => {
    form.hidden = !shown;
    open.hidden = shown;
    (shown ? select : open).focus();
  };
  open.addEventListener("click", () => show(true));
  cancel.addEventListener("click", () => show(false));
  send.addEventListener("click", async () => {
    send.disabled = true;
    const taken = await sendReport(where, select.value, notFound);
    send.disabled = false;
    if (taken) {
      box.replaceChildren(Object.assign(document.createElement("span"), { className: "reported muted", textContent: "Reported" }));
    }
  });
  form.addEventListener("keydown", (e) => { if (e.key === "Escape") show(false); });
  box.append(open, form);
  return box;
}
