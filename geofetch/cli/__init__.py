"""The ``geofetch`` command line: ``main.py`` parses and maps errors to exit codes,
one module per subcommand does the work."""
