// Package cliflag parses a flag.FlagSet the way every fanout command does: --help prints the synopsis and the flags
// on stdout (exit 0 for the caller), and a bad flag is one line naming it plus a hint to --help, never a flag dump.
package cliflag
