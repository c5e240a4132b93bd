"""Forms of the NIM pages: installing a NIM runtime (platform admins) and deploying a NIM
(docs/nim.md). The choice fields are restricted: platform-wide NGC connections only, projects the
user may deploy to, and hardware profiles that fit the chosen NIM."""

from __future__ import annotations

from django import forms

from endpoints import nim, selectors
from endpoints.models import Endpoint, HardwareProfile, ServingRuntime, StorageConnection
from endpoints.services import nim as nim_services


def _as_pk(raw) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


class NimInstallForm(forms.Form):
    nim = forms.ChoiceField(label="NIM", help_text="Model, version and the GPU shapes NVIDIA publishes for it.")
    connection = forms.ModelChoiceField(
        label="NGC connection", queryset=StorageConnection.objects.none(),
        help_text="A platform-wide NGC API key connection: its key becomes the Secret the NIM reads and the nvcr.io "
                  "pull secret, in each namespace that deploys it.")
    cache_name = forms.CharField(
        label="Model cache volume", initial=nim_services.DEFAULT_CACHE, max_length=63,
        help_text="The PersistentVolumeClaim (in each project namespace) the NIM keeps its engine in; endpoints "
                  "serve from pvc://<name>/.")

    cache_create = forms.BooleanField(
        label="Create the model cache", required=False,
        help_text="The console creates the PersistentVolumeClaim in each namespace that deploys the NIM, and "
                  "recreates it if it is deleted. Leave unticked when a cluster admin provides the claim.")
    cache_size = forms.CharField(label="Cache size", initial=nim_services.DEFAULT_CACHE_SIZE, max_length=20,
                                 required=False, help_text="NVIDIA's layout asks for 300Gi.")
    cache_storage_class = forms.CharField(label="Storage class", max_length=253, required=False,
                                          help_text="Empty: the cluster's default storage class.")
    cache_access_mode = forms.ChoiceField(
        label="Access mode", choices=[(m, m) for m in nim_services.CACHE_ACCESS_MODES], initial="ReadWriteMany",
        required=False,
        help_text="ReadWriteMany (NVIDIA's layout) lets replicas on several nodes share one engine download.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        installed = set(ServingRuntime.objects.filter(nim__isnull=False).values_list("name", flat=True))
        self.entries = {f"{e.key}@{e.version}": e for e in nim_services.catalog()}
        self.fields["nim"].choices = [
            (value, f"{e.display_name} {e.version} — {e.api}; {', '.join(s.describe() for s in e.shapes)}")
            for value, e in self.entries.items() if e.runtime_name not in installed]
        self.fields["connection"].queryset = StorageConnection.objects.filter(
            kind=StorageConnection.Kind.NGC, project__isnull=True).order_by("name")

    def entry(self) -> nim.NimEntry:
        return self.entries[self.cleaned_data["nim"]]


class ProjectNimInstallForm(NimInstallForm):
    """An Owner installs a NIM for their project only, with an NGC connection available to it (the
    project's own, or a platform-wide one it opted into)."""

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        installed = set(ServingRuntime.objects.filter(project=project).values_list("name", flat=True))
        self.fields["nim"].choices = [
            (value, label) for value, label in self.fields["nim"].choices
            if nim_services.project_runtime_name(self.entries[value], project) not in installed]
        self.fields["connection"].queryset = nim_services.ngc_connections_for(project)
        self.fields["connection"].help_text = (
            f"An NGC API key connection of {project.name}, or a platform-wide one it opted into: its key becomes "
            "the Secret the NIM reads and the nvcr.io pull secret in the project's namespace.")
        self.fields["cache_name"].help_text = ("The PersistentVolumeClaim in the project's namespace the NIM keeps "
                                               "its engine in; endpoints serve from pvc://<name>/.")


class NimChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, runtime) -> str:
        return runtime.display_name or runtime.name


class NimDeployForm(forms.Form):
    project = forms.ModelChoiceField(queryset=None, label="Project")
    runtime = NimChoiceField(queryset=None, label="NIM", help_text="NIMs a platform admin installed, and those installed for your projects.")
    name = forms.SlugField(max_length=45, label="Endpoint name")
    hardware_profile = forms.ModelChoiceField(
        queryset=HardwareProfile.objects.none(), label="GPU profile",
        help_text="Only profiles whose GPU product, memory and count fit one of the NIM's GPU shapes.")
    accelerator_count = forms.IntegerField(min_value=1, initial=1, label="GPUs per replica")
    deployment_mode = forms.ChoiceField(choices=Endpoint.DeploymentMode.choices, initial=Endpoint.DeploymentMode.STANDARD,
                                        label="Deployment mode")
    min_replicas = forms.IntegerField(min_value=0, initial=1, label="Minimum replicas")
    max_replicas = forms.IntegerField(min_value=1, initial=1, label="Maximum replicas")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        projects = selectors.project_list_visible_to(user=user, action="deploy")
        self.fields["project"].queryset = projects
        only = list(projects[:2])
        if len(only) == 1:
            self.initial.setdefault("project", only[0].pk)  # nothing to choose
        runtimes = selectors.nim_runtimes_visible_to(user=user).filter(disabled=False)
        self.fields["runtime"].queryset = runtimes
        # Choosing the NIM asks the page again for the profiles that fit it (htmx); without
        # JavaScript the submitted NIM scopes them.
        self.fields["hardware_profile"].widget.attrs.update({
            "hx-get": "", "hx-trigger": "change from:#id_runtime", "hx-include": "#id_runtime",
            "hx-select": "#id_hardware_profile option", "hx-target": "this", "hx-swap": "innerHTML"})
        raw = self.data.get("runtime") if self.is_bound else self.initial.get("runtime")
        runtime = runtimes.filter(pk=_as_pk(raw)).first() if raw not in (None, "") else None
        self.nim_entry = nim_services.entry_of(runtime) if runtime is not None else None
        # Any enabled profile validates (the service then refuses one that fits no shape, with the
        # reason); only fitting ones are offered.
        profiles = selectors.hardware_choices()
        field = self.fields["hardware_profile"]
        field.queryset = profiles
        fitting = nim_services.fitting_profiles(self.nim_entry, profiles) if self.nim_entry is not None else []
        self.profile_ids = [p.pk for p in fitting]
        field.widget.choices = [("", "---------"), *((p.pk, str(p)) for p in fitting)]
        if self.nim_entry is not None:
            shapes = "; ".join(s.describe() for s in self.nim_entry.shapes)
            self.fields["accelerator_count"].help_text = f"GPU shapes of this NIM: {shapes}."


class NimEntryForm(forms.Form):
    data = forms.JSONField(
        label="Catalog entry (JSON)", widget=forms.Textarea(attrs={"rows": 18, "spellcheck": "false"}),
        help_text="key, display_name, version, image, model_format (nvidia-nim-…), api (chat, completions, "
                  "embeddings or ranking), model_id, cpu_request, cpu_limit, memory_request, memory_limit, shm_size, "
                  "shm_mount_path, cache_path, and shapes: [{gpu_count, min_gpu_memory_gib, gpu_product}].")


class NimImportForm(forms.Form):
    cluster = forms.ModelChoiceField(queryset=None, label="Cluster",
                                     help_text="Its ClusterServingRuntimes whose format is nvidia-nim-* become entries.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["cluster"].queryset = selectors.cluster_list().filter(enabled=True)
