"""What the registry and admin pages share: page size, breadcrumbs, and the form view whose
valid data goes to one service call."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.views.generic import FormView

from endpoints.forms.registry import add_service_errors

PAGE_SIZE = 25


def crumbs(*items: tuple[str, str | None]) -> list[dict]:
    """Breadcrumb trail for ``endpoints/registry/_breadcrumbs.html``; the last item is the page."""
    return [{"label": label, "url": url} for label, url in items]


class ServiceFormView(FormView):
    """A form whose valid data goes to one service call; the service's ``ValidationError``
    comes back as form errors and nothing is stored."""

    template_name = "endpoints/registry/form.html"
    service_field_map: dict[str, str] = {}
    title = ""
    submit_label = "Save"

    def call_service(self, form):  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def success_message(self, result) -> str:
        return ""

    def get_success_url_for(self, result) -> str:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def form_valid(self, form):
        try:
            result = self.call_service(form)
        except ValidationError as exc:
            add_service_errors(form, exc, self.service_field_map)
            return self.form_invalid(form)
        text = self.success_message(result)
        if text:
            messages.success(self.request, text)
        return HttpResponseRedirect(self.get_success_url_for(result))

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("title", self.title)
        context.setdefault("submit_label", self.submit_label)
        return context
