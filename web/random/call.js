// A P2P call with one stranger: offer/answer/ICE relayed by the node (call.* with the match's session id).

export class P2PCall {
  constructor(signal, callId, stream, iceServers, onRemote) {
    this.signal = signal;
    this.callId = callId;
    this.pc = new RTCPeerConnection({ iceServers: iceServers || [] });
    this.remote = new MediaStream();
    this.early = []; // candidates that came before the remote description
    for (const track of stream.getTracks()) this.pc.addTrack(track, stream);
    this.pc.addEventListener("track", (event) => {
      this.remote.addTrack(event.track);
      onRemote(this.remote);
    });
    this.pc.addEventListener("icecandidate", (event) => {
      signal.notify("call.ice", { call_id: callId, candidate: event.candidate ? event.candidate.toJSON() : null });
    });
    this.handlers = {
      "call.offer": (m) => this._on(m, () => this._answer(m.sdp)),
      "call.answer": (m) => this._on(m, () => this._accept(m.sdp)),
      "call.ice": (m) => this._on(m, () => this._candidate(m.candidate)),
    };
    for (const [type, handler] of Object.entries(this.handlers)) signal.on(type, handler);
    this.chain = Promise.resolve();
  }

  _on(message, step) {
    if (message.call_id !== this.callId) return;
    // In arrival order: an ICE candidate must not overtake the description it belongs to.
    this.chain = this.chain.then(step).catch((err) => console.error("call step failed", err));
  }

  async offer() {
    await this.pc.setLocalDescription();
    this.signal.notify("call.offer", { call_id: this.callId, sdp: this.pc.localDescription.sdp });
  }

  async _answer(sdp) {
    await this.pc.setRemoteDescription({ type: "offer", sdp });
    await this._flush();
    await this.pc.setLocalDescription();
    this.signal.notify("call.answer", { call_id: this.callId, sdp: this.pc.localDescription.sdp });
  }

  async _accept(sdp) {
    await this.pc.setRemoteDescription({ type: "answer", sdp });
    await this._flush();
  }

  async _candidate(candidate) {
    if (candidate === null) return; // end of candidates: nothing to do in a browser
    if (!this.pc.remoteDescription) this.early.push(candidate);
    else await this.pc.addIceCandidate(candidate);
  }

  async _flush() {
    for (const candidate of this.early.splice(0)) await this.pc.addIceCandidate(candidate);
  }

  close() {
    for (const [type, handler] of Object.entries(this.handlers)) {
      const list = this.signal.handlers.get(type) || [];
      this.signal.handlers.set(type, list.filter((h) => h !== handler));
    }
    this.pc.close();
  }
}
