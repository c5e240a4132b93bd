"""Lists filtered by the chokepoint cost the same number of queries whatever the number of
grants and rows: one OR of IN-subqueries over the direct-FK tables, before pagination."""

import pytest
from django.urls import reverse

from console.access import grants, services
from tests.console.access_factories import endpoint_in, project_with_model

pytestmark = pytest.mark.django_db


def _setup(user, endpoints: int):
    project, _ = project_with_model(f"p{endpoints}")
    hidden, _ = project_with_model(f"hidden{endpoints}")
    team = services.team_create(actor=None, name=f"t{endpoints}", members=[user])
    for i in range(endpoints):
        endpoint = endpoint_in(project, f"e{i}")
        endpoint_in(hidden, f"h{i}")
        if i % 2:
            grants.grant_create(actor=None, role="viewer", target=endpoint, user=user, reason="x")
        else:
            grants.grant_create(actor=None, role="caller", target=endpoint, group=team, reason="x")


def _count(client, url, django_assert_max_num_queries, limit):
    with django_assert_max_num_queries(limit) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return response, len(captured)


@pytest.mark.parametrize("url_name", ["api-endpoint-list-visible", "endpoints:endpoint-list"])
def test_the_endpoint_list_costs_the_same_for_4_or_24_granted_endpoints(client, alice, url_name,
                                                                         django_assert_max_num_queries):
    url = reverse("endpoint-list") if url_name == "api-endpoint-list-visible" else reverse(url_name)
    client.force_login(alice)
    _setup(alice, 4)
    small, small_count = _count(client, url, django_assert_max_num_queries, 20)
    _setup(alice, 20)
    large, large_count = _count(client, url, django_assert_max_num_queries, 20)
    assert large_count == small_count
    if url_name == "api-endpoint-list-visible":
        assert small.json()["count"] == 4 and large.json()["count"] == 24
        assert all(not row["name"].startswith("h") for row in large.json()["results"])
