// /me: onboarding and profile: pseudo, birth date (18+), bio, interests, country, and a photo
// (previewed, then resized in the browser to at most 1024 px a side, no crop, before upload).

import { api, explain, upload } from "./lib/api.js";
import { startSocialPage } from "./lib/social.js";
import { $, say } from "./lib/ui.js";

const MAX_SIDE = 1024;
const { header } = await startSocialPage("me");
let photo = null; // the resized Blob waiting to be uploaded

function adultLimit() {
  const d = new Date();
  d.setFullYear(d.getFullYear() - 18);
  return d.toISOString().slice(0, 10);
}

function showPhoto(url) {
  $("photo-preview").src = url || "";
  $("photo-preview").hidden = !url;
  $("photo-none").hidden = Boolean(url);
}

function fill(me) {
  const p = me.profile;
  $("pseudo").value = p.pseudo || "";
  $("birth_date").value = p.birth_date || "";
  $("country").value = p.country || "";
  $("interests").value = (p.interests || []).join(", ");
  $("bio").value = p.bio || "";
  showPhoto(p.photo_url);
  if (!me.onboarding.complete) say("Welcome! Choose a pseudo and give your birth date to meet people.", "info");
}

/** The image drawn at most MAX_SIDE a side (aspect kept), as a JPEG (PNG stays PNG for transparency). */
async function resized(file) {
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  if (scale === 1 && file.size < 2_000_000) return file;
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  const type = file.type === "image/png" ? "image/png" : "image/jpeg";
  return new Promise((resolve) => canvas.toBlob(resolve, type, 0.9));
}

$("birth_date").max = adultLimit();
$("photo").addEventListener("change", async () => {
  const file = $("photo").files[0];
  if (!file) return;
  try {
    photo = await resized(file);
    showPhoto(URL.createObjectURL(photo));
    say("Photo ready: press Save to keep it.", "info");
  } catch {
    photo = null;
    say("This file is not an image the browser can read.", "error");
  }
});

$("profile").addEventListener("submit", async (event) => {
  event.preventDefault();
  const f = Object.fromEntries(new FormData(event.target).entries());
  if (f.birth_date && f.birth_date > adultLimit()) {
    say("You must be at least 18 years old.", "error");
    $("birth_date").focus();
    return;
  }
  if (!/^[A-Za-z0-9_.-]{3,32}$/.test(f.pseudo.trim())) {
    say("A pseudo is 3 to 32 letters, digits, or _ . - (no spaces).", "error");
    $("pseudo").focus();
    return;
  }
  const body = {
    pseudo: f.pseudo.trim(), bio: f.bio,
    interests: f.interests.split(",").map((s) => s.trim().toLowerCase()).filter(Boolean),
    country: f.country.trim() ? f.country.trim().toUpperCase() : null,
  };
  if (f.birth_date) body.birth_date = f.birth_date;
  $("save").disabled = true;
  try {
    let me = await api("/me/profile", { method: "PATCH", body });
    if (photo) {
      await upload("/me/photo", photo, "PUT");
      photo = null;
      me = await api("/me");
    }
    fill(me);
    header.showMe(me);
    say("Saved.", "ok");
  } catch (err) {
    say(err.status === 409 ? "This pseudo is taken: choose another." : `Could not save: ${explain(err)}`, "error");
  } finally {
    $("save").disabled = false;
  }
});

fill(await api("/me"));
$("fields").disabled = false; // only now: typing before the profile is read would be overwritten
