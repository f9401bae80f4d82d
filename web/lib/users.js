// People as pages show them: a cache of public profiles, a name for each, and a small card.
// A user the API hides (blocked either way, deleted) answers 404: callers leave them out.

import { api, ApiError } from "./api.js";

const cache = new Map();

/** The public profile of `id`, or null when the API hides it (blocked, deleted, unknown). */
export async function profile(id, { fresh = false } = {}) {
  if (!fresh && cache.has(id)) return cache.get(id);
  const found = api(`/users/${encodeURIComponent(id)}`).catch((err) => {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  });
  cache.set(id, found);
  return found;
}

export function forgetProfile(id) {
  cache.delete(id);
}

export function nameOf(user) {
  return user?.pseudo || (user?.id ? `user ${user.id.slice(0, 8)}` : "someone");
}

/** An <img> for a profile photo, or a letter when there is none. */
export function avatar(user, size = "small") {
  if (user?.photo_url) {
    const img = document.createElement("img");
    img.className = `avatar ${size}`;
    img.src = user.photo_url;
    img.alt = "";
    return img;
  }
  const span = document.createElement("span");
  span.className = `avatar ${size} letter`;
  span.textContent = (user?.pseudo || "?").slice(0, 1).toUpperCase();
  span.setAttribute("aria-hidden", "true");
  return span;
}

/** One row: photo, pseudo (a link to the profile), a line of detail, and `extra` nodes at the end. */
export function personRow(user, detail = "", ...extra) {
  const li = document.createElement("li");
  li.className = "person";
  li.dataset.user = user.id;
  const link = document.createElement("a");
  link.href = `/u/${user.id}`;
  link.append(avatar(user), document.createTextNode(` ${nameOf(user)}`));
  const info = document.createElement("span");
  info.className = "muted detail";
  info.textContent = detail;
  const tail = document.createElement("span");
  tail.className = "actions";
  tail.append(...extra);
  li.append(link, info, tail);
  return li;
}

export function button(text, onClick, kind = "secondary") {
  const b = document.createElement("button");
  b.type = "button";
  b.className = kind;
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

export function ageAndCountry(user) {
  return [user.age ? `${user.age}` : "", user.country || ""].filter(Boolean).join(" · ");
}
