// One peer connection to the SFU for a show: publishing (broadcaster) or subscribing (viewer, tap).
//
// Candidates gathered before the SFU has our description are held back: we wait (bounded) for
// gathering to complete, so they travel inside the SDP; later ones are trickled with show.ice.

import { firstFrame, gathered, play } from "./media.js";

class ShowPeer {
  constructor(signal, room, iceServers) {
    this.signal = signal;
    this.room = room;
    this.pc = new RTCPeerConnection({ iceServers: iceServers || [] });
    this.described = false;
    this.pc.addEventListener("icecandidate", (event) => {
      if (!this.described) return;
      this.signal.notify("show.ice", { room, candidate: event.candidate ? event.candidate.toJSON() : null });
    });
  }

  close() {
    this.pc.close();
  }
}

/** Simulcast encodings for a camera of this height, lowest first (the SFU takes them in this order):
 *  three from 540 lines up, two from 360, none below (Chrome would drop the small ones anyway). */
export function simulcastEncodings(height) {
  if (height >= 540) {
    return [{ rid: "q", scaleResolutionDownBy: 4, maxBitrate: 150000 },
            { rid: "h", scaleResolutionDownBy: 2, maxBitrate: 500000 },
            { rid: "f", maxBitrate: 1500000 }];
  }
  if (height >= 360) return [{ rid: "h", scaleResolutionDownBy: 2, maxBitrate: 300000 }, { rid: "f", maxBitrate: 1000000 }];
  return [];
}

export class Publisher extends ShowPeer {
  /** Sends every track of `stream` to the show (video in simulcast layers when the browser can, so
   *  each viewer gets the layer its link carries); resolves once the SFU answered. */
  async publish(stream) {
    for (const track of stream.getTracks()) {
      const encodings = track.kind === "video" ? simulcastEncodings(track.getSettings().height || 0) : [];
      try {
        if (encodings.length < 2) throw new Error("one encoding");
        this.pc.addTransceiver(track, { direction: "sendonly", streams: [stream], sendEncodings: encodings });
      } catch {
        this.pc.addTrack(track, stream);
      }
    }
    await this.pc.setLocalDescription();
    await gathered(this.pc);
    const { sdp } = await this.signal.request("show.publish", { room: this.room, sdp: this.pc.localDescription.sdp });
    await this.pc.setRemoteDescription({ type: "answer", sdp });
    this.described = true;
  }
}

export class Subscriber extends ShowPeer {
  constructor(signal, room, iceServers, video) {
    super(signal, room, iceServers);
    this.stream = new MediaStream();
    this.tracksReceived = 0;
    this.video = video; // where the show plays (a drain's move starts on a hidden one: showIn moves it)
    this.pc.addEventListener("track", (event) => {
      // A new track of a kind replaces the old one (the broadcaster's page reloaded: new producers).
      const others = this.stream.getTracks().filter((t) => t.kind !== event.track.kind);
      this.stream = new MediaStream([...others, event.track]);
      this.tracksReceived += 1;
      play(this.video, this.stream);
    });
    this.offers = Promise.resolve();
    this.onOffer = (message) => {
      if (message.room === this.room) this.offers = this.offers.then(() => this.answer(message.sdp)).catch(console.error);
    };
    signal.on("show.offer", this.onOffer);
  }

  /** Asks the SFU for its offer (every producer of the show) and answers it. */
  async subscribe() {
    const { sdp } = await this.signal.request("show.subscribe", { room: this.room });
    await this.answer(sdp);
  }

  async answer(sdp) {
    if (this.pc.signalingState === "closed") return;
    await this.pc.setRemoteDescription({ type: "offer", sdp });
    await this.pc.setLocalDescription();
    await gathered(this.pc);
    await this.signal.request("show.answer", { room: this.room, sdp: this.pc.localDescription.sdp });
    this.described = true;
  }

  /** Plays the show in `video` from now on (its later tracks too). */
  showIn(video) {
    this.video = video;
    play(video, this.stream);
  }

  /** Stops answering `show.offer`: after a drain's move they are the new node's, for the new peer. */
  detach() {
    const list = this.signal.handlers.get("show.offer") || [];
    this.signal.handlers.set("show.offer", list.filter((h) => h !== this.onOffer));
  }

  close() {
    this.detach();
    super.close();
  }
}

/**
 * A drain's move, make-before-break (docs/web.md): `old` keeps playing in `video` while a new peer
 * connection joins on the session `signal` just moved to; its stream plays in a hidden muted <video>
 * until its first frame is decoded, then `video` switches to it, `old` closes and `signal` is told
 * the move is done (the old socket closes). Resolves with the new Subscriber, or null when `keep()`
 * says at that moment that the page went another way meanwhile (the show ended, the page left).
 */
export async function moveSubscriber(signal, room, old, video, keep = () => true) {
  old.detach(); // the old socket's events are over: a show.offer now is the new node's
  const hidden = document.createElement("video");
  hidden.muted = true;
  hidden.autoplay = true;
  hidden.playsInline = true;
  hidden.className = "offstage";
  hidden.setAttribute("aria-hidden", "true");
  video.after(hidden); // in the document: the browser decodes and renders it, unseen
  const next = new Subscriber(signal, room, signal.hello.ice_servers, hidden);
  try {
    await next.subscribe();
    await firstFrame(next.pc, hidden);
  } catch (err) {
    next.close();
    hidden.remove();
    throw err;
  }
  const kept = keep();
  if (kept) next.showIn(video);
  else next.close();
  hidden.srcObject = null;
  hidden.remove();
  old.close();
  signal.moveDone();
  return kept ? next : null;
}
