// /wallet: my credits (available and held), buying a credit pack with a card (Stripe.js, or its
// stand-in under --stripe-emulator; 3-D Secure and declines said plainly), the history of my
// wallet ten at a time, and premium (upgrade with a card, cancel, Stripe's billing portal).
// Credits bought with 3-D Secure arrive by Stripe's webhook: the page hears {"type": "wallet"}.

import { api, ApiError, explain } from "./lib/api.js";
import { cardPayments } from "./lib/card.js";
import { startSocialPage } from "./lib/social.js";
import { $, say } from "./lib/ui.js";

const PAGE = 10;
const { signal } = await startSocialPage("wallet");
let cursor = null; // the seq of the oldest movement shown
let catalogue = null;
let card = null;
let stripe = null;

const KINDS = {
  purchase: (m) => `Bought ${m.pack ? `the ${m.pack} pack` : "credits"}`,
  ppv: () => "Unlocked a private image",
  tip: () => "Tip",
  gift: () => "Gift",
  ticket: () => "Show ticket",
  refund: () => "Refund of a purchase",
  dispute: () => "Disputed payment",
  dispute_won: () => "Dispute won",
  reversal: () => "Given back",
  expire: () => "Hold returned",
  void: () => "Hold returned",
};

function money(minor) {
  return new Intl.NumberFormat(undefined, { style: "currency", currency: catalogue.currency.toUpperCase() }).format(minor / 100);
}

async function showBalance() {
  const wallet = await api("/wallet?limit=1");
  $("balance").textContent = String(wallet.available);
  $("held").textContent = wallet.held ? `(${wallet.held} held)` : "";
  return wallet.available;
}

function historyRow(item) {
  const tr = document.createElement("tr");
  Object.assign(tr.dataset, { seq: item.seq, op: operationOf(item), phase: item.phase, amount: item.amount });
  const what = (KINDS[item.kind] || (() => item.kind))(item.meta || {}) + (item.phase === "pending" ? " (held)" : "");
  const amount = document.createElement("td");
  amount.className = `num ${item.amount < 0 ? "minus" : "plus"}`;
  amount.textContent = item.amount > 0 ? `+${item.amount}` : String(item.amount);
  tr.append(Object.assign(document.createElement("td"), { textContent: new Date(item.at).toLocaleString() }),
    Object.assign(document.createElement("td"), { textContent: what }), amount);
  return tr;
}

/** The operation a transfer belongs to: a spend is two transfers (the creator's share and the
 * platform's, `<op>#c` and `<op>#p`), shown as one row. */
function operationOf(item) {
  return item.id.split("#")[0];
}

async function loadHistory(more = false) {
  const query = `limit=${PAGE}${more && cursor ? `&before=${cursor}` : ""}`;
  const { history } = await api(`/wallet?${query}`);
  if (!more) $("history").replaceChildren();
  for (const item of history) {
    const last = $("history").lastElementChild;
    if (last && last.dataset.op === operationOf(item) && last.dataset.phase === item.phase) {
      const total = Number(last.dataset.amount) + item.amount;
      last.replaceWith(historyRow({ ...item, amount: total }));
    } else {
      $("history").append(historyRow(item));
    }
  }
  if (history.length) cursor = history[history.length - 1].seq;
  $("history-none").hidden = $("history").children.length > 0;
  $("older").hidden = history.length < PAGE;
}

async function refresh() {
  await Promise.all([showBalance(), loadHistory(false)]);
}

function chosenPack() {
  return document.querySelector("input[name=pack]:checked")?.value;
}

async function paymentMethod() {
  const { paymentMethod: pm, error } = await stripe.createPaymentMethod({ type: "card", card });
  if (error) throw new Error(error.message);
  return pm.id;
}

async function waitForCredits(before, credits) {
  // The webhook credits a 3-D Secure payment a moment later; the socket says so, and this also polls.
  for (let i = 0; i < 40; i++) {
    if (await showBalance() >= before + credits) return true;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return false;
}

async function buy() {
  const name = chosenPack();
  const pack = catalogue.packs.find((p) => p.name === name);
  if (!pack) throw new Error("Choose a pack.");
  const before = Number($("balance").textContent) || 0;
  say("Paying…", "info");
  const pm = await paymentMethod();
  let intent;
  try {
    intent = await api(`/payments/credit-packs/${pack.name}/intent`, { method: "POST", body: { payment_method: pm } });
  } catch (err) {
    if (err instanceof ApiError && err.status === 402) {
      say(`Card declined: ${err.message}. Nothing was charged; try another card.`, "error");
      return;
    }
    throw err;
  }
  if (intent.status === "requires_action") {
    say("Your bank asks for 3-D Secure…", "info");
    const { error } = await stripe.confirmCardPayment(intent.client_secret);
    if (error) {
      say(`3-D Secure failed: ${error.message}. Nothing was charged.`, "error");
      return;
    }
    say("Authenticated: waiting for the payment to be confirmed…", "info");
    if (!await waitForCredits(before, pack.credits)) {
      say("The payment went through; the credits will appear in a moment.", "info");
      return;
    }
  } else if (intent.status !== "succeeded") {
    say(`The payment did not complete (${intent.status}).`, "error");
    return;
  }
  say(`Bought ${pack.credits} credits.`, "ok");
  await refresh();
}

function showPacks() {
  const rows = catalogue.packs.map((p, i) => {
    const label = document.createElement("label");
    label.className = "pack";
    const radio = Object.assign(document.createElement("input"), { type: "radio", name: "pack", value: p.name, checked: i === 0 });
    label.append(radio, ` ${p.credits} credits · ${money(p.price)}`);
    label.dataset.pack = p.name;
    return label;
  });
  $("packs").replaceChildren(Object.assign(document.createElement("legend"), { textContent: "Pack" }), ...rows);
}

async function showPremium() {
  const status = await api("/payments/premium");
  const sub = status.subscription;
  $("premium-status").textContent = status.premium ? "Premium" : "Free";
  $("premium-status").classList.toggle("premium", status.premium);
  $("premium-text").textContent = status.premium
    ? `Active${sub?.current_period_end ? ` until ${new Date(sub.current_period_end * 1000).toLocaleDateString()}` : ""}: filters and a higher rate limit.`
    : `${money(catalogue.premium.price)} a month: age, distance and tag filters in random chat, a higher rate limit.${sub ? ` (last subscription: ${sub.status})` : ""}`;
  $("upgrade").hidden = status.premium;
  $("cancel").hidden = !status.premium;
  $("portal").hidden = !status.premium;
}

async function upgrade() {
  say("Subscribing…", "info");
  try {
    await api("/payments/premium", { method: "POST", body: { payment_method: await paymentMethod() } });
    say("Welcome to premium.", "ok");
  } catch (err) {
    say(err instanceof ApiError && err.status === 402 ? `Card declined: ${err.message}` : `Not subscribed: ${explain(err)}`, "error");
  }
  await showPremium();
}

function act(button, work) {
  $(button).addEventListener("click", async () => {
    $(button).disabled = true;
    try { await work(); } catch (err) { say(explain(err), "error"); } finally { $(button).disabled = false; }
  });
}

signal.on("wallet", () => refresh().catch(() => {}));
signal.on("premium", () => showPremium().catch(() => {}));
act("older", () => loadHistory(true));
$("buy").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("pay").disabled = true;
  try { await buy(); } catch (err) { say(`Not bought: ${explain(err)}`, "error"); } finally { $("pay").disabled = false; }
});
act("upgrade", upgrade);
act("cancel", async () => {
  await api("/payments/premium", { method: "DELETE" });
  say("Premium is cancelled.", "ok");
  await showPremium();
});
act("portal", async () => {
  try {
    location.assign((await api("/payments/premium/portal", { method: "POST" })).url);
  } catch (err) {
    say(err.status === 503 ? `The billing portal is not available here: ${err.message}` : explain(err), "error");
  }
});

try {
  catalogue = await (await fetch("/api/payments/catalogue")).json();
  await refresh();
  showPacks();
  ({ stripe } = await cardPayments(catalogue));
  card = stripe.elements().create("card");
  card.mount($("card"));
  $("pay").disabled = false;
  await showPremium();
} catch (err) {
  if (err instanceof ApiError && err.status === 404) {
    $("buy").hidden = true;
    $("payments-off").hidden = false;
  } else {
    say(explain(err), "error");
  }
}
