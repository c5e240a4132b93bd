"""The trail's search form (UI and API share it): time range, actor, action, target, project,
endpoint, source, outcome and free text."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from audit import selectors
from audit.directory import EndpointRef
from audit.models import AuditEvent

MAX_ID = 2**63 - 1


class EndpointField(forms.CharField):
    """An endpoint the user may filter the trail on, typed as ``project/endpoint`` (or given by
    id, as the endpoints' "Audit history" links do), cleaned to an ``EndpointRef``. The page
    never lists the endpoints (10,000 of them made a 1 s dropdown): a typed value costs one
    lookup, within what the user may see."""

    default_error_messages = {"invalid_choice": "No endpoint %(value)s that you may see. Type it as project/endpoint."}

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 300)
        kwargs.setdefault("widget", forms.TextInput(attrs={"placeholder": "project/endpoint", "spellcheck": "false"}))
        super().__init__(**kwargs)
        self.user = None

    def for_user(self, user) -> None:
        self.user = user

    def to_python(self, value) -> EndpointRef | None:
        value = super().to_python(value).strip()
        if value in self.empty_values:
            return None
        endpoint = None
        if value.isdigit():
            pk = int(value)
            # Beyond a 64-bit id it is no endpoint (and SQLite would refuse the parameter: a 500).
            if 0 < pk <= MAX_ID:
                endpoint = selectors.endpoint_get(user=self.user, pk=pk)
        elif "/" in value:
            endpoint = selectors.endpoint_get(user=self.user, label=value)
        if endpoint is None:
            raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice",
                                  params={"value": repr(value)})
        return endpoint

    def validate(self, value) -> None:
        forms.Field.validate(self, value)

    def run_validators(self, value) -> None:
        pass  # the value is an EndpointRef by now; max_length was checked on the text


class EventFilterForm(forms.Form):
    start = forms.DateTimeField(required=False, label="From", help_text="UTC",
                                widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    end = forms.DateTimeField(required=False, label="Until", help_text="UTC",
                              widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    actor = forms.CharField(required=False, max_length=256)
    action = forms.CharField(required=False, max_length=64, help_text="e.g. endpoint.update, grant., k8s.")
    target = forms.CharField(required=False, max_length=256)
    project = forms.CharField(required=False, max_length=128, help_text="Its name",
                              widget=forms.TextInput(attrs={"spellcheck": "false"}))
    endpoint = EndpointField(required=False)
    source = forms.ChoiceField(required=False, choices=[("", "Any source"), *AuditEvent.Source.choices])
    outcome = forms.ChoiceField(required=False, choices=[("", "Any outcome"), *AuditEvent.Outcome.choices])
    q = forms.CharField(required=False, max_length=200, label="Text", help_text="Searches names, targets and details")
    target_type = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)
    target_id = forms.CharField(required=False, max_length=255, widget=forms.HiddenInput)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["endpoint"].for_user(user)

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["end"] <= data["start"]:
            self.add_error("end", "Must be after the start.")
        return data

    def filters(self) -> selectors.EventFilters:
        """The criteria (empty when the form is invalid: the page then shows the errors)."""
        if not self.is_bound or not self.is_valid():
            return selectors.EventFilters()
        data = self.cleaned_data
        return selectors.EventFilters(
            start=data.get("start"), end=data.get("end"),
            **{name: (data.get(name) or "").strip() for name in
               ("actor", "action", "target", "target_type", "target_id", "project", "source", "outcome", "q")},
            endpoint=data.get("endpoint"),
        )
