"""Live sources served from the tests themselves, on 127.0.0.1 only, every loop bounded in count and time.

    with MjpegServer(jpegs, fps=10, sessions=[(0, 60), (60, 120)]) as server:
        server.url    # http://127.0.0.1:PORT/stream.mjpg

MJPEG over HTTP the way FFmpeg's mpjpeg muxer frames it (multipart/x-mixed-replace, '--ffmpeg' boundary, each part
with Content-Type and Content-Length), which OpenCV's FFmpeg backend reads like an IP camera. Each connection
serves the next session's frame range at `fps` and then closes (a dropped connection); once the sessions are used
up, connections are answered 404 (a camera that stays away).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BOUNDARY = b"ffmpeg"
MAX_SECONDS = 120.0  # no session streams longer than this, whatever it is asked


class MjpegServer:
    """An HTTP MJPEG stream of `jpegs` (JPEG bytes, cycled) at `fps`; sessions: (first, stop) frame ranges, one per
    connection, each streaming at most max_seconds. `connections` counts the GET requests seen."""

    def __init__(
        self,
        jpegs: list[bytes],
        fps: float,
        sessions: list[tuple[int, int]] | None = None,
        max_seconds: float = MAX_SECONDS,
    ):
        self.jpegs, self.fps, self.max_seconds = jpegs, fps, max_seconds
        self.sessions = list(sessions or [(0, len(jpegs))])
        self.connections = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                with server._lock:
                    server.connections += 1
                    session = server.sessions.pop(0) if server.sessions else None
                if session is None:
                    self.send_error(404, "stream over")
                    return
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace;boundary={BOUNDARY.decode()}")
                self.end_headers()
                started = time.monotonic()
                for k, i in enumerate(range(*session)):
                    wait = started + k / server.fps - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    if time.monotonic() - started > server.max_seconds:
                        break
                    jpeg = server.jpegs[i % len(server.jpegs)]
                    head = b"--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % (BOUNDARY, len(jpeg))
                    try:
                        self.wfile.write(head + jpeg + b"\r\n")
                        self.wfile.flush()
                    except OSError:
                        return  # the client went away

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stream.mjpg"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    def __enter__(self) -> MjpegServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts connections and never answers (a source that hangs)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/stream.mjpg"

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.sock.close()


MPEGTS_PUSHER = """
import sys, time
import av, cv2
port, fps, files = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
out = av.open(f"tcp://127.0.0.1:{port}?listen=1&listen_timeout=60000", "w", format="mpegts")
stream = out.add_stream("mpeg2video", rate=int(fps))
first = cv2.imread(files[0])
stream.height, stream.width, stream.pix_fmt = first.shape[0], first.shape[1], "yuv420p"
started = time.monotonic()
for k, path in enumerate(files):
    time.sleep(max(0.0, started + k / fps - time.monotonic()))
    for packet in stream.encode(av.VideoFrame.from_ndarray(cv2.imread(path), format="bgr24")):
        out.mux(packet)
for packet in stream.encode():
    out.mux(packet)
out.close()
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def push_mpegts(files: list[str], fps: float) -> tuple[subprocess.Popen, str]:
    """A second protocol: MPEG-TS (MPEG-2 video) over TCP, pushed by PyAV's FFmpeg in a child process that listens
    on 127.0.0.1 (at most 60 s) and sends `files` (image paths) at `fps` to the first client. Returns the process
    and the URL to read (tcp://127.0.0.1:PORT)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", MPEGTS_PUSHER, str(port), str(fps), *files])
    return proc, f"tcp://127.0.0.1:{port}"
