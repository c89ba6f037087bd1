"""Running the app under uvicorn on a socket we bind ourselves (so a busy port is one clear line, not a traceback)."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
import webbrowser
from typing import Iterator

from ..errors import ImpastoError
from .settings import ServeSettings, is_loopback


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on host:port; ImpastoError if the address cannot be used."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ImpastoError(f"--host {host}: cannot resolve it ({e.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise ImpastoError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    # Listening from here on: a client that connects as soon as the address is printed (a test, --open's browser)
    # waits in the backlog while the app starts, instead of being refused.
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(host: str, port: int) -> str:
    name = host.strip("[]")
    if name in ("0.0.0.0", "::"):
        name = "127.0.0.1"
    return f"http://[{name}]:{port}" if ":" in name else f"http://{name}:{port}"


def _server(app, grace: float):
    """A uvicorn server that ends the app's jobs, event streams and live cameras as soon as it is asked to stop:
    left open, they made Ctrl-C wait out the grace period and print a CancelledError traceback per connection."""
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None) -> None:
            # Before uvicorn waits for open connections: the event streams and live cameras then close by themselves.
            app.state.jobs.begin_shutdown()
            await super().shutdown(sockets)

        def stop(self) -> None:
            """Stop from another thread, as a signal would."""
            self.should_exit = True

    return Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=grace))


def serve(settings: ServeSettings, open_browser: bool = False) -> int:
    """Serve until Ctrl-C; returns the exit code."""
    settings.validate()
    from .app import create_app

    app = create_app(settings)
    sock = bind(settings.host, settings.port)
    port = sock.getsockname()[1]
    url = url_of(settings.host, port)
    if not is_loopback(settings.host):
        print(
            f"impasto: warning: listening on {settings.host}:{port}, reachable from other machines; there is no "
            "authentication, so anyone who can reach it can upload images and run jobs",
            file=sys.stderr,
        )
    print(
        f"impasto: serving the web app on {url}/ and the API on {url}/api (docs: {url}/api/docs); Ctrl-C stops",
        file=sys.stderr,
    )
    server = _server(app, grace=3)
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url + "/",)).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down cleanly on Ctrl-C, then re-raises it: that is a normal stop
        pass
    finally:
        sock.close()
    print("impasto: server stopped", file=sys.stderr)
    return 0


@contextlib.contextmanager
def background(settings: ServeSettings) -> Iterator[str]:
    """Serve in a thread of this process (for tests and benchmarks); yields the base URL, stops on exit."""
    from .app import create_app

    app = create_app(settings)
    sock = bind(settings.host, settings.port)
    server = _server(app, grace=2)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="impasto-server", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        yield url_of(settings.host, sock.getsockname()[1])
    finally:
        server.stop()
        thread.join(15)
        sock.close()
