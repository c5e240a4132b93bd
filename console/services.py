"""Writes owned by the console app: users and service accounts. Each service runs in one
transaction with its audit event."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from audit import services as audit


@transaction.atomic
def user_create(
    *,
    actor,
    username: str,
    password: str | None = None,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    is_service_account: bool = False,
    is_superuser: bool = False,
    global_roles: list[str] | tuple[str, ...] = (),
    description: str = "",
):
    """Create a person (with a password) or a service account (never a usable password)."""
    User = get_user_model()
    user = User(
        username=username,
        email=email,
        first_name=first_name,
        last_name=last_name,
        is_service_account=is_service_account,
        is_superuser=is_superuser,
        is_staff=is_superuser,
        description=description,
    )
    if password and not is_service_account:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.full_clean(exclude=["password"])
    user.save()
    groups = list(Group.objects.filter(name__in=global_roles))
    user.groups.set(groups)
    audit.record(
        action="serviceaccount.create" if is_service_account else "user.create",
        actor=actor,
        actor_name=None if actor is not None else "system",
        target=user,
        details={"new": {"username": username, "email": email, "global_roles": sorted(g.name for g in groups),
                         "is_superuser": is_superuser}},
    )
    return user


@transaction.atomic
def user_set_password(*, actor, user, password: str) -> None:
    user.set_password(password)
    user.save(update_fields=["password"])
    audit.record(action="user.password_set", actor=actor, actor_name=None if actor is not None else "system",
                 target=user)
