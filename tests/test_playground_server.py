"""The playground's server through Starlette's TestClient: the contract with lab.race, SSE framing,
validation errors, the guards, bounded work, basin and phase maps, claims."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
from starlette.testclient import TestClient  # noqa: E402

from descentlab.lab import race  # noqa: E402
from descentlab.playground.server import Limits, create_app  # noqa: E402

BASE = "http://127.0.0.1:8765"


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(), base_url=BASE) as c:
        yield c


def events(response) -> list[tuple[str, dict]]:
    """Parse an SSE body strictly: blocks of 'event: x' + 'data: {json}', each ended by a blank line."""
    text = response.text
    assert text.endswith("\n\n")
    out = []
    for block in text[:-2].split("\n\n"):
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        out.append((lines[0][7:], json.loads(lines[1][6:])))
    return out


REQUEST = {
    "landscape": "two-minima",
    "optimizers": ["sgd(lr=0.05)", "sgd(lr=0.05, momentum=0.9)", "adam(lr=0.1)"],
    "start": [1.6, 1.2],
    "steps": 120,
    "noise": 0.05,
    "seed": 3,
}


def test_the_streamed_frames_are_lab_race_value_for_value(client):
    response = client.post("/api/race", json=REQUEST)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    stream = events(response)
    names = [name for name, _ in stream]
    assert names[0] == "start" and names[-1] == "done" and set(names[1:-1]) == {"frame"}
    expected = race(
        "two-minima", REQUEST["optimizers"], start=REQUEST["start"], steps=120, noise=0.05, seed=3
    )
    frames = [data for name, data in stream if name == "frame"]
    assert [f["step"] for f in frames] == list(range(121))
    for run_index, run in enumerate(expected.runs):
        points = np.array([next(r["w"] for r in f["runs"] if r["i"] == run_index) for f in frames])
        losses = np.array([next(r["loss"] for r in f["runs"] if r["i"] == run_index) for f in frames])
        norms = np.array([next(r["grad_norm"] for r in f["runs"] if r["i"] == run_index) for f in frames])
        np.testing.assert_array_equal(points, run.trajectory)
        np.testing.assert_array_equal(losses, run.loss)
        np.testing.assert_array_equal(norms, run.grad_norm)
    done = stream[-1][1]
    assert [r["label"] for r in done["runs"]] == [r.label for r in expected.runs]
    for got, run in zip(done["runs"], expected.runs):
        assert got["final_point"] == run.final_point.tolist()
        assert got["converged_at"] == run.converged_at and got["status"] == run.status
        assert len(got["curvature"]["lambda_max"]) == len(run.trajectory)
    start = stream[0][1]
    assert start["labels"] == [r.label for r in expected.runs]
    assert "descentlab race 'two-minima' --opt 'sgd(lr=0.05)'" in start["reproduce"]["cli"]
    assert "--start 1.6,1.2 --steps 120 --noise 0.05 --seed 3" in start["reproduce"]["cli"]


def test_the_python_it_offers_reproduces_the_race(client):
    stream = events(client.post("/api/race", json=REQUEST))
    python = stream[0][1]["reproduce"]["python"].replace("save_figure(plot_race(result), 'race.png')", "")
    namespace: dict = {}
    exec(python, namespace)
    final = [r["final_point"] for r in stream[-1][1]["runs"]]
    assert [run.final_point.tolist() for run in namespace["result"].runs] == final


def test_the_commands_keep_the_landscapes_arguments(client):
    # quadratic(kappa=10), not the bare name 'quadratic' (which is another landscape: κ = 100)
    body = {"landscape": "quadratic(kappa=10)", "optimizers": ["sgd(lr=0.0198)"], "steps": 30}
    stream = events(client.post("/api/race", json=body))
    start = stream[0][1]
    assert start["request"]["landscape"] == "quadratic(kappa=10)"
    assert "descentlab race 'quadratic(kappa=10)' --opt" in start["reproduce"]["cli"]
    namespace: dict = {}
    exec(start["reproduce"]["python"].replace("save_figure(plot_race(result), 'race.png')", ""), namespace)
    final = [r["final_point"] for r in stream[-1][1]["runs"]]
    assert [run.final_point.tolist() for run in namespace["result"].runs] == final
    assert race("quadratic", body["optimizers"], steps=30).runs[0].final_point.tolist() != final[0]


def test_a_run_that_stops_is_absent_from_later_frames_and_failed_is_not_diverged(client):
    response = client.post(
        "/api/race",
        json={"landscape": "strongly-convex", "optimizers": ["sgd(lr=1.0)", "sgd(lr=0.1)"], "steps": 60},
    )
    stream = events(response)
    done = stream[-1][1]["runs"]
    assert done[0]["diverged_at"] is not None and done[0]["failed_at"] is None
    last = [data for name, data in stream if name == "frame"][-1]
    assert [r["i"] for r in last["runs"]] == [1]


@pytest.mark.parametrize(
    "body,message",
    [
        ({"optimizers": ["adma(lr=0.1)"]}, "did you mean"),
        ({"optimizers": ["adam(lr=-1)"]}, "lr must be"),
        ({"optimizers": ["sgd(momentum=1.5)"]}, "momentum must be in [0, 1)"),
        ({"optimizers": ["adam(lr=1e400)"]}, "1e400"),
        ({"optimizers": ["adam(lr=0.1, lr=0.2)"]}, "given twice"),
        ({"optimizers": ["sgd(lr=0.1)"] * 9}, "at most 8 optimizers"),
        ({"optimizers": ["sgd(lr=0.1)"], "steps": 2001}, "steps must be an integer in [1, 2000]"),
        ({"optimizers": ["sgd(lr=0.1)"], "start": [9, 9]}, "outside the domain"),
        ({"optimizers": ["sgd(lr=0.1)"], "landscape": "two-minimum"}, "did you mean 'two-minima'"),
        ({"optimizers": ["sgd(lr=0.1)"], "formula": "__import__('os')"}, "unexpected '_'"),
        ({"optimizers": []}, "optimizers must be a list"),
    ],
)
def test_bad_requests_are_400_with_the_librarys_message(client, body, message):
    response = client.post("/api/race", json={"landscape": "two-minima", **body})
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_an_out_of_range_hyperparameter_is_the_validators_own_message(client):
    from descentlab.optim import Adam

    with pytest.raises(ValueError) as caught:
        Adam([__import__("torch").zeros(1, requires_grad=True)], betas=(0.9, 1.5))
    response = client.post("/api/validate", json={"spec": "adam(betas=(0.9, 1.5))"})
    assert response.status_code == 400 and str(caught.value) in response.json()["error"]
    assert client.post("/api/validate", json={"spec": "adam(lr=0.05)"}).json()["label"] == "Adam(lr=0.05)"


def test_oversized_non_json_and_non_object_bodies_are_refused(client):
    big = {"landscape": "two-minima", "optimizers": ["sgd(lr=0.1)"], "pad": "x" * 17000}
    response = client.post("/api/race", json=big)
    assert response.status_code == 400 and "larger than the limit of 16384" in response.json()["error"]
    response = client.post(
        "/api/race", content=b"landscape=two-minima", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 400 and "JSON" in response.json()["error"]
    response = client.post("/api/race", content=b"[1, 2]", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "JSON object" in response.json()["error"]


def test_a_wrong_host_header_is_400_and_no_cors_headers_are_sent(client):
    response = client.get("/api/meta", headers={"Host": "evil.example:8765"})
    assert response.status_code == 400 and "bad Host header" in response.json()["error"]
    response = client.get("/api/meta", headers={"Origin": "http://evil.example"})
    assert response.status_code == 200
    assert not any(k.lower().startswith("access-control") for k in response.headers)
    response = client.options(
        "/api/race", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert response.status_code >= 400 and "access-control-allow-origin" not in response.headers


def test_a_non_loopback_server_needs_its_token():
    app = create_app(host="0.0.0.0", port=9000, token="s3cret")
    with TestClient(app, base_url="http://0.0.0.0:9000") as c:
        assert c.get("/api/meta").status_code == 403
        assert c.get("/api/meta", headers={"X-Descentlab-Token": "s3cret"}).status_code == 200
        assert c.get("/?token=s3cret").status_code == 200
        assert (
            c.get("/api/meta", headers={"Host": "127.0.0.1:9000", "X-Descentlab-Token": "s3cret"}).status_code
            == 400
        )


def test_meta_gives_the_validated_ranges(client):
    data = client.get("/api/meta").json()
    sgd = {h["name"]: h for h in data["optimizers"]["sgd"]["hyperparameters"]}
    assert sgd["momentum"]["low"] == 0 and sgd["momentum"]["high"] == 1 and sgd["momentum"]["high_open"]
    assert sgd["lr"]["scale"] == "log" and sgd["momentum"]["scale"] == "linear"
    adam = {h["name"]: h for h in data["optimizers"]["adam"]["hyperparameters"]}
    assert adam["eps"]["low_open"] and adam["betas[1]"]["default"] == 0.999
    assert data["limits"]["steps"] == 2000 and data["limits"]["optimizers"] == 8
    assert "two-minima" in data["landscapes"]


def test_a_busy_server_answers_503_at_once():
    app = create_app(limits=Limits(concurrency=0))
    with TestClient(app, base_url=BASE) as c:
        response = c.post("/api/race", json={"landscape": "two-minima", "optimizers": ["sgd(lr=0.1)"]})
        assert response.status_code == 503


def test_the_wall_clock_limit_stops_a_race_with_an_error_event():
    app = create_app(limits=Limits(seconds=0.0))
    with TestClient(app, base_url=BASE) as c:
        stream = events(
            c.post(
                "/api/race", json={"landscape": "two-minima", "optimizers": ["sgd(lr=0.01)"], "steps": 2000}
            )
        )
    assert stream[-1][0] == "error" and "wall-clock limit" in stream[-1][1]["error"]


def test_a_basin_map_equals_single_races(client):
    body = {
        "landscape": "two-minima",
        "optimizer": "sgd(lr=0.05, momentum=0.9)",
        "resolution": 7,
        "steps": 150,
    }
    data = client.post("/api/basins", json=body).json()
    (x0, x1), (y0, y1) = [[-2.0, 2.0], [-1.5, 1.5]]
    for r, c in [(0, 0), (3, 3), (6, 2), (5, 6)]:
        start = (x0 + (x1 - x0) * c / 6, y0 + (y1 - y0) * r / 6)
        run = race("two-minima", ["sgd(lr=0.05, momentum=0.9)"], start=start, steps=150).runs[0]
        assert data["minimum"][r][c] == (run.minimum if run.minimum is not None else -1)
        assert data["converged_at"][r][c] == (run.converged_at if run.converged_at is not None else -1)


def test_a_basin_map_refuses_an_optimizer_that_mixes_starts(client):
    response = client.post("/api/basins", json={"optimizer": "lbfgs", "resolution": 5})
    assert response.status_code == 400 and "elementwise" in response.json()["error"]
    response = client.post("/api/basins", json={"optimizer": "sgd(lr=0.1)", "resolution": 102})
    assert (
        response.status_code == 400
        and "resolution must be an integer in [2, 101]" in response.json()["error"]
    )


def test_a_phase_map_cell_equals_a_single_race(client):
    body = {
        "landscape": "quadratic(kappa=10)",
        "optimizer": "sgd",
        "beta_key": "momentum",
        "n_lr": 3,
        "n_beta": 3,
        "steps": 50,
        "lr_range": [0.01, 0.1],
        "beta_range": [0.0, 0.9],
    }
    data = client.post("/api/phase", json=body).json()
    lr, beta = data["lrs"][1], data["betas"][2]
    run = race("quadratic(kappa=10)", [f"sgd(lr={lr!r}, momentum={beta!r})"], steps=50).runs[0]
    assert data["gap"][2][1] == pytest.approx(run.final_loss - 0.0, rel=1e-12, abs=1e-300)


def test_claims_are_listed_and_judged_by_the_same_predicate(client):
    listed = client.get("/api/claims").json()
    assert len(listed) >= 19
    verdict = client.post("/api/claims/noise-escapes-a-saddle", json={}).json()
    assert verdict["mark"] == "✓" and verdict["figure_png"].startswith("data:image/png;base64,")
    from descentlab.claims import check

    assert verdict["summary"] == check("noise-escapes-a-saddle").summary


def test_the_page_and_its_script_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "static/app.js" in page.text and "cdn" not in page.text.lower()
    script = client.get("/static/app.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert client.get("/static/../server.py").status_code == 404
