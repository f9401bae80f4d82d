// Paid live features on the pages (docs/payments.md): a ticket for a paid show, gifts in a show's
// chat, the price and running cost of a paid call, and the ticket price a broadcaster sets.

import { ApiError, api } from "./api.js";
import { chatLine, say } from "./ui.js";

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function credits(n) {
  return `${n} credit${n === 1 ? "" : "s"}`;
}

const SETTLE_MS = 1500;
const roomPath = (room) => `/rooms/${encodeURIComponent(room)}`;

/** True when `err` is the API's or the node's "pay first" answer. */
export function needsPayment(err) {
  return (err instanceof ApiError && err.status === 402) || err?.code === "payment_required";
}

/** Gifts appear in the show's chat list as they arrive (`show.gift` from the node). */
export function showGifts(signal, room, list, me) {
  signal.on("show.gift", (m) => {
    if (m.room !== room) return;
    const who = m.from === me ? "you" : (m.name || m.from.slice(0, 8));
    const li = chatLine(list, "Gift", `${who} sent a gift of ${credits(m.amount)}`);
    li.className = "gift";
    li.dataset.gift = m.id;
  });
}

/** The ticket offer of a paid show on /watch: the price, a button; resolves once bought. */
export async function offerTicket(room, where) {
  const info = await api(`${roomPath(room)}/price`);
  return new Promise((resolve) => {
    const button = el("button", { type: "button", id: "buy-ticket", textContent: `Buy a ticket (${credits(info.price)})` });
    const box = el("section", { id: "ticket", className: "card" },
      el("p", { textContent: "This show is paid: a ticket opens it (refunded if the show ends within minutes of its start)." }),
      button);
    where.before(box);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const ticket = await api(`${roomPath(room)}/ticket`, { method: "POST" });
        box.remove();
        say(`Ticket bought (${credits(ticket.price)}).`, "ok");
        resolve(ticket);
      } catch (err) {
        button.disabled = false;
        say(err.status === 402 ? "Not enough credits: buy some on your wallet page." : `Could not buy a ticket: ${err.message}`, "error");
      }
    });
  });
}

/** The gift form of /watch: an amount and a button; each gift carries its own idempotency key. */
export function giftButton(room, form) {
  const amount = el("input", { type: "number", id: "gift-amount", min: "1", step: "1", value: "10" });
  amount.setAttribute("aria-label", "Gift (credits)");
  const send = el("button", { type: "submit", id: "gift-send", textContent: "Send a gift" });
  form.replaceChildren(amount, send);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = Number(amount.value);
    if (!Number.isInteger(value) || value < 1) { say("A gift is a whole number of credits.", "error"); return; }
    send.disabled = true;
    try {
      await api(`${roomPath(room)}/gifts`, { method: "POST", body: { id: crypto.randomUUID(), amount: value } });
    } catch (err) {
      say(err.status === 402 ? "Not enough credits for this gift." : `Gift not sent: ${err.message}`, "error");
    } finally {
      send.disabled = false;
    }
  });
}

/** The broadcaster's ticket price, set on the room before the show starts (0: free). */
export async function setTicketPrice(room, value) {
  const price = Number(value || 0);
  if (!Number.isInteger(price) || price < 0) throw new Error("The ticket price is a whole number of credits (0: free).");
  await api(`${roomPath(room)}/price`, { method: "PUT", body: { price } });
  return price;
}

/** A paid call's price per minute and running cost, shown inside the call box. */
export class CallCost {
  constructor(signal, box) {
    this.pill = el("p", { id: "call-cost", className: "pill", hidden: true });
    box.querySelector("h2")?.after(this.pill);
    this.timer = null;
    signal.on("call.incoming", (m) => { if (m.price_per_minute) this.price(m.price_per_minute); });
    signal.on("call.accepted", (m) => { if (m.price_per_minute) this.run(m.price_per_minute, m.minute_s); });
    signal.on("call.ended", (m) => this.stop(m.reason));
  }

  price(perMinute) {
    this.pill.hidden = false;
    this.pill.textContent = `Paid call: ${credits(perMinute)} per minute`;
  }

  run(perMinute, minuteS) {
    const started = Date.now();
    const tick = () => {
      // A minute counts once the node had time to cut the call instead (its grace, 0.5 s, and the
      // frame's way): an unpaid minute is never shown as charged.
      const minutes = Math.max(1, Math.ceil((Date.now() - started - SETTLE_MS) / (minuteS * 1000)));
      this.pill.hidden = false;
      this.pill.dataset.cost = String(minutes * perMinute);
      this.pill.textContent = `${credits(perMinute)} per minute · ${credits(minutes * perMinute)} so far`;
    };
    tick();
    clearInterval(this.timer);
    this.timer = setInterval(tick, 1000);
  }

  stop(reason) {
    clearInterval(this.timer);
    this.timer = null;
    if (reason === "insufficient_credits") {
      this.pill.hidden = false;
      this.pill.textContent = "The call ended: the caller's credits ran out.";
    } else {
      this.pill.hidden = true;
    }
  }
}
