// Package buildinfo says which build of Baldur a binary is: the version the
// build stamped in (-ldflags -X, see Version), the commit and the Go version
// (runtime/debug.ReadBuildInfo). Every binary prints it for --version and
// every worker exports it as the metric baldur_build_info.
package buildinfo

import (
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"sync"
)

// Linker-set values: go build -ldflags "-X <VersionVar>=1.4.0 -X
// <CommitVar>=<sha>". The Makefile's build target and deploy/Dockerfile
// (ARG VERSION, ARG COMMIT) set them.
var (
	version string
	commit  string
)

// VersionVar and CommitVar are the linker names of the version and the
// commit, for -ldflags -X.
const (
	VersionVar = "github.com/baldurfleet/baldur/internal/buildinfo.version"
	CommitVar  = "github.com/baldurfleet/baldur/internal/buildinfo.commit"
)

// Unknown is the commit of a build without version control information.
const Unknown = "unknown"

// DevVersion is the version of a build that stamped none.
const DevVersion = "dev"

// Info is what a binary knows of its build.
type Info struct {
	// Version is the linker-set version, else the module version of a
	// `go install …@v1.4.0`, else DevVersion.
	Version string `json:"version"`
	// Commit is the VCS revision the binary was built from (vcs.revision),
	// else the linker-set commit, else Unknown.
	Commit string `json:"commit"`
	// Modified reports a build from a work tree with uncommitted changes
	// (vcs.modified).
	Modified bool `json:"modified"`
	// GoVersion is the Go release that built the binary.
	GoVersion string `json:"go_version"`
}

var (
	once sync.Once
	info Info
)

// Get returns the build's Info (read once).
func Get() Info {
	once.Do(func() { info = read(debug.ReadBuildInfo) })
	return info
}

// read builds an Info from the linker values and what readBuild returns.
func read(readBuild func() (*debug.BuildInfo, bool)) Info {
	i := Info{Version: version, Commit: commit, GoVersion: runtime.Version()}
	if bi, ok := readBuild(); ok {
		if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			i.Version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			i.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if s.Value != "" {
					i.Commit = s.Value
				}
			case "vcs.modified":
				i.Modified = s.Value == "true"
			}
		}
	}
	if i.Version == "" {
		i.Version = DevVersion
	}
	if i.Commit == "" {
		i.Commit = Unknown
	}
	return i
}

// CommitLabel is the commit with "-modified" appended for a build from a
// changed work tree: the commit label of baldur_build_info.
func (i Info) CommitLabel() string {
	if i.Modified {
		return i.Commit + "-modified"
	}
	return i.Commit
}

// String returns "<version> (commit <commit>[, modified]) <go version>".
func (i Info) String() string {
	mod := ""
	if i.Modified {
		mod = ", modified"
	}
	return fmt.Sprintf("%s (commit %s%s) %s", i.Version, i.Commit, mod, i.GoVersion)
}

// Print writes the --version line of the binary name: "<name> <String()>".
func Print(w io.Writer, name string) {
	fmt.Fprintf(w, "%s %s\n", name, Get())
}

// FlagUsage is the usage of every binary's --version flag.
const FlagUsage = "print the version, commit and Go version, then exit"

// AddFlag declares --version on fs (so that -h lists it) and returns it.
func AddFlag(fs *flag.FlagSet) *bool { return fs.Bool("version", false, FlagUsage) }

// Requested reports whether args (a command line without the program name)
// asks for the version: -version or --version before any "--". It is
// checked before the rest of the command line, so that --version answers
// whatever else is wrong with it.
func Requested(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-version", "--version", "-version=true", "--version=true":
			return true
		}
	}
	return false
}
