"""``python -m endpoints.sandbox.run``: the sandbox cluster of ``make run`` — the fake
Kubernetes API server plus the simulated KServe controller, in one process until interrupted.

With ``--gateway-port`` (or ``$SANDBOX_GATEWAY_PORT``) it also runs the data plane
(``endpoints.sandbox.serving``): sklearn, xgboost and lightgbm models really serve, through a
real Envoy on 127.0.0.1 whose ext_authz filter asks the console at ``--authz-url``
(``$SANDBOX_AUTHZ_URL``): ``curl -H 'Host: <InferenceService URL host>'
http://127.0.0.1:<gateway port>/v1/models/<name>:predict``.

It writes a kubeconfig so ``kubectl`` (the one in the project's virtualenv) can look at the
simulated cluster: ``.venv/bin/kubectl --kubeconfig var/sandbox.kubeconfig get isvc -A``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path

from endpoints.sandbox import profile as profiles
from endpoints.sandbox.apiserver import FakeApiServer
from endpoints.sandbox.controller import SandboxController, SandboxSettings
from endpoints.sandbox.serving.dataplane import DataPlane, DataPlaneSettings
from endpoints.sandbox.serving.gateway import GatewayError

GATEWAY_PORT_ENV = "SANDBOX_GATEWAY_PORT"
AUTHZ_URL_ENV = "SANDBOX_AUTHZ_URL"


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


def start_data_plane(controller: SandboxController, settings: DataPlaneSettings) -> DataPlane:
    """Model servers, agents, activator and the Envoy gateway for ``controller``'s cluster."""
    return DataPlane(controller, settings).start()


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    try:
        return int(value) if value else default
    except ValueError:
        raise SystemExit(f"{name} must be a port number, got {value!r}") from None


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
    parser.add_argument("--gateway-port", type=int, default=_env_int(GATEWAY_PORT_ENV, 0),
                        help="serve the models (sklearn, xgboost, lightgbm) through a real Envoy gateway on "
                             f"127.0.0.1:PORT; 0: no gateway, nothing serves (default ${GATEWAY_PORT_ENV} or 0)")
    parser.add_argument("--authz-url", default=os.environ.get(AUTHZ_URL_ENV) or "http://127.0.0.1:8000",
                        help="the console the gateway's ext_authz filter asks (its /authz/check/...; default "
                             f"${AUTHZ_URL_ENV} or http://127.0.0.1:8000)")
    parser.add_argument("--scale-to-zero-seconds", type=float, default=60.0,
                        help="idle time after which a minReplicas: 0 (Knative) InferenceService scales to zero")
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
    plane = None
    if args.gateway_port:
        try:
            plane = start_data_plane(controller, DataPlaneSettings(
                gateway_port=args.gateway_port, authz_url=args.authz_url,
                scale_to_zero_seconds=args.scale_to_zero_seconds))
        except (GatewayError, ValueError) as exc:
            controller.stop()
            server.stop()
            parser.error(str(exc))
    print(f"sandbox cluster (KServe {controller.profile.kserve_version}, profile {controller.profile.name}) "
          f"listening on {server.url}", flush=True)
    if plane is not None:
        print(f"sandbox gateway (Envoy) on {plane.gateway.url}, ext_authz at {args.authz_url}", flush=True)
    stop.wait()
    if plane is not None:
        plane.stop()
    controller.stop()
    server.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
