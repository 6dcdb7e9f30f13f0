"""A package so that its conftest.py, collected before tests/conftest.py (doctest-modules), gets its own module name."""
