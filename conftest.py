"""The suite's pytest plugin comes from the installed package's ``pytest11`` entry point
(``scripts/bootstrap.sh`` installs this checkout in editable mode); naming it here too is a
no-op then, and loads it from the checkout when the package is not installed."""

pytest_plugins = ["rollback_drill.fixtures"]
