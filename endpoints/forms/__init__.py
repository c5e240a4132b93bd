"""Forms of the endpoints app: registry and platform-admin forms, endpoint forms."""
