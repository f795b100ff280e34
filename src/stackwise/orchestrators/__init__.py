"""Orchestrators: when and in what order steps run. `local` is embedded and the default;
each target is one folder, registered by name in `stackwise.plugins`."""

__all__: list[str] = []
