"""recognizer_node."""
