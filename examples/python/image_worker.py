#!/usr/bin/env python3
"""image_worker.py — a forkpool --exec worker that reads the dimensions of
an uploaded image (PNG, GIF or JPEG) from its header, in pure Python.

The job is the upload's bytes (msgpack bin); the result is
{"format": "png", "width": w, "height": h}.  Bytes that are not one of
those formats raise ValueError: the job ends "error" with the message.
Parsing untrusted bytes is exactly what a worker is for: whatever the
input does to this process (a crash, a hang, a memory blow-up) costs one
job, and the daemon starts a fresh worker.

    forkpoold --exec "python3 image_worker.py" --job-timeout 2
"""

import struct

from forkpool import worker


def dimensions(data):
    """{"format", "width", "height"} of the image in `data` (bytes)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        # The IHDR chunk comes first: length, b"IHDR", width, height.
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ValueError("PNG without an IHDR chunk")
        w, h = struct.unpack(">II", data[16:24])
        return {"format": "png", "width": w, "height": h}
    if data[:6] in (b"GIF87a", b"GIF89a"):
        if len(data) < 10:
            raise ValueError("GIF cut short before its screen descriptor")
        w, h = struct.unpack("<HH", data[6:10])
        return {"format": "gif", "width": w, "height": h}
    if data[:2] == b"\xff\xd8":
        return _jpeg(data)
    raise ValueError("not a PNG, GIF or JPEG image")


def _jpeg(data):
    """Walk the JPEG segments up to the first start-of-frame marker."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ValueError("JPEG segment does not start with 0xFF at %d" % i)
        marker = data[i + 1]
        if marker == 0xFF:              # fill byte
            i += 1
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if length < 2:
            raise ValueError("JPEG segment length %d at %d" % (length, i))
        # SOF0..SOF15, but not DHT (C4), JPG (C8) or DAC (CC)
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if i + 9 > len(data):
                break
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return {"format": "jpeg", "width": w, "height": h}
        i += 2 + length
    raise ValueError("JPEG without a frame header")


@worker.handler
def handle(job):
    if not isinstance(job, bytes):
        raise ValueError("the job must be the image's bytes (msgpack bin)")
    return dimensions(job)


if __name__ == "__main__":
    worker.run()
