"""Edit forms of the registry and of projects (endpoints.services.lifecycle): only the fields a
service lets change; names, projects, clusters and namespaces are fixed."""

from __future__ import annotations

from django import forms

from endpoints.models import RegisteredModel


class RegisteredModelEditForm(forms.Form):
    task = forms.ChoiceField(choices=RegisteredModel.Task.choices,
                             help_text="What the model does; LLM tasks unlock the OpenAI-compatible protocol.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))


class ModelVersionEditForm(forms.Form):
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                                  help_text="The artifact, format and number of a version never change.")


class ProjectEditForm(forms.Form):
    display_name = forms.CharField(max_length=100, required=False)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))


