"""The sandbox's model runtimes: KServe's Python model server (PyPI ``kserve``) with scikit-learn,
xgboost (``xgboost-cpu``) and lightgbm, in a virtualenv of their own under ``var/`` (as KServe
runs each runtime in its own image), so their dependencies never constrain the console's.

- ``ensure_venv()`` creates it on first use under a file lock (parallel test workers and
  processes wait for one installer, then share it); a marker records the requirements it was
  made for, so a change of pins makes a new one. Default ``<repo>/var/model-runtimes``, else
  ``$SANDBOX_MODEL_RUNTIMES_VENV``.
- ``SERVABLE_FORMATS``: the model formats that really serve here. Every other format (LLMs,
  GPUs, Triton, TensorFlow, ONNX, …) stays simulated by the controller, and the
  InferenceService says so (``SIMULATED_ANNOTATION``).
- ``start(...)`` runs ``model_server.py`` for one revision on a loopback port and waits until
  the model is ready (or the process has died: ``RuntimeStartError`` with the log's tail).

``python -m endpoints.sandbox.serving.runtimes ensure`` makes the virtualenv ahead of time
(``make model-runtimes``). Plain Python, no project imports (the sandbox rule).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# Made, locked and checked like the storage initializer's virtualenv.
from endpoints.sandbox.storage_initializer import _venv_lock, build_venv

REQUIREMENTS = ("kserve>=0.21,<0.22", "scikit-learn>=1.4,<2", "xgboost-cpu>=3,<4", "lightgbm>=4,<5")
VENV_ENV = "SANDBOX_MODEL_RUNTIMES_VENV"
REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_VAR_DIR = REPO_ROOT / "var"
MARKER = ".sandbox-model-runtimes"
PARTIAL = ".sandbox-model-runtimes-partial"
MODEL_SERVER = Path(__file__).resolve().parent / "model_server.py"
SERVABLE_FORMATS = frozenset({"sklearn", "xgboost", "lightgbm"})
# On an InferenceService whose model cannot run on this machine: "simulated: no CPU runtime for <format>".
SIMULATED_ANNOTATION = "sandbox.inference-console.io/simulated"


class RuntimesUnavailable(RuntimeError):
    """The runtime virtualenv could not be made (the message says where and why)."""


class RuntimeStartError(RuntimeError):
    """A model server exited or did not become ready; the message carries its log's tail."""


def default_venv() -> Path:
    configured = os.environ.get(VENV_ENV)
    return Path(configured).expanduser() if configured else DEFAULT_VAR_DIR / "model-runtimes"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _requirement_line() -> str:
    return " ".join(REQUIREMENTS)


def installed_versions(venv: Path) -> str | None:
    """The installed versions (one line) of a ready virtualenv made for ``REQUIREMENTS``, else None."""
    try:
        requirement, versions = (venv / MARKER).read_text().split("\n")[:2]
    except (OSError, ValueError):
        return None
    if requirement != _requirement_line() or not venv_python(venv).exists():
        return None
    return versions or None


def ensure_venv(venv: str | Path | None = None, *, python: str | None = None, timeout: float = 1200.0) -> Path:
    """The interpreter of the runtime virtualenv, creating it if needed; ``RuntimesUnavailable``
    when venv or pip fails (with pip's last lines)."""
    venv = Path(venv) if venv else default_venv()
    if installed_versions(venv):
        return venv_python(venv)
    with _venv_lock(venv):
        if installed_versions(venv):
            return venv_python(venv)
        build_venv(venv, requirements=list(REQUIREMENTS), requirement_line=_requirement_line(), marker=MARKER,
                   partial=PARTIAL,
                   probe=("from importlib.metadata import version; print(' '.join(f'{n}=={version(n)}' for n in "
                          "('kserve', 'scikit-learn', 'xgboost-cpu', 'lightgbm')))"),
                   action=f"make the model runtimes in {venv}",
                   foreign=(f"{venv} exists and is not a virtualenv the sandbox made for its model runtimes; "
                            f"remove it or point {VENV_ENV} elsewhere"),
                   error=RuntimesUnavailable, python=python, timeout=timeout)
        return venv_python(venv)


def servable(model_format: str | None) -> bool:
    return (model_format or "").lower() in SERVABLE_FORMATS


def simulated_reason(model_format: str | None) -> str:
    return f"simulated: no CPU runtime for {model_format or 'this model'}"


@dataclass
class RuntimeProcess:
    """One model server (one revision)."""

    model_name: str
    model_format: str
    model_dir: Path
    port: int
    process: subprocess.Popen
    log_path: Path
    started_at: float = field(default_factory=time.monotonic)
    ready_seconds: float = 0.0

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the model server's process group, SIGKILL it if it does not go."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _ready(port: int, model_name: str) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", f"/v2/models/{model_name}/ready")
        answer = connection.getresponse()
        answer.read()
        return answer.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def start(*, python: Path, model_name: str, model_format: str, model_dir: Path, port: int, log_path: Path,
          timeout: float = 120.0) -> RuntimeProcess:
    """Start the model server for one revision on 127.0.0.1:``port`` and wait until it is ready."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603
            [str(python), "-I", str(MODEL_SERVER), "--model_name", model_name, "--model_dir", str(model_dir),
             "--model_format", model_format.lower(), "--http_port", str(port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={"PATH": f"{Path(python).parent}:/usr/bin:/bin", "HOME": str(log_path.parent),
                 "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    runtime = RuntimeProcess(model_name=model_name, model_format=model_format, model_dir=model_dir, port=port,
                             process=process, log_path=log_path)
    deadline = time.monotonic() + timeout
    while True:
        if _ready(port, model_name):
            runtime.ready_seconds = time.monotonic() - runtime.started_at
            return runtime
        if process.poll() is not None:
            raise RuntimeStartError(f"the model server exited with {process.returncode}:\n{runtime.log_tail()}")
        if time.monotonic() > deadline:
            runtime.stop()
            raise RuntimeStartError(f"the model server was not ready within {timeout:g} s:\n{runtime.log_tail()}")
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The sandbox's model-runtime virtualenv.")
    parser.add_argument("command", choices=("ensure", "where"))
    parser.add_argument("--venv", default=None, help=f"default: ${VENV_ENV} or {DEFAULT_VAR_DIR / 'model-runtimes'}")
    args = parser.parse_args(argv)
    venv = Path(args.venv) if args.venv else default_venv()
    if args.command == "where":
        print(venv)
        return 0
    started = time.monotonic()
    ready = installed_versions(venv)
    try:
        ensure_venv(venv)
    except RuntimesUnavailable as exc:
        print(f"model runtimes: {exc}", file=sys.stderr)
        return 1
    print(f"model runtimes: {installed_versions(venv)} in {venv}"
          + ("" if ready else f", created in {time.monotonic() - started:.1f} s"))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
