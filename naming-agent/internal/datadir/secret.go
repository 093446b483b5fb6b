package datadir

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/detourmesh/detour/naming-agent/config"
)

// SidecarSecretFile is the per-boot secret's name in the data directory.
const SidecarSecretFile = "sidecar.secret"

// WriteSidecarSecret makes a new random secret and writes it to
// DIR/sidecar.secret, mode 0600, replacing the last run's: the sidecar
// proves it runs as a user who may read the agent's data (the agent's own
// user, or one given the file by chmod/chgrp) by sending it on its
// control stream. A new one at each start ends whatever an earlier run's
// secret allowed.
func WriteSidecarSecret(dir string) (config.Secret, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("data dir %s: sidecar secret: %w", dir, err)
	}
	s := hex.EncodeToString(b[:])
	path := filepath.Join(dir, SidecarSecretFile)
	tmp, err := os.CreateTemp(dir, ".sidecar.secret-*")
	if err != nil {
		return "", fmt.Errorf("data dir %s: sidecar secret: %w", dir, err)
	}
	defer os.Remove(tmp.Name()) // after the rename: nothing to remove
	// CreateTemp makes the file 0600: never readable by others, even
	// for a moment.
	_, err = tmp.WriteString(s + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return "", fmt.Errorf("data dir %s: sidecar secret: %w", dir, err)
	}
	return config.Secret(s), nil
}
