// A call with one stranger through the node's SFU (match.found said media "sfu"): the same face as
// P2PCall (pc, close), but our camera goes up on one leg and the stranger's comes down on another.
// Every call in this mode looks the same to both parties, whether a moderator is watching or not.

import { CallPublisher, CallReceiver } from "../lib/call_media.js";

export class SfuCall {
  constructor(signal, callId, stream, iceServers, onRemote) {
    this.stream = stream;
    this.remote = new MediaStream();
    this.publisher = new CallPublisher(signal, callId, iceServers);
    this.receiver = new CallReceiver(signal, callId, "subscribe", iceServers, (track) => {
      // A new track of a kind replaces the old one (the stranger's page renegotiated).
      const others = this.remote.getTracks().filter((t) => t.kind !== track.kind);
      this.remote = new MediaStream([...others, track]);
      onRemote(this.remote);
    });
    this.pc = this.receiver.pc; // what the page watches: the stranger's media arriving
  }

  /** Publishes our camera, then receives the stranger's (later tracks arrive by renegotiation). */
  async start() {
    await this.publisher.publish(this.stream);
    await this.receiver.open("call.subscribe");
  }

  close() {
    this.receiver.close();
    this.publisher.close();
  }
}
