// Card payments for the wallet: the real Stripe.js in production, the stand-in (./stripe_standin.js)
// under `switchboard up --stripe-emulator`. Both answer the same calls: elements().create("card"),
// createPaymentMethod({type: "card", card}), confirmCardPayment(clientSecret).

import { api, ApiError } from "./api.js";
import { standIn } from "./stripe_standin.js";

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = Object.assign(document.createElement("script"), { src, async: true });
    script.addEventListener("load", resolve);
    script.addEventListener("error", () => reject(new Error(`could not load ${src}`)));
    document.head.append(script);
  });
}

/** `{stripe, emulator}` for the catalogue's Stripe settings (GET /api/payments/catalogue). */
export async function cardPayments(catalogue) {
  try {
    const emulator = await api("/payments/emulator");
    return { stripe: standIn(emulator.test_cards), emulator: true };
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404) throw err;
  }
  // Production: Stripe's own script (the page's CSP must allow https://js.stripe.com: docs/payments.md).
  await loadScript(catalogue.stripe.js);
  return { stripe: window.Stripe(catalogue.stripe.publishable_key), emulator: false };
}
