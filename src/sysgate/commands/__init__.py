"""What each CLI command does, one module per command group; ``sysgate.cli`` only parses arguments."""
