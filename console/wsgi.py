import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
application = get_wsgi_application()

# Refuse to serve with encryption keys that cannot read the stored secrets (console/crypto.py).
from console.crypto import verify_keys  # noqa: E402
from console.serving import serving_started  # noqa: E402

verify_keys()
# What the apps start in a serving process (the allow journal's shipper: console/access/apps.py).
serving_started()
