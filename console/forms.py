"""The framework's forms: sign-in. Access-control forms live in ``console.access.forms``."""

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError


class LoginForm(AuthenticationForm):
    """The sign-in form; the service-account refusal lives in the auth backend."""

    username = forms.CharField(
        max_length=150, widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "username"})
    )
    password = forms.CharField(
        strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )

    def get_invalid_login_error(self):
        # A sign-in mode that checked the password but will not let the person in (the
        # directory's account collides with a local one, the console account is deactivated)
        # leaves its reason on the request. It is shown only after the password was accepted, so
        # it tells a guesser nothing.
        refused = getattr(self.request, "sign_in_refused", None)
        if refused:
            return ValidationError(refused, code="sign_in_refused")
        return super().get_invalid_login_error()
