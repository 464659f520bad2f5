"""Compile the DAG to a pipeline YAML and submit it to Kubeflow Pipelines (`kfp.Client`).

Authentication (docs/cluster.md): `$KFP_TOKEN` is sent as a bearer token
(`existing_token`), `$KFP_COOKIES` as a Cookie header (e.g. the `authservice_session`
cookie of a Dex / oauth2-proxy login); without either, `kfp.Client` uses its own discovery
(in a pod: the projected service-account token at `$KF_PIPELINES_SA_TOKEN_PATH`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from miva.config import CONFIG_DIR, MivaConfig
from miva.errors import ConfigError, MivaError

FINAL_STATES = {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}


class SubmitError(MivaError):
    """The KFP API could not be reached, or it rejected the submission."""


def cluster_preset(preset: str) -> str:
    """A preset the stage images know: a name in configs/ (copied into every image).

    A YAML path inside configs/ becomes its name; any other path is refused, since the
    pods cannot read files from this machine.
    """
    path = Path(preset)
    if path.suffix not in {".yaml", ".yml"}:
        return preset
    if path.resolve().parent == CONFIG_DIR.resolve():
        return path.stem
    raise ConfigError(
        f"preset {preset!r} is a file outside {CONFIG_DIR}: cluster runs take a preset name "
        "baked into the images; add the file to configs/ and rebuild them (make images), "
        "or pass the changes as --set overrides"
    )


def compile_pipeline(
    cfg: MivaConfig, preset: str, overrides: list[str], output: str | Path, sweep=None
) -> Path:
    """Write the pipeline YAML (the sweep DAG when `sweep`, a SweepSpec, is given); the
    config was validated before this is called."""
    from kfp import compiler

    from miva.pipeline.dag import build_pipeline
    from miva.pipeline.sweep_dag import build_sweep_pipeline

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    preset = cluster_preset(preset)
    pipeline = (
        build_pipeline(cfg, preset, overrides)
        if sweep is None
        else build_sweep_pipeline(cfg, preset, overrides, sweep)
    )
    compiler.Compiler().compile(pipeline, str(output))
    return output


def resolve_host(cfg: MivaConfig, host: str | None = None) -> str:
    host = host or os.environ.get("KFP_HOST") or cfg.pipeline.host
    if not host:
        raise SubmitError(
            "no Kubeflow Pipelines endpoint: set KFP_HOST (e.g. http://localhost:8080 after "
            "`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`) or pipeline.host"
        )
    return host.rstrip("/")


def auth_headers() -> dict[str, str]:
    headers = {}
    if os.environ.get("KFP_TOKEN"):
        headers["Authorization"] = f"Bearer {os.environ['KFP_TOKEN']}"
    if os.environ.get("KFP_COOKIES"):
        headers["Cookie"] = os.environ["KFP_COOKIES"]
    return headers


def check_reachable(host: str, timeout_s: float = 10.0) -> None:
    """One quick request to the API's health endpoint, so an unreachable host or a missing
    login fails at once with one clear message (kfp.Client itself retries for ~25 s)."""
    import urllib.error
    import urllib.request

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    request = urllib.request.Request(f"{host}/apis/v2beta1/healthz", headers=auth_headers())
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout_s):
            return
    except urllib.error.HTTPError as exc:
        if exc.code in (301, 302, 303, 307, 308):
            raise SubmitError(
                f"Kubeflow Pipelines at {host} redirected to a login page "
                f"({exc.headers.get('Location', '?')}): pass a session cookie in KFP_COOKIES "
                "or a token in KFP_TOKEN"
            ) from None
        if exc.code in (401, 403):
            raise SubmitError(
                f"Kubeflow Pipelines at {host} refused the credentials (HTTP {exc.code}): "
                "check KFP_TOKEN / KFP_COOKIES"
            ) from None
        # Other statuses: the server is there; let the client report what it rejects.
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SubmitError(f"cannot reach Kubeflow Pipelines at {host}: {reason}") from None


def make_client(host: str, namespace: str):
    import warnings

    import kfp

    check_reachable(host)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return kfp.Client(
            host=host,
            namespace=namespace,
            existing_token=os.environ.get("KFP_TOKEN") or None,
            cookies=os.environ.get("KFP_COOKIES") or None,
        )


def _explain(exc: Exception, host: str, action: str) -> SubmitError:
    """One readable error for an unreachable host or a rejected request."""
    import urllib3

    status = getattr(exc, "status", None)
    if status is not None and hasattr(exc, "reason"):
        body = getattr(exc, "body", "") or ""
        try:
            import json

            body = json.loads(body).get("message") or json.loads(body).get("error") or body
        except (TypeError, ValueError, AttributeError):
            pass
        hint = " (check KFP_TOKEN / KFP_COOKIES)" if status in (401, 403) else ""
        return SubmitError(
            f"Kubeflow Pipelines at {host} rejected {action}: HTTP {status} {exc.reason}{hint}"
            + (f": {str(body).strip()[:500]}" if body else "")
        )
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        reason = getattr(exc, "reason", None) or exc
        return SubmitError(f"cannot reach Kubeflow Pipelines at {host}: {reason}")
    return SubmitError(f"Kubeflow Pipelines at {host}: {action} failed: {exc}")


def default_run_name(cfg: MivaConfig) -> str:
    return f"{cfg.run_name}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


def submit(
    cfg: MivaConfig,
    package: str | Path,
    *,
    host: str,
    namespace: str | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
    client=None,
) -> str:
    """Create a run from a compiled package; returns the KFP run id."""
    import urllib3

    namespace = namespace or cfg.pipeline.namespace
    try:
        client = client or make_client(host, namespace)
        result = client.create_run_from_pipeline_package(
            str(package),
            run_name=run_name or default_run_name(cfg),
            experiment_name=experiment or cfg.pipeline.experiment,
            namespace=namespace,
            service_account=cfg.pipeline.service_account,
        )
    except SubmitError:
        raise
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise _explain(exc, host, "the submission") from None
    except Exception as exc:
        if type(exc).__name__ == "ApiException":
            raise _explain(exc, host, "the submission") from None
        raise
    return result.run_id


def wait_for_run(
    client,
    run_id: str,
    *,
    poll_s: float = 15.0,
    timeout_s: float | None = None,
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Print a status line whenever the run's state changes; raise unless it succeeds."""
    import urllib3

    start = time.monotonic()
    last = None
    while True:
        try:
            run = client.get_run(run_id)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _explain(exc, "the KFP API", f"reading run {run_id}") from None
        except Exception as exc:
            if type(exc).__name__ == "ApiException":
                raise _explain(exc, "the KFP API", f"reading run {run_id}") from None
            raise
        state = str(getattr(run, "state", None) or "PENDING").upper()
        if state != last:
            log(f"run {run_id}: {state} ({time.monotonic() - start:.0f}s)")
            last = state
        if state in FINAL_STATES:
            if state != "SUCCEEDED":
                error = getattr(run, "error", None)
                detail = getattr(error, "message", None) or error or "see the KFP UI"
                raise SubmitError(f"run {run_id} ended {state}: {detail}")
            return state
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise SubmitError(f"run {run_id} still {state} after {timeout_s:.0f}s")
        sleep(poll_s)
