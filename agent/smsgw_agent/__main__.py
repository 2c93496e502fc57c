from smsgw_agent.cli import main

main()
