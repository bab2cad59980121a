"""The ground floor: helpers every layer uses (YAML config files, paths, plotting, per-code-point tables),
importing nothing of lmforge's. A stage's cache key holds only the helpers it imports (flows/fingerprint.py),
so sharing one puts no other package's code into a key."""
