"""`python -m scaleset_operator.cli.plugin`: the plugin without its installed script."""

from scaleset_operator.cli.plugin.main import main

main()
