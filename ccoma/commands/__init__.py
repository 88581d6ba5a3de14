"""Click commands, one module per command or group.

Each module imports only ``click`` (and light ccoma modules) at top level; heavy work happens inside
the command function. ``ccoma.cli.COMMANDS`` maps a command name to ``"module:attribute"``.
"""
