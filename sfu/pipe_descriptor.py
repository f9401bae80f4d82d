"""What a pipe's exporting end says of each producer it pipes (the control datagram's list), and how the
importing end reads it back (:mod:`sfu.pipe`)."""

from __future__ import annotations

from typing import Any

from sfu.producer import Codec, Producer

Descriptor = list[Any]
"""One piped producer: ``[producer_id, peer_id, kind, mime, clock_rate, payload_type, channels, params, ssrc]``,
then ``track_id, order, bitrate`` for a simulcast layer (the track's exposed layer's producer id, the layer's
rank with 0 the lowest, its bitrate in bit/s as last measured on the exporting side)."""


def describe(p: Producer) -> Descriptor:
    c = p.codec
    d: Descriptor = [p.producer_id, p.peer_id, c.kind, c.mime_type, c.clock_rate, c.payload_type, c.channels,
                     [list(kv) for kv in c.parameters], p.ssrc]
    track = p.simulcast
    if track is not None and track.exposed is not None and p in track.layers:
        at = track.layers.index(p)
        d += [track.exposed.producer_id, track.order[at], round(track.bitrates[at])]
    return d


def track_of(d: Descriptor) -> tuple[str, int] | None:
    """A simulcast layer's track id and rank; None for a track sent alone (9 fields)."""
    return (str(d[9]), int(d[10])) if len(d) >= 11 else None


def is_exposed(d: Descriptor) -> bool:
    """The descriptor of a track the room shows: a track sent alone, or a simulcast track's exposed layer."""
    track = track_of(d)
    return track is None or track[0] == str(d[0])


def codec_of(d: Descriptor) -> Codec:
    return Codec(kind=d[2], mime_type=d[3], clock_rate=d[4], payload_type=d[5], channels=d[6],
                 parameters=tuple((str(k), str(v)) for k, v in d[7]))
