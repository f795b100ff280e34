from stackwise.cli.main import main

main()
