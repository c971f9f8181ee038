"""The shared core: contract, bus, configuration, command line. It imports no node package: the nodes
register with it through `homesec.plugins`."""
