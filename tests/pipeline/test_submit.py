"""Submission up to the HTTP request, against a local stand-in for the KFP API.

The stand-in (tests/pipeline/standin.py) is a real HTTP server on 127.0.0.1 started by
each test; it answers the few v2beta1 endpoints `kfp.Client` calls and records requests.
"""

from __future__ import annotations

import socket

import pytest

from miva.cli import main
from miva.config import load_config
from miva.pipeline import submit
from miva.pipeline.submit import SubmitError
from tests.pipeline.standin import StandIn


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    cfg = load_config("tiny-cpu")
    out = tmp_path_factory.mktemp("pkg") / "pipeline.yaml"
    return submit.compile_pipeline(cfg, "tiny-cpu", ["grpo.steps=3"], out)


def _kfp_api(standin: StandIn, runs=lambda r: (200, {"run_id": "run-42"})) -> None:
    standin.route("GET", "/apis/v2beta1/healthz", lambda r: (200, {"multi_user": True}))
    standin.route("GET", "/apis/v2beta1/experiments", lambda r: (200, {}))
    standin.route(
        "POST", "/apis/v2beta1/experiments", lambda r: (200, {"experiment_id": "exp-7", **r.body})
    )
    standin.route("POST", "/apis/v2beta1/runs", runs)


def test_submit_sends_the_compiled_pipeline_with_auth(package, monkeypatch):
    monkeypatch.setenv("KFP_TOKEN", "secret-token")
    cfg = load_config("tiny-cpu")
    with StandIn() as api:
        _kfp_api(api)
        run_id = submit.submit(
            cfg, package, host=api.url, namespace="team-a", experiment="exp", run_name="r1"
        )
    assert run_id == "run-42"
    assert all(r.headers.get("authorization") == "Bearer secret-token" for r in api.requests)
    exp = next(r for r in api.requests if r.method == "POST" and r.path.endswith("/experiments"))
    assert exp.body == {"display_name": "exp", "namespace": "team-a"}
    run = api.requests[-1]
    assert (run.method, run.path) == ("POST", "/apis/v2beta1/runs")
    assert run.body["display_name"] == "r1" and run.body["experiment_id"] == "exp-7"
    assert run.body["service_account"] == "miva-pipeline"
    # with Kubernetes settings the package is {pipeline_spec, platform_spec}
    spec = run.body["pipeline_spec"]["pipeline_spec"]
    assert "kubernetes" in run.body["pipeline_spec"]["platform_spec"]["platforms"]
    assert spec["pipelineInfo"]["name"] == "miva"
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["overrides"]["defaultValue"] == '["grpo.steps=3"]'
    assert params["preset"]["defaultValue"] == "tiny-cpu"


def test_rejected_submission_gives_one_clear_error(package):
    cfg = load_config("tiny-cpu")
    with StandIn() as api:
        _kfp_api(api, runs=lambda r: (400, {"error": "x", "message": "invalid pipeline spec"}))
        with pytest.raises(
            SubmitError, match=r"rejected the submission: HTTP 400.*invalid pipeline spec"
        ):
            submit.submit(cfg, package, host=api.url)


def test_login_redirect_and_bad_credentials_are_named():
    with StandIn() as api:
        api.route("GET", "/apis/v2beta1/healthz", lambda r: (302, {}))
        with pytest.raises(SubmitError, match="login page.*KFP_COOKIES"):
            submit.check_reachable(api.url)
    with StandIn() as api:
        api.route("GET", "/apis/v2beta1/healthz", lambda r: (403, {}))
        with pytest.raises(SubmitError, match="HTTP 403"):
            submit.check_reachable(api.url)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_host_fails_at_once(package, capsys):
    host = f"http://127.0.0.1:{_closed_port()}"
    rc = main(["pipeline", "run", "--host", host, "--output", str(package)])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"cannot reach Kubeflow Pipelines at {host}" in err and "Traceback" not in err


def test_wait_prints_status_lines_until_the_run_ends():
    states = iter(["PENDING", "RUNNING", "RUNNING", "FAILED"])
    with StandIn() as api:
        _kfp_api(api)
        api.route(
            "GET",
            "/apis/v2beta1/runs/run-42",
            lambda r: (200, {"run_id": "run-42", "state": next(states),
                             "error": {"message": "grpo: CUDA out of memory"}}),
        )  # fmt: skip
        client = submit.make_client(api.url, "kubeflow")
        lines: list[str] = []
        with pytest.raises(SubmitError, match="ended FAILED: grpo: CUDA out of memory"):
            submit.wait_for_run(client, "run-42", poll_s=0, log=lines.append, sleep=lambda s: None)
    assert [line.split(":")[1].split()[0] for line in lines] == ["PENDING", "RUNNING", "FAILED"]


def test_bad_override_fails_before_anything_is_compiled(tmp_path, capsys):
    out = tmp_path / "p.yaml"
    rc = main(["pipeline", "run", "--set", "grpo.nope=1", "--output", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "grpo.nope" in err and not out.exists()


def test_missing_host_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("KFP_HOST", raising=False)
    rc = main(["pipeline", "run", "--output", str(tmp_path / "p.yaml")])
    assert rc == 2 and "set KFP_HOST" in capsys.readouterr().err


def test_cluster_runs_need_a_preset_name(tmp_path):
    from miva.errors import ConfigError

    assert submit.cluster_preset("tiny-cpu") == "tiny-cpu"
    assert submit.cluster_preset(str(submit.CONFIG_DIR / "tiny-cpu.yaml")) == "tiny-cpu"
    own = tmp_path / "mine.yaml"
    own.write_text("seed: 1\n")
    with pytest.raises(ConfigError, match="baked into the images"):
        submit.cluster_preset(str(own))
