"""Simulcast through a pipe (issue 17): headless Chromium publishes three layers to one Worker; a
second Worker (the other worker of ``switchboard node --workers 2``) gets the show through a real pipe
(UDP on 127.0.0.1, opened and joined as ``WorkerPool`` does it), after the layers are learnt: every
layer crosses, the far router rebuilds the track, and an aiortc viewer there is moved up to the top
layer at its keyframe (asked for through the pipe) and decodes it, its sequence numbers continuous;
when the top layer leaves the pipe, the viewer goes on from a layer still piped.

Needs root, iproute2 and Chromium (tests/sfu/chromium.py); fails, saying which, without them.
"""

from __future__ import annotations

from typing import Any

import pytest

from sfu.events import MemoryEventSink
from sfu.pipe import PipeTransport
from sfu.types import PeerId
from sfu.worker import Worker
from switchboard.ids import UserId
from tests.sfu.chromium import ANSWER, ROOM, chromium_in_namespaces, poll
from tests.sfu.peers import Viewer, start_viewer
from tests.sfu.test_chromium_simulcast import PUBLISH, SENT

pytestmark = [pytest.mark.slow, pytest.mark.chromium]

PIPE = "pipe-1"


async def video_lost(viewer: Viewer) -> int:
    """The viewer's video packets lost as its receiver counts them (expected from the sequence numbers
    minus received): a jump in the numbering at a layer switch shows here as thousands."""
    stats = await viewer.pc.getStats()
    return sum(int(s.packetsLost) for s in stats.values() if s.type == "inbound-rtp" and s.kind == "video")


async def close_export(pipe: PipeTransport, ssrc: int) -> None:
    pipe.exported[ssrc].close()


def test_a_viewer_on_the_importing_worker_is_switched_up_a_piped_simulcast_track() -> None:
    with chromium_in_namespaces(1) as (sfu, [chrome]):
        far = Worker(addresses=("127.0.0.1",), events=MemoryEventSink())
        viewer: Viewer | None = None
        try:
            sfu.call(far.start())
            sfu.call(far.open_room(ROOM))
            page = chrome.browser.new_page()
            page.goto("about:blank")
            offer = page.evaluate(PUBLISH)
            page.evaluate(ANSWER, sfu.call(sfu.worker.publish(ROOM, PeerId("chrome"), UserId("user-chrome"), offer)))
            home = sfu.simulcast_track()
            # the pipe, as WorkerPool makes it: the far end first, the exporting end's descriptors to it
            far_port = sfu.call(far.open_pipe(ROOM, PIPE))
            home_port = sfu.call(sfu.worker.open_pipe(ROOM, PIPE))
            descriptors = sfu.call(sfu.worker.connect_pipe(ROOM, PIPE, far_port, True))
            assert len(descriptors) == 3 and all(len(d) == 11 for d in descriptors), descriptors
            sfu.call(far.connect_pipe(ROOM, PIPE, home_port, False, descriptors))
            router = far.routers[ROOM]
            (track,) = router.tracks
            assert [p.ssrc for p in track.layers] == [p.ssrc for p in home.layers]
            assert track.exposed is not None and home.exposed is not None
            assert track.exposed.producer_id == home.exposed.producer_id
            assert [p.kind for p in sfu.call(far.room_stats(ROOM)).producers] == ["video"]  # one track shown

            viewer = sfu.call(start_viewer(far, ROOM, "far-viewer"))
            sfu.call(viewer.wait_frames(30, timeout=40), timeout=50)
            (consumer,) = [c for c, _, _ in track.choices.values()]

            def link() -> Any:
                return sfu.call(far.link_stats(ROOM, PeerId("far-viewer")))

            # up by the viewer's own estimate to the top layer, each step at a keyframe of the piped
            # layer above (its PLI crosses the pipe back to Chrome's layer)
            assert poll(lambda: consumer.producer is track.layers[2], bool, 120), (link(), track.bitrates)
            frames = viewer.frames["video"]
            sfu.call(viewer.wait_frames(frames + 30, timeout=30), timeout=40)
            assert max(w for w, _ in viewer.sizes) == 1280, sorted(viewer.sizes)  # it decoded the top layer
            assert consumer.switches >= 1
            lost = sfu.call(video_lost(viewer))
            print(f"piped simulcast: layers {[round(b) for b in track.bitrates]} bit/s, viewer sizes "
                  f"{sorted(viewer.sizes)}, switches {consumer.switches}, lost {lost}, chrome {page.evaluate(SENT)}")
            assert abs(lost) < 50, lost  # continuous numbering across the switches
            assert router.pipes[PIPE].unknown_ssrc == 0  # every layer's packets had their piped producer

            # the top layer leaves the pipe (its pipe consumer closed on the home side, as when its
            # producer closes): it leaves the far track, and the viewer goes on from a layer still there
            top = track.layers[2]
            sfu.call(close_export(sfu.worker.routers[ROOM].pipes[PIPE], home.layers[2].ssrc))
            assert poll(lambda: len(track.layers), lambda n: n == 2, 10) == 2
            assert top.closed and top not in track.layers
            assert poll(lambda: consumer.producer in track.layers, bool, 20), (consumer.producer, track.bitrates)
            frames = viewer.frames["video"]
            sfu.call(viewer.wait_frames(frames + 30, timeout=30), timeout=40)
            lost = sfu.call(video_lost(viewer))
            assert abs(lost) < 50, lost
        finally:
            if viewer is not None:
                sfu.call(viewer.close())
            sfu.call(far.close())
