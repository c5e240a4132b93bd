"""KServe's InferenceService webhooks and deployment-mode rules, as one release has them.

What differs between releases (``profile.ReleaseFacts``, read from kserve/kserve at the tags):

- 0.13-0.15 spell the modes ``Serverless``/``RawDeployment``; 0.16 renamed them ``Knative``/
  ``Standard`` and the controller still understands the old spellings; from 0.17 the mutating
  webhook also rewrites an old spelling in the annotation.
- An annotation value the release does not know silently means the cluster default
  (``inferenceservice-config`` ``deploy.defaultDeploymentMode``).
- From 0.15 the controller records the mode it used in ``status.deploymentMode`` and prefers
  it over the annotation; from 0.15.1 the validating webhook refuses every update whose
  annotation differs from that recorded mode. So on 0.15 an unknown value (``Knative``) is
  deployed in the default mode and every later update is refused; on 0.16 the same happens to
  the old spelling ``Serverless`` (recorded as ``Knative``), which 0.17 rewrites first.
"""

from __future__ import annotations

from .profile import ISVC_CONFIG_NAME, KSERVE_NAMESPACE, ReleaseProfile, isvc_config_value

MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
WEBHOOK_NAME = "inferenceservice.kserve-webhook-server.validator"
KNATIVE_MODES = ("Knative", "Serverless")


class KServeWebhooks:
    """The defaulting and validating webhooks and ``GetDeploymentMode`` of one release."""

    def __init__(self, store, profile: ReleaseProfile, default_mode_override: str | None = None):
        self.store = store
        self.profile = profile
        self.facts = profile.facts
        self.default_mode_override = default_mode_override

    # --- cluster configuration -------------------------------------------------------------
    def isvc_config(self) -> dict | None:
        return self.store.get("configmaps", KSERVE_NAMESPACE, ISVC_CONFIG_NAME)

    def config_section(self, key: str) -> dict:
        return isvc_config_value(self.isvc_config(), key)

    def default_mode(self) -> str:
        """``deploy.defaultDeploymentMode`` as the release's config loader reads it."""
        mode = self.default_mode_override or self.config_section("deploy").get("defaultDeploymentMode") or ""
        mode = self.facts.legacy_modes.get(mode, mode)
        return mode or self.facts.mode_names[0]

    # --- GetDeploymentMode ------------------------------------------------------------------
    def known(self, mode: str) -> bool:
        return mode in self.facts.mode_names

    def resolve_mode(self, obj: dict) -> str:
        """The mode the controller deploys ``obj`` in."""
        if self.facts.records_mode_in_status:
            recorded = (obj.get("status") or {}).get("deploymentMode")
            if recorded:
                return self.facts.legacy_modes.get(recorded, recorded)
        annotation = ((obj.get("metadata") or {}).get("annotations") or {}).get(MODE_ANNOTATION, "")
        annotation = self.facts.legacy_modes.get(annotation, annotation)
        return annotation if self.known(annotation) else self.default_mode()

    # --- mutating webhook -------------------------------------------------------------------
    def default(self, obj: dict, old: dict | None) -> None:
        meta = obj.setdefault("metadata", {})
        annotations = meta.setdefault("annotations", {})
        mode = annotations.get(MODE_ANNOTATION)
        # The old spellings this webhook rewrites: from 0.17 the release's legacy modes, unless the
        # profile says otherwise (profile.load derives them from the release facts).
        aliases = self.profile.deployment_mode_aliases
        if mode in aliases:
            annotations[MODE_ANNOTATION] = aliases[mode]
        if mode is None:
            default = self.default_mode()
            if default != self.facts.mode_names[0]:  # Standard/RawDeployment or ModelMesh are written down
                annotations[MODE_ANNOTATION] = default
        predictor = (obj.get("spec") or {}).get("predictor") or {}
        for key in self.profile.legacy_framework_keys:
            if key in predictor:
                legacy = predictor.pop(key)
                model = predictor.setdefault("model", {})
                model.update({k: v for k, v in legacy.items() if k not in model})
                model["modelFormat"] = {"name": key}
        model = predictor.get("model")
        if model:
            fmt = (model.get("modelFormat") or {}).get("name", "")
            if fmt in self.profile.protocol_v2_formats and "protocolVersion" not in model:
                model["protocolVersion"] = "v2"
            if fmt and self.facts.annotates_model_format:
                annotations.setdefault("modelFormat", fmt)
        if not annotations:
            meta.pop("annotations", None)

    # --- validating webhook -----------------------------------------------------------------
    def validate(self, obj: dict, old: dict | None) -> str | None:
        if old is None or not self.facts.refuses_mode_change:
            return None
        recorded = (old.get("status") or {}).get("deploymentMode")
        if not recorded:
            return None
        if self.facts.version >= (0, 20):  # 0.20 normalises the recorded value first
            recorded = self.facts.legacy_modes.get(recorded, recorded)
        wanted = ((obj.get("metadata") or {}).get("annotations") or {}).get(MODE_ANNOTATION)
        if wanted is not None and wanted != recorded:
            return f"update rejected: deploymentMode cannot be changed from '{recorded}' to '{wanted}'"
        return None
