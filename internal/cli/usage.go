package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

var nounSummaries = map[string]string{
	"breaker":    "read and control circuit breakers",
	"dlq":        "inspect, replay and close dead letters",
	"governance": "kill switch, emergency level, SLO target",
	"audit":      "read and verify the audit log (PostgreSQL)",
	"config":     "read and write breaker and fleet settings",
	"admin":      "serve the admin HTTP API and dashboard",
	"dev":        "run the whole fleet in one process on this machine; --demo tells a breaker's story",
	"version":    "print the version, commit and Go version (also: baldur --version)",
	"completion": "print a shell completion script (bash, zsh or fish)",
}

const exitCodesHelp = `Exit codes:
  0  applied / ok
  1  refused, not applied within --timeout, not found, conflict, or failed
  2  usage error (unknown command or flag, missing argument or --reason,
     a value the contract refuses); nothing was sent
  3  NATS, the fleet's topology, a replay-worker or PostgreSQL unreachable
`

func topUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s <command> <verb> [arguments] [flags]\n\n", Name)
	fmt.Fprintln(w, "Baldur's operator CLI: every action goes through the fleet's workers and is audited.")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, n := range nouns() {
		var verbs []string
		for _, c := range commandsOf(n) {
			if c.verb != "" {
				verbs = append(verbs, c.verb)
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", n, strings.Join(verbs, "|"), nounSummaries[n])
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nRun '%s <command> --help' or '%s <command> <verb> --help' for details and examples.\n\n", Name, Name)
	fmt.Fprint(w, exitCodesHelp)
}

func nounUsage(w io.Writer, noun string, cmds []*command) {
	fmt.Fprintf(w, "Usage: %s %s <verb> [arguments] [flags]\n\n%s.\n\n", Name, noun, capitalize(nounSummaries[noun]))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range cmds {
		fmt.Fprintf(tw, "  %s\t%s\n", c.verb, c.summary)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nRun '%s %s <verb> --help' for flags and examples.\n", Name, noun)
}

// sharedFlags are listed after the command's own flags.
var sharedFlags = map[string]bool{
	"nats-url": true, "nats-creds": true, "database-url": true, "http-addr": true, "node-id": true,
	"replicas": true, "log-level": true, "log-format": true, "actor": true, "reason": true, "json": true, "timeout": true,
}

func commandUsage(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: %s\n\n%s.\n", c.usageLine(), capitalize(c.summary))
	if len(c.examples) > 0 {
		fmt.Fprintln(w, "\nExamples:")
		for _, e := range c.examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	own, shared := false, false
	fs.VisitAll(func(f *flag.Flag) {
		if !sharedFlags[f.Name] {
			own = true
		} else if f.Name != "http-addr" || serves(c) {
			shared = true
		}
	})
	if own {
		fmt.Fprintln(w, "\nFlags:")
		printFlags(w, fs, func(name string) bool { return !sharedFlags[name] })
	}
	if shared {
		fmt.Fprintln(w, "\nShared flags:")
		printFlags(w, fs, func(name string) bool {
			return sharedFlags[name] && !hiddenShared(c, name)
		})
	}
	fmt.Fprintln(w)
	fmt.Fprint(w, exitCodesHelp)
}

// serves reports whether c is a long-running server (admin, dev), which
// uses --http-addr and may use --database-url.
func serves(c *command) bool { return c.noun == "admin" || c.noun == "dev" }

// hiddenShared hides the process flags a CLI command does not use.
func hiddenShared(c *command, name string) bool {
	switch name {
	case "log-level", "log-format":
		return c.noun != "dev"
	case "node-id", "replicas":
		return true
	case "nats-url", "nats-creds":
		return c.noun == "dev" // it runs its own nats-server
	case "http-addr":
		return !serves(c)
	case "reason":
		return !c.manual
	case "database-url":
		return c.needs&needDB == 0 && !serves(c)
	}
	return false
}

func printFlags(w io.Writer, fs *flag.FlagSet, keep func(string) bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		if !keep(f.Name) {
			return
		}
		arg, usage := flag.UnquoteUsage(f)
		name := "--" + f.Name
		if arg != "" {
			name += " " + arg
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			def = " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s%s\n", name, usage, def)
	})
	_ = tw.Flush()
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
