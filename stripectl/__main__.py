from stripectl.cli.app import main

main()
