package cli

// commands returns every command, in the order of the help. `baldur dev`
// (issue 8) registers itself here when it lands.
func commands() []*command {
	var all []*command
	all = append(all, breakerCommands()...)
	all = append(all, dlqCommands()...)
	all = append(all, governanceCommands()...)
	all = append(all, auditCommands()...)
	all = append(all, configCommands()...)
	all = append(all, adminCommands()...)
	return all
}
