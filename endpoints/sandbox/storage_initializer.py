"""KServe's real storage initializer for the sandbox: PyPI ``kserve-storage`` in a virtualenv of
its own, run as a subprocess the way the storage-initializer image runs it.

- ``ensure_venv()`` creates the virtualenv on first use (``python -m venv`` + pip) under a file
  lock, so parallel test workers and processes wait for one installer and then share it; a
  marker file records the requirement it was made for. Default location
  ``<repo>/var/kserve-storage``, else ``$SANDBOX_STORAGE_INITIALIZER_VENV`` or an explicit path.
- ``run(uri, out_dir, env)`` runs ``storage_entrypoint.py`` (the image's entrypoint, 0.17 on)
  with *only* the container's environment plus a minimal ``PATH``/``HOME``, a timeout, and the
  combined output captured as the container's log.
- ``runnable_here(uri, env)``: whether that download can happen on this machine at all — an
  ``s3://`` URI whose S3 endpoint (``AWS_ENDPOINT_URL`` or ``S3_ENDPOINT`` of the env) names a
  loopback address, or an ``http(s)://`` URI to a loopback host. Everything else (public clouds,
  the Hugging Face Hub, an S3 download without an endpoint, which would go to AWS) stays
  simulated by the controller. The run itself can reach loopback only (storage_entrypoint.py).
- ``termination_message(log)``: what the kubelet puts in the container's terminated state under
  ``terminationMessagePolicy: FallbackToLogsOnError`` (KServe's choice for this container): the
  last 80 lines of the log, at most the last 2048 bytes.

``python -m endpoints.sandbox.storage_initializer ensure`` creates the virtualenv ahead of time
(``make test`` does). Plain Python, no project imports (the sandbox rule).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from .storage_entrypoint import is_loopback

# kserve-storage is released with KServe: 0.20 is KServe 0.20's own, 0.21 the newest on PyPI.
REQUIREMENT = "kserve-storage>=0.20,<0.22"
VENV_ENV = "SANDBOX_STORAGE_INITIALIZER_VENV"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_VAR_DIR = REPO_ROOT / "var"
MARKER = ".sandbox-kserve-storage"
PARTIAL = ".sandbox-kserve-storage-partial"  # made by ensure_venv, removed once pip succeeded
ENTRYPOINT = Path(__file__).resolve().parent / "storage_entrypoint.py"
MOUNT_PATH = "/mnt/models"
# kubelet: FallbackToLogsOnError keeps the last 80 lines, at most 2048 bytes of them.
TERMINATION_LINES = 80
TERMINATION_BYTES = 2048


class StorageInitializerUnavailable(RuntimeError):
    """kserve-storage could not be installed (the message says where and why)."""


def default_venv() -> Path:
    configured = os.environ.get(VENV_ENV)
    return Path(configured).expanduser() if configured else DEFAULT_VAR_DIR / "kserve-storage"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def installed_version(venv: Path) -> str | None:
    """The kserve-storage version of a ready virtualenv made for ``REQUIREMENT``, else None."""
    try:
        requirement, version = (venv / MARKER).read_text().split("\n")[:2]
    except (OSError, ValueError):
        return None
    if requirement != REQUIREMENT or not venv_python(venv).exists():
        return None
    return version or None


def creatable() -> bool:
    """This interpreter can make a virtualenv with pip in it."""
    return all(importlib.util.find_spec(name) is not None for name in ("venv", "ensurepip"))


_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


@contextlib.contextmanager
def _venv_lock(venv: Path):
    """One installer at a time: a thread lock in this process, a file lock across processes."""
    with _locks_guard:
        lock = _locks.setdefault(venv, threading.Lock())
    with lock:
        venv.parent.mkdir(parents=True, exist_ok=True)
        with open(venv.parent / f".{venv.name}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def build_venv(venv: Path, *, requirements: list[str], requirement_line: str, marker: str, partial: str,
               probe: str, action: str, foreign: str, error: type[Exception], python: str | None,
               timeout: float) -> None:
    """Make ``venv`` with ``requirements`` pip-installed, under the caller's ``_venv_lock``: a
    leftover of an interrupted or older build is removed first, anything else already there is
    refused with ``foreign``; failures raise ``error`` ("cannot <action>…", with pip's last lines).
    The marker file records ``requirement_line``, what ``probe`` (Python code run in the venv)
    prints, and the time it took. The storage initializer's and the model runtimes' virtualenvs."""
    if venv.exists() and any(venv.iterdir()):
        if not ((venv / marker).exists() or (venv / partial).exists()):
            # Never delete what the sandbox did not make (the variable may point anywhere).
            raise error(foreign)
        shutil.rmtree(venv)  # half made (interrupted) or for another requirement
    started = time.monotonic()
    steps = [[python or sys.executable, "-m", "venv", str(venv)],
             [str(venv_python(venv)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              *requirements]]
    venv.mkdir(parents=True, exist_ok=True)
    (venv / partial).write_text(requirement_line + "\n")
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise error(f"cannot {action}: {' '.join(step[1:4])}: {exc}") from None
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise error(f"cannot {action} ({' '.join(step[1:4])} exited with {done.returncode}):\n{tail}")
    found = subprocess.run([str(venv_python(venv)), "-c", probe], capture_output=True, text=True,
                           check=False).stdout.strip()
    (venv / marker).write_text(f"{requirement_line}\n{found}\n{time.monotonic() - started:.1f}s\n")
    (venv / partial).unlink(missing_ok=True)


def ensure_venv(venv: str | Path | None = None, *, python: str | None = None, timeout: float = 900.0) -> Path:
    """The interpreter of a virtualenv with kserve-storage, creating it if needed;
    ``StorageInitializerUnavailable`` when venv or pip fails (with pip's last lines)."""
    venv = Path(venv) if venv else default_venv()
    if installed_version(venv):
        return venv_python(venv)
    with _venv_lock(venv):
        if installed_version(venv):  # another worker made it while we waited
            return venv_python(venv)
        build_venv(venv, requirements=[REQUIREMENT], requirement_line=REQUIREMENT, marker=MARKER, partial=PARTIAL,
                   probe="from importlib.metadata import version; print(version('kserve-storage'))",
                   action=f"install {REQUIREMENT} into {venv}",
                   foreign=(f"{venv} exists and is not a virtualenv the sandbox made for {REQUIREMENT}; remove it "
                            f"or point {VENV_ENV} elsewhere"),
                   error=StorageInitializerUnavailable, python=python, timeout=timeout)
        return venv_python(venv)


@dataclass
class Result:
    exit_code: int
    log: str
    seconds: float
    timed_out: bool = False

    @property
    def termination_message(self) -> str:
        return termination_message(self.log)


def termination_message(log: str) -> str:
    lines = log.splitlines(keepends=True)[-TERMINATION_LINES:]
    data = "".join(lines).encode()[-TERMINATION_BYTES:]
    return data.decode("utf-8", errors="replace")


def endpoint_hosts(env: dict[str, str]) -> list[str]:
    """The hosts the S3 variables name: ``AWS_ENDPOINT_URL``'s, and ``S3_ENDPOINT``'s (which
    may carry a scheme of its own: before 0.17 KServe kept it and put another in front)."""
    hosts = []
    url = env.get("AWS_ENDPOINT_URL") or ""
    if url:
        hosts.append(urlparse(url).hostname or "")
    endpoint = (env.get("S3_ENDPOINT") or "").strip()
    if endpoint:
        hosts.append(urlparse(endpoint if "//" in endpoint else f"//{endpoint}").hostname or "")
    return hosts


def runnable_here(uri: str, env: dict[str, str]) -> bool:
    """Whether KServe's initializer can try ``uri`` on this machine: an S3 endpoint meant for a
    loopback address (even one KServe mangled, which then fails for real, as it would in a
    cluster), or an http(s) URL to a loopback host. The run's network reaches loopback only."""
    parsed = urlparse(uri or "")
    if parsed.scheme == "s3":
        return any(is_loopback(host) for host in endpoint_hosts(env))
    if parsed.scheme in ("http", "https"):
        return is_loopback(parsed.hostname)
    return False


def run(uri: str, out_dir: Path, env: dict[str, str], *, python: Path, timeout: float = 120.0,
        processes: set | None = None) -> Result:
    """Run the storage initializer for ``uri`` into ``out_dir`` with the container's ``env``.
    ``processes`` (optional) holds the running Popen so an owner can stop it early."""
    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sandbox-si-home-") as home:
        full_env = {**env, "PATH": f"{Path(python).parent}:/usr/bin:/bin", "HOME": home}
        process = subprocess.Popen([str(python), "-I", str(ENTRYPOINT), uri, str(out_dir)], env=full_env,
                                   cwd=home, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        if processes is not None:
            processes.add(process)
        try:
            output, _ = process.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill_group(process)
            output, _ = process.communicate()
            timed_out = True
        finally:
            if processes is not None:
                processes.discard(process)
    log = output.decode("utf-8", errors="replace")
    code = process.returncode
    if timed_out:
        log += f"sandbox: the storage initializer did not finish within {timeout:g} s and was killed\n"
        code = 137
    return Result(exit_code=code if code >= 0 else 128 - code, log=log, seconds=time.monotonic() - started,
                  timed_out=timed_out)


def _kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process group this module started (the initializer and its download workers)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def stop(process: subprocess.Popen) -> None:
    """End a running initializer started by ``run`` (by its process group)."""
    if process.poll() is None:
        _kill_group(process)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The sandbox's kserve-storage virtualenv.")
    parser.add_argument("command", choices=("ensure", "where"))
    parser.add_argument("--venv", default=None, help=f"default: ${VENV_ENV} or {DEFAULT_VAR_DIR / 'kserve-storage'}")
    args = parser.parse_args(argv)
    venv = Path(args.venv) if args.venv else default_venv()
    if args.command == "where":
        print(venv)
        return 0
    started = time.monotonic()
    ready = installed_version(venv)
    try:
        ensure_venv(venv)
    except StorageInitializerUnavailable as exc:
        print(f"storage initializer: {exc}", file=sys.stderr)
        return 1
    print(f"storage initializer: {REQUIREMENT} ({installed_version(venv)}) in {venv}"
          + ("" if ready else f", created in {time.monotonic() - started:.1f} s"))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
