"""Demo content for ``make run`` (idempotent): the sandbox cluster, hardware profiles, two
projects, registered models with reference data, endpoints in the sandbox, a team and its
grants, and a sealed audit trail.

Once the sandbox controller and the worker have run, the endpoints show the states a console
meets in real life:

- ``fraud-detection/iris``: Ready, with a Knative canary sending 20 % to v2; with the demo
  object store both versions are scikit-learn models trained at seed time on the iris data
  scikit-learn ships (``_iris_models``), kept in the private bucket, which the sandbox's data
  plane really serves behind its gateway (whose address the sandbox cluster gets from
  ``SANDBOX_GATEWAY_ADDRESS``);
- ``fraud-detection/iris-batch``: Ready but scaled to zero (minReplicas 0, no traffic);
- ``fraud-detection/transaction-amount``: a Ready regressor, version 3 of which is a real
  scikit-learn model trained at seed time and kept in the demo's private bucket (a local S3
  server, ``s3://fraud-models-private/…``): it deploys through the storage connection
  ``fraud-models-s3``, whose keys are encrypted in the database and reach the sandbox only as a
  Secret KServe's storage initializer reads (without the object store, version 1 is served);
- ``fraud-detection/transaction-amount-next``: Failed — its version's artifact is in a bucket
  that does not exist (``s3://missing-bucket/…``: ModelLoadFailed, see the sandbox controller's
  failure rules);
- ``llm-apps/assistant``: an LLM on the Hugging Face runtime (OpenAI protocol) on an A100 node,
  in Standard mode: Knative as it ships refuses the GPU node selector and toleration;
- ``fraud-detection/iris-rollout`` and ``fraud-detection/iris-rollout-bad``: automated canary
  rollouts of iris v2 (docs/rollouts.md). ``make run``'s rollout traffic keeps the first canary
  healthy, so it steps 10 → 50 → 100 % and promotes itself within a few minutes, and makes the
  second one three times slower than its primary, so it rolls itself back on p99 latency
  (removing the canary) at its first step. Each rollout is started once: a re-run leaves the finished ones as they ended.

bob's Caller grant on ``iris`` expires three days after it is first seeded. Everything is
created through the apps' services, so the demo's audit trail is real; a re-run creates
nothing and records nothing.
"""

from __future__ import annotations

import os
import random
import time
from datetime import timedelta
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.utils import timezone

from audit import sealing
from audit import services as audit_services
from audit.models import AuditEvent
from audit.verify import verify
from console.access import grants
from console.access import services as console_services
from console.access.models import Grant
from endpoints.cluster import ClusterError
from endpoints.models import (
    Cluster,
    Endpoint,
    EndpointStatus,
    HardwareProfile,
    Project,
    RegisteredModel,
    Revision,
    ServingRuntime,
    StorageConnection,
)
from endpoints.services.apply import endpoint_apply
from endpoints.services.capabilities import cluster_discover, connection_summary
from endpoints.services.connections import connection_create, connection_update, secret_values
from endpoints.services.endpoints import endpoint_create, endpoint_update
from endpoints.services.observation import endpoint_sync_status, observe_live
from endpoints.services.platform import (
    cluster_create,
    cluster_update,
    hardware_profile_create,
    sync_builtin_runtimes,
)
from endpoints.services.projects import project_create, project_onboard
from endpoints.services.registry import model_register, model_version_create

IRIS_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
AMOUNT_FEATURES = ("merchant_category", "hour_of_day", "customer_tenure_days", "basket_items", "distance_km")
MERCHANT_CATEGORIES = {"grocery": (35.0, 0.45), "electronics": (240.0, 0.12), "travel": (410.0, 0.08),
                       "restaurants": (48.0, 0.25), "fuel": (60.0, 0.10)}
CANARY_PERCENT = 20
EXPIRING_GRANT_DAYS = 3
# How long the seed waits for the sandbox to report iris v1 Ready before starting its canary
# (the sandbox takes about 6 s: 2 s until the model loads, 4 s until it is Ready).
ROLLOUT_WAIT_SECONDS = 20.0
# The demo's automated rollouts: short steps so they finish while someone watches (the built-in
# defaults are 10 → 25 → 50 → 100 % with ≥ 5 minutes and ≥ 200 requests per step).
DEMO_ROLLOUT_POLICY = {"steps": [10, 50, 100], "min_step_minutes": 1, "min_step_requests": 40,
                       "max_p99_ratio": 1.5, "max_wait_minutes": 20}


def _iris_sample(rows: int = 300, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    centres = {0: (5.0, 3.4, 1.5, 0.2), 1: (5.9, 2.8, 4.3, 1.3), 2: (6.6, 3.0, 5.6, 2.0)}
    lines = [",".join((*IRIS_FEATURES, "prediction"))]
    for _ in range(rows):
        label = rng.randrange(3)
        values = [max(0.1, rng.gauss(mu, 0.35)) for mu in centres[label]]
        lines.append(",".join([*(f"{v:.2f}" for v in values), str(label)]))
    return ("\n".join(lines) + "\n").encode()


def _amount_sample(rows: int = 400, seed: int = 5) -> bytes:
    """Card transactions with the amount the regressor predicted for each (prediction column
    ``predicted_amount``): a mixed categorical/numeric reference sample."""
    rng = random.Random(seed)
    categories = list(MERCHANT_CATEGORIES)
    weights = [share for _, share in MERCHANT_CATEGORIES.values()]
    lines = [",".join((*AMOUNT_FEATURES, "predicted_amount"))]
    for _ in range(rows):
        category = rng.choices(categories, weights)[0]
        base = MERCHANT_CATEGORIES[category][0]
        hour = min(23, max(0, int(rng.gauss(14, 4.5))))
        tenure = int(rng.expovariate(1 / 900))
        items = 1 + int(rng.expovariate(1 / (4 if category == "grocery" else 1.2)))
        distance = round(rng.lognormvariate(1.2, 0.9), 1)
        amount = base * (0.6 + 0.15 * items) * (1.3 if distance > 50 else 1.0) * rng.lognormvariate(0, 0.25)
        lines.append(f"{category},{hour},{tenure},{items},{distance},{amount:.2f}")
    return ("\n".join(lines) + "\n").encode()


PRIVATE_BUCKET = "fraud-models-private"
PRIVATE_MODEL_KEY = "transaction-amount/v3"
IRIS_MODEL_KEYS = ("iris-classifier/v1", "iris-classifier/v2")


def _iris_models() -> list[tuple[bytes, bytes]]:
    """(joblib model, reference CSV) of iris v1 (logistic regression) and v2 (a random forest),
    trained at seed time on the iris data scikit-learn ships (no download); each reference sample
    is the 150 flowers with that model's prediction."""
    import io

    import joblib
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    features, species = load_iris(return_X_y=True)
    built = []
    for model in (LogisticRegression(max_iter=1000), RandomForestClassifier(n_estimators=40, max_depth=4,
                                                                           random_state=7)):
        model.fit(features, species)
        lines = [",".join((*IRIS_FEATURES, "prediction"))]
        lines += [",".join([*(f"{v:.1f}" for v in row), str(int(label))])
                  for row, label in zip(features, model.predict(features), strict=True)]
        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        built.append((buffer.getvalue(), ("\n".join(lines) + "\n").encode()))
    return built


def _amount_model(sample: bytes) -> bytes:
    """A scikit-learn regressor trained on the amount sample (one-hot merchant category), as the
    joblib file KServe's sklearn server loads."""
    import csv
    import io

    import joblib
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    rows = list(csv.DictReader(io.StringIO(sample.decode())))
    features = [[row["merchant_category"], *(float(row[name]) for name in AMOUNT_FEATURES[1:])] for row in rows]
    target = [float(row["predicted_amount"]) for row in rows]
    model = Pipeline([
        ("encode", ColumnTransformer([("category", OneHotEncoder(handle_unknown="ignore"), [0])],
                                     remainder="passthrough")),
        ("regress", GradientBoostingRegressor(n_estimators=60, max_depth=3, random_state=3)),
    ]).fit(features, target)
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


def _private_bucket(stdout=None) -> dict | None:
    """The demo object store's endpoint and keys (``make run`` starts it; None without it), with
    the private bucket holding the trained model."""
    import json

    endpoint = os.environ.get("DEMO_S3_ENDPOINT_URL")
    credentials_file = os.environ.get("DEMO_S3_CREDENTIALS_FILE")
    if not endpoint or not credentials_file:
        return None
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    credentials = json.loads(Path(credentials_file).read_text())
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=credentials["access_key_id"],
                          aws_secret_access_key=credentials["secret_access_key"],
                          config=Config(s3={"addressing_style": "path"}))
    try:
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if PRIVATE_BUCKET not in existing:
            client.create_bucket(Bucket=PRIVATE_BUCKET)
        listed = client.list_objects_v2(Bucket=PRIVATE_BUCKET, Prefix=PRIVATE_MODEL_KEY + "/")
        if not listed.get("KeyCount"):
            client.put_object(Bucket=PRIVATE_BUCKET, Key=f"{PRIVATE_MODEL_KEY}/model.joblib",
                              Body=_amount_model(_amount_sample(seed=13)))
        missing = [key for key in IRIS_MODEL_KEYS
                   if not client.list_objects_v2(Bucket=PRIVATE_BUCKET, Prefix=key + "/").get("KeyCount")]
        if missing:
            for key, (model, _reference) in zip(IRIS_MODEL_KEYS, _iris_models(), strict=True):
                if key in missing:
                    client.put_object(Bucket=PRIVATE_BUCKET, Key=f"{key}/model.joblib", Body=model)
    except (BotoCoreError, ClientError) as exc:
        if stdout is not None:
            stdout.write(f"The demo object store at {endpoint} did not take the model ({exc}); no private bucket.")
        return None
    return {"endpoint_url": endpoint, **credentials}


def _private_connection(*, actor, project, bucket: dict) -> StorageConnection:
    """The project's connection to the private bucket, kept in step with the object store's
    address and keys (a re-run may get another port)."""
    config = {"endpoint_url": bucket["endpoint_url"], "region": "us-east-1", "verify_tls": True,
              "addressing": "path", "anonymous": False}
    secrets = {"access_key_id": bucket["access_key_id"], "secret_access_key": bucket["secret_access_key"]}
    connection = StorageConnection.objects.filter(project=project, name="fraud-models-s3").first()
    if connection is None:
        return connection_create(actor=actor, project=project, name="fraud-models-s3", kind="s3", config=config,
                                 secrets=secrets, display_name="Fraud models (private S3)",
                                 description="The team's private model bucket on the demo object store.")
    if connection.config.get("endpoint_url") != config["endpoint_url"] or secret_values(connection) != secrets:
        connection = connection_update(actor=actor, connection=connection, config=config, secrets=secrets)
    return connection


def _ensure_private_version(*, actor, model, connection):
    """Version 3 of the regressor, from the private bucket (registered once; the registration
    checks the artifact with the connection's keys)."""
    uri = f"s3://{PRIVATE_BUCKET}/{PRIVATE_MODEL_KEY}"
    version = model.versions.filter(storage_uri=uri).first()
    if version is None:
        version = model_version_create(
            actor=actor, model=model, storage_uri=uri, connection=connection, model_format="sklearn",
            format_version="1", prediction_column="predicted_amount", reference_file=_amount_sample(seed=13),
            reference_filename="transaction-amount-reference-v3.csv", aliases=["champion"],
            description="Gradient-boosted trees trained with scikit-learn; kept in the private bucket.")
    return version


def _iris_versions(connection) -> list[dict]:
    """iris v1 and v2 as registered: with the demo object store, the models trained at seed time
    in the private bucket (the sandbox serves them); without it, KServe's public example URIs,
    which the sandbox cannot download (its answers are then simulated)."""
    common = {"model_format": "sklearn", "format_version": "1", "prediction_column": "prediction"}
    if connection is None:
        return [
            {**common, "storage_uri": "gs://kfserving-examples/models/sklearn/1.0/model",
             "reference_file": _iris_sample(), "reference_filename": "iris-reference.csv", "aliases": ["champion"]},
            {**common, "storage_uri": "gs://kfserving-examples/models/sklearn/1.0/model-2",
             "reference_file": _iris_sample(seed=11), "reference_filename": "iris-reference-v2.csv",
             "aliases": ["challenger"]},
        ]
    trained = _iris_models()
    return [{**common, "storage_uri": f"s3://{PRIVATE_BUCKET}/{key}", "connection": connection,
             "reference_file": reference, "reference_filename": f"iris-reference-v{index}.csv",
             "aliases": [alias], "description": description}
            for index, (key, (_model, reference), alias, description) in enumerate(zip(
                IRIS_MODEL_KEYS, trained, ("champion", "challenger"),
                ("Logistic regression on scikit-learn's iris data.", "Random forest on scikit-learn's iris data."),
                strict=True), start=1)]


def _sandbox_cluster() -> Cluster:
    url = os.environ.get("SANDBOX_URL", "http://127.0.0.1:8001")
    token_file = os.environ.get("SANDBOX_TOKEN_FILE")
    token = Path(token_file).read_text().strip() if token_file else ""
    # The sandbox's ingress gateway (its data plane's Envoy), when make run started one.
    gateway = os.environ.get("SANDBOX_GATEWAY_ADDRESS", "")
    cluster = Cluster.objects.filter(name="sandbox").first()
    if cluster is None:
        return cluster_create(
            actor=None, name="sandbox", description="Simulated cluster with KServe (make run)",
            kind=Cluster.Kind.SANDBOX, connection=Cluster.Connection.URL, api_url=url, api_token=token,
            ingress_domain="example.com", gateway_address=gateway)
    if cluster.api_url != url or cluster.api_token != token or cluster.gateway_address != gateway:
        cluster_update(actor=None, cluster=cluster, api_url=url, api_token=token, gateway_address=gateway)
    return cluster


def _ensure_grant(*, role: str, target, user=None, group=None, reason: str, expires_at=None) -> None:
    """A live grant of ``role`` on ``target`` (created once; reruns leave it alone)."""
    principal = {"user": user} if user is not None else {"group": group}
    field = {"project": "project", "endpoint": "endpoint", "registeredmodel": "registered_model"}[
        target._meta.model_name]
    if not Grant.objects.filter(grants.live_q(), role=role, **principal, **{field: target}).exists():
        grants.grant_create(actor=None, role=role, target=target, reason=reason, expires_at=expires_at,
                            **principal)


def _seed_access(*, alice, bob, projects) -> None:
    """The demo's access: a data-science team (alice) deploys and calls in both projects,
    bob views fraud detection, and a service account may call fraud detection's endpoints."""
    team = Group.objects.filter(name="data-science").first() or console_services.team_create(
        actor=None, name="data-science")
    if not team.user_set.filter(pk=alice.pk).exists():
        console_services.team_add_member(actor=None, team=team, user=alice)
    for project in projects:
        _ensure_grant(role="deployer", target=project, group=team, reason="Demo: the team ships its models")
        _ensure_grant(role="caller", target=project, group=team, reason="Demo: the team tests its endpoints")
    _ensure_grant(role="viewer", target=projects[0], user=bob, reason="Demo: read-only reviewer")
    User = get_user_model()
    robot = User.objects.filter(username="fraud-scorer-client").first() or console_services.user_create(
        actor=None, username="fraud-scorer-client", is_service_account=True,
        description="Demo: the payment service calling the fraud endpoints")
    _ensure_grant(role="caller", target=projects[0], user=robot, reason="Demo: production caller")


def _seed_temporary_access(*, bob, iris) -> None:
    """bob may call the production classifier for a few days while he reviews it: the grant
    that shows up as "expiring soon" (created once; after it expires a re-run gives a new one)."""
    _ensure_grant(role="caller", target=iris, user=bob,
                  expires_at=timezone.now() + timedelta(days=EXPIRING_GRANT_DAYS),
                  reason="Demo: trying the classifier during the model review")


def _ensure_model(*, actor, project, name: str, task: str, description: str, versions: list[dict]):
    """A registered model with its versions (registered once, in order)."""
    model = RegisteredModel.objects.filter(project=project, name=name).first()
    if model is None:
        model = model_register(actor=actor, project=project, name=name, task=task,
                               description=description)
        for version in versions:
            model_version_create(actor=actor, model=model, **version)
    return model


def _ensure_endpoint(*, actor, project, name: str, **config) -> tuple[Endpoint, bool]:
    endpoint = Endpoint.objects.filter(project=project, name=name).first()
    if endpoint is not None:
        return endpoint, False
    return endpoint_create(actor=actor, project=project, name=name, **config), True


def _apply_now(endpoint: Endpoint, stdout=None) -> bool:
    """Apply an endpoint's first generation at once (the worker is not running yet during
    ``make run``'s seed), so the sandbox starts rolling it out while the seed goes on."""
    try:
        return endpoint_apply(endpoint_id=endpoint.pk, reason="demo seed") == "applied"
    except ClusterError as exc:
        if stdout is not None:
            stdout.write(f"The sandbox cluster is not reachable ({exc}); the worker applies the endpoints later.")
        return False


def _wait_for_rollout(done) -> bool:
    """Call ``done()`` every 0.25 s until it is true (True) or ROLLOUT_WAIT_SECONDS pass (False)."""
    deadline = time.monotonic() + ROLLOUT_WAIT_SECONDS
    while True:
        if done():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.25)


def _start_canary(*, actor, endpoint: Endpoint, canary_version, stdout=None) -> bool:
    """Send ``CANARY_PERCENT`` of ``endpoint``'s traffic to ``canary_version``.

    A Knative canary splits traffic between the new revision and the previously rolled-out
    one, so the first generation must be Ready on the cluster before the canary generation
    is applied (an InferenceService created with a canary sends everything to its only
    revision). Only an endpoint still at its first generation gets the canary: a re-run never
    undoes what someone did to the endpoint since (a promotion, a rollback)."""
    endpoint.refresh_from_db()
    if endpoint.generation != 1 or endpoint.canary_version_id is not None:
        return False
    if endpoint.status.applied_generation < 1 and not _apply_now(endpoint, stdout):
        return False
    phase = None

    def ready() -> bool:
        nonlocal phase
        try:
            phase = endpoint_sync_status(endpoint_id=endpoint.pk)
        except ClusterError:
            phase = None
        return phase == "Ready"

    if not _wait_for_rollout(ready):
        if stdout is not None:
            stdout.write(f"{endpoint.project.name}/{endpoint.name} was not Ready within {ROLLOUT_WAIT_SECONDS:.0f} s "
                         f"(last phase: {phase or 'unknown'}); its canary starts on the next seed_demo run.")
        return False
    endpoint_update(actor=actor, endpoint=endpoint, canary_version=canary_version,
                    canary_traffic_percent=CANARY_PERCENT,
                    summary=f"canary: {CANARY_PERCENT}% to v{canary_version.version}")
    return True


def _applied(endpoint: Endpoint) -> bool:
    return EndpointStatus.objects.filter(endpoint=endpoint, applied_generation__gte=1).exists()


def _start_demo_rollout(*, actor, endpoint: Endpoint, canary_version, policy: dict, stdout=None) -> bool:
    """Start an automated rollout of ``canary_version`` on ``endpoint`` once its primary is Ready
    (a Knative canary splits against a rolled-out revision). Once only: an endpoint that had a
    rollout keeps it as it ended."""
    from endpoints.services.rollouts import rollout_start

    endpoint.refresh_from_db()
    if endpoint.rollouts.exists() or endpoint.canary_version_id is not None:
        return False
    if not _applied(endpoint) and not _apply_now(endpoint, stdout):
        return False

    def ready() -> bool:
        try:
            return endpoint_sync_status(endpoint_id=endpoint.pk) == "Ready"
        except ClusterError:
            return False

    if not _wait_for_rollout(ready):
        if stdout is not None:
            stdout.write(f"{endpoint.project.name}/{endpoint.name} was not Ready in time; its automated rollout "
                         "starts on the next seed_demo run.")
        return False
    try:
        rollout_start(actor=actor, endpoint=endpoint, canary_version=canary_version, policy=policy)
    except ValidationError as exc:
        if stdout is not None:
            stdout.write(f"The automated rollout of {endpoint.name} was not started: {' '.join(exc.messages)}")
        return False
    return True


def _replay_canary_on_empty_sandbox(endpoint: Endpoint, stdout=None) -> None:
    """The sandbox keeps its cluster in memory, so each ``make run`` starts with an empty one
    and the worker re-creates every InferenceService. Re-created with its canary, iris would
    send all traffic to its only revision (as KServe does), so replay the rollout instead:
    the previous generation's manifest first and, once it is Ready, the canary generation
    (an ``endpoint.apply`` by the reconciler, as after any cluster loss). Sandbox only, and
    only when the object is missing: a running cluster is never touched."""
    cluster = endpoint.project.cluster
    if cluster.kind != Cluster.Kind.SANDBOX or endpoint.canary_version_id is None:
        return
    stable = (endpoint.revisions.filter(generation__lt=endpoint.generation)
              .exclude(outcome=Revision.Outcome.FAILED).order_by("-generation").first())
    try:
        client = cluster.client()
        if stable is None or client.get("InferenceService", endpoint.namespace, endpoint.name) is not None:
            return
        client.apply(stable.manifest)
        if _wait_for_rollout(lambda: observe_live(
                client.get("InferenceService", endpoint.namespace, endpoint.name), stopped_desired=False).ready):
            endpoint_apply(endpoint_id=endpoint.pk, force=True,
                           reason="the sandbox cluster restarted empty")
            return
    except ClusterError as exc:
        if stdout is not None:
            stdout.write(f"Could not replay the canary of {endpoint.name} on the sandbox: {exc}")
        return
    if stdout is not None:
        stdout.write(f"{endpoint.name}'s stable revision was not Ready within {ROLLOUT_WAIT_SECONDS:.0f} s; "
                     "the worker applies the canary generation directly.")


def _read_cluster(cluster: Cluster, stdout=None) -> None:
    """Read what the sandbox cluster can do, so its page shows it from the start."""
    reading = cluster_discover(cluster=cluster).capabilities
    if stdout is not None and not reading.usable:
        stdout.write(f"Could not read the sandbox cluster's capabilities: {connection_summary(reading)}")


def _seal_trail() -> None:
    """Seal the demo's events and record one verification, so the integrity page has a
    history: the verification is recorded once (a re-run records nothing) and sealed too."""
    sealing.seal_pending()
    if not AuditEvent.objects.filter(action="audit.verify").exists():
        audit_services.record_verification(actor=None, actor_name="seed_demo", report=verify())
        sealing.seal_pending()


def seed(stdout=None) -> None:
    User = get_user_model()
    alice = User.objects.get(username="alice")
    bob = User.objects.get(username="bob")
    sync_builtin_runtimes()
    cluster = _sandbox_cluster()

    cpu = HardwareProfile.objects.filter(name="cpu-small").first() or hardware_profile_create(
        actor=None, name="cpu-small", display_name="CPU small", description="2 vCPU / 4 GiB, no accelerator",
        default_cpu="1", default_memory="2Gi", max_cpu="2", max_memory="4Gi")
    a100 = HardwareProfile.objects.filter(name="a100").first() or hardware_profile_create(
        actor=None, name="a100", display_name="NVIDIA A100 80GB", description="For LLM serving",
        accelerator_resource="nvidia.com/gpu", accelerator_product="NVIDIA-A100-SXM4-80GB",
        node_selector={"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        default_cpu="4", default_memory="32Gi", max_cpu="16", max_memory="128Gi",
        max_accelerators_per_replica=4, capacity=8)

    fraud = Project.objects.filter(name="fraud-detection").first() or project_create(
        actor=None, name="fraud-detection", cluster=cluster, display_name="Fraud detection",
        description="Tabular models scoring card transactions.")
    llm = Project.objects.filter(name="llm-apps").first() or project_create(
        actor=None, name="llm-apps", cluster=cluster, display_name="LLM applications",
        description="Assistants served through OpenAI-compatible endpoints.", quotas={a100: 4})
    for project in (fraud, llm):
        # The in-memory sandbox starts empty on every run: its namespaces come back first.
        project_onboard(project=project)
    _seed_access(alice=alice, bob=bob, projects=(fraud, llm))

    bucket = _private_bucket(stdout)
    connection = _private_connection(actor=alice, project=fraud, bucket=bucket) if bucket is not None else None
    iris = _ensure_model(
        actor=alice, project=fraud, name="iris-classifier", task="classification",
        description="Species classifier (scikit-learn), trained on scikit-learn's iris data.",
        versions=_iris_versions(connection))
    amount = _ensure_model(
        actor=alice, project=fraud, name="transaction-amount", task="regression",
        description="Expected amount of a card transaction; large gaps to the real amount flag fraud.",
        versions=[
            {"storage_uri": "s3://fraud-models/transaction-amount/v1", "model_format": "sklearn", "format_version": "1",
             "prediction_column": "predicted_amount", "reference_file": _amount_sample(),
             "reference_filename": "transaction-amount-reference.csv", "aliases": ["champion"],
             "description": "Gradient-boosted trees exported with scikit-learn."},
            {"storage_uri": "s3://missing-bucket/transaction-amount/v2", "model_format": "xgboost",
             "format_version": "2", "prediction_column": "predicted_amount", "reference_file": _amount_sample(seed=9),
             "reference_filename": "transaction-amount-reference-v2.csv", "aliases": ["challenger"],
             "description": "Retrained with XGBoost; registered before its artifact was uploaded."},
        ])
    chat = _ensure_model(
        actor=alice, project=llm, name="support-assistant", task="llm-chat", description="Llama 3.1 8B Instruct.",
        versions=[{"storage_uri": "hf://meta-llama/Llama-3.1-8B-Instruct", "model_format": "huggingface"}])

    v1, v2 = iris.versions.order_by("version")[:2]
    iris_endpoint, created = _ensure_endpoint(
        actor=alice, project=fraud, name="iris", model_version=v1, protocol="v1", deployment_mode="Knative",
        min_replicas=1, max_replicas=3, scale_metric="concurrency", scale_target=10, hardware_profile=cpu,
        description="Production iris classifier")
    if created:
        _apply_now(iris_endpoint, stdout)  # rolls out while the rest is seeded; the canary needs it Ready
    else:
        _replay_canary_on_empty_sandbox(iris_endpoint, stdout)
    _ensure_endpoint(
        actor=alice, project=fraud, name="iris-batch", model_version=v2, protocol="v2",
        deployment_mode="Knative", min_replicas=0, max_replicas=2, hardware_profile=cpu,
        runtime=ServingRuntime.objects.get(name="kserve-sklearnserver"),
        description="Scales to zero between nightly batches")
    amount_v1, amount_v2 = amount.versions.order_by("version")[:2]
    served_amount = amount_v1
    if connection is not None:
        served_amount = _ensure_private_version(actor=alice, model=amount, connection=connection)
    _ensure_endpoint(
        actor=alice, project=fraud, name="transaction-amount", model_version=served_amount, protocol="v1",
        deployment_mode="Knative", min_replicas=1, max_replicas=4, scale_metric="rps", scale_target=50,
        hardware_profile=cpu, description="Expected transaction amounts for the fraud rules")
    _ensure_endpoint(
        actor=alice, project=fraud, name="transaction-amount-next", model_version=amount_v2, protocol="v2",
        deployment_mode="Knative", min_replicas=1, max_replicas=1, hardware_profile=cpu,
        description="Staging for the retrained regressor")
    _ensure_endpoint(
        actor=alice, project=llm, name="assistant", model_version=chat.versions.get(version=1),
        protocol="openai", deployment_mode="Standard", min_replicas=1, max_replicas=2,
        hardware_profile=a100, accelerator_count=1, runtime=ServingRuntime.objects.get(name="kserve-huggingfaceserver"),
        description="Support chat assistant")
    _seed_temporary_access(bob=bob, iris=iris_endpoint)
    _start_canary(actor=alice, endpoint=iris_endpoint, canary_version=v2, stdout=stdout)
    _read_cluster(cluster, stdout)
    rollout_endpoints = []
    for name, description in (("iris-rollout", "Automated rollout demo: a healthy canary that promotes itself"),
                              ("iris-rollout-bad", "Automated rollout demo: a failing canary that rolls itself back")):
        endpoint, _ = _ensure_endpoint(
            actor=alice, project=fraud, name=name, model_version=v1, protocol="v1", deployment_mode="Knative",
            min_replicas=1, max_replicas=1, hardware_profile=cpu, description=description)
        rollout_endpoints.append(endpoint)
    good, bad = rollout_endpoints
    for endpoint in rollout_endpoints:  # applied together, so they become Ready side by side
        if not _applied(endpoint):
            _apply_now(endpoint, stdout)
    _start_demo_rollout(actor=alice, endpoint=good, canary_version=v2, policy=DEMO_ROLLOUT_POLICY, stdout=stdout)
    _start_demo_rollout(actor=alice, endpoint=bad, canary_version=v2, stdout=stdout,
                        policy={**DEMO_ROLLOUT_POLICY, "on_failure": "remove"})
    _seal_trail()
    if stdout is not None:
        stdout.write("Demo projects, models, endpoints, grants and sealed audit trail ready.")
