"""The trail's search form (UI and API share it): time range, actor, action, target, project,
endpoint, source, outcome and free text."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.choices import BaseChoiceIterator

from audit import selectors
from audit.directory import EndpointRef
from audit.models import AuditEvent

MAX_ID = 2**63 - 1


class _EndpointOptions(BaseChoiceIterator):
    """The endpoint select's options, read once and only when iterated past "Any endpoint"
    (as a model choice field does: checking the first option costs no query)."""

    def __init__(self, user):
        self.user = user
        self.endpoints = None

    def __iter__(self):
        yield "", "Any endpoint"
        if self.endpoints is None:
            self.endpoints = selectors.endpoint_choices(user=self.user)
        for endpoint in self.endpoints:
            yield endpoint.pk, endpoint.label


class EndpointField(forms.ChoiceField):
    """An endpoint the user may filter the trail on, by id, cleaned to an ``EndpointRef``.

    The select's options are read only when the form is rendered (the API never renders
    it); a submitted id is looked up on its own. Same message as a model choice field had.
    """

    default_error_messages = {"invalid_choice": forms.ModelChoiceField.default_error_messages["invalid_choice"]}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.user = None

    def for_user(self, user) -> None:
        self.user = user
        self.choices = _EndpointOptions(user)

    def to_python(self, value) -> EndpointRef | None:
        if value in self.empty_values:
            return None
        try:
            pk = int(value)
        except (TypeError, ValueError):
            pk = None
        # Beyond a 64-bit id it is no endpoint (and SQLite would refuse the parameter: a 500).
        valid = pk is not None and 0 < pk <= MAX_ID
        endpoint = selectors.endpoint_get(user=self.user, pk=pk) if valid else None
        if endpoint is None:
            raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice",
                                  params={"value": value})
        return endpoint

    def validate(self, value) -> None:
        forms.Field.validate(self, value)  # to_python already checked it is one of the choices


class EventFilterForm(forms.Form):
    start = forms.DateTimeField(required=False, label="From", help_text="UTC",
                                widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    end = forms.DateTimeField(required=False, label="Until", help_text="UTC",
                              widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    actor = forms.CharField(required=False, max_length=256)
    action = forms.CharField(required=False, max_length=64, help_text="e.g. endpoint.update, grant., k8s.")
    target = forms.CharField(required=False, max_length=256)
    project = forms.ChoiceField(required=False)
    endpoint = EndpointField(required=False)
    source = forms.ChoiceField(required=False, choices=[("", "Any source"), *AuditEvent.Source.choices])
    outcome = forms.ChoiceField(required=False, choices=[("", "Any outcome"), *AuditEvent.Outcome.choices])
    q = forms.CharField(required=False, max_length=200, label="Text", help_text="Searches names, targets and details")
    target_type = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)
    target_id = forms.CharField(required=False, max_length=255, widget=forms.HiddenInput)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].choices = [("", "Any project")] + [
            (name, name) for name in selectors.project_choices(user=user)
        ]
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
