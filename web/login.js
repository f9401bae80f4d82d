// /login: register, verify the mailed code, log in. Tokens go to sessionStorage (api.js).

import { api, auth, explain, forget, publicApi, saveAuth } from "./lib/api.js";
import { mountHeader } from "./lib/header.js";
import { $, say } from "./lib/ui.js";

const next = new URLSearchParams(location.search).get("next");
let pending = null; // {email, password} between register and verify

function fields(form) {
  return Object.fromEntries(new FormData(form).entries());
}

async function logIn(email, password) {
  saveAuth(await publicApi("/auth/login", { method: "POST", body: { email, password } }));
  // Only same-site paths: an address in `next` must not send the user elsewhere.
  location.assign(next && next.startsWith("/") && !next.startsWith("//") ? next : "/");
}

async function showSignedIn() {
  const current = auth();
  if (!current) return;
  try {
    const me = await api("/me");
    $("who").textContent = me.email || me.id;
    $("signed-in").hidden = false;
  } catch {
    forget();
  }
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const { email, password } = fields(event.target);
  say("Logging in…");
  try {
    await logIn(email, password);
  } catch (err) {
    if (err.status === 403) say(`This account cannot log in: ${err.message}`, "error");
    else if (err.status === 401) say("Wrong email or password, or the email is not verified yet.", "error");
    else say(explain(err), "error");
  }
});

$("register").addEventListener("submit", async (event) => {
  event.preventDefault();
  const { email, password } = fields(event.target);
  try {
    await publicApi("/auth/register", { method: "POST", body: { email, password } });
    pending = { email, password };
    $("verify-email").textContent = email;
    $("verify").hidden = false;
    $("verify-code").focus();
    // The API answers the same whether the address is new or taken (no account enumeration): a
    // taken address gets a notice by mail instead of a code.
    say("Check your mail: enter the code we sent (if this address already has an account, log in instead).", "ok");
  } catch (err) {
    say(explain(err), "error");
  }
});

$("verify").addEventListener("submit", async (event) => {
  event.preventDefault();
  const { code } = fields(event.target);
  try {
    await publicApi("/auth/verify", { method: "POST", body: { email: pending.email, code } });
    say("Email verified. Logging in…", "ok");
    await logIn(pending.email, pending.password);
  } catch (err) {
    say(err.status === 401 ? "Wrong or expired code." : explain(err), "error");
  }
});

$("resend").addEventListener("click", async () => {
  await publicApi("/auth/verify/resend", { method: "POST", body: { email: pending.email } }).catch(() => {});
  say("A new code is on its way.", "ok");
});

$("logout").addEventListener("click", async () => {
  const current = auth();
  if (current) await publicApi("/auth/logout", { method: "POST", body: { refresh_token: current.refresh_token } }).catch(() => {});
  forget();
  location.reload();
});

mountHeader();
showSignedIn();
