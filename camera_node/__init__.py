"""camera_node."""
