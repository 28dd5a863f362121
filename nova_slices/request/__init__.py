"""Guest requests: flavor extra specs and image properties, validated."""
