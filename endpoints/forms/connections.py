"""Forms of the storage-connection pages, built per kind from ``endpoints.connections.KINDS``.

Settings are ``config_<name>`` fields, secret values ``secret_<name>`` fields (prefixed: a Google
Cloud connection has a ``project`` setting, and the create form a ``project`` choice). Secret
inputs are write-only: password inputs and textareas that never render a value — not the stored
one (it is never read back), and not the one just typed when the form comes back with an error.
A blank secret field on edit keeps the stored value; the services decide what is required.
"""

from __future__ import annotations

from django import forms

from endpoints.connections import KINDS, Field, KindSpec
from endpoints.models import StorageConnection

PLATFORM_CHOICE = "platform"
KEEP_HELP = "Set: leave blank to keep the stored value, or type a new one to replace it."
UNSET_HELP = "Not set."


class SecretTextarea(forms.Textarea):
    """A textarea that is always rendered empty (a key file or a header set typed into a form that
    failed validation is not sent back to the browser)."""

    def format_value(self, value):
        return None


def _secret_widget(field: Field) -> forms.Widget:
    attrs = {"autocomplete": "new-password", "spellcheck": "false"}
    if field.kind == "textarea":
        return SecretTextarea(attrs={**attrs, "rows": 5, "class": "code"})
    return forms.PasswordInput(render_value=False, attrs=attrs)


def config_field(field: Field, *, editing: bool) -> forms.Field:
    """The form field of one non-secret setting."""
    if field.kind == "bool":
        return forms.BooleanField(label=field.label, required=False, help_text=field.help)
    if field.kind == "choice":
        return forms.ChoiceField(label=field.label, required=False, choices=field.choices, widget=forms.RadioSelect,
                                 help_text=field.help)
    widget = forms.Textarea(attrs={"rows": 5, "spellcheck": "false", "class": "code"}) \
        if field.kind == "textarea" else forms.TextInput
    return forms.CharField(label=field.label, required=field.required, help_text=field.help, widget=widget,
                           max_length=20000 if field.kind == "textarea" else 500)


def secret_field(field: Field, *, required: bool, stored: bool | None) -> forms.Field:
    """The form field of one secret value. ``stored``: None when creating, else whether a value is
    stored (the help then says so; blank keeps it)."""
    help_parts = [field.help] if field.help else []
    if stored is True:
        help_parts.append(KEEP_HELP)
    elif stored is False:
        help_parts.append(UNSET_HELP)
    return forms.CharField(label=field.label, required=required, widget=_secret_widget(field),
                           strip=field.kind != "textarea", max_length=20000, help_text=" ".join(help_parts))


class KindFieldsMixin:
    """Adds the kind's settings and/or secret fields and reads them back."""

    spec: KindSpec

    def add_config_fields(self, *, editing: bool) -> None:
        for field in self.spec.config:
            self.fields[f"config_{field.name}"] = config_field(field, editing=editing)

    def add_secret_fields(self, *, creating: bool, stored: set[str] | None) -> None:
        for field in self.spec.secrets:
            self.fields[f"secret_{field.name}"] = secret_field(
                field, required=creating and field.required,
                stored=None if stored is None else field.name in stored)

    def config_data(self) -> dict:
        return {f.name: self.cleaned_data.get(f"config_{f.name}") for f in self.spec.config}

    def secret_data(self) -> dict:
        """The secret values typed (blank ones left out: blank keeps the stored value)."""
        values = {}
        for field in self.spec.secrets:
            value = self.cleaned_data.get(f"secret_{field.name}") or ""
            if value.strip():
                values[field.name] = value
        return values

    def grouped_fields(self) -> dict[str, list]:
        """The visible fields by section: ``general`` (project, names), ``config``, ``secret``."""
        groups: dict[str, list] = {"general": [], "config": [], "secret": []}
        for bound in self.visible_fields():
            section = bound.name.split("_", 1)[0] if bound.name.startswith(("config_", "secret_")) else "general"
            groups[section].append(bound)
        return groups

    @classmethod
    def field_map(cls, spec: KindSpec) -> dict[str, str]:
        """The services' error keys (setting and secret names) to this form's field names."""
        mapping = {f.name: f"config_{f.name}" for f in spec.config}
        mapping.update({f.name: f"secret_{f.name}" for f in spec.secrets})
        return mapping


class ConnectionForm(KindFieldsMixin, forms.Form):
    """Create (``connection`` None) or edit a connection of one kind."""

    def __init__(self, *args, kind: str, connection: StorageConnection | None = None, projects=None,
                 allow_platform: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.spec = KINDS[kind]
        self.connection = connection
        creating = connection is None
        if creating:
            choices = [(str(p.pk), p.name) for p in (projects if projects is not None else [])]
            if allow_platform:
                choices.append((PLATFORM_CHOICE, "Platform-wide (projects opt in)"))
            self.projects = {str(p.pk): p for p in (projects if projects is not None else [])}
            self.fields["project"] = forms.ChoiceField(
                label="Owned by", choices=[("", "Choose a project")] + choices,
                help_text="A project's connection is used by that project's model versions; its Owners manage it. "
                          "A platform-wide one is managed by platform admins and used by the projects that opt in.")
            self.fields["name"] = forms.SlugField(
                max_length=40, help_text="Lowercase letters, digits and '-'; names the Secret on the cluster and "
                                         "cannot change later.")
        self.fields["display_name"] = forms.CharField(max_length=100, required=False)
        self.fields["description"] = forms.CharField(max_length=300, required=False)
        self.add_config_fields(editing=not creating)
        self.add_secret_fields(creating=creating,
                               stored=None if creating else set(connection.secret_fields or []))
        if not creating:
            self.initial.setdefault("display_name", connection.display_name)
            self.initial.setdefault("description", connection.description)
            for field in self.spec.config:
                self.initial.setdefault(f"config_{field.name}", (connection.config or {}).get(field.name))
        else:
            for field in self.spec.config:
                if field.name == "verify_tls":
                    self.initial.setdefault("config_verify_tls", True)
                if field.kind == "choice" and field.choices:
                    self.initial.setdefault(f"config_{field.name}", field.choices[0][0])

    def clean_project(self):
        value = self.cleaned_data["project"]
        if value == PLATFORM_CHOICE:
            return None
        return self.projects[value]


class RotateForm(KindFieldsMixin, forms.Form):
    """New secret values for a connection: at least one, blank ones keep the stored value."""

    def __init__(self, *args, connection: StorageConnection, **kwargs):
        super().__init__(*args, **kwargs)
        self.spec = KINDS[connection.kind]
        self.add_secret_fields(creating=False, stored=set(connection.secret_fields or []))

    def clean(self):
        data = super().clean()
        if not self.errors and not self.secret_data():
            raise forms.ValidationError("Type at least one new secret value.")
        return data


class StorageCheckForm(forms.Form):
    uri = forms.CharField(label="Storage URI", max_length=1000,
                          help_text="Checked now with the connection's credentials: does it exist, may they read it?")


class OptInForm(forms.Form):
    project = forms.IntegerField(min_value=1)
    action = forms.ChoiceField(choices=(("in", "Opt in"), ("out", "Opt out")))
