"""The command line: parse, call one function of a feature or the core, render. No decisions here."""
