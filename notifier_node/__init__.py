"""notifier_node."""
