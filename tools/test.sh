#!/usr/bin/env bash
# The project's checks: lint, types, then the test suite (run from the repository root with
# the package installed, e.g. in the README's virtual environment).
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check xla_metal tests tools examples
mypy
# The package is installed editable (README), so the checkout is what runs.
python -m pytest -q -p no:cacheprovider tests "$@"
