from labshare.cli import main

main()
