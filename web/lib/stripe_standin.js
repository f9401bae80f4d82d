// A stand-in for the few Stripe.js calls the wallet makes, used only under
// `switchboard up --stripe-emulator` (the page asks GET /api/payments/emulator first; elsewhere it
// loads the real Stripe.js). It never loads anything from js.stripe.com: test cards go to our own
// emulator routes, which hand them to localstripe (docs/payments.md, "The wallet page").
//
//   const stripe = standIn(cards);           // like Stripe(publishableKey)
//   const card = stripe.elements().create("card"); card.mount(div);
//   const { paymentMethod, error } = await stripe.createPaymentMethod({ type: "card", card });
//   const { paymentIntent, error } = await stripe.confirmCardPayment(clientSecret);  // 3-D Secure

import { api, explain } from "./api.js";

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

class CardElement {
  constructor(cards) {
    this.cards = cards;
    this.number = el("input", { id: "card-number", inputMode: "numeric", autocomplete: "off", placeholder: "4242 4242 4242 4242", size: 19 });
    this.expiry = el("input", { id: "card-expiry", autocomplete: "off", placeholder: "MM/YY", size: 5, value: "12/30" });
    this.cvc = el("input", { id: "card-cvc", inputMode: "numeric", autocomplete: "off", placeholder: "CVC", size: 3, value: "123" });
    for (const [input, label] of [[this.number, "Card number"], [this.expiry, "Expiry (MM/YY)"], [this.cvc, "CVC"]]) {
      input.setAttribute("aria-label", label);
    }
  }

  mount(target) {
    const node = typeof target === "string" ? document.querySelector(target) : target;
    const picks = Object.entries(this.cards).map(([name, number]) => {
      const b = el("button", { type: "button", className: "secondary small", textContent: name });
      b.dataset.card = number;
      b.addEventListener("click", () => { this.number.value = number; });
      return b;
    });
    node.replaceChildren(
      el("div", { className: "card-fields" }, this.number, this.expiry, this.cvc),
      el("p", { className: "muted" }, "Stripe emulator: test cards only. Fill in: ", ...picks),
    );
  }

  value() {
    const [month, year] = this.expiry.value.split("/").map((s) => parseInt(s, 10));
    return {
      number: this.number.value.replace(/\s+/g, ""),
      exp_month: month, exp_year: year < 100 ? 2000 + year : year, cvc: this.cvc.value.trim(),
    };
  }
}

/** Asks the user to pass or fail 3-D Secure, as a bank's page would; resolves true or false. */
function threeDSecure() {
  return new Promise((resolve) => {
    const pass = el("button", { type: "button", id: "tds-pass", textContent: "Complete authentication" });
    const fail = el("button", { type: "button", id: "tds-fail", className: "secondary", textContent: "Fail authentication" });
    const box = el("dialog", { id: "tds", className: "card" },
      el("h2", { textContent: "3-D Secure" }),
      el("p", { textContent: "Your bank asks you to confirm this payment (Stripe emulator)." }), pass, " ", fail);
    document.body.append(box);
    const done = (ok) => { box.close(); box.remove(); resolve(ok); };
    pass.addEventListener("click", () => done(true));
    fail.addEventListener("click", () => done(false));
    box.showModal();
  });
}

/** The stand-in, given the emulator's test cards ({name: number}). */
export function standIn(cards) {
  return {
    elements: () => ({ create: () => new CardElement(cards) }),

    async createPaymentMethod({ card }) {
      const v = card.value();
      if (!/^[0-9]{16}$/.test(v.number)) return { error: { message: "Enter a 16-digit card number." } };
      if (!(v.exp_month >= 1 && v.exp_month <= 12) || !v.exp_year) return { error: { message: "Enter the expiry as MM/YY." } };
      if (!/^[0-9]{3}$/.test(v.cvc)) return { error: { message: "Enter the 3-digit CVC." } };
      try {
        return { paymentMethod: await api("/payments/emulator/payment-methods", { method: "POST", body: v }) };
      } catch (err) {
        return { error: { message: explain(err) } };
      }
    },

    async confirmCardPayment(clientSecret) {
      const success = await threeDSecure();
      try {
        const pi = await api("/payments/emulator/authenticate", { method: "POST", body: { client_secret: clientSecret, success } });
        return pi.error ? { error: { message: pi.error } } : { paymentIntent: pi };
      } catch (err) {
        return { error: { message: explain(err) } };
      }
    },
  };
}
