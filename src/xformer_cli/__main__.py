from xformer_cli.cli.app import main

main()
