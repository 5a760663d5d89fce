"""The playground's local web server: the real library behind a page that only draws.

``create_app()`` returns a Starlette application:

* ``GET /`` and ``/static/...`` — the vendored page (plain JavaScript, no CDN, no build step);
* ``GET /api/meta`` — optimizers with their hyperparameters (name, default, validated bounds, log or
  linear slider), landscapes, limits;
* ``POST /api/race`` — a race of up to 8 optimizers named by spec strings, streamed as Server-Sent
  Events: ``start`` (labels, the commands that reproduce it), one ``frame`` per step (every run's point,
  loss and gradient norm — the numbers :func:`descentlab.lab.race` returns for the same request), then
  ``done`` (the table, final points, Hessian eigenvalues along each path) or ``error``;
* ``POST /api/landscape``, ``/api/basins``, ``/api/phase`` — the landscape on a grid, basin-of-attraction
  maps (thousands of starts as one batched tensor), learning-rate × β phase maps;
* ``POST /api/validate`` — a spec checked by the library's validators (the error is the library's own);
* ``GET /api/claims``, ``POST /api/claims/{slug}`` — the claims of :mod:`descentlab.claims` and a verdict.

Bounded work and a small attack surface: the default bind is 127.0.0.1; the Host header must name the
server (DNS rebinding); with a non-loopback host every request must carry the per-launch token; there
are no CORS headers; bodies are JSON (``Content-Type: application/json``, so a cross-site form cannot
post one without a preflight that is never granted) of at most 16 KiB; steps ≤ 2,000, optimizers ≤ 8,
grids ≤ 101 × 101; every request has a wall-clock limit, at most ``concurrency`` (the number of cores)
run at once and the others get 503 at once; a race stops at the first non-finite value and when the
client goes away.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route

from .._threads import intra_op_threads
from ..lab import Frame, RaceResult, race_stream
from ..validation import check_number
from . import compute
from .events import (
    STATIC,
    BadRequest,
    Limits,
    _get,
    _int,
    _landscape,
    _start,
    done_json,
    finite,
    frame_json,
    lr_and_beta,
    race_request,
    reproduce,
    start_event,
)
from .meta import meta

__all__ = ["Limits", "create_app", "STATIC", "reproduce"]

_CLAIM_LOCK = threading.Lock()
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _dumps(value: Any) -> str:
    return json.dumps(finite(value), allow_nan=False, separators=(",", ":"))


def _json(value: Any, status: int = 200) -> Response:
    return Response(_dumps(value), status_code=status, media_type="application/json")


def _error(message: str, status: int = 400) -> Response:
    return _json({"error": message}, status)


class _Guard:
    """ASGI middleware: the Host header must name this server; with a token, every request must carry it."""

    def __init__(self, app, hosts: set[str], token: str | None) -> None:
        self.app, self.hosts, self.token = app, hosts, token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if host.lower() not in self.hosts:
            return await _error(
                f"bad Host header {host!r}: this server answers to {', '.join(sorted(self.hosts))}"
            )(scope, receive, send)
        if self.token is not None:
            query = scope.get("query_string", b"").decode("latin-1")
            given = headers.get("x-descentlab-token") or dict(
                part.split("=", 1) for part in query.split("&") if "=" in part
            ).get("token")
            if given != self.token:
                return await _error("missing or wrong token: open the URL the server printed", 403)(
                    scope, receive, send
                )
        return await self.app(scope, receive, send)


class _Slots:
    """At most ``n`` requests computing at once; the next one is told so at once (503)."""

    def __init__(self, n: int) -> None:
        self.n, self.busy, self.lock = n, 0, threading.Lock()

    def take(self) -> bool:
        with self.lock:
            if self.busy >= self.n:
                return False
            self.busy += 1
            return True

    def give(self) -> None:
        with self.lock:
            self.busy -= 1


async def _body(request: Request, limit: int) -> dict[str, Any]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise BadRequest(f"send a JSON body (Content-Type: application/json), got {kind or 'none'!r}")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"body of {declared} bytes is larger than the limit of {limit}")
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > limit:
            raise BadRequest(f"body is larger than the limit of {limit} bytes")
    try:
        body = json.loads(data or b"{}")
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest(f"body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"body must be a JSON object, got {type(body).__name__}")
    return body


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {_dumps(data)}\n\n".encode()


def create_app(
    *, host: str = "127.0.0.1", port: int = 8765, token: str | None = None, limits: Limits | None = None
) -> Starlette:
    """The playground application (see the module docstring). ``token``: required on every request."""
    limits = limits or Limits()
    slots = _Slots(limits.concurrency)
    limits_json = asdict(limits)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        path = (STATIC / name).resolve()
        if path.parent != STATIC.resolve() or not path.is_file():
            return _error(f"no such file {name!r}", 404)
        kinds = {".js": "text/javascript", ".css": "text/css", ".html": "text/html"}
        return FileResponse(path, media_type=kinds.get(path.suffix, "application/octet-stream"))

    async def api_meta(request: Request) -> Response:
        return _json(await anyio.to_thread.run_sync(meta, limits_json))

    def bounded(work: Callable[[dict], Any]):
        """A JSON endpoint: body read within the limit, a slot taken (503 if none), work in a thread."""

        async def endpoint(request: Request) -> Response:
            try:
                body = await _body(request, limits.body_bytes)
            except BadRequest as error:
                return _error(str(error))
            if not slots.take():
                return _error("the server is busy (every core is computing); try again in a moment", 503)
            try:
                began = time.perf_counter()
                deadline = lambda: time.perf_counter() - began > limits.seconds  # noqa: E731
                body["__path"] = dict(request.path_params)

                def run() -> Any:
                    with intra_op_threads(1):
                        return work(body, deadline)

                return _json(await anyio.to_thread.run_sync(run))
            except (ValueError, TypeError) as error:
                return _error(str(error).splitlines()[0] if str(error) else type(error).__name__)
            finally:
                slots.give()

        return endpoint

    def landscape_work(body, deadline):
        landscape = _landscape(body)
        resolution = _int(body, "resolution", 81, 2, limits.grid)
        return compute.landscape_grid(landscape, resolution)

    def basins_work(body, deadline):
        landscape = _landscape(body)
        spec = _get(body, "optimizer")
        if not isinstance(spec, str):
            raise BadRequest("optimizer must be a spec string such as 'sgd(lr=0.05)'")
        resolution = _int(body, "resolution", 100, 2, limits.grid)
        steps = _int(body, "steps", 200, 1, limits.steps)
        began = time.perf_counter()
        result = compute.basin_map(landscape, spec, resolution, steps, deadline=deadline)
        result["seconds"] = time.perf_counter() - began
        result["stopped"] = "wall-clock limit" if result["steps"] < steps else None
        return result

    def phase_work(body, deadline):
        landscape = _landscape(body)
        name = _get(body, "optimizer", "sgd")
        beta_key = _get(body, "beta_key", "momentum")
        if not isinstance(name, str) or not isinstance(beta_key, str):
            raise BadRequest("optimizer and beta_key must be texts ('sgd', 'momentum')")
        n_lr = _int(body, "n_lr", 21, 2, limits.grid)
        n_beta = _int(body, "n_beta", 21, 2, limits.grid)
        steps = _int(body, "steps", 100, 1, limits.steps)
        lr_range = _get(body, "lr_range", [1e-3, 1.0])
        beta_range = _get(body, "beta_range", [0.0, 0.99])
        if not (
            isinstance(lr_range, list)
            and len(lr_range) == 2
            and isinstance(beta_range, list)
            and len(beta_range) == 2
        ):
            raise BadRequest("lr_range and beta_range must be [low, high]")
        lo, hi = (check_number("lr_range", v, low=0.0, low_open=True) for v in lr_range)
        blo, bhi = (check_number("beta_range", v) for v in beta_range)
        lrs = [lo * (hi / lo) ** (i / (n_lr - 1)) for i in range(n_lr)]
        betas = [blo + (bhi - blo) * i / (n_beta - 1) for i in range(n_beta)]
        start = _start(body, landscape) or landscape.start
        began = time.perf_counter()
        result = compute.phase_map(landscape, name, start, lrs, betas, beta_key, steps, deadline=deadline)
        result["seconds"] = time.perf_counter() - began
        return result

    def validate_work(body, deadline):
        from ..lab import make_contender, optimizer_registry

        spec = _get(body, "spec")
        if not isinstance(spec, str):
            raise BadRequest("spec must be a text such as 'adam(lr=0.05)'")
        label, _ = make_contender(spec, optimizer_registry())
        return {"ok": True, "spec": spec, "label": label, **lr_and_beta(spec)}

    def claim_work(body, deadline):
        from .._io import save_figure  # noqa: F401  (figures are rendered to memory below)
        from ..claims import check, get_claim

        claim = get_claim(body["__path"]["slug"])
        with _CLAIM_LOCK:  # one claim at a time: some use torch.func's forward mode, whose levels are global
            verdict = check(claim)
        buffer = io.BytesIO()
        verdict.measurement.draw().savefig(buffer, format="png", dpi=80, bbox_inches="tight")
        data = verdict.to_json()
        data["figure_png"] = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
        return data

    async def api_claims(request: Request) -> Response:
        from ..claims import CLAIMS

        return _json(
            [
                {
                    "slug": c.slug,
                    "text": c.text,
                    "source": c.source,
                    "expected": c.expected,
                    "hyperparameters": c.hyperparameters,
                    "playground": c.playground,
                    "command": c.command,
                }
                for c in CLAIMS
            ]
        )

    async def api_race(request: Request) -> Response:
        try:
            body = await _body(request, limits.body_bytes)
            asked, landscape = race_request(body, limits)
        except (BadRequest, ValueError) as error:
            return _error(str(error).splitlines()[0])
        if not slots.take():
            return _error("the server is busy (every core is computing); try again in a moment", 503)
        stream = race_stream(
            landscape,
            asked["optimizers"],
            asked["start"],
            asked["steps"],
            noise=asked["noise"],
            seed=asked["seed"],
            errors="record",
        )

        def first() -> Frame:
            with intra_op_threads(1):
                return next(stream)

        try:
            frame0 = await anyio.to_thread.run_sync(first)
        except (ValueError, TypeError) as error:
            slots.give()
            stream.close()
            return _error(str(error).splitlines()[0])
        except BaseException:
            slots.give()
            stream.close()
            raise
        began = time.perf_counter()

        def chunk() -> list[Frame | RaceResult]:
            """Frames until 15 ms have passed or the race is over: few thread hops, steady streaming."""
            out: list[Frame | RaceResult] = []
            until = time.perf_counter() + 0.015
            with intra_op_threads(1):
                for item in stream:
                    out.append(item)
                    if isinstance(item, RaceResult) or time.perf_counter() > until:
                        break
            return out

        async def events():
            try:
                yield _sse("start", start_event(frame0.labels, asked))
                yield _sse("frame", frame_json(frame0))
                while True:
                    # a client that goes away cancels this generator (Starlette listens for the disconnect
                    # while streaming): the finally below closes the race and frees the slot
                    if time.perf_counter() - began > limits.seconds:
                        yield _sse(
                            "error", {"error": f"stopped at the wall-clock limit of {limits.seconds:g} s"}
                        )
                        return
                    items = await anyio.to_thread.run_sync(chunk)
                    if not items:
                        return
                    for item in items:
                        if isinstance(item, RaceResult):
                            done = await anyio.to_thread.run_sync(done_json, item)
                            yield _sse("done", done)
                            return
                        yield _sse("frame", frame_json(item))
            finally:
                stream.close()
                slots.give()

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    routes = [
        Route("/", index),
        Route("/static/{name}", static),
        Route("/api/meta", api_meta),
        Route("/api/claims", api_claims),
        Route("/api/race", api_race, methods=["POST"]),
        Route("/api/landscape", bounded(landscape_work), methods=["POST"]),
        Route("/api/basins", bounded(basins_work), methods=["POST"]),
        Route("/api/phase", bounded(phase_work), methods=["POST"]),
        Route("/api/validate", bounded(validate_work), methods=["POST"]),
        Route("/api/claims/{slug}", bounded(claim_work), methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    names = {host, *LOOPBACK} if host in LOOPBACK else {host}
    hosts = set()
    for name in names:
        shown = f"[{name}]" if ":" in name else name
        hosts.update(
            {f"{shown}:{port}".lower(), shown.lower()} if port == 80 else {f"{shown}:{port}".lower()}
        )
    return _Guard(app, hosts, token)
