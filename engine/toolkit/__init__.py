"""The model toolkit the methods share: configs, the job contract, checkpoints, data, training,
evaluation, timing and devices. Nothing here knows a method by name."""
