from scaleset_operator.cli.operator_main import main

main()
