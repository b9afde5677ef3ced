"""Command-line entry points: one module per subcommand; parse and wire, no logic."""
