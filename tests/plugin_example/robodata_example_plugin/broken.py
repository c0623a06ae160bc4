"""A plugin module that fails at import (tests that robodata names the plugin instead of a traceback)."""

raise RuntimeError("this plugin needs a robot arm driver that is not installed")
