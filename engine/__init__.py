"""The engine: everything that touches torch and transformers, the job runner, the worker and
the CLI. Importing the package is cheap; heavy imports happen inside the functions that need
them."""

import os

# Quiet, offline-friendly defaults for the libraries the jobs load (a user may override them).
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
