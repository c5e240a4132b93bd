"""``python -m endpoints.sandbox.run``: the sandbox cluster of ``make run`` — the fake
Kubernetes API server plus the simulated KServe controller, in one process until interrupted.

It writes a kubeconfig so ``kubectl`` (the one in the project's virtualenv) can look at the
simulated cluster: ``.venv/bin/kubectl --kubeconfig var/sandbox.kubeconfig get isvc -A``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from endpoints.sandbox import profile as profiles
from endpoints.sandbox.apiserver import FakeApiServer
from endpoints.sandbox.controller import SandboxController, SandboxSettings


def start_sandbox(*, port: int = 0, token: str | None = None, settings: SandboxSettings | None = None,
                  crds=(), **server_options) -> tuple[FakeApiServer, SandboxController]:
    """A fake API server serving the release profile's CRDs (its built-in ones when the profile
    has none) with the simulated KServe controller of that release running against it."""
    settings = settings or SandboxSettings()
    release = profiles.load(settings.profile or profiles.BUILTIN_PROFILE_DIR)
    server = FakeApiServer(crds=[*release.crds, *crds], token=token, port=port, **server_options).start()
    try:
        controller = SandboxController(server.store, settings, profile=release).start()
    except BaseException:
        server.stop()
        raise
    return server, controller


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Sandbox cluster: fake Kubernetes API + simulated KServe.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token-file", default=None, help="file holding the bearer token clients must send")
    parser.add_argument("--kubeconfig-out", default=None)
    parser.add_argument("--ingress-domain", default="example.com")
    parser.add_argument("--load-seconds", type=float, default=2.0)
    parser.add_argument("--ready-seconds", type=float, default=4.0)
    parser.add_argument("--profile", default=None,
                        help="a KServe release profile directory (crds/, runtimes/, configmap/, profile.yaml); "
                             "default: the built-in KServe 0.20 profile")
    parser.add_argument("--storage-initializer", choices=("auto", "on", "off"), default="auto",
                        help="run KServe's real storage initializer (PyPI kserve-storage) for downloads from a "
                             "loopback S3 endpoint or web server; auto: when its virtualenv exists or can be made")
    parser.add_argument("--models-dir", default=None,
                        help="where the real storage initializer downloads to (default: var/sandbox-models)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    token = Path(args.token_file).read_text().strip() if args.token_file else None
    try:
        server, controller = start_sandbox(
            port=args.port, token=token,
            settings=SandboxSettings(ingress_domain=args.ingress_domain, load_seconds=args.load_seconds,
                                     ready_seconds=args.ready_seconds, profile=args.profile,
                                     storage_initializer={"auto": None, "on": True, "off": False}[
                                         args.storage_initializer],
                                     models_dir=args.models_dir))
    except profiles.ProfileError as exc:
        parser.error(str(exc))
    if args.kubeconfig_out:
        server.write_kubeconfig(args.kubeconfig_out)
    print(f"sandbox cluster (KServe {controller.profile.kserve_version}, profile {controller.profile.name}) "
          f"listening on {server.url}", flush=True)
    stop.wait()
    controller.stop()
    server.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
