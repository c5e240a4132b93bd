"""The endpoint's Operations tab: its pods, replica count and Kubernetes events (anyone who
sees the endpoint), and its container logs (those who may deploy it; everyone else gets 404,
since logs can hold request data). Everything is read live through
``endpoints.services.operations``; a cluster that cannot answer shows its message, never a 500.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.urls import path, reverse
from django.utils.http import urlencode

from console.permissions import PermissionChecker
from endpoints import operations as ops
from endpoints.services import operations as operations_service
from endpoints.views.endpoint import ENDPOINT_ROUTE, EndpointTabView


def _logs_url(endpoint, **params) -> str:
    url = reverse("endpoints:endpoint-logs", kwargs={"project": endpoint.project.name, "name": endpoint.name})
    params = {k: v for k, v in params.items() if v not in (None, "", False)}
    return f"{url}?{urlencode(params)}" if params else url


class EndpointOperationsView(EndpointTabView):
    """Pods (phase, readiness, restarts, node, age), replicas and events, newest first."""

    tab = "endpoint-operations"
    template_name = "endpoints/endpoint/operations.html"

    def tab_context(self, endpoint):
        reading = operations_service.endpoint_operations(endpoint=endpoint)
        can_read_logs = PermissionChecker(self.request.user).can(endpoint, "deploy")
        pods = []
        for pod in reading.pods:
            links = [{"container": c, "url": _logs_url(endpoint, pod=pod.name, container=c.name)}
                     for c in pod.containers] if can_read_logs else []
            pods.append({"row": pod, "log_links": links})
        return {
            "reading": reading,
            "pods": pods,
            "replicas": ops.replica_summary(reading.pods, min_replicas=endpoint.min_replicas,
                                            max_replicas=endpoint.max_replicas),
            "can_read_logs": can_read_logs,
            "logs_url": _logs_url(endpoint) if can_read_logs else "",
        }


class EndpointLogsView(EndpointTabView):
    """One container's log: pod and container choosers, the number of lines, the previous
    instance's log after a restart, and following (static/js/operations.js polls this page
    with ``format=json``). Found among the endpoints the user may deploy: 404 otherwise."""

    tab = "endpoint-operations"
    template_name = "endpoints/endpoint/logs.html"

    def scoping_action(self) -> str:
        # Logs can hold request data: the endpoint does not exist for those who may not deploy it.
        return "deploy"

    def get(self, request, *args, **kwargs):
        self.object = self.get_object()
        context = self.get_context_data(object=self.object)
        if request.GET.get("format") == "json":
            log = context["log"]
            if context["choice_error"]:
                return JsonResponse({"errors": context["choice_error"]}, status=400)
            if log is None:  # the cluster could not list the pods, or there are none
                return JsonResponse({"pod": context["selected_pod"], "container": context["selected_container"],
                                     "text": "", "truncated": False,
                                     "error": context["cluster_error"] or "The endpoint has no pods."})
            return JsonResponse({"pod": log.pod, "container": log.container, "tail": log.tail,
                                 "previous": log.previous, "text": log.text, "error": log.error,
                                 "truncated": log.truncated})
        return self.render_to_response(context, status=400 if context["choice_error"] else 200)

    def tab_context(self, endpoint):
        query = self.request.GET
        previous = query.get("previous") in ("1", "true", "on")
        tail = ops.clamp_tail(query.get("tail", ops.DEFAULT_TAIL))
        pods = operations_service.endpoint_pods(endpoint=endpoint)
        pod = query.get("pod") or (pods.pods[0].name if pods.pods else "")
        container = query.get("container", "")
        log, choice_error = None, {}
        if pod and not pods.error:
            try:
                log = operations_service.endpoint_read_log(actor=self.request.user, endpoint=endpoint, pod=pod,
                                                           container=container, tail=tail, previous=previous,
                                                           pods=pods.pods)
                container = log.container
            except ValidationError as exc:
                choice_error = exc.message_dict
        selected = next((p for p in pods.pods if p.name == pod), None)
        return {
            "pods": pods.pods,
            "cluster_error": pods.error,
            "selected_pod": pod,
            "selected_container": container,
            "containers": selected.containers if selected else [],
            "tail": tail,
            "tail_bounds": (ops.MIN_TAIL, ops.MAX_TAIL),
            "previous": previous,
            "log": log,
            "choice_error": choice_error,
            "operations_url": reverse("endpoints:endpoint-operations",
                                      kwargs={"project": endpoint.project.name, "name": endpoint.name}),
            "follow_url": _logs_url(endpoint, pod=pod, container=container, tail=tail, previous=previous,
                                    format="json") if log is not None else "",
        }


urlpatterns = [
    path(ENDPOINT_ROUTE + "operations/", EndpointOperationsView.as_view(), name="endpoint-operations"),
    path(ENDPOINT_ROUTE + "operations/logs/", EndpointLogsView.as_view(), name="endpoint-logs"),
]
