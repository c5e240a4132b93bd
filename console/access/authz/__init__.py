"""Inference authorization (``decision``, ``cache``, ``routing``, ``allows``, ``http``): the HTTP service Envoy's ext_authz filter asks before every
inference request (kserve.md §8, architecture.md §4).

Envoy (configured as in ``deploy/istio/``) sends the original method and path, prefixed by
the provider's ``pathPrefix`` (``/authz/check``), with the original ``Host`` and only the
headers listed in ``includeRequestHeadersInCheck`` (``authorization``). No body. We answer:

- **200** with ``x-console-principal: <username>`` when the bearer token's user holds the
  ``infer`` permission (the Caller role) on the endpoint — directly, through a team, through
  the endpoint's project, or as a platform admin. Envoy copies the header upstream
  (``headersToUpstreamOnAllow``), overriding anything the client sent, so the KServe payload
  logger (``metadataHeaders: [X-Console-Principal]``) carries the real caller.
- **401** without a token, or with an unknown, expired or revoked one, or one whose user is
  deactivated;
- **403** when the token lacks the ``infer`` scope, the endpoint is unknown or ambiguous,
  the path is not normalised, or the user may not call it.

A client-sent ``x-console-principal`` is never read.

The endpoint is found by the request's host — the host of its observed status URL, the
Knative form ``<name>.<namespace>.<domain>``, the Standard form ``<name>-<namespace>.<domain>``
and the predictor hosts (``<name>-predictor.<namespace>.<domain>``,
``<name>-predictor-<namespace>.<domain>``, in-cluster ``*.svc.cluster.local``) — or, for
path-based routing, by the path prefix ``AUTHZ_PATH_TEMPLATE`` (``/serving/{namespace}/{name}``).
When the host and the path prefix disagree (the host names another endpoint than the path, or
the path names none), the request is refused rather than guessed (``resolve_target``).

Paths that are not normalised — ``.``/``..`` segments, encoded dots, slashes or backslashes,
backslashes, ``//`` — are refused (403) in the path as Envoy sent it (gunicorn's ``RAW_URI``)
and as decoded, whatever the mesh's own normalisation (``path_refusal``).

Decisions are cached for ``AUTHZ_DECISION_TTL`` seconds (never beyond the expiry of the
grant or token they rest on) under the current *access version*: a counter bumped in the
same transaction as every grant, token, user or team change, so a revoked token or grant
denies at once in the process that made the change and within ``AUTHZ_VERSION_POLL_MS`` in
every other (``cache.VersionWatcher``). With Redis the counter is also kept in the shared
cache; with the per-process LocMem cache it is read from its database row. Each process keeps
its own copy of the decisions it used, so a warm check reads neither.

Every denial is audited (source ``authz``); every allow is committed as a staged row before it
is answered and drained later into ``infer.allow`` events per principal, endpoint and minute,
with the count (``allows``).
"""
