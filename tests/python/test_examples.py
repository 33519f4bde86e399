"""The examples of examples/python, run as a user would: forkpoold with
the example --exec worker, the example web service in front of it, real
image bytes posted over HTTP."""

import json
import os
import struct
import threading
import unittest
import urllib.error
import urllib.request
import zlib
from wsgiref.simple_server import WSGIRequestHandler, make_server

from fpharness import HERE, Daemon
import sys

EXAMPLES = os.environ["FORKPOOL_EXAMPLES"]
sys.path.insert(0, EXAMPLES)
import upload_server                            # noqa: E402


def png(w, h):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + \
            struct.pack(">I", zlib.crc32(kind + body))
    raw = b"".join(b"\x00" + b"\x00\x00\x00" * w for _ in range(h))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def gif(w, h):
    return (b"GIF89a" + struct.pack("<HHBBB", w, h, 0x80, 0, 0)
            + b"\x00\x00\x00\xff\xff\xff"               # 2-colour table
            + b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0)
            + b"\x02\x02\x44\x01\x00" + b"\x3b")


def jpeg(w, h):
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, h, w, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class UploadService(unittest.TestCase):
    def start(self, worker_script):
        d = Daemon("-w", "2", "--exec", "%s %s" % (sys.executable, worker_script))
        self.addCleanup(d.stop)
        httpd = make_server("127.0.0.1", 0, upload_server.make_app(d.sock, 1.0),
                            handler_class=Quiet)
        t = threading.Thread(target=httpd.serve_forever, daemon=True)
        t.start()

        def stop():
            httpd.shutdown()
            httpd.server_close()
        self.addCleanup(stop)
        self.url = "http://127.0.0.1:%d/" % httpd.server_port

    def post(self, data):
        req = urllib.request.Request(self.url, data=data, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            return e.code, json.load(e)

    def test_dimensions_of_real_images(self):
        self.start(os.path.join(EXAMPLES, "image_worker.py"))
        self.assertEqual(self.post(png(3, 2)),
                         (200, {"format": "png", "width": 3, "height": 2}))
        self.assertEqual(self.post(gif(5, 4)),
                         (200, {"format": "gif", "width": 5, "height": 4}))
        self.assertEqual(self.post(jpeg(640, 480)),
                         (200, {"format": "jpeg", "width": 640, "height": 480}))

    def test_not_an_image_is_422_with_the_parser_message(self):
        self.start(os.path.join(EXAMPLES, "image_worker.py"))
        status, body = self.post(b"hello, world")
        self.assertEqual(status, 422)
        self.assertEqual(body["detail"], "not a PNG, GIF or JPEG image")
        status, body = self.post(png(3, 2)[:20])
        self.assertEqual((status, body["detail"]), (422, "PNG without an IHDR chunk"))

    def test_a_crashing_parser_costs_only_that_request(self):
        self.start(os.path.join(HERE, "crashy_image_worker.py"))
        status, body = self.post(b"CRASH" + png(1, 1))
        self.assertEqual(status, 502)
        self.assertEqual(body["detail"], "killed by SIGSEGV")
        status, body = self.post(b"HANG")
        self.assertEqual(status, 504)
        self.assertEqual(self.post(png(9, 7)),
                         (200, {"format": "png", "width": 9, "height": 7}))

    def test_get_is_405(self):
        self.start(os.path.join(EXAMPLES, "image_worker.py"))
        try:
            urllib.request.urlopen(self.url, timeout=30)
        except urllib.error.HTTPError as e:
            self.assertEqual(e.code, 405)
        else:
            self.fail("GET answered 200")


if __name__ == "__main__":
    unittest.main()
