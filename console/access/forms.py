"""Forms of access control (users, teams, grants, tokens, the access check). Forms parse
input; the rules live in ``console.access.grants``, ``.services`` and ``.tokens``, whose
``ValidationError`` the views put back on the form."""

from datetime import timedelta

from django import forms
from django.contrib.auth import get_user_model
from django.utils import timezone

from console.access.models import ApiToken, Grant, IdentitySource
from console.access.roles import GLOBAL_ROLES
from console.access.selectors import teams
from endpoints.models import Endpoint


def _users(active_only: bool = True):
    qs = get_user_model().objects.order_by("username")
    return qs.filter(is_active=True) if active_only else qs


def _teams():
    return teams()


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        suffix = " (service account)" if obj.is_service_account else ""
        if not obj.is_active:
            suffix += " (deactivated)"
        return f"{obj.username}{suffix}"


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs):
        super().__init__(format="%Y-%m-%dT%H:%M", **kwargs)


class GrantForm(forms.Form):
    """Give a role on one object to a user or a team."""

    user = UserChoiceField(queryset=_users(), required=False, label="User or service account",
                           help_text="Choose a user or a team, not both.")
    team = forms.ModelChoiceField(queryset=_teams(), required=False,
                                  help_text="Prefer teams when a team is the real principal.")
    role = forms.ChoiceField(choices=Grant.Role.choices)
    expires_at = forms.DateTimeField(
        required=False, widget=DateTimeLocalInput(), label="Expires at (UTC)",
        help_text="Access ends at this moment. Leave empty for no expiry.",
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"])
    reason = forms.CharField(max_length=300, help_text="Why the access is needed; kept in the audit trail.")

    def __init__(self, *args, role_choices=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = _users()
        self.fields["team"].queryset = _teams()
        if role_choices is not None:
            self.fields["role"].choices = role_choices

    def clean(self):
        data = super().clean()
        if bool(data.get("user")) == bool(data.get("team")):
            raise forms.ValidationError("Choose either a user or a team.")
        return data


class GrantRevokeForm(forms.Form):
    reason = forms.CharField(max_length=300, required=False, help_text="Kept in the audit trail.")


class UserCreateForm(forms.Form):
    """Create a person (who receives a one-time link to set a password) or a service account."""

    KIND_CHOICES = [("person", "A person (signs in with a password)"),
                    ("service", "A service account (API tokens only, never signs in)")]
    kind = forms.ChoiceField(choices=KIND_CHOICES, widget=forms.RadioSelect, initial="person")
    username = forms.CharField(max_length=150)
    email = forms.EmailField(required=False)
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    description = forms.CharField(max_length=200, required=False, help_text="What the account is for.")
    global_roles = forms.MultipleChoiceField(
        choices=[(name, name) for name in GLOBAL_ROLES], required=False, widget=forms.CheckboxSelectMultiple)
    teams = forms.ModelMultipleChoiceField(queryset=_teams(), required=False,
                                           widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["teams"].queryset = _teams()


class UserRolesForm(forms.Form):
    global_roles = forms.MultipleChoiceField(
        choices=[(name, name) for name in GLOBAL_ROLES], required=False, widget=forms.CheckboxSelectMultiple)


class DeactivateForm(forms.Form):
    reason = forms.CharField(max_length=300, required=False, help_text="Kept in the audit trail.")


class TeamForm(forms.Form):
    name = forms.CharField(max_length=150)


class TeamMemberForm(forms.Form):
    user = UserChoiceField(queryset=_users(), label="Add a member")

    def __init__(self, *args, team=None, **kwargs):
        super().__init__(*args, **kwargs)
        qs = _users()
        if team is not None:
            qs = qs.exclude(groups=team)
        self.fields["user"].queryset = qs


EXPIRY_CHOICES = [("1", "1 day"), ("7", "7 days"), ("30", "30 days"), ("90", "90 days"), ("365", "1 year"),
                  ("never", "Never (not recommended)")]


class TokenForm(forms.Form):
    """A new API token: the plaintext is shown once on the next page."""

    name = forms.CharField(max_length=100, help_text="What uses it, e.g. 'CI pipeline' or 'fraud scorer client'.")
    scopes = forms.MultipleChoiceField(choices=ApiToken.SCOPE_CHOICES, widget=forms.CheckboxSelectMultiple,
                                       help_text="A token can do only what its scopes allow, and never more "
                                                 "than its user may.")
    expires = forms.ChoiceField(choices=EXPIRY_CHOICES, initial="90", label="Expires after")

    def expires_at(self):
        value = self.cleaned_data["expires"]
        return None if value == "never" else timezone.now() + timedelta(days=int(value))


class CheckAccessForm(forms.Form):
    """Principal + endpoint + action → allowed or denied, with the reason."""

    ACTION_CHOICES = [("infer", "call (inference)"), ("view", "view"), ("deploy", "deploy"),
                      ("manage", "manage access")]
    user = UserChoiceField(queryset=_users(active_only=False), label="Principal")
    endpoint = forms.CharField(max_length=120, help_text="project/endpoint, e.g. fraud-detection/iris")
    action = forms.ChoiceField(choices=ACTION_CHOICES, initial="infer")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = _users(active_only=False)

    def clean_endpoint(self):
        value = self.cleaned_data["endpoint"].strip().strip("/")
        project, sep, name = value.partition("/")
        if not sep or not project or not name:
            raise forms.ValidationError("Write it as project/endpoint.")
        endpoint = Endpoint.objects.select_related("project", "project__cluster").filter(
            project__name=project, name=name).first()
        if endpoint is None:
            raise forms.ValidationError(f"There is no endpoint {project}/{name}.")
        return endpoint


# --- identity providers --------------------------------------------------------------------------

class GroupChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return f"{obj.name} (global role)" if obj.name in GLOBAL_ROLES else f"{obj.name} (team)"


class GroupMappingForm(forms.Form):
    """Map an identity-provider group to a team or a global role."""

    source = forms.ChoiceField(choices=IdentitySource.choices, label="Identity provider")
    external_group = forms.CharField(
        max_length=300, label="Group at the provider",
        help_text="The value in the OIDC groups claim, the LDAP group's DN, or the gateway header's group.")
    group = GroupChoiceField(queryset=None, label="Console team or global role")

    def __init__(self, *args, **kwargs):
        from django.contrib.auth.models import Group

        super().__init__(*args, **kwargs)
        self.fields["group"].queryset = Group.objects.order_by("name")


class IdentityLinkForm(forms.Form):
    """Link an identity-provider account to this console account (e.g. when user names collide)."""

    source = forms.ChoiceField(choices=IdentitySource.choices, label="Identity provider")
    issuer = forms.CharField(max_length=300, label="Issuer",
                             help_text="The OIDC issuer URL, the LDAP server, or the gateway's name.")
    subject = forms.CharField(max_length=300, label="Subject",
                              help_text="The person's OIDC sub, LDAP DN, or header user name.")
