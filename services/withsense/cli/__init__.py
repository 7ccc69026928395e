"""The `withsense` command."""
