"""One module per `modelwiz` subcommand: add_arguments(parser), run(args) -> int, an optional DESCRIPTION; its one-line help is in `wizard.cli.COMMANDS`."""
