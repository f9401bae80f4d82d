// /earnings: a creator's prices (default ticket, per-minute call price), earnings balance and
// history, and a payout request (recorded in the ledger; docs/payments.md).

import { api, explain, requireLogin } from "./lib/api.js";
import { mountHeader } from "./lib/header.js";
import { $, say } from "./lib/ui.js";

requireLogin();
mountHeader();

const KINDS = { ticket: "Ticket", gift: "Gift", call_minute: "Call minute", post: "Call minute", tip: "Tip",
  ppv: "Pay-per-view", payout: "Payout", ticket_refund: "Ticket refunded", reversal: "Reversed" };

function credits(n) {
  return `${n} credit${Math.abs(n) === 1 ? "" : "s"}`;
}

async function loadPrices() {
  const prices = await api("/me/prices");
  $("ticket_price").value = String(prices.ticket_price);
  $("call_price").value = String(prices.call_price);
}

async function loadEarnings() {
  const earnings = await api("/payments/earnings");
  $("available").textContent = credits(earnings.available);
  $("available").dataset.credits = String(earnings.available);
  $("share").textContent = `(you earn ${earnings.share_percent} % of what is spent on you)`;
  $("history").replaceChildren(...earnings.history.map((row) => {
    const li = document.createElement("li");
    li.dataset.kind = row.kind;
    const when = new Date(row.at).toLocaleString();
    li.textContent = `${when} · ${KINDS[row.kind] || row.kind} · ${row.amount > 0 ? "+" : ""}${credits(row.amount)}`;
    return li;
  }));
}

function whole(input) {
  const value = Number(input.value || 0);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${input.labels?.[0]?.textContent || input.name}: a whole number of credits`);
  return value;
}

$("prices").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await api("/me/prices", { method: "PUT", body: { ticket_price: whole($("ticket_price")), call_price: whole($("call_price")) } });
    say("Prices saved.", "ok");
  } catch (err) {
    say(explain(err), "error");
  }
});

$("payout").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const answer = await api("/payments/payouts", { method: "POST", body: { credits: whole($("payout-credits")) } });
    say(`Payout of ${credits(answer.credits)} requested.`, "ok");
    await loadEarnings();
  } catch (err) {
    say(explain(err), "error");
  }
});

try {
  await Promise.all([loadPrices(), loadEarnings()]);
} catch (err) {
  say(explain(err), "error");
}
