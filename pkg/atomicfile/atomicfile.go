// Package atomicfile writes files so that a crash leaves either the old content or the new, never
// a torn mix: write a temporary file beside the target, fsync it, rename it over the target, and
// fsync the folder so the rename itself is durable. MkdirPrivate makes the folders they go in.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile durably replaces path with data, created with mode (before umask).
func WriteFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("atomicfile: sync %s: %w", filepath.Dir(path), err)
		}
	}
	return nil
}

// MkdirPrivate creates dir (and its parents) with mode 0700, or takes group and other access
// away from an existing dir: a data folder that holds keys, secrets and databases is its
// owner's alone.
func MkdirPrivate(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	fi, err := os.Stat(dir)
	if err == nil && fi.Mode().Perm()&0o077 != 0 {
		err = os.Chmod(dir, fi.Mode().Perm()&0o700)
	}
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	return nil
}
