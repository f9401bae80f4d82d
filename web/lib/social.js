// What every social page starts with (/me, /people, /u/<id>, /space, /messages): a login, the
// node socket (live badges, presence, chat, incoming Live Cam calls) and the shared header.

import { api, requireLogin } from "./api.js";
import { mountHeader } from "./header.js";
import { LiveCam } from "./livecam.js";
import { Signal } from "./signal.js";
import { say, showConnection } from "./ui.js";

export async function startSocialPage(name) {
  const me = requireLogin();
  const signal = new Signal({
    resumeKey: `switchboard.resume.${name}`,
    getToken: () => api("/ws-token", { method: "POST" }),
  });
  showConnection(signal);
  const connected = signal.connect().catch((err) => {
    say(`Live updates are off: ${err.message}. Reload the page to try again.`, "error");
  });
  const header = await mountHeader({ signal });
  const livecam = new LiveCam(signal); // a missed call comes back as a call_missed notification
  await connected;
  window.switchboard = { signal, header, livecam, me };
  window.addEventListener("pagehide", () => signal.close());
  return { me, signal, header, livecam };
}
