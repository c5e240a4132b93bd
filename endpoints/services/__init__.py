"""Writes of the endpoints app, one module per concern. Every service is atomic and records
its audit event in the same transaction. Callers import the module that owns a service:

- ``platform``: clusters, hardware profiles, the runtime catalog (platform admins);
- ``projects``: projects (tenants), their namespace, quotas and payload-logger key;
- ``registry``: registered models, their versions and aliases;
- ``endpoints``: an endpoint's desired state — every change bumps ``generation``, writes an
  immutable ``Revision`` and enqueues reconciliation after commit;
- ``apply``: applying a generation to the cluster and removing a deleted endpoint (workers);
- ``observation``: an endpoint's observed status, read from its InferenceService;
- ``reconciler``: the periodic level-triggered pass over a cluster;
- ``alerts``: what the reconciler refuses to do alone and a person must look at.
"""
