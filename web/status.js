// Shows whether every dependency of this process answers (/readyz), under the shared header.
import { mountHeader } from "./lib/header.js";

mountHeader().catch(() => {});
const el = document.getElementById("status");
try {
  const res = await fetch("/readyz");
  const body = await res.json();
  el.textContent = body.ready ? "All systems ready" : "Not ready: " + JSON.stringify(body.checks);
  el.classList.add(body.ready ? "ok" : "down");
} catch (err) {
  el.textContent = "Cannot reach the server";
  el.classList.add("down");
}
