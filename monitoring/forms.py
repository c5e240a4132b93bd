"""Forms of the monitoring app."""

from __future__ import annotations

from django import forms

from monitoring.models import MonitoringConfig


class MonitoringConfigForm(forms.ModelForm):
    """An endpoint's drift thresholds, window length and minimum rows per window."""

    class Meta:
        model = MonitoringConfig
        fields = ["psi_warning", "psi_alert", "drift_window_hours", "min_window_rows"]
        labels = {
            "psi_warning": "PSI warning threshold",
            "psi_alert": "PSI alert threshold",
            "drift_window_hours": "Window",
            "min_window_rows": "Minimum rows per window",
        }
        widgets = {
            "psi_warning": forms.NumberInput(attrs={"step": "0.01", "min": "0"}),
            "psi_alert": forms.NumberInput(attrs={"step": "0.01", "min": "0"}),
        }

    def clean(self):
        data = super().clean()
        warning, alert = data.get("psi_warning"), data.get("psi_alert")
        if warning is not None and alert is not None and alert <= warning:
            self.add_error("psi_alert", "The alert threshold must be above the warning threshold.")
        return data
