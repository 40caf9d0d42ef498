"""modelwiz's Textual UI. Imports the core (`wizard`), never the other way round."""
