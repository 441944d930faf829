from scaleset_operator.cli.operator.main import main

main()
