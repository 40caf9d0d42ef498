"""The Textual wizard. Only `wizard.interactive` reaches in here (lazily), to start it."""
