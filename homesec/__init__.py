"""homesec."""
