"""List filters of the endpoints app, shared by the pages and the API (django-filter).

A FilterSet narrows rows the view already passed through the chokepoint (the base views'
``filter_queryset``, DRF's filter backends after ``get_queryset``), so its ``qs`` starts from the
restricted queryset and no filter value can reach a row the user may not see. The API answers
a bad value with 400 and the field's message; a page shows the message beside the field and
ignores that filter. A project is never a bad value: one the user cannot see matches nothing,
as one that does not exist. A page offers the filters it shows (``only``); the API takes them
all.
"""

from __future__ import annotations

import django_filters
from django import forms
from django.db.models import Q
from django_filters.filters import QuerySetRequestMixin

from console.ids import ID_MAX, OUT_OF_RANGE, IdField
from console.permissions import restrict
from endpoints.models import (
    Endpoint,
    EndpointStatus,
    ModelVersion,
    Project,
    RegisteredModel,
    StorageConnection,
)


class ProjectField(forms.ModelChoiceField):
    """A project by name (what the pages' select sends) or id (what every API object reports
    as "project"). The select offers the projects the viewer can see; any other value is not an
    error but matches nothing, exactly as a project that does not exist, so the answer never
    tells the two apart."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("queryset", Project.objects.none())
        kwargs.setdefault("to_field_name", "name")
        kwargs.setdefault("empty_label", "All projects")
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        value = "" if value in self.empty_values else str(value).strip()
        if value.isdecimal() and (not value.isascii() or len(value) > 19 or int(value) > ID_MAX):
            # Digits only, so an id, but none the database can hold (console/ids.py).
            raise forms.ValidationError(OUT_OF_RANGE, code="max_value")
        return value

    def validate(self, value):
        """Any name or id: the filter, not the field, decides what it matches."""


def projects_for_select(request):
    """The projects the viewer can see, by name: the choices of a project select."""
    if request is None:
        return Project.objects.none()
    return restrict(Project.objects.order_by("name"), request.user)


class ProjectFilter(QuerySetRequestMixin, django_filters.Filter):
    """``?project=``: a project's name or id (``ProjectField``)."""

    field_class = ProjectField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("queryset", projects_for_select)
        super().__init__(*args, **kwargs)

    def filter(self, qs, value):
        if not value:
            return qs
        condition = Q(**{f"{self.field_name}__name": value})
        if value.isdecimal():  # not isdigit(): "²" is a digit that int() refuses
            condition |= Q(**{f"{self.field_name}_id": int(value)})
        return qs.filter(condition)


class IdFilter(django_filters.Filter):
    """A whole number naming a row (``?model=7``)."""

    field_class = IdField


class ListFilterMixin:
    """For API viewsets: the FilterSet (``filterset_class``, applied by DRF's filter backend)
    narrows the list only; a detail URL names its object whatever the query string says."""

    def filter_queryset(self, queryset):
        if self.action != "list":
            return queryset
        return super().filter_queryset(queryset)


class ConsoleFilterSet(django_filters.FilterSet):
    """The filters of one list. ``request`` gives the viewer (the project select offers the
    projects they can see); ``only`` keeps the filters a page offers, in their declared order."""

    def __init__(self, data=None, queryset=None, *, request=None, prefix=None, only=None):
        super().__init__(data, queryset, request=request, prefix=prefix)
        if only is not None:
            # ``filters`` is this instance's copy: the class keeps every filter for the API.
            self.filters = {name: f for name, f in self.filters.items() if name in only}


class EndpointFilterSet(ConsoleFilterSet):
    """``?search=`` (endpoint or model name), ``?project=`` (name or id), ``?phase=`` (observed
    phase), ``?state=`` (active, stopped or deleting)."""

    search = django_filters.CharFilter(method="filter_search", label="Search", help_text="Endpoint or model name.")
    project = ProjectFilter(field_name="project", label="Project")
    phase = django_filters.ChoiceFilter(field_name="status__phase", choices=EndpointStatus.Phase.choices,
                                        empty_label="Any status", label="Status")
    state = django_filters.ChoiceFilter(choices=Endpoint.State.choices, empty_label="Any state", label="State")

    class Meta:
        model = Endpoint
        fields: list[str] = []

    def filter_search(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(model_version__model__name__icontains=value))


class RegisteredModelFilterSet(ConsoleFilterSet):
    """``?project=`` (name or id) and a search in the name or description: ``?q=`` on the
    page, ``?search=`` in the API (both kept: existing links and scripts use them)."""

    project = ProjectFilter(field_name="project", label="Project")
    q = django_filters.CharFilter(method="filter_search", label="Search", max_length=100,
                                  widget=forms.TextInput(attrs={"type": "search",
                                                                "placeholder": "Name or description"}))
    search = django_filters.CharFilter(method="filter_search", label="Search")

    class Meta:
        model = RegisteredModel
        fields: list[str] = []

    def filter_search(self, queryset, name, value):
        return queryset.filter(Q(name__icontains=value) | Q(description__icontains=value))


class ModelVersionFilterSet(ConsoleFilterSet):
    """``?model=`` (the registered model's id)."""

    model = IdFilter(field_name="model_id", min_value=0, label="Model",
                     error_messages={"invalid": "Give the model's id.", "min_value": "Give the model's id."})

    class Meta:
        model = ModelVersion
        fields: list[str] = []


class StorageConnectionFilterSet(ConsoleFilterSet):
    """``?project=`` (name or id: the project's own connections), ``?kind=`` (s3, gcs, azure, hf,
    oci, https) and ``?scope=`` (``project`` or ``platform``-wide)."""

    project = ProjectFilter(field_name="project", label="Project")
    kind = django_filters.ChoiceFilter(choices=StorageConnection.Kind.choices, empty_label="Any kind", label="Kind")
    scope = django_filters.ChoiceFilter(method="filter_scope", label="Scope", empty_label="Any scope",
                                        choices=(("project", "A project's"), ("platform", "Platform-wide")))

    class Meta:
        model = StorageConnection
        fields: list[str] = []

    def filter_scope(self, queryset, name, value):
        return queryset.filter(project__isnull=(value == "platform"))
