// What every social page starts with (/me, /people, /u/<id>, /space, /messages, /wallet): a login,
// the header with its node socket (live badges, presence, chat, moderation notices: lib/header.js)
// and incoming Live Cam calls on that socket.

import { requireLogin } from "./api.js";
import { mountHeader } from "./header.js";
import { LiveCam } from "./livecam.js";

export async function startSocialPage(name) {
  const me = requireLogin();
  // The socket's states go to the banner here: presence, chat and calls all ride on it.
  const header = await mountHeader({ name, connection: true });
  const { signal } = header;
  const livecam = new LiveCam(signal); // a missed call comes back as a call_missed notification
  await header.connected;
  window.switchboard = { signal, header, livecam, me };
  return { me, signal, header, livecam };
}
