from arch_search.cli import main

main()
