"""Loads the correct example plugin (conformance/examples/file_plugin.py) as a module, so
that each broken plugin here changes one thing of it and runs it.

Not a plugin itself (its name starts with an underscore).
"""

import importlib.util
import os

EXAMPLE = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "conformance", "examples", "file_plugin.py"
)


def load_example():
    spec = importlib.util.spec_from_file_location("file_plugin", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(module, plugin_class):
    """Serves the protocol with `plugin_class` in place of the example's FilePlugin."""
    module.FilePlugin = plugin_class
    module.main()
