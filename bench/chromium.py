"""Debian's Chromium as the bench and the browser tests drive it (through Playwright): the launch
flags WebRTC needs here, and the simulcast publisher's page script.

Chromium honours only the last ``--disable-features`` switch, and Playwright passes one of its own:
:func:`launch_args` takes Playwright's list from a probe browser's command line and returns it merged
with :data:`EXTRA_DISABLED`, so that there is exactly one.
"""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
EXTRA_DISABLED = "WebRtcHideLocalIpsWithMdns"
"""Host candidates as addresses, not mDNS names (the SFU cannot resolve those)."""


def launch_args(flags: list[str], probe_line: list[str]) -> tuple[list[str], list[str]]:
    """(args, ignore_default_args) for a launch with ``flags``, given the command line of a probe
    browser Playwright launched: its ``--disable-features`` switches are ignored and one merged
    switch (theirs plus :data:`EXTRA_DISABLED`) is passed instead. The ignored list is the second
    item (Playwright passes exactly one)."""
    theirs = [a for a in probe_line if a.startswith("--disable-features=")]
    merged = f"{theirs[0]},{EXTRA_DISABLED}" if theirs else f"--disable-features={EXTRA_DISABLED}"
    return [*flags, merged], theirs


SIMULCAST = """[
    {rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000},
    {rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000},
    {rid: 'f', maxBitrate: 1500000}]"""
SINGLE = "[{maxBitrate: 1500000}]"


def simulcast_publisher(squares: int = 60, audio: bool = False, layers: int = 3) -> str:
    """A page script that publishes a 1280x720 canvas (a moving bar and ``squares`` noise squares a
    frame, 30 fps) in three VP8 encodings, rids q/h/f scaled by 4, 2, 1 (150k, 500k, 1.5M bit/s at
    most), with a WebAudio tone as its audio track when ``audio``. It keeps the connection in
    ``window.pc`` and returns the offer's SDP once ICE gathering is complete.

    ``layers`` 1: the same canvas in one full-size encoding (no rid, 1.5M bit/s at most), the same
    browser and encoder without simulcast: the floor ``bench sfu --simulcast-floor`` compares with.

    Noise costs bits: with 60 squares Chrome's encoder meets the low layer's 150 kbit/s by dropping
    frames; 6 keep every layer at full rate."""
    tone = """
  const ac = new AudioContext(); const osc = ac.createOscillator();
  const dst = ac.createMediaStreamDestination();
  osc.connect(dst); osc.start(); ac.resume();
  pc.addTransceiver(dst.stream.getAudioTracks()[0], {direction: 'sendonly', streams: [stream]});""" if audio else ""
    return """async () => {
  const canvas = document.createElement('canvas');
  canvas.width = 1280; canvas.height = 720;
  const g = canvas.getContext('2d');
  let x = 0;
  setInterval(() => { g.fillStyle = '#203040'; g.fillRect(0, 0, 1280, 720);
      g.fillStyle = '#f0e0c0'; g.fillRect(x = (x + 16) % 1280, 0, 80, 720);
      for (let i = 0; i < %SQUARES%; i++) { g.fillStyle = `rgb(${Math.random() * 255},0,${Math.random() * 255})`;
        g.fillRect(Math.random() * 1280, Math.random() * 720, 32, 32); } }, 33);
  const stream = canvas.captureStream(30);
  const pc = new RTCPeerConnection();
  window.pc = pc;
  pc.addTransceiver(stream.getVideoTracks()[0], {direction: 'sendonly', streams: [stream],
                                                 sendEncodings: %ENCODINGS%});%TONE%
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(r => { if (pc.iceGatheringState === 'complete') r();
                           pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); });
  return pc.localDescription.sdp;
}""".replace("%SQUARES%", str(squares)).replace("%TONE%", tone) \
        .replace("%ENCODINGS%", SIMULCAST if layers == 3 else SINGLE)
