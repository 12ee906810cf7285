from config_suite import TestConfigured  # noqa: F401 - collected here, by every runner
