"""What a run is asked to do, read and checked once: the scenario model (``scenario``), the
scenarios files and the built-ins (``scenarios``), the project's ``[tool.stress]`` table or
``stress.toml`` (``project``), the one cascade of defaults, config, ``STRESS_*`` variables and
flags (``settings``), and the bounded YAML reader under them all (``strict_yaml``)."""
