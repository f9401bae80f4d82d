// Peer connections to the node's SFU for a call or match whose media is "sfu" (see docs/protocol.md):
// a party publishes its camera on one leg and receives the other party's tracks on another; a
// moderator's tap is one receiving leg ("tap") that nobody in the call can see.
//
// As in lib/show.js, candidates gathered before the SFU has our description travel inside the SDP;
// later ones are trickled with call.sfu_ice.

import { gathered } from "./media.js";

class Leg {
  constructor(signal, callId, leg, iceServers) {
    this.signal = signal;
    this.callId = callId;
    this.leg = leg;
    this.pc = new RTCPeerConnection({ iceServers: iceServers || [] });
    this.described = false;
    this.pc.addEventListener("icecandidate", (event) => {
      if (!this.described) return;
      signal.notify("call.sfu_ice", { call_id: callId, leg, candidate: event.candidate ? event.candidate.toJSON() : null });
    });
  }

  close() {
    this.pc.close();
  }
}

export class CallPublisher extends Leg {
  constructor(signal, callId, iceServers) {
    super(signal, callId, "publish", iceServers);
  }

  /** Sends every track of `stream` to the call's SFU room; resolves once the SFU answered. */
  async publish(stream) {
    for (const track of stream.getTracks()) this.pc.addTrack(track, stream);
    await this.pc.setLocalDescription();
    await gathered(this.pc);
    const { sdp } = await this.signal.request("call.publish", { call_id: this.callId, sdp: this.pc.localDescription.sdp });
    await this.pc.setRemoteDescription({ type: "answer", sdp });
    this.described = true;
  }
}

// An offer made before any track is in the room has no media section and an empty BUNDLE group,
// which some browsers refuse to parse: drop that empty line (the next offer carries the tracks).
const withoutEmptyGroup = (sdp) => sdp.replace(/a=group:BUNDLE *\r\n/, "");

export class CallReceiver extends Leg {
  /** `leg` is "subscribe" (a party) or "tap" (a moderator); `onTrack(track)` gets every arriving track. */
  constructor(signal, callId, leg, iceServers, onTrack) {
    super(signal, callId, leg, iceServers);
    this.tracksReceived = 0;
    this.pc.addEventListener("track", (event) => {
      this.tracksReceived += 1;
      onTrack(event.track);
    });
    this.offers = Promise.resolve();
    this.onOffer = (m) => {
      if (m.call_id !== callId || m.leg !== leg) return;
      this.offers = this.offers.then(() => this.answer(m.sdp)).catch(console.error);
    };
    signal.on("call.sfu_offer", this.onOffer);
  }

  /** Asks for the SFU's offer (`call.subscribe` or `call.tap`), answers it; resolves to the reply. */
  async open(type) {
    const reply = await this.signal.request(type, { call_id: this.callId });
    this.offers = this.offers.then(() => this.answer(reply.sdp));
    await this.offers;
    return reply;
  }

  async answer(sdp) {
    if (this.pc.signalingState === "closed") return;
    await this.pc.setRemoteDescription({ type: "offer", sdp: withoutEmptyGroup(sdp) });
    await this.pc.setLocalDescription();
    await gathered(this.pc);
    await this.signal.request("call.sfu_answer", { call_id: this.callId, leg: this.leg, sdp: this.pc.localDescription.sdp });
    this.described = true;
  }

  close() {
    const list = this.signal.handlers.get("call.sfu_offer") || [];
    this.signal.handlers.set("call.sfu_offer", list.filter((h) => h !== this.onOffer));
    super.close();
  }
}
