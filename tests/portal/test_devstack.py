"""``make run`` starts from ``console.portal.devstack``: the paths and modules it hands to its
child processes must exist wherever the module lives (moving it once broke `make run` while
every other test passed)."""

import importlib.util
from pathlib import Path

from console.portal import devstack


def test_the_stack_runs_manage_py_from_the_repository_root():
    root = Path(__file__).resolve().parents[2]
    assert root == devstack.BASE_DIR
    assert (devstack.BASE_DIR / "manage.py").is_file()


def test_every_module_the_stack_starts_can_be_found():
    # sandbox, gunicorn's WSGI app and logger class, the Celery app (-A console)
    # and the sandbox's model-runtime installer
    for module in ("endpoints.sandbox.run", "console.wsgi", "console.gunicorn_logging", "console.celery",
                   "endpoints.sandbox.serving.runtimes"):
        assert importlib.util.find_spec(module) is not None, module
