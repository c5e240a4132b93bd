"""The demo's access is made of real grants (shown on the access pages) and seeding twice
changes nothing."""

import pytest

from audit.models import AuditEvent
from console.access.models import Grant
from console.permissions import can
from console.portal.demo import _seed_access
from tests.console.access_factories import endpoint_in, project_with_model

pytestmark = pytest.mark.django_db


def test_demo_access_is_granted_once_through_grants(alice, bob):
    fraud, _ = project_with_model("fraud-detection")
    llm, _ = project_with_model("llm-apps")
    iris = endpoint_in(fraud, "iris")
    _seed_access(alice=alice, bob=bob, projects=(fraud, llm))
    events = AuditEvent.objects.count()
    _seed_access(alice=alice, bob=bob, projects=(fraud, llm))
    assert AuditEvent.objects.count() == events
    assert Grant.objects.count() == 6
    assert can(alice, iris, "deploy") and can(alice, iris, "infer") and can(alice, llm, "deploy")
    assert can(bob, iris, "view") and not can(bob, iris, "deploy") and not can(bob, llm, "view")
    robot = Grant.objects.get(user__username="fraud-scorer-client").user
    assert robot.is_service_account and can(robot, iris, "infer") and not can(robot, iris, "deploy")
