"""Registers the suite's pytest plugin modules; the fixtures themselves live in fixtures/."""

pytest_plugins = [
    "fixtures.options",
    "fixtures.stack",
    "fixtures.outcomes",
    "fixtures.report",
    "fixtures.drill",
    "fixtures.rollback",
]
