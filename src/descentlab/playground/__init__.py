"""The playground: ``descentlab playground`` serves a page where the real library races optimizers.

Install the extra: ``pip install "descentlab[playground]"`` (Starlette and uvicorn). The page
(``static/``) is plain JavaScript that only draws; every number comes from the server
(:mod:`~descentlab.playground.server`), which runs :mod:`descentlab.lab` and :mod:`descentlab.claims`.
Typed landscape formulas go through a whitelist parser (:mod:`~descentlab.playground.formula`).
The same page, opened from disk with recorded races beside it, replays them (snapshot mode, used by
the demo report: :func:`~descentlab.playground.snapshot.write_snapshot`).
"""

from __future__ import annotations

import secrets
import sys

__all__ = ["serve"]


def serve(host: str = "127.0.0.1", port: int = 8765, open_browser: bool = False, echo=print) -> None:
    """Run the playground server until interrupted (Ctrl-C)."""
    try:
        import uvicorn

        from .server import LOOPBACK, create_app
    except ImportError as error:  # pragma: no cover - the extra is in dev too
        raise ValueError(
            f"the playground needs its extra: pip install 'descentlab[playground]' ({error.name} is missing)"
        ) from None
    token = None
    if host not in LOOPBACK:
        token = secrets.token_urlsafe(16)
        echo(
            f"warning: serving on {host}, reachable from other machines; every request must carry the token "
            "below. Use the default --host 127.0.0.1 unless you mean it.",
            file=sys.stderr,
        )
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    app = create_app(host=host, port=port, token=token)
    echo(f"descentlab playground at {url}  (Ctrl-C stops it)")
    if open_browser:
        import threading
        import webbrowser

        threading.Timer(0.8, lambda: webbrowser.open(url)).start()
    uvicorn.run(app, host=host, port=port, log_level="warning")
