"""The trail's search form (UI and API share it): time range, actor, action, target, project,
endpoint, source, outcome and free text."""

from __future__ import annotations

from django import forms

from audit import selectors
from audit.models import AuditEvent


class EventFilterForm(forms.Form):
    start = forms.DateTimeField(required=False, label="From", help_text="UTC",
                                widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    end = forms.DateTimeField(required=False, label="Until", help_text="UTC",
                              widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    actor = forms.CharField(required=False, max_length=256)
    action = forms.CharField(required=False, max_length=64, help_text="e.g. endpoint.update, grant., k8s.")
    target = forms.CharField(required=False, max_length=256)
    project = forms.ChoiceField(required=False)
    endpoint = forms.ModelChoiceField(queryset=None, required=False, empty_label="Any endpoint")
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
        self.fields["endpoint"].queryset = selectors.endpoint_choices(user=user)
        self.fields["endpoint"].label_from_instance = lambda e: f"{e.project.name}/{e.name}"

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
