"""Compression and training methods: one module each, one config class each (see registry)."""
