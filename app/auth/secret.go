package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// SecretFile is the name, under the data directory, of the generated signing secret.
const SecretFile = "jwt-secret"

// LoadOrCreateSecret returns the secret kept in dir, creating it (32 random bytes, hex, mode 0600) when it
// does not exist yet. created reports whether it did, so the caller can warn that JWT_SECRET is unset.
func LoadOrCreateSecret(dir string) (secret []byte, created bool, err error) {
	path := filepath.Join(dir, SecretFile)
	b, err := os.ReadFile(path)
	if err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) < 32 {
			return nil, false, fmt.Errorf("auth: %s holds fewer than 32 bytes; delete it to generate a new one", path)
		}
		return []byte(s), false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("auth: read secret: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, false, fmt.Errorf("auth: generate secret: %w", err)
	}
	s := hex.EncodeToString(raw)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("auth: create data dir: %w", err)
	}
	// O_EXCL: two processes starting together on one data dir must not overwrite each other's secret.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return LoadOrCreateSecret(dir)
	}
	if err != nil {
		return nil, false, fmt.Errorf("auth: create secret file: %w", err)
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("auth: write secret file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("auth: write secret file: %w", err)
	}
	return []byte(s), true, nil
}
