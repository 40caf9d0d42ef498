"""One module per `modelwiz` subcommand: HELP, add_arguments(parser), run(args) -> int."""
