"""The subcommands of ``activesam``; see ``activesam_ros.cli``."""
