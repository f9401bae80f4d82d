// Camera, peer connections and the connection-quality hint.

// A drain's move waits this long for the new peer connection's first frame (then the move fails, and
// the page joins again the usual way).
const FIRST_FRAME_MS = 8000;

/** The camera and microphone, or an Error whose message a person understands. */
export async function openCamera() {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new Error("This browser cannot use a camera here (a secure https:// page is needed).");
  }
  try {
    return await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: true });
  } catch (err) {
    if (err.name === "NotAllowedError") throw new Error("Camera access was refused: allow it in the browser and try again.");
    if (err.name === "NotFoundError" || err.name === "OverconstrainedError") throw new Error("No camera found.");
    if (err.name === "NotReadableError") throw new Error("The camera is in use by another application.");
    throw new Error(`Cannot open the camera: ${err.message}`);
  }
}

/** Resolves once ICE gathering completes, or after `ms` (the rest is trickled). */
export function gathered(pc, ms = 2000) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() { if (pc.iceGatheringState === "complete") done(); }
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/** Shows `stream` in `video` and starts playback (muted autoplay is always allowed). */
export function play(video, stream) {
  if (video.srcObject !== stream) video.srcObject = stream;
  video.play().catch(() => {});
}

/** Turns a track kind on or off; returns the new state. */
export function toggle(stream, kind) {
  const tracks = stream.getTracks().filter((t) => t.kind === kind);
  const on = !tracks.every((t) => t.enabled);
  for (const t of tracks) t.enabled = on;
  return on;
}

/**
 * Every 2 s, reads getStats and calls `show({label, rttMs, lossPct})`: RTT of the selected candidate
 * pair and packet loss over the last interval (received and, for senders, as reported by the peer).
 * Returns a function that stops it.
 */
export function watchQuality(pc, show) {
  let last = { lost: 0, total: 0 };
  const timer = setInterval(async () => {
    if (pc.connectionState === "closed") return;
    let stats;
    try { stats = await pc.getStats(); } catch { return; }
    let rtt = null;
    let lost = 0;
    let total = 0;
    stats.forEach((s) => {
      if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded" && s.currentRoundTripTime !== undefined) {
        rtt = s.currentRoundTripTime * 1000;
      }
      if (s.type === "inbound-rtp") {
        lost += Math.max(0, s.packetsLost || 0);
        total += (s.packetsReceived || 0) + Math.max(0, s.packetsLost || 0);
      }
      if (s.type === "remote-inbound-rtp") {
        lost += Math.max(0, s.packetsLost || 0);
      }
      if (s.type === "outbound-rtp") total += s.packetsSent || 0;
    });
    const dLost = lost - last.lost;
    const dTotal = total - last.total;
    last = { lost, total };
    const lossPct = dTotal > 0 ? (100 * dLost) / dTotal : 0;
    let label = "good";
    if (pc.connectionState !== "connected") label = pc.connectionState;
    else if ((rtt ?? 0) > 300 || lossPct > 5) label = "poor";
    else if ((rtt ?? 0) > 150 || lossPct > 1) label = "fair";
    show({ label, rttMs: rtt, lossPct });
  }, 2000);
  return () => clearInterval(timer);
}

/** Renders a quality reading into an element: "Connection: good · 3 ms · 0.0% loss". */
export function qualityText(el) {
  return ({ label, rttMs, lossPct }) => {
    el.textContent = `Connection: ${label}` + (rttMs === null ? "" : ` · ${Math.round(rttMs)} ms`) +
      ` · ${lossPct.toFixed(1)}% loss`;
    el.dataset.quality = label;
  };
}

/** Frames decoded so far by a <video> (for people: "frozen?"; for tests: frames advancing). */
export function framesDecoded(video) {
  return video.getVideoPlaybackQuality?.().totalVideoFrames ?? 0;
}

/**
 * Resolves once `pc` has decoded its first video frame, seen in getStats (inbound-rtp framesDecoded)
 * or as a frame `video` presents (requestVideoFrameCallback), whichever comes first; rejects after
 * `ms` (or when `pc` closes).
 */
export function firstFrame(pc, video, ms = FIRST_FRAME_MS) {
  return new Promise((resolve, reject) => {
    let done = false;
    const end = (err) => {
      if (done) return;
      done = true;
      clearInterval(poll);
      clearTimeout(bound);
      if (err) reject(err);
      else resolve();
    };
    const bound = setTimeout(() => end(new Error("no video frame from the new connection")), ms);
    const poll = setInterval(async () => {
      if (pc.connectionState === "closed") return end(new Error("the connection closed"));
      let stats;
      try { stats = await pc.getStats(); } catch { return; }
      stats.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "video" && s.framesDecoded > 0) end(); });
    }, 50);
    video.requestVideoFrameCallback?.(() => end());
  });
}
