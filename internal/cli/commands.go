package cli

// commands returns every command, in the order of the help.
func commands() []*command {
	var all []*command
	all = append(all, breakerCommands()...)
	all = append(all, dlqCommands()...)
	all = append(all, governanceCommands()...)
	all = append(all, auditCommands()...)
	all = append(all, configCommands()...)
	all = append(all, adminCommands()...)
	all = append(all, devCommands()...)
	all = append(all, versionCommands()...)
	all = append(all, completionCommands()...)
	return all
}
