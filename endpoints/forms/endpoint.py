"""Forms of the endpoint wizard: what a data scientist fills in to deploy a model version.

The forms only parse and restrict choices (every choice field goes through the permission
chokepoint); the rules an endpoint must satisfy live in ``endpoints.validation`` and run in
the services, so the UI and the API report the same messages. ``apply_service_errors`` puts a
service's ``ValidationError`` on the matching fields.
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.urls import reverse

from endpoints import selectors
from endpoints.models import Endpoint


class VersionChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, version) -> str:
        project = version.model.project.name
        fmt = version.model_format + (f" {version.format_version}" if version.format_version else "")
        return f"{project} / {version.model.name} v{version.version} ({fmt})"


class RuntimeChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, runtime) -> str:
        formats = ", ".join(sorted({f.get("name", "") for f in runtime.supported_formats}))
        protocols = ", ".join(runtime.protocols) or "any protocol"
        extra = "; OpenAI-compatible" if runtime.openai_compatible else ""
        if runtime.installed_on_id:
            where = f"namespace {runtime.installed_namespace} on " if runtime.installed_namespace else ""
            extra += f"; installed in {where}cluster {runtime.installed_on.name}"
        return f"{runtime.display_name or runtime.name} ({formats}; {protocols}{extra})"


class HardwareChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, profile) -> str:
        compute = f"CPU {profile.default_cpu} (max {profile.max_cpu}), memory {profile.default_memory} " \
                  f"(max {profile.max_memory})"
        if profile.accelerator_resource:
            return (f"{profile} ({profile.accelerator_resource}, 1 to {profile.max_accelerators_per_replica} "
                    f"per replica; {compute})")
        return f"{profile} (CPU only; {compute})"


def _as_pk(raw) -> int | None:
    """A primary key from request data, or None (not a number, or beyond any id: a lookup with
    it would fail in the database instead of finding nothing)."""
    raw = str(getattr(raw, "pk", raw) if raw is not None else "")
    return int(raw) if raw.isdigit() and int(raw) < 2**31 else None


def profile_initial(profile) -> dict:
    """The hardware fields as choosing ``profile`` prefills them: its default CPU and memory as
    requests (and limits where the profile applies them as limits), and its minimum number of
    accelerators, 1 for a profile with an accelerator. None: the runtime's defaults, CPU only."""
    if profile is None:
        return {"accelerator_count": 0, "cpu_request": "", "memory_request": "", "cpu_limit": "",
                "memory_limit": ""}
    limits = profile.defaults_as_limits
    return {
        "accelerator_count": 1 if profile.accelerator_resource else 0,
        "cpu_request": profile.default_cpu, "memory_request": profile.default_memory,
        "cpu_limit": profile.default_cpu if limits else "", "memory_limit": profile.default_memory if limits else "",
    }


def _parse_env(text: str) -> list[dict]:
    """``NAME=value`` lines → ``[{"name", "value"}]`` (blank lines ignored)."""
    env = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if "=" not in line:
            raise ValidationError(f"Line {number}: write NAME=value.")
        name, value = line.split("=", 1)
        env.append({"name": name.strip(), "value": value})
    return env


def _format_env(env) -> str:
    return "\n".join(f"{e.get('name', '')}={e.get('value', '')}" for e in env or [] if isinstance(e, dict))


def _parse_args(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


class EndpointForm(forms.Form):
    """The create/edit wizard: one page in sections. ``user`` restricts every choice; with
    ``endpoint`` the form edits it (project and name are fixed, and the deployment mode is
    fixed once the endpoint was applied)."""

    project = forms.ModelChoiceField(
        queryset=None,
        help_text="The project (a Kubernetes namespace) the endpoint runs in. Only projects where you may "
                  "deploy are listed; its accelerator quota applies.",
    )
    name = forms.CharField(
        max_length=45,
        help_text="Lowercase letters, digits and '-', starting with a letter, at most 45 characters (name and "
                  "namespace together at most 50). It becomes the InferenceService name and the model name in "
                  "every inference URL, and cannot be changed later.",
    )
    description = forms.CharField(max_length=300, required=False)
    model_version = VersionChoiceField(
        queryset=None,
        label="Model version",
        help_text="The registered model version to serve. Only versions you may deploy are listed.",
    )
    protocol = forms.ChoiceField(
        choices=Endpoint.Protocol.choices,
        initial=Endpoint.Protocol.V1,
        help_text="How clients call the model: V1 (POST /v1/models/<name>:predict), Open Inference Protocol v2 "
                  "(POST /v2/models/<name>/infer), or the OpenAI-compatible API. OpenAI is only offered by LLM "
                  "runtimes (Hugging Face server, vLLM); it is a capability of the runtime, not a KServe "
                  "protocolVersion.",
    )
    runtime = RuntimeChoiceField(
        queryset=None,
        required=False,
        empty_label="Automatic: let KServe pick",
        help_text="Leave automatic and KServe chooses a runtime that supports the model's format and the "
                  "protocol (the preview below shows which). Pick one explicitly for stable behaviour across "
                  "KServe upgrades.",
    )
    env = forms.CharField(
        label="Environment variables",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "data-code": ""}),
        help_text="One NAME=value per line, passed to the model server container. Not for credentials: "
                  "values are visible to every Viewer; a Hugging Face token or storage keys belong in a storage "
                  "connection chosen for the model version. KServe refuses PYTHONPATH.",
    )
    args = forms.CharField(
        label="Extra server arguments",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "data-code": ""}),
        help_text="One argument per line. KServe appends them after the runtime's own arguments, so a flag "
                  "given here wins over the runtime's default.",
    )

    deployment_mode = forms.ChoiceField(
        choices=Endpoint.DeploymentMode.choices,
        initial=Endpoint.DeploymentMode.KNATIVE,
        label="Deployment mode",
        help_text="Knative: revisions, scale-to-zero and canary rollouts (needs Knative Serving on the "
                  "cluster). Standard: a plain Deployment with an HPA. KServe refuses to change the mode after "
                  "the first apply; switching means deleting and creating the endpoint again.",
    )
    min_replicas = forms.IntegerField(
        min_value=0, initial=1, label="Minimum replicas",
        help_text="0 enables scale-to-zero: pods stop when idle and the first request waits for one to start. "
                  "Scale-to-zero needs Knative mode.",
    )
    max_replicas = forms.IntegerField(
        min_value=0, initial=1, label="Maximum replicas",
        help_text="At least 1 and not below the minimum. Accelerators are reserved against quota for this many "
                  "replicas.",
    )
    scale_metric = forms.ChoiceField(
        choices=[("", "Default of the mode"), *Endpoint.ScaleMetric.choices],
        required=False,
        label="Scale metric",
        help_text="Knative scales on concurrency or requests per second; Standard mode (HPA) on CPU or memory "
                  "utilisation. KServe rejects the other combinations.",
    )
    scale_target = forms.IntegerField(
        min_value=0, required=False, label="Scale target",
        help_text="Concurrent requests or requests per second per pod (Knative), or a utilisation percentage "
                  "1–100 (Standard).",
    )
    container_concurrency = forms.IntegerField(
        min_value=0, required=False, label="Container concurrency",
        help_text="Hard limit of simultaneous requests per pod, enforced by Knative's queue-proxy (Knative "
                  "mode only). 0 or empty means unlimited.",
    )
    timeout_seconds = forms.IntegerField(
        min_value=0, required=False, label="Request timeout (seconds)",
        help_text="Empty: Knative's 300 s (60 s in Standard mode with Gateway API); LLM endpoints get 600 s. "
                  "Raise it for slow models.",
    )

    hardware_profile = HardwareChoiceField(
        queryset=None,
        required=False,
        empty_label="None: runtime defaults, CPU only",
        label="Hardware profile",
        help_text="Where the pods run: an admin-defined choice of accelerator with its node placement and "
                  "bounds. Capacity and your project's quota are checked on the plan.",
    )
    accelerator_count = forms.IntegerField(
        min_value=0, initial=0, label="Accelerators per replica",
        help_text="GPUs (or other accelerators) each replica requests; within the profile's per-replica bound.",
    )
    cpu_request = forms.CharField(max_length=20, required=False, label="CPU request",
                                  help_text="A Kubernetes quantity, e.g. 500m or 2. Empty: the runtime's default.")
    cpu_limit = forms.CharField(max_length=20, required=False, label="CPU limit",
                                help_text="Not below the request.")
    memory_request = forms.CharField(max_length=20, required=False, label="Memory request",
                                     help_text="A Kubernetes quantity, e.g. 512Mi or 4Gi ('m' means milli, not mega).")
    memory_limit = forms.CharField(max_length=20, required=False, label="Memory limit",
                                   help_text="Not below the request.")

    canary_version = VersionChoiceField(
        queryset=None,
        required=False,
        empty_label="No canary",
        label="Canary version",
        help_text="Another version of the same model that receives a share of the traffic while the current "
                  "version keeps the rest. Canary rollouts need Knative mode (Standard-mode canaries need "
                  "Gateway API and are not offered yet).",
    )
    canary_traffic_percent = forms.IntegerField(
        min_value=0, max_value=100, required=False, label="Canary traffic (%)",
        help_text="0–100. 0 keeps the canary deployed without traffic; promote it from the endpoint page.",
    )

    logging_mode = forms.ChoiceField(
        choices=Endpoint.LoggingMode.choices,
        initial=Endpoint.LoggingMode.ALL,
        label="Payload logging",
        help_text="KServe's payload logger sends requests and/or responses to the console for the inference "
                  "audit, latency and drift dashboards. 'Requests and responses' is needed to pair them and to "
                  "measure drift of predictions.",
    )

    SECTIONS = (
        ("model", "Model & runtime",
         "Which model version to serve, how clients call it and which model server runs it.",
         ("project", "name", "description", "model_version", "protocol", "runtime", "env", "args")),
        ("scaling", "Scaling",
         "How the endpoint is deployed and how many replicas serve it.",
         ("deployment_mode", "min_replicas", "max_replicas", "scale_metric", "scale_target",
          "container_concurrency", "timeout_seconds")),
        ("hardware", "Hardware",
         "Accelerators and compute for each replica.",
         ("hardware_profile", "accelerator_count", "cpu_request", "cpu_limit", "memory_request", "memory_limit")),
        ("rollout", "Rollout",
         "Try a new version on part of the traffic before promoting it.",
         ("canary_version", "canary_traffic_percent")),
        ("logging", "Logging",
         "What the console records of each inference call.",
         ("logging_mode",)),
    )

    def __init__(self, *args, user, endpoint: Endpoint | None = None, mode_locked: bool = False,
                 profile_choice: str | None = None, **kwargs):
        """``profile_choice``: a hardware profile id (or "" for none) just chosen on the page; the
        hardware fields are prefilled from it (``profile_initial``)."""
        self.user = user
        self.endpoint = endpoint
        if endpoint is not None and "initial" not in kwargs:
            kwargs["initial"] = initial_from_endpoint(endpoint)
            profile = endpoint.hardware_profile if endpoint.hardware_profile_id else None
            if profile is not None:
                # What the service applies on the next change (apply_profile_defaults), shown
                # before it is made.
                initial = kwargs["initial"]
                for kind in ("cpu", "memory"):
                    if not initial.get(f"{kind}_request") and not initial.get(f"{kind}_limit"):
                        initial[f"{kind}_request"] = getattr(profile, f"default_{kind}")
                    if profile.defaults_as_limits and not initial.get(f"{kind}_limit"):
                        initial[f"{kind}_limit"] = initial.get(f"{kind}_request") or ""
        super().__init__(*args, **kwargs)
        projects = selectors.project_list_visible_to(user=user, action="deploy")
        # An endpoint serves versions registered in its own project: the pickers offer those only
        # (the edited endpoint's project, or the project chosen for a new one).
        project = endpoint.project if endpoint is not None else self._chosen_project(projects)
        versions = selectors.version_choices_for(user=user, project=project, offered_to=endpoint or False).order_by(
            "model__project__name", "model__name", "-version")
        self.fields["model_version"].queryset = versions
        self.fields["canary_version"].queryset = versions
        self.fields["runtime"].queryset = selectors.runtime_choices(endpoint)
        self.fields["hardware_profile"].queryset = selectors.hardware_choices(endpoint)
        self._bound_hardware(profile_choice)
        if endpoint is None:
            self.fields["project"].queryset = projects
            # Choosing the project refreshes the version pickers with its versions (the wizard's
            # own GET with ?project=; without JavaScript the submitted project scopes them). With
            # a single project there is nothing to choose, and nothing to refresh.
            for name in ("model_version", "canary_version") if len(projects[:2]) > 1 else ():
                self.fields[name].widget.attrs.update({
                    "hx-get": reverse("endpoints:endpoint-create"), "hx-trigger": "change from:#id_project",
                    "hx-include": "#id_project", "hx-select": f"#id_{name} option", "hx-target": "this",
                    "hx-swap": "innerHTML"})
        else:
            del self.fields["project"]
            del self.fields["name"]
            if mode_locked:
                field = self.fields["deployment_mode"]
                field.disabled = True
                field.help_text = (f"Fixed: the endpoint was deployed in {endpoint.deployment_mode} mode and KServe "
                                   "refuses to change the mode of an existing InferenceService. To switch, delete "
                                   "the endpoint and create it again.")

    def _bound_hardware(self, profile_choice: str | None) -> None:
        """Prefill the hardware fields from a profile just chosen, and bound them by the chosen
        profile: the accelerator count's range, the CPU and memory maxima in the help. Choosing
        a profile asks the page again for its Hardware section (htmx), which comes back filled."""
        choices = self.fields["hardware_profile"].queryset
        if profile_choice is not None and not self.is_bound:
            pk = _as_pk(profile_choice)
            chosen = choices.filter(pk=pk).first() if pk is not None else None
            self.initial["hardware_profile"] = chosen.pk if chosen else None
            self.initial.update(profile_initial(chosen))
        pk = _as_pk(self.data.get("hardware_profile") if self.is_bound else self.initial.get("hardware_profile"))
        profile = choices.filter(pk=pk).first() if pk is not None else None
        count = self.fields["accelerator_count"]
        if profile is not None and profile.accelerator_resource:
            count.widget.attrs.update(min=1, max=profile.max_accelerators_per_replica)
            count.help_text = (f"{profile.accelerator_resource} per replica: 1 to {profile.max_accelerators_per_replica} "
                               f"on {profile}.")
        else:
            count.widget.attrs.update(max=0)
            count.help_text = "0: the chosen hardware has no accelerator (choose a GPU profile to request one)."
        if profile is not None:
            self.fields["cpu_request"].help_text = (
                f"A Kubernetes quantity, e.g. 500m or 2. {profile}: {profile.default_cpu} by default, at most "
                f"{profile.max_cpu}; empty takes the default.")
            self.fields["memory_request"].help_text = (
                f"A Kubernetes quantity, e.g. 512Mi or 4Gi ('m' means milli, not mega). {profile}: "
                f"{profile.default_memory} by default, at most {profile.max_memory}; empty takes the default.")
            for name, bound in (("cpu_limit", profile.max_cpu), ("memory_limit", profile.max_memory)):
                self.fields[name].help_text = f"Not below the request, at most {bound}." + (
                    " Empty: the request (this profile applies its defaults as limits)." if profile.defaults_as_limits
                    else "")
        hardware = self.fields["hardware_profile"]
        page = (reverse("endpoints:endpoint-create") if self.endpoint is None else reverse(
            "endpoints:endpoint-edit", kwargs={"project": self.endpoint.project.name, "name": self.endpoint.name}))
        hardware.widget.attrs.update({
            "hx-get": page, "hx-trigger": "change", "hx-select": "#section-hardware", "hx-target": "#section-hardware",
            "hx-swap": "outerHTML"})

    def _chosen_project(self, projects):
        """The project of a new endpoint as far as the request says (submitted, or the initial
        choice), among those the user may deploy to; the only one when there is one; else None."""
        raw = self.data.get("project") if self.is_bound else self.initial.get("project")
        if raw not in (None, ""):
            pk = _as_pk(raw)
            return projects.filter(pk=pk).first() if pk is not None else None
        only = list(projects[:2])
        return only[0] if len(only) == 1 else None

    # --- sections for the template ------------------------------------------------------
    def sections(self):
        for key, legend, intro, names in self.SECTIONS:
            fields = [self[name] for name in names if name in self.fields]
            if fields:
                yield {"key": key, "legend": legend, "intro": intro, "fields": fields}

    # --- parsing ------------------------------------------------------------------------
    def clean_env(self):
        return _parse_env(self.cleaned_data.get("env") or "")

    def clean_args(self):
        return _parse_args(self.cleaned_data.get("args") or "")

    def clean_name(self):
        return (self.cleaned_data.get("name") or "").strip()

    def config(self) -> dict:
        """The endpoint fields as the services take them (no project or name)."""
        data = self.cleaned_data
        config = {}
        for name in ENDPOINT_FORM_FIELDS:
            if name not in self.fields:
                continue
            value = data.get(name)
            if name == "scale_metric":
                value = value or ""
            elif name == "accelerator_count":
                value = value or 0
            config[name] = value
        return config

    def changes(self) -> dict:
        """Only the fields whose value differs from the edited endpoint."""
        assert self.endpoint is not None
        current = initial_from_endpoint(self.endpoint, parsed=True)
        return {name: value for name, value in self.config().items()
                if name in current and _comparable(value) != _comparable(current[name])}


# Fields of the wizard that map one to one onto endpoint fields the services accept.
ENDPOINT_FORM_FIELDS = (
    "description", "model_version", "protocol", "runtime", "env", "args", "deployment_mode", "min_replicas",
    "max_replicas", "scale_metric", "scale_target", "container_concurrency", "timeout_seconds",
    "hardware_profile", "accelerator_count", "cpu_request", "cpu_limit", "memory_request", "memory_limit",
    "canary_version", "canary_traffic_percent", "logging_mode",
)


def _comparable(value):
    return value.pk if hasattr(value, "pk") else value


def initial_from_endpoint(endpoint: Endpoint, *, parsed: bool = False) -> dict:
    """The endpoint's current values, as form initial data (``parsed`` keeps env/args as lists
    and related fields as objects, for comparison with ``config()``)."""
    data = {name: getattr(endpoint, name) for name in ENDPOINT_FORM_FIELDS}
    if not parsed:
        data["env"] = _format_env(endpoint.env)
        data["args"] = "\n".join(str(a) for a in endpoint.args or [])
    return data


class CanaryForm(forms.Form):
    """Start (or adjust) a canary: another version of the same model on part of the traffic."""

    canary_version = VersionChoiceField(
        queryset=None,
        label="Canary version",
        help_text="A version of the same registered model with a different artifact.",
    )
    canary_traffic_percent = forms.IntegerField(
        min_value=0, max_value=100, initial=10, label="Canary traffic (%)",
        help_text="Share of requests the canary receives; the current version keeps the rest.",
    )

    def __init__(self, *args, user, endpoint: Endpoint, **kwargs):
        super().__init__(*args, **kwargs)
        self.endpoint = endpoint
        self.fields["canary_version"].queryset = (
            selectors.version_choices_for(user=user, offered_to=endpoint)
            .filter(model_id=endpoint.model_version.model_id)
            .exclude(pk=endpoint.model_version_id)
            .order_by("-version")
        )

    def changes(self) -> dict:
        return {"canary_version": self.cleaned_data["canary_version"],
                "canary_traffic_percent": self.cleaned_data["canary_traffic_percent"]}


def apply_service_errors(form: forms.Form, error: ValidationError) -> None:
    """Show a service's ``ValidationError`` on the form: messages keyed by an editable field
    go next to it, anything else (disabled fields, fields not on this form) at the top with
    the field's label."""
    if not hasattr(error, "error_dict"):
        for message in error.messages:
            form.add_error(None, message)
        return
    for key, messages in error.message_dict.items():
        name = key[:-3] if key.endswith("_id") else key
        field = form.fields.get(name)
        for message in messages:
            if field is not None and not field.disabled:
                form.add_error(name, message)
            elif key in ("__all__", "non_field_errors"):
                form.add_error(None, message)
            else:
                label = field.label if field is not None and field.label else name.replace("_", " ").capitalize()
                form.add_error(None, f"{label}: {message}")
