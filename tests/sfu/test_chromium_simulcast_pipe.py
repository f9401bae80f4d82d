"""Simulcast through a pipe (issue 17): headless Chromium publishes three layers to one Worker; a
second Worker (the other worker of ``switchboard node --workers 2``) gets the show through a real pipe
(UDP on 127.0.0.1, opened and joined as ``WorkerPool`` does it), after the layers are learnt: every
layer crosses, the far router rebuilds the track, and an aiortc viewer there is moved up to the top
layer at its keyframe (asked for through the pipe) and decodes it, its sequence numbers continuous;
when the top layer leaves the pipe, the viewer goes on from a layer still piped. Only the layers the
far side uses cross (sfu/pipe_demand.py): with its viewer on the top layer the two lower ones stop
crossing, and a viewer capped down to one of them gets it piped again and decodes it.

Needs root, iproute2 and Chromium (tests/sfu/chromium.py); fails, saying which, without them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from sfu.events import MemoryEventSink
from sfu.pipe import PipeTransport
from sfu.pipe_demand import LINGER_S
from sfu.process import counters
from sfu.types import PeerId
from sfu.worker import Worker
from tests.sfu.chromium import ROOM, ThreadedWorker, chromium_in_namespaces, poll
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


@dataclass
class PipedShow:
    """Chromium's three layers on the home worker (``sfu``), piped to ``far`` (another Worker on this
    test's loop thread) as WorkerPool pipes them: the far end opened first, the exporting end's
    descriptors handed to it."""

    sfu: ThreadedWorker
    far: Worker
    page: Any
    """Chromium's publishing page."""
    home: Any
    """The home worker's simulcast track."""
    descriptors: list[Any]
    """What the exporting end sent the far end on connecting."""
    viewers: list[Viewer] = field(default_factory=list)

    def view(self, peer: str) -> Viewer:
        """An aiortc viewer on the far worker (closed with the show)."""
        viewer: Viewer = self.sfu.call(start_viewer(self.far, ROOM, peer))
        self.viewers.append(viewer)
        return viewer


@pytest.fixture
def piped(sfu_fanout: str) -> Iterator[PipedShow]:
    with chromium_in_namespaces(1) as (sfu, [chrome]):
        far = Worker(addresses=("127.0.0.1",), events=MemoryEventSink())
        show: PipedShow | None = None
        try:
            sfu.call(far.start())
            sfu.call(far.open_room(ROOM))
            page = sfu.publish_page(chrome.browser, PUBLISH)
            home = sfu.simulcast_track()
            far_port = sfu.call(far.open_pipe(ROOM, PIPE))
            home_port = sfu.call(sfu.worker.open_pipe(ROOM, PIPE))
            descriptors = sfu.call(sfu.worker.connect_pipe(ROOM, PIPE, far_port, True))
            sfu.call(far.connect_pipe(ROOM, PIPE, home_port, False, descriptors))
            show = PipedShow(sfu, far, page, home, descriptors)
            yield show
        finally:
            for viewer in show.viewers if show is not None else ():
                sfu.call(viewer.close())
            sfu.call(far.close())


def test_a_viewer_on_the_importing_worker_is_switched_up_a_piped_simulcast_track(piped: PipedShow) -> None:
    sfu, far, home, descriptors = piped.sfu, piped.far, piped.home, piped.descriptors
    assert len(descriptors) == 3 and all(len(d) == 12 for d in descriptors), descriptors
    router = far.routers[ROOM]
    (track,) = router.tracks
    assert [p.ssrc for p in track.layers] == [p.ssrc for p in home.layers]
    assert track.exposed is not None and home.exposed is not None
    assert track.exposed.producer_id == home.exposed.producer_id
    assert [p.kind for p in sfu.call(far.room_stats(ROOM)).producers] == ["video"]  # one track shown

    viewer = piped.view("far-viewer")
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
          f"{sorted(viewer.sizes)}, switches {consumer.switches}, lost {lost}, chrome {piped.page.evaluate(SENT)}")
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


def test_a_layer_nobody_on_the_far_worker_watches_stops_crossing_and_a_capped_viewer_gets_it_back(
        piped: PipedShow) -> None:
    sfu, far = piped.sfu, piped.far
    (track,) = far.routers[ROOM].tracks

    async def read() -> dict[str, Any]:
        return counters(sfu.worker)

    def exported() -> dict[str, Any]:  # the home worker's stats, read on its own loop
        return sfu.call(read())

    # nobody on the far worker yet: after the linger, no layer crosses
    assert poll(exported, lambda c: c["pipe_layers_crossing"] == 0 and c["pipe_layers_held"] == 3,
                LINGER_S + 5)["pipe_layers_held"] == 3
    viewer = piped.view("far-viewer")
    sfu.call(viewer.wait_frames(30, timeout=40), timeout=50)
    (consumer,) = [c for c, _, _ in track.choices.values()]
    assert poll(lambda: consumer.producer is track.layers[2], bool, 120), track.bitrates
    # on the top layer: the two below it stop crossing once the linger is over
    c = poll(exported, lambda c: c["pipe_layers_crossing"] == 1 and c["pipe_layers_held"] == 2, LINGER_S + 5)
    assert (c["pipe_layers_crossing"], c["pipe_layers_held"]) == (1, 2), c
    low = [p.packets_received for p in track.layers[:2]]
    top = track.layers[2].packets_received
    sfu.call(viewer.wait_frames(viewer.frames["video"] + 30, timeout=30), timeout=40)
    assert [p.packets_received for p in track.layers[:2]] == low  # not one packet of them came
    assert track.layers[2].packets_received > top
    assert track.bitrates[0] > 0 and track.bitrates[1] > 0  # still known: measured on the home side
    lost_before = sfu.call(video_lost(viewer))

    # capped to the lowest layer: it is asked for through the pipe, crosses, and the viewer is
    # moved to it at its keyframe and decodes it, its numbering continuous
    assert sfu.call(far.set_max_layer(ROOM, PeerId("far-viewer"), 0)) == 1
    assert poll(lambda: consumer.producer is track.layers[0], bool, 20), (consumer.producer, track.bitrates)
    viewer.sizes.clear()
    sfu.call(viewer.wait_frames(viewer.frames["video"] + 30, timeout=30), timeout=40)
    assert any(w == 320 for w, _ in viewer.sizes), sorted(viewer.sizes)
    assert track.layers[0].packets_received > low[0]
    lost = sfu.call(video_lost(viewer))
    assert abs(lost - lost_before) < 50, (lost_before, lost)
    c = poll(exported, lambda c: c["pipe_layers_crossing"] == 1 and c["pipe_layers_held"] == 2, LINGER_S + 5)
    assert (c["pipe_layers_crossing"], c["pipe_layers_held"]) == (1, 2), c  # now the top one stopped
    top = track.layers[2].packets_received
    sfu.call(viewer.wait_frames(viewer.frames["video"] + 15, timeout=30), timeout=40)
    assert track.layers[2].packets_received == top
