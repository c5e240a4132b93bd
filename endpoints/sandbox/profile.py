"""Release profiles: what the simulated KServe controller knows about one KServe release, as data.

The sandbox is the independent party the console is checked against, so the runtimes it
installs and the release facts it acts on are files, not the console's catalog. A profile is a
directory::

    <dir>/profile.yaml        release-level facts: name, kserveVersion, protocolOrder, admission
    <dir>/runtimes/*.yaml     the ClusterServingRuntimes the release installs by default

``runtimes/`` may hold a kustomization.yaml, as KServe's own ``config/runtimes`` does: then
only the files its ``resources`` list names are installed (KServe ships files it does not
install, e.g. kserve-openvino). Its ``images`` rewrites are not applied.

``BUILTIN_PROFILE_DIR`` describes KServe 0.20 and is what the sandbox uses unless a
``SandboxSettings.profile`` points elsewhere. Product code never reads ``../shared``; tests
check the built-in profile against the KServe files there (tests/endpoints/test_sandbox_profile.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .schema import load_yaml_documents

BUILTIN_PROFILE_DIR = Path(__file__).resolve().parent / "profiles" / "builtin"

RUNTIME_API_VERSION = "serving.kserve.io/v1alpha1"
RUNTIME_KIND = "ClusterServingRuntime"


class ProfileError(ValueError):
    """A profile directory that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, eq=False)
class ReleaseProfile:
    """One KServe release as the simulated controller sees it (read-only; see ``load``)."""

    name: str
    kserve_version: str
    path: Path
    # ClusterServingRuntime manifests, in file-name order. Shared: use runtime_objects() to get copies.
    runtimes: tuple[dict, ...]
    # Protocol versions ranked as KServe ranks them for auto-selection, lowest first.
    protocol_order: tuple[str, ...]
    # Old deployment-mode spellings the mutating webhook rewrites, e.g. Serverless -> Knative.
    deployment_mode_aliases: dict[str, str] = field(default_factory=dict)
    # Legacy predictor keys (``sklearn:``, ...) the webhook moves into ``predictor.model``.
    legacy_framework_keys: tuple[str, ...] = ()
    # Formats for which the webhook writes ``protocolVersion: v2`` when it is unset.
    protocol_v2_formats: frozenset[str] = frozenset()

    def runtime_objects(self) -> list[dict]:
        """Fresh copies of the default ClusterServingRuntimes, ready to be stored."""
        return copy.deepcopy(list(self.runtimes))

    def runtime(self, name: str) -> dict | None:
        """The default ClusterServingRuntime called ``name`` (a shared object: do not modify)."""
        return next((r for r in self.runtimes if r["metadata"]["name"] == name), None)


def load(path: str | Path) -> ReleaseProfile:
    """Read the release profile in directory ``path``; ``ProfileError`` if it is unusable."""
    root = Path(path)
    profile_file = root / "profile.yaml"
    if not profile_file.is_file():
        raise ProfileError(f"{root}: not a release profile (no profile.yaml)")
    meta = _single_mapping(profile_file)
    admission = meta.get("admission") or {}
    if not isinstance(admission, dict):
        raise ProfileError(f"{profile_file}: admission must be a mapping")
    protocol_order = meta.get("protocolOrder")
    if not isinstance(protocol_order, list) or not all(isinstance(p, str) for p in protocol_order):
        raise ProfileError(f"{profile_file}: protocolOrder must be a list of protocol versions")
    aliases = admission.get("deploymentModeAliases") or {}
    if not isinstance(aliases, dict):
        raise ProfileError(f"{profile_file}: admission.deploymentModeAliases must be a mapping")
    return ReleaseProfile(
        name=str(meta.get("name") or root.name),
        kserve_version=str(meta.get("kserveVersion") or ""),
        path=root,
        runtimes=tuple(_load_runtimes(root / "runtimes")),
        protocol_order=tuple(protocol_order),
        deployment_mode_aliases={str(k): str(v) for k, v in aliases.items()},
        legacy_framework_keys=tuple(str(k) for k in admission.get("legacyFrameworkKeys") or ()),
        protocol_v2_formats=frozenset(str(f) for f in admission.get("protocolV2Formats") or ()),
    )


def load_builtin() -> ReleaseProfile:
    """The profile shipped with the sandbox (KServe 0.20)."""
    return load(BUILTIN_PROFILE_DIR)


def _single_mapping(path: Path) -> dict[str, Any]:
    docs = _documents(path)
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise ProfileError(f"{path}: expected one YAML mapping")
    return docs[0]


def _documents(path: Path) -> list[Any]:
    try:
        return load_yaml_documents(path)
    except (OSError, yaml.YAMLError) as exc:  # PyYAML's message carries the line and column
        raise ProfileError(f"{path}: {exc}") from exc


def _runtime_files(folder: Path) -> list[Path]:
    kustomization = folder / "kustomization.yaml"
    if not kustomization.is_file():
        return sorted(p for p in folder.glob("*.yaml") if p.is_file())
    # Installed means listed: KServe keeps runtime files its kustomization does not install.
    resources = _single_mapping(kustomization).get("resources") or []
    files = []
    for entry in resources:
        file = folder / str(entry)
        if not file.is_file():
            raise ProfileError(f"{kustomization}: resource {entry} is not a file in {folder}")
        files.append(file)
    return sorted(files)


def _load_runtimes(folder: Path) -> list[dict]:
    if not folder.is_dir():
        raise ProfileError(f"{folder}: missing (a profile's default runtimes live there)")
    found: dict[str, dict] = {}
    for file in _runtime_files(folder):
        for doc in _documents(file):
            if not isinstance(doc, dict):
                raise ProfileError(f"{file}: a document is not a mapping")
            if doc.get("kind") != RUNTIME_KIND or doc.get("apiVersion") != RUNTIME_API_VERSION:
                raise ProfileError(f"{file}: expected {RUNTIME_API_VERSION} {RUNTIME_KIND}, "
                                   f"got {doc.get('apiVersion')} {doc.get('kind')}")
            name = (doc.get("metadata") or {}).get("name")
            if not name:
                raise ProfileError(f"{file}: a {RUNTIME_KIND} without metadata.name")
            if name in found:
                raise ProfileError(f"{file}: {RUNTIME_KIND} {name} is defined twice")
            if not isinstance(doc.get("spec"), dict):
                raise ProfileError(f"{file}: {RUNTIME_KIND} {name} has no spec")
            found[name] = doc
    return list(found.values())
