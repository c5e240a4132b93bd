"""Forms of the model registry and of the platform-admin pages (clusters, projects, hardware
profiles, runtimes).

Forms only parse what the browser sends (types, JSON, file size); every domain rule lives in
``endpoints.services``, whose ``ValidationError`` is shown on the form by
``add_service_errors``. Choice fields that name protected objects (projects) are restricted
through the permission chokepoint by the view that builds the form: a user can never pick an
object they may not see.
"""

from __future__ import annotations

import json

from django import forms
from django.core.exceptions import ValidationError

from endpoints import connections as connection_rules
from endpoints import gateway
from endpoints.gateway import validate_gateway_address
from endpoints.models import Cluster, HardwareProfile, RegisteredModel, StorageConnection

REFERENCE_FILE_LIMIT = 50 * 1024 * 1024
KSERVE_PROTOCOLS = (("v1", "v1"), ("v2", "v2 (Open Inference Protocol)"), ("grpc-v1", "gRPC v1"),
                    ("grpc-v2", "gRPC v2"))


def add_service_errors(form: forms.Form, exc: ValidationError, field_map: dict[str, str] | None = None) -> None:
    """Show a service's ``ValidationError`` on ``form``: field errors on their field (renamed
    through ``field_map`` where the form calls a field differently), the rest at the top."""
    field_map = field_map or {}
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc.messages)
        return
    for field, messages in exc.message_dict.items():
        target = field_map.get(field, field)
        if target in form.fields:
            form.add_error(target, messages)
        elif field in ("__all__", "non_field_errors"):
            form.add_error(None, messages)
        else:
            form.add_error(None, [f"{field.replace('_', ' ').capitalize()}: {m}" for m in messages])


def format_megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


class JSONTextField(forms.CharField):
    """A textarea holding JSON of one expected shape (an object or a list), with parse errors
    that say where the problem is instead of Django's bare "Enter a valid JSON"."""

    def __init__(self, *, expected: type, example: str, empty=None, **kwargs):
        self.expected = expected
        self.example = example
        self.empty = empty
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "class": "code"}))
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, dict | list):
            return json.dumps(value, indent=2)
        return value

    def to_python(self, value):
        text = (value or "").strip()
        if not text:
            return self.empty() if callable(self.empty) else self.empty
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(
                f"This is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}). "
                f"Example: {self.example}", code="invalid_json") from exc
        if not isinstance(data, self.expected):
            kind = "an object" if self.expected is dict else "a list"
            raise ValidationError(f"Enter {kind}, for example {self.example}", code="invalid_shape")
        return data


# --- registry --------------------------------------------------------------------------------

class RegisteredModelForm(forms.Form):
    """Register a model in a project the user may deploy in."""

    project = forms.ModelChoiceField(queryset=None, help_text="Only projects you may deploy in are listed.")
    name = forms.CharField(max_length=63, help_text="Lowercase letters, digits and '-', starting with a letter.")
    task = forms.ChoiceField(choices=RegisteredModel.Task.choices,
                             help_text="What the model does; LLM tasks unlock the OpenAI-compatible protocol.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, projects, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = projects


class ModelVersionForm(forms.Form):
    """Register the next version of a model, optionally with a reference sample whose profile
    drift is measured against."""

    storage_uri = forms.CharField(
        label="Storage URI", max_length=1000,
        help_text="Where the artifact lives: s3://, gs://, https:// (blob stores included), pvc://, hf:// or oci://.",
        widget=forms.TextInput(attrs={"placeholder": "s3://models/fraud/v3", "spellcheck": "false"}),
    )
    connection = forms.ModelChoiceField(
        queryset=None, required=False, empty_label="None (public storage)",
        help_text="Credentials for private storage: a connection of the project (or a platform-wide one it opted "
                  "into) whose kind matches the URI. The console checks with it that the artifact is there.",
    )
    skip_storage_check = forms.BooleanField(
        label="Register even if the console cannot reach the storage", required=False,
        help_text="For storage only the cluster can reach. Refusals from the storage itself (no such bucket, "
                  "wrong credentials) are never skipped.",
    )
    model_format = forms.CharField(
        max_length=40, help_text="The format name runtimes declare, e.g. sklearn, xgboost, huggingface.",
        widget=forms.TextInput(attrs={"list": "model-format-options", "spellcheck": "false"}),
    )
    format_version = forms.CharField(
        max_length=20, required=False,
        help_text="Compared with the runtime's supported version as an exact string (\"1\" is not \"1.0\").",
    )
    reference_file = forms.FileField(
        label="Reference sample", required=False,
        help_text="A CSV or Parquet sample of the model's inputs (and prediction), up to 50 MB. Its per-feature "
                  "distribution becomes the reference that drift is measured against.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.parquet,text/csv"}),
    )
    prediction_column = forms.CharField(
        max_length=100, required=False, help_text="The column of the sample holding the model's prediction, if any.",
    )
    input_signature = JSONTextField(
        expected=list, empty=list, example='[{"name": "amount", "type": "numeric"}, '
                                           '{"name": "country", "type": "categorical"}]',
        help_text="Features and their types as JSON. Leave empty to infer them from the reference sample.",
    )
    aliases = forms.CharField(
        max_length=200, required=False, help_text="Comma-separated names that move to this version, e.g. champion.",
    )
    source_run_uri = forms.CharField(label="Source run URI", max_length=1000, required=False,
                                     help_text="Lineage: the training run that produced the artifact.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, connections=None, **kwargs):
        super().__init__(*args, **kwargs)
        queryset = connections if connections is not None else StorageConnection.objects.none()
        self.fields["connection"].queryset = queryset
        self.fields["connection"].label_from_instance = (
            lambda c: f"{c.name} ({c.get_kind_display()}{', platform-wide' if c.is_platform else ''})")
        if not queryset.exists():
            self.fields["connection"].help_text = (
                "The project has no storage connections yet: public URIs only. Owners add connections on the "
                "Connections page.")

    def clean(self):
        data = super().clean()
        connection, uri = data.get("connection"), (data.get("storage_uri") or "").strip()
        if connection is not None and uri:
            problem = connection_rules.uri_problem(connection.kind, connection.config, uri)
            if problem:
                self.add_error("connection", problem)
        return data

    def clean_reference_file(self):
        upload = self.cleaned_data.get("reference_file")
        if upload and upload.size > REFERENCE_FILE_LIMIT:
            raise ValidationError(f"The file is {format_megabytes(upload.size)}; reference samples are limited to "
                                  "50 MB. Upload a random sample of the rows instead.")
        return upload

    def clean_aliases(self) -> list[str]:
        raw = self.cleaned_data.get("aliases") or ""
        return [name.strip() for name in raw.split(",") if name.strip()]


class AliasForm(forms.Form):
    """Point an alias (champion, challenger, ...) at one version."""

    name = forms.CharField(label="Alias", max_length=40,
                           help_text="Lowercase letters, digits and '-'. An existing alias moves to this version.")


# --- platform admin: clusters ------------------------------------------------------------------

def cluster_connection_errors(*, connection: str, api_url: str) -> dict[str, list[str]]:
    """Fields a connection kind cannot work without (shared by the form and the serializer)."""
    if connection == Cluster.Connection.URL and not api_url:
        return {"api_url": ["A connection by URL and token needs the API server URL."]}
    return {}


class ClusterForm(forms.Form):
    """Create or edit a cluster. The API token is write-only: it is never rendered back, and a
    blank token on edit keeps the stored one."""

    name = forms.SlugField(max_length=63, help_text="Lowercase letters, digits and '-'; cannot change later.")
    description = forms.CharField(max_length=200, required=False)
    kind = forms.ChoiceField(choices=Cluster.Kind.choices, widget=forms.RadioSelect,
                             help_text="Sandbox clusters are simulated: nothing really runs there.")
    connection = forms.ChoiceField(choices=Cluster.Connection.choices, widget=forms.RadioSelect)
    kubeconfig_path = forms.CharField(max_length=500, required=False,
                                      help_text="For a kubeconfig connection: a file readable by the console.")
    kubeconfig_context = forms.CharField(max_length=200, required=False,
                                         help_text="For a kubeconfig connection; empty uses the current context.")
    api_url = forms.URLField(label="API server URL", required=False, max_length=200, assume_scheme="https",
                             help_text="For a URL connection, e.g. https://k8s.example.com:6443.")
    api_token = forms.CharField(
        label="API token", required=False, max_length=2000,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="For a URL connection: a service-account bearer token. It is stored and never shown again.",
    )
    ingress_domain = forms.CharField(max_length=253, initial="example.com",
                                     help_text="Domain of the endpoints' URLs on this cluster.")
    gateway_address = forms.CharField(label="Ingress gateway address", max_length=300, required=False,
                                      validators=[validate_gateway_address], help_text=gateway.HELP)
    enabled = forms.BooleanField(required=False, initial=True, help_text="Disabled clusters take no new projects.")

    def __init__(self, *args, editing: bool = False, has_token: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.editing = editing
        if editing:
            del self.fields["name"]
            if has_token:
                self.fields["api_token"].help_text = "A token is stored. Leave blank to keep it; type a new one to replace it."
                self.fields["clear_token"] = forms.BooleanField(
                    label="Remove the stored token", required=False)

    def clean(self):
        data = super().clean()
        for field, messages in cluster_connection_errors(connection=data.get("connection", ""),
                                                         api_url=data.get("api_url", "")).items():
            if field not in self.errors:
                self.add_error(field, messages)
        return data

    def service_fields(self) -> dict:
        """Cleaned data as the cluster services take it; an unchanged token is left out."""
        data = dict(self.cleaned_data)
        clear = data.pop("clear_token", False)
        token = data.pop("api_token", "")
        if clear:
            data["api_token"] = ""
        elif token or not self.editing:
            data["api_token"] = token
        return data


# --- platform admin: projects ---------------------------------------------------------------

def _quota_field(profile: HardwareProfile) -> forms.IntegerField:
    return forms.IntegerField(
        label=f"{profile} quota", required=False, min_value=0,
        help_text=f"Most {profile.accelerator_resource} the project may request in total. Empty: no limit.",
    )


class QuotaFieldsMixin:
    """One optional accelerator quota field per hardware profile with an accelerator."""

    def add_quota_fields(self, profiles, current: dict[int, int] | None = None) -> None:
        self.quota_profiles = [p for p in profiles if p.has_accelerator]
        for profile in self.quota_profiles:
            field = _quota_field(profile)
            field.initial = (current or {}).get(profile.pk)
            self.fields[f"quota_{profile.pk}"] = field

    def quotas(self) -> dict[HardwareProfile, int | None]:
        return {p: self.cleaned_data.get(f"quota_{p.pk}") for p in self.quota_profiles}


class ProjectForm(QuotaFieldsMixin, forms.Form):
    """Create a project: a namespace on one cluster (checked or created by the service)."""

    name = forms.CharField(max_length=63, help_text="A DNS label: lowercase letters, digits and '-'.")
    display_name = forms.CharField(max_length=100, required=False)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    cluster = forms.ModelChoiceField(queryset=None)
    namespace = forms.CharField(
        max_length=63, required=False,
        help_text="Empty: the project's name. The namespace is created if missing; one labelled "
                  "'control-plane' is refused because KServe's webhook skips it.",
    )

    def __init__(self, *args, clusters, profiles, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["cluster"].queryset = clusters
        self.add_quota_fields(profiles)


class ProjectQuotaForm(QuotaFieldsMixin, forms.Form):
    """Accelerator quotas of one project, one field per hardware profile."""

    def __init__(self, *args, profiles, current: dict[int, int], **kwargs):
        super().__init__(*args, **kwargs)
        self.add_quota_fields(profiles, current)


# --- platform admin: hardware profiles ---------------------------------------------------------

class HardwareProfileForm(forms.Form):
    """An accelerator (or CPU-only) choice offered to endpoints, with placement and bounds."""

    name = forms.SlugField(max_length=63, help_text="Lowercase letters, digits and '-'; cannot change later.")
    display_name = forms.CharField(max_length=100)
    description = forms.CharField(max_length=300, required=False)
    accelerator_resource = forms.CharField(
        max_length=100, required=False, help_text="Extended resource name, e.g. nvidia.com/gpu. Empty for CPU only.")
    accelerator_product = forms.CharField(
        max_length=100, required=False, help_text="Product label value, e.g. NVIDIA-A100-SXM4-80GB.")
    node_selector = JSONTextField(
        expected=dict, empty=dict, example='{"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}',
        help_text="JSON object of node labels the pods must match. Empty: none.",
    )
    tolerations = JSONTextField(
        expected=list, empty=list,
        example='[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]',
        help_text="JSON list of Kubernetes tolerations. Empty: none.",
    )
    default_cpu = forms.CharField(
        label="Default CPU", max_length=20, initial="1",
        help_text="The CPU request of an endpoint on this profile that sets none; not above the maximum.")
    default_memory = forms.CharField(
        max_length=20, initial="2Gi",
        help_text="The memory request of an endpoint on this profile that sets none; not above the maximum.")
    defaults_as_limits = forms.BooleanField(
        label="Apply the defaults as limits too", required=False,
        help_text="Where an endpoint sets no CPU or memory limit, its request becomes the limit as well "
                  "(Kubernetes' Guaranteed class).")
    max_cpu = forms.CharField(label="Max CPU", max_length=20, initial="16")
    max_memory = forms.CharField(max_length=20, initial="64Gi")
    max_accelerators_per_replica = forms.IntegerField(
        min_value=0, initial=0,
        help_text="At least 1 for a profile with an accelerator (each replica requests 1 or more); 0 for CPU only.")
    capacity = forms.IntegerField(min_value=0, initial=0,
                                  help_text="Accelerators of this kind available in total (plans warn beyond it).")
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if editing:
            del self.fields["name"]


# --- platform admin: runtimes -------------------------------------------------------------------

class RuntimeForm(forms.Form):
    """A custom serving runtime (the console applies its ServingRuntime object)."""

    name = forms.SlugField(max_length=63, help_text="Cannot be a built-in KServe runtime's name.")
    display_name = forms.CharField(max_length=100, required=False)
    description = forms.CharField(max_length=300, required=False)
    supported_formats = JSONTextField(
        expected=list, required=True,
        example='[{"name": "sklearn", "version": "1", "autoSelect": true, "priority": 2}]',
        help_text="JSON list of model formats the runtime serves (name, optional version, autoSelect, priority).",
    )
    protocols = forms.MultipleChoiceField(choices=KSERVE_PROTOCOLS, required=False, widget=forms.CheckboxSelectMultiple,
                                          help_text="None ticked: KServe treats the runtime as accepting any protocol.")
    openai_compatible = forms.BooleanField(label="Serves OpenAI-compatible routes", required=False)
    openai_route_prefix = forms.CharField(max_length=40, required=False, help_text="e.g. openai")
    container_image = forms.CharField(max_length=300, help_text="Image of the runtime's kserve-container.")
    container_args = JSONTextField(expected=list, empty=list, example='["--model_name={{.Name}}"]',
                                   help_text="JSON list of container arguments.")
    disabled = forms.BooleanField(required=False, help_text="Disabled runtimes are not offered for new endpoints.")

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if editing:
            del self.fields["name"]


class BuiltinRuntimeForm(forms.Form):
    """Built-in runtimes mirror KServe's defaults: only the description and disabling change."""

    description = forms.CharField(max_length=300, required=False)
    disabled = forms.BooleanField(required=False, help_text="Disabled runtimes are not offered for new endpoints.")
