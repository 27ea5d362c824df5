import ArgumentParser
SimulateCommand.main()
