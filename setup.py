"""Package discovery for the two import roots: `attune` (libs/) and `attune_services` (services/)."""

from setuptools import find_namespace_packages, setup

packages = [p for p in find_namespace_packages("libs") if p.startswith("attune")]
packages += ["attune_services"] + [
    f"attune_services.{p}" for p in find_namespace_packages("services") if not p.startswith("__")
]

setup(packages=packages)
