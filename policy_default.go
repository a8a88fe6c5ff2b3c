// Package edgeadapt is the root of the edge adaptation proxy's module. It
// holds only the repository's default policy.toml, embedded so that an
// icapd binary run away from the repository still has it; the programs
// are under cmd/ and the libraries in the packages beside this file.
package edgeadapt

import _ "embed"

// DefaultPolicy is the repository's policy.toml: icapd's policy when no
// -policy is given and there is no ./policy.toml.
//
//go:embed policy.toml
var DefaultPolicy []byte
