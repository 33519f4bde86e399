#!/usr/bin/env python3
"""upload_server.py — a small web service that reports an uploaded image's
dimensions as JSON, with the parsing of the untrusted bytes offloaded to
forkpool workers (image_worker.py), so a parser that crashes or hangs
costs that one request, never the server.

    forkpoold -s /tmp/fp.sock --exec "python3 image_worker.py" &
    python3 upload_server.py /tmp/fp.sock 8080 &
    curl --data-binary @photo.jpg http://127.0.0.1:8080/
    {"format": "jpeg", "width": 640, "height": 480}

Each outcome of the job maps to an HTTP status with a JSON body:
ok 200, error 422 (not an image we read), crashed 502, timeout 504,
rejected or no daemon 503.
"""

import json
import sys
import threading
from wsgiref.simple_server import make_server

import forkpool

MAX_UPLOAD = 16 << 20


def make_app(socket_path=None, job_timeout=2.0):
    """The WSGI application: POST an image's bytes, get its dimensions."""
    local = threading.local()           # one forkpool.Client per thread

    def client():
        if getattr(local, "client", None) is None:
            local.client = forkpool.Client(socket_path, timeout=job_timeout + 5)
        return local.client

    def reply(start_response, status, body):
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"),
                                ("Content-Length", str(len(data)))])
        return [data]

    def app(environ, start_response):
        if environ["REQUEST_METHOD"] != "POST":
            return reply(start_response, "405 Method Not Allowed",
                         {"error": "POST the image's bytes"})
        size = int(environ.get("CONTENT_LENGTH") or 0)
        if size > MAX_UPLOAD:
            return reply(start_response, "413 Payload Too Large",
                         {"error": "upload larger than %d bytes" % MAX_UPLOAD})
        data = environ["wsgi.input"].read(size)
        try:
            return reply(start_response, "200 OK",
                         client().submit(data, timeout=job_timeout))
        except forkpool.JobError as e:
            message = e.detail.get("message") if isinstance(e.detail, dict) else e.detail
            return reply(start_response, "422 Unprocessable Entity",
                         {"error": "unreadable image", "detail": message})
        except forkpool.JobCrashed as e:
            return reply(start_response, "502 Bad Gateway",
                         {"error": "the image parser crashed", "detail": e.detail})
        except forkpool.JobTimedOut as e:
            return reply(start_response, "504 Gateway Timeout",
                         {"error": "the image parser took too long", "detail": e.detail})
        except forkpool.JobFailed as e:       # rejected, cancelled
            return reply(start_response, "503 Service Unavailable",
                         {"error": "busy, try again", "detail": e.detail})
        except forkpool.ConnectionError as e:
            local.client = None
            return reply(start_response, "503 Service Unavailable",
                         {"error": "image service unavailable", "detail": str(e)})

    return app


def main(argv):
    path = argv[1] if len(argv) > 1 else None
    port = int(argv[2]) if len(argv) > 2 else 8080
    with make_server("127.0.0.1", port, make_app(path)) as httpd:
        print("serving on http://127.0.0.1:%d/" % httpd.server_port)
        httpd.serve_forever()


if __name__ == "__main__":
    main(sys.argv)
