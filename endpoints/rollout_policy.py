"""Rollout policies as plain data: the built-in defaults and the rules that refuse nonsense.

A policy is a dict with the fields of ``endpoints.models.RolloutPolicy``. ``validate`` returns
the cleaned dict or raises ``ValidationError`` with one message per field, so the wizard, the
rollout form and the API report the same errors. A rollout keeps the cleaned dict it started
with (``Rollout.policy``): editing the endpoint's policy later does not change a running one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.core.exceptions import ValidationError

DEFAULTS: dict = {
    "steps": [10, 25, 50, 100],
    "min_step_minutes": 5,
    "min_step_requests": 200,
    "max_error_rate_increase": 1.0,
    "max_p95_ratio": None,
    "max_p99_ratio": 1.2,
    "max_prediction_psi": 0.2,
    "max_prediction_js": None,
    "prediction_baseline": "primary",
    "fail_on_feature_drift_alert": True,
    "max_wait_minutes": 60,
    "on_failure": "rollback",
    "on_success": "promote",
    "on_timeout": "fail",
}
FIELDS = tuple(DEFAULTS)

MAX_STEPS = 20
MAX_STEP_MINUTES = 7 * 24 * 60
MAX_STEP_REQUESTS = 10_000_000
CHOICES = {
    "prediction_baseline": ("primary", "reference"),
    "on_failure": ("rollback", "remove"),
    "on_success": ("promote", "hold"),
    "on_timeout": ("fail", "pause"),
}
# (lowest, highest, what the field is) of each optional threshold; None switches a gate off.
THRESHOLDS = {
    "max_error_rate_increase": (0.0, 100.0, "percentage points"),
    "max_p95_ratio": (1.0, 100.0, "a ratio"),
    "max_p99_ratio": (1.0, 100.0, "a ratio"),
    "max_prediction_psi": (0.0, 10.0, "a PSI"),
    "max_prediction_js": (0.0, 1.0, "a Jensen–Shannon distance"),
}


def parse_steps(value) -> list[int]:
    """Steps from a list or a text such as ``"10, 25, 50, 100"`` (the form's spelling)."""
    if isinstance(value, str):
        parts = [p for p in value.replace("→", ",").replace(" ", ",").split(",") if p.strip()]
    elif isinstance(value, list | tuple):
        parts = list(value)
    else:
        raise ValidationError({"steps": ["Give the steps as a list of percentages, e.g. 10, 25, 50, 100."]})
    steps = []
    for part in parts:
        try:
            number = float(str(part).strip().rstrip("%"))
        except ValueError:
            raise ValidationError({"steps": [f"{part!r} is not a percentage."]}) from None
        if not number.is_integer():
            raise ValidationError({"steps": [f"{part} is not a whole percentage."]})
        steps.append(int(number))
    return steps


def _number(value, name: str, errors: dict, *, integer: bool = False):
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        errors[name] = ["Give a number."]
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        errors[name] = ["Give a number."]
        return None
    if number != number or number in (float("inf"), float("-inf")):
        errors[name] = ["Give a finite number."]
        return None
    if integer:
        if not number.is_integer():
            errors[name] = ["Give a whole number."]
            return None
        return int(number)
    return number


def validate(data: dict) -> dict:
    """The policy ``data`` describes (missing fields: the defaults), cleaned, or field errors."""
    unknown = set(data) - set(FIELDS)
    if unknown:
        raise ValidationError({"__all__": [f"Unknown policy fields: {', '.join(sorted(unknown))}."]})
    policy = {**DEFAULTS, **data}
    errors: dict[str, list[str]] = {}
    try:
        steps = parse_steps(policy["steps"])
    except ValidationError as exc:
        errors.update(exc.message_dict)
        steps = []
    if not errors.get("steps"):
        if not steps:
            errors["steps"] = ["Give at least one step."]
        elif len(steps) > MAX_STEPS:
            errors["steps"] = [f"At most {MAX_STEPS} steps."]
        elif any(not 1 <= s <= 100 for s in steps):
            errors["steps"] = ["Each step is a percentage from 1 to 100."]
        elif any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            errors["steps"] = ["Steps must increase (e.g. 10, 25, 50, 100)."]
    policy["steps"] = steps
    for name, low, high in (("min_step_minutes", 1, MAX_STEP_MINUTES), ("min_step_requests", 1, MAX_STEP_REQUESTS),
                            ("max_wait_minutes", 1, MAX_STEP_MINUTES)):
        value = _number(policy[name], name, errors, integer=True)
        if value is None and name not in errors:
            errors[name] = ["This field is required."]
        elif value is not None and not low <= value <= high:
            errors[name] = [f"Give a whole number from {low} to {high}."]
        policy[name] = value
    if (not errors.get("max_wait_minutes") and not errors.get("min_step_minutes")
            and policy["max_wait_minutes"] < policy["min_step_minutes"]):
        errors["max_wait_minutes"] = ["The maximum wait cannot be shorter than the minimum time per step."]
    for name, (low, high, what) in THRESHOLDS.items():
        value = _number(policy[name], name, errors)
        if value is not None and not low <= value <= high:
            errors[name] = [f"Give {what} from {low:g} to {high:g} (empty: gate off)."]
        if name == "max_prediction_psi" and value is not None and value <= 0:
            errors[name] = ["A PSI threshold must be above 0 (empty: gate off)."]
        policy[name] = value
    for name, allowed in CHOICES.items():
        if policy[name] not in allowed:
            errors[name] = [f"Choose one of: {', '.join(allowed)}."]
    if not isinstance(policy["fail_on_feature_drift_alert"], bool):
        errors["fail_on_feature_drift_alert"] = ["Give true or false."]
    if errors:
        raise ValidationError(errors)
    return policy


def describe(policy: dict) -> str:
    """One line for pages and notifications: "10 → 25 → 50 → 100 %, ≥ 5 min and ≥ 200 requests per step"."""
    steps = " → ".join(str(s) for s in policy.get("steps") or [])
    return (f"{steps} %, ≥ {policy.get('min_step_minutes')} min and ≥ {policy.get('min_step_requests')} requests "
            f"per step, at most {policy.get('max_wait_minutes')} min waiting")


@dataclass
class Verdict:
    """What the gates say about the current step's window (measured by ``monitoring.rollouts``).

    ``gates``: one dict per gate — ``gate`` (its key), ``label``, ``value``, ``threshold``,
    ``passed`` (True, False, or None when not measured) and ``note`` — the values each
    decision is audited with. ``message``: one line, e.g. "waiting: 38 of 200 requests"."""

    PASS = "pass"  # noqa: S105 - an outcome, not a password
    FAIL = "fail"
    WAIT = "wait"

    outcome: str
    message: str
    gates: list[dict] = field(default_factory=list)
    window_start: datetime | None = None
    window_end: datetime | None = None
