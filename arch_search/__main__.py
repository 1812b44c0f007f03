from arch_search.app.cli import main

main()
