"""Compression and training methods: one package each (config, apply, the machinery only it
uses), found by the registry (engine/methods/registry.py)."""
