from xformer_cli.cli import main

main()
