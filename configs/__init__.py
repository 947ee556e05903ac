"""The YAML configs, shipped inside the package as ``speechrnn.configs`` (read through importlib.resources)."""
