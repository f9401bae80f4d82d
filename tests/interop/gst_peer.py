"""A GStreamer webrtcbin peer driven over JSON lines: the independent WebRTC stack of the interop test.

Runs under Debian's ``/usr/bin/python3`` (python3-gi with GStreamer 1.22), not the project's venv,
so it imports nothing from the project. The test does the signaling (/ws) and relays SDP and ICE.

    /usr/bin/python3 gst_peer.py publish [--mtu N]   # VP8 320x240 30 fps, webrtcbin's offer
    /usr/bin/python3 gst_peer.py view                # answers the node's offer, decodes VP8

stdout (one JSON object a line): ``{"event": "offer"|"answer", "sdp"}``,
``{"event": "candidate", "mline", "candidate"}``, ``{"event": "stats", "frames", "width", "height",
"max_rtp_bytes", "connection"}`` twice a second, ``{"event": "error", "message"}``.
stdin: ``{"cmd": "answer"|"offer", "sdp"}``, ``{"cmd": "candidate", "mline", "candidate"}``, ``{"cmd": "stop"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

_out = threading.Lock()


def emit(event: str, **fields: object) -> None:
    with _out:
        sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
        sys.stdout.flush()


class Peer:
    def __init__(self, role: str, mtu: int | None) -> None:
        self.role = role
        self.frames = 0
        self.size = (0, 0)
        self.max_rtp = 0
        self.offered = False
        if role == "publish":
            pay = "rtpvp8pay pt=96 picture-id-mode=15-bit" + (f" mtu={mtu}" if mtu else "")
            self.pipe = Gst.parse_launch(
                "webrtcbin name=w bundle-policy=max-bundle "
                "videotestsrc is-live=true pattern=snow ! video/x-raw,width=320,height=240,framerate=30/1 "
                "! videoconvert ! queue ! vp8enc deadline=1 keyframe-max-dist=60 target-bitrate=1500000 "
                f"! {pay} name=pay ! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 "
                "! w.")
            self.pipe.get_by_name("pay").get_static_pad("src").add_probe(
                Gst.PadProbeType.BUFFER | Gst.PadProbeType.BUFFER_LIST, self._rtp_out)
        else:
            self.pipe = Gst.Pipeline.new("view")
            self.pipe.add(Gst.ElementFactory.make("webrtcbin", "w"))
        self.w = self.pipe.get_by_name("w")
        self.w.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
        self.w.connect("on-ice-candidate", self._candidate)
        self.w.connect("pad-added", self._pad_added)
        # pygobject drops a reference to webrtcbin's "ice-agent" that it does not own: never read it.
        self.pipe.get_bus().add_signal_watch()
        self.pipe.get_bus().connect("message::error", self._error)
        self.pipe.set_state(Gst.State.PLAYING)
        GLib.timeout_add(500, self._stats)
        if role == "publish":  # once the pipeline runs (on-negotiation-needed can come before the caps)
            GLib.timeout_add(300, self._negotiate)

    # --- signaling ---------------------------------------------------------------------------

    def _negotiate(self) -> bool:
        if not self.offered:
            self.w.emit("create-offer", None, Gst.Promise.new_with_change_func(self._reply, "offer"))
        return False

    def _reply(self, promise: Gst.Promise, kind: str) -> None:
        # On webrtcbin's thread, and all of it here: the description belongs to the promise's reply,
        # which is freed when this returns (handing the object to the main loop crashed).
        reply = promise.get_reply()
        desc = reply.get_value(kind) if reply is not None else None
        if desc is None or desc.sdp is None:
            # webrtcbin can answer an offer request made before its sink caps are known with nothing
            if kind == "offer":
                GLib.timeout_add(200, self._negotiate)
            else:
                emit("error", message="webrtcbin made no answer")
            return
        if kind == "offer":
            if self.offered:
                return
            self.offered = True
        text = desc.sdp.as_text()
        self.w.emit("set-local-description", desc, Gst.Promise.new())
        emit(kind, sdp=text)

    def remote(self, kind: str, text: str) -> None:
        _res, msg = GstSdp.SDPMessage.new_from_text(text)
        sdp_type = GstWebRTC.WebRTCSDPType.OFFER if kind == "offer" else GstWebRTC.WebRTCSDPType.ANSWER
        desc = GstWebRTC.WebRTCSessionDescription.new(sdp_type, msg)
        if kind == "offer":
            def answer(_p: Gst.Promise) -> None:
                self.w.emit("create-answer", None, Gst.Promise.new_with_change_func(self._reply, "answer"))
            self.w.emit("set-remote-description", desc, Gst.Promise.new_with_change_func(answer))
        else:
            self.w.emit("set-remote-description", desc, Gst.Promise.new())

    def _candidate(self, _w: object, mline: int, candidate: str) -> None:
        emit("candidate", mline=mline, candidate=candidate)

    # --- media -------------------------------------------------------------------------------

    def _rtp_out(self, _pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        if info.type & Gst.PadProbeType.BUFFER_LIST:
            buffers = info.get_buffer_list()
            sizes = [buffers.get(i).get_size() for i in range(buffers.length())]
        else:
            sizes = [info.get_buffer().get_size()]
        self.max_rtp = max(self.max_rtp, *sizes)
        return Gst.PadProbeReturn.OK

    def _pad_added(self, _w: object, pad: Gst.Pad) -> None:
        if pad.direction != Gst.PadDirection.SRC:
            return
        caps = pad.get_current_caps() or pad.query_caps(None)
        s = caps.get_structure(0)
        if s.get_string("media") == "video" and s.get_string("encoding-name") == "VP8":
            chain = Gst.parse_bin_from_description(
                "queue ! rtpvp8depay ! vp8dec ! videoconvert ! fakesink name=sink sync=false", True)
        else:
            chain = Gst.parse_bin_from_description("fakesink sync=false", True)
        self.pipe.add(chain)
        chain.sync_state_with_parent()
        pad.link(chain.get_static_pad("sink"))
        sink = chain.get_by_name("sink")
        if sink is not None:
            sink.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, self._frame)

    def _frame(self, pad: Gst.Pad, _info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        self.frames += 1
        caps = pad.get_current_caps()
        if caps is not None:
            s = caps.get_structure(0)
            self.size = (s.get_int("width")[1], s.get_int("height")[1])
        return Gst.PadProbeReturn.OK

    def _stats(self) -> bool:
        state = self.w.get_property("connection-state")
        emit("stats", frames=self.frames, width=self.size[0], height=self.size[1], max_rtp_bytes=self.max_rtp,
             connection=state.value_nick if state is not None else None)
        return True

    def _error(self, _bus: Gst.Bus, message: Gst.Message) -> None:
        err, debug = message.parse_error()
        emit("error", message=f"{err.message} ({debug})")

    def command(self, line: str) -> bool:
        msg = json.loads(line)
        if msg["cmd"] in ("offer", "answer"):
            self.remote(msg["cmd"], msg["sdp"])
        elif msg["cmd"] == "candidate":
            self.w.emit("add-ice-candidate", int(msg["mline"]), msg["candidate"])
        elif msg["cmd"] == "stop":
            return False
        return True

    def stop(self) -> None:
        self.pipe.set_state(Gst.State.NULL)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["publish", "view"])
    parser.add_argument("--mtu", type=int, default=None, help="rtpvp8pay mtu (default: GStreamer's, 1400)")
    args = parser.parse_args()
    Gst.init(None)
    if Gst.ElementFactory.find("webrtcbin") is None:
        emit("error", message="webrtcbin is missing (gstreamer1.0-plugins-bad)")
        return 2
    loop = GLib.MainLoop()
    peer = Peer(args.role, args.mtu)

    def on_line(line: str) -> bool:
        try:
            if not peer.command(line):
                loop.quit()
        except Exception as exc:  # report, keep serving
            emit("error", message=repr(exc))
        return False

    def read() -> None:
        for line in sys.stdin:
            if line.strip():
                GLib.idle_add(on_line, line)
        GLib.idle_add(loop.quit)

    threading.Thread(target=read, daemon=True).start()
    emit("ready")
    try:
        loop.run()
    finally:
        peer.stop()
        sys.stdout.flush()
        os._exit(0)  # skip finalizers (see Peer.ice)


if __name__ == "__main__":
    sys.exit(main())
