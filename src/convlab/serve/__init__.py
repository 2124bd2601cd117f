"""``convlab serve``: a local playground — type a spec, see the summary, the arithmetic and the errors
change as you type.

The server is the standard library's ``ThreadingHTTPServer``: the page is one user's local view over
convlab's own functions (a handful of small JSON calls, each a few milliseconds), so a web framework
would add a dependency and nothing the page needs. Everything the page uses — HTML, script, styles —
is served from this package: it works offline, with no CDN.

Safety: bound to 127.0.0.1 by default (another ``--host`` prints a warning); on a local address only
requests whose ``Host`` header names the local machine are answered (a web page elsewhere cannot
reach the playground through DNS rebinding); the API never imports code or reads files (see
:mod:`convlab.serve.api`) and bounds every request's size.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from . import api

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_QUERY_BYTES = 64 * 1024

# name -> content type; nothing else under static/ is served
_STATIC = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
           "style.css": "text/css; charset=utf-8"}


def _static(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


class _Handler(BaseHTTPRequestHandler):
    server_version = "convlab-serve"
    protocol_version = "HTTP/1.1"  # keep-alive: the page's calls as you type reuse one connection
    quiet = True

    def log_message(self, fmt, *args):  # noqa: D401 - the page polls as you type: no line per request
        if not self.quiet:
            super().log_message(fmt, *args)

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy",
                         "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: dict) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json; charset=utf-8")

    def _host_ok(self) -> bool:
        if not self.server.local_only:  # type: ignore[attr-defined]
            return True
        host = (self.headers.get("Host") or "").strip()
        if host.startswith("["):
            name = host[1:host.find("]")] if "]" in host else host
        else:
            name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        return name in LOCAL_HOSTS

    def do_HEAD(self):  # noqa: N802
        self.do_GET()

    def do_GET(self):  # noqa: N802
        if not self._host_ok():
            return self._json(403, {"ok": False, "kind": "UsageError",
                                    "message": "the playground answers requests for localhost only"})
        if len(self.path) > MAX_QUERY_BYTES:
            return self._json(414, {"ok": False, "kind": "UsageError",
                                    "message": f"the request is {len(self.path):,} bytes; the playground takes at "
                                               f"most {MAX_QUERY_BYTES:,}"})
        url = urlsplit(self.path)
        path = url.path
        if path in ("/", "/index.html"):
            return self._send(200, _static("index.html"), _STATIC["index.html"])
        if path.startswith("/static/") and path[len("/static/"):] in _STATIC:
            name = path[len("/static/"):]
            return self._send(200, _static(name), _STATIC[name])
        if path.startswith("/api/"):
            params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            try:
                status, body = api.handle(path[len("/api/"):], params)
            except Exception as e:  # a bug must not take the server down: say so, keep serving
                print(f"convlab serve: internal error on {path}: {type(e).__name__}: {e}", file=sys.stderr)
                status, body = 500, {"ok": False, "kind": type(e).__name__,
                                     "message": f"internal error ({type(e).__name__}: {e}); please report it"}
            return self._json(status, body)
        return self._json(404, {"ok": False, "kind": "UsageError", "message": f"nothing at {path[:80]}"})


def make_server(host: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
    """A playground server bound to ``host:port`` (port 0: a free one), not yet serving."""
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    server.local_only = host in LOCAL_HOSTS  # type: ignore[attr-defined]
    return server


def serve(host: str = "127.0.0.1", port: int = 8765, open_browser: bool = False, quiet: bool = True) -> None:
    """Serve the playground until Ctrl-C."""
    server = make_server(host, port)
    _Handler.quiet = quiet
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{server.server_address[1]}/"
    if host not in LOCAL_HOSTS:
        print(f"convlab serve: warning: listening on {host}, not only this machine: anyone who can reach it can "
              f"use the playground (it runs no code and reads no files)", file=sys.stderr)
    print(f"convlab playground at {url}  (Ctrl-C to stop)", flush=True)
    if open_browser:
        import webbrowser

        threading.Timer(0.3, webbrowser.open, args=(url,)).start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
