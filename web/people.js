// /people: search by pseudo (prefix matches first, as the API orders them). Blocked users never
// appear: the API leaves them out of the results.

import { api, explain } from "./lib/api.js";
import { startSocialPage } from "./lib/social.js";
import { $, say } from "./lib/ui.js";
import { ageAndCountry, personRow } from "./lib/users.js";

await startSocialPage("people");

async function search(q) {
  const { items } = await api(`/search/users?q=${encodeURIComponent(q)}&limit=20`);
  const me = window.switchboard.me.user_id;
  const rows = items.filter((u) => u.id !== me).map((u) => personRow(u, ageAndCountry(u)));
  $("results").replaceChildren(...rows);
  say(rows.length ? "" : `Nobody found for “${q}”.`, "info");
  history.replaceState(null, "", `/people?q=${encodeURIComponent(q)}`);
}

$("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const q = $("q").value.trim();
  if (q) search(q).catch((err) => say(explain(err), "error"));
});

const q = new URLSearchParams(location.search).get("q");
if (q) {
  $("q").value = q;
  search(q).catch((err) => say(explain(err), "error"));
}
$("q").focus();
