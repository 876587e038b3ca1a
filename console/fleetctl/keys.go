package fleetctl

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/spf13/cobra"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/kioskfleet/kioskfleet/pkg/api"
	"github.com/kioskfleet/kioskfleet/pkg/bundle"
	"github.com/kioskfleet/kioskfleet/pkg/semver"
	"github.com/kioskfleet/kioskfleet/pkg/tufmeta"
)

// Key files in a keys directory.
const (
	rootKeyFile    = "root.key"
	targetsKeyFile = "targets.key"
)

func (a *app) keysCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "keys",
		Short: "The offline keys of the update repository: make them, start the repository, sign bundles and agent binaries",
		Long: `Kiosks take only bundles and agent binaries signed with The Update Framework (docs/catalog.md).
The root key (which says which keys sign what) and the targets key (which signs what kiosks may
install) are kept offline, in a directory only this command reads — on a machine or medium the hub
never sees; the hub signs only snapshot and timestamp, with a key of its own.

  generate     make root.key and targets.key in --dir (once)
  init         sign the repository's first root and an empty targets list, and give them to the hub
  sign-bundle  check an uploaded kiosk bundle and sign it as a target (then publish it on kiosk)
  sign-agent   upload an agent binary and sign it as a target
  status       the repository's versions, expiry dates and targets

--dir defaults to KF_KEYS_DIR. Signing needs the operator role (init: admin).`,
		Example: `  fleetctl keys generate --dir /media/usb/kf-keys
  fleetctl keys init --dir /media/usb/kf-keys
  fleetctl keys sign-bundle tax-print 1.4.0 --dir /media/usb/kf-keys
  fleetctl keys sign-agent --file ./kiosk-agent --version 0.2.0 --dir /media/usb/kf-keys`,
	})
	cmd.AddCommand(a.keysGenerateCmd(), a.keysInitCmd(), a.keysSignBundleCmd(), a.keysSignAgentCmd(), a.keysStatusCmd())
	return cmd
}

// keyDir returns --dir or KF_KEYS_DIR.
func (a *app) keyDir(p *problems, dir string) string {
	if dir == "" {
		dir = a.env.Getenv("KF_KEYS_DIR")
	}
	if dir == "" {
		p.add("--dir is required (or KF_KEYS_DIR): the directory of root.key and targets.key")
	}
	return dir
}

func (p *problems) key(dir, file string) ed25519.PrivateKey {
	if dir == "" {
		return nil
	}
	k, err := tufmeta.ReadKey(filepath.Join(dir, file))
	if err != nil {
		p.add("%s: %v", filepath.Join(dir, file), err)
	}
	return k
}

func (a *app) keysGenerateCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "generate --dir D",
		Short: "Make the root and targets keys (ed25519) in a new or empty directory",
		Args:  args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			dir = a.keyDir(&p, dir)
			if err := p.err(); err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			for _, f := range []string{rootKeyFile, targetsKeyFile} {
				if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
					return usagef("%s exists already: keys are never overwritten", filepath.Join(dir, f))
				}
			}
			for _, f := range []string{rootKeyFile, targetsKeyFile} {
				k, err := tufmeta.GenerateKey()
				if err != nil {
					return err
				}
				if err := tufmeta.WriteKey(filepath.Join(dir, f), k); err != nil {
					return err
				}
				_, id, _ := tufmeta.PublicKey(k)
				fmt.Fprintf(a.env.Stdout, "%s: key ID %s\n", filepath.Join(dir, f), id)
			}
			fmt.Fprintln(a.env.Stdout, "Keep this directory offline; copy it to a second medium. Next: fleetctl keys init --dir", dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory for the keys (env KF_KEYS_DIR)")
	return cmd
}

func (a *app) keysInitCmd() *cobra.Command {
	var dir, rootTTL, targetsTTL string
	cmd := &cobra.Command{
		Use:   "init --dir D [--root-expires 8760h] [--targets-expires 2160h]",
		Short: "Sign the repository's first root (root key, targets key, the hub's online key) and an empty targets list",
		Long: `Fetch the hub's online key, sign root version 1 with the root key (it names the root key for root,
the targets key for targets, and the hub's key for snapshot and timestamp) and targets version 1
(no targets) with the targets key, and give both to the hub. Kiosks trust this root from then on.
Needs the admin role.`,
		Args: args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			dir = a.keyDir(&p, dir)
			rootKey, targetsKey := p.key(dir, rootKeyFile), p.key(dir, targetsKeyFile)
			rootFor := p.duration("--root-expires", rootTTL, 24*time.Hour)
			targetsFor := p.duration("--targets-expires", targetsTTL, time.Hour)
			if err := a.setup(c, &p); err != nil {
				return err
			}
			ctx, cancel := a.call(c, 0)
			defer cancel()
			ok, err := a.client.OnlineKey(ctx)
			if err != nil {
				return fmt.Errorf("get the hub's online key: %w", err)
			}
			var online metadata.Key
			if err := json.Unmarshal(ok.Key, &online); err != nil {
				return fmt.Errorf("the hub's online key: %w", err)
			}
			if id, err := online.ID(); err != nil || id != ok.KeyID {
				return fmt.Errorf("the hub's online key does not match its ID %s", ok.KeyID)
			}
			rk, _, _ := tufmeta.PublicKey(rootKey)
			tk, _, _ := tufmeta.PublicKey(targetsKey)
			now := a.env.Now()
			root, err := tufmeta.NewRoot(1, now.Add(rootFor), rk, tk, &online)
			if err != nil {
				return err
			}
			if err := tufmeta.Sign(root, rootKey); err != nil {
				return err
			}
			rb, err := root.ToBytes(false)
			if err != nil {
				return err
			}
			if err := a.client.SetRoot(ctx, rb); err != nil {
				return fmt.Errorf("set root: %w", err)
			}
			tb, err := tufmeta.NewTargets(1, now.Add(targetsFor), nil, targetsKey)
			if err != nil {
				return err
			}
			if err := a.client.SetTargets(ctx, tb); err != nil {
				return fmt.Errorf("set targets: %w", err)
			}
			if err := os.WriteFile(filepath.Join(dir, "1.root.json"), rb, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(a.env.Stdout, "root version 1 and targets version 1 set at the hub; the hub signs snapshot and timestamp with key %s.\n"+
				"Kiosks trust %s (also served at %s/tuf/1.root.json).\n", ok.KeyID, filepath.Join(dir, "1.root.json"), a.client.BaseURL)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory of the keys (env KF_KEYS_DIR)")
	cmd.Flags().StringVar(&rootTTL, "root-expires", "8760h", "how long the root is valid")
	cmd.Flags().StringVar(&targetsTTL, "targets-expires", "2160h", "how long the targets list is valid (sign again before)")
	return cmd
}

// signTargets adds targets to the hub's current targets metadata, signs the next version and
// gives it to the hub.
func (a *app) signTargets(ctx context.Context, key ed25519.PrivateKey, add map[string]*metadata.TargetFiles, expires time.Time) (int64, error) {
	cur, err := a.client.SignedTargets(ctx)
	if err != nil {
		return 0, fmt.Errorf("get the current targets: %w", err)
	}
	next, err := tufmeta.AddTargets(cur, key, add, expires)
	if err != nil {
		return 0, err
	}
	if err := a.client.SetTargets(ctx, next); err != nil {
		return 0, fmt.Errorf("set targets: %w", err)
	}
	t, _ := metadata.Targets().FromBytes(next)
	return t.Signed.Version, nil
}

func (a *app) keysSignBundleCmd() *cobra.Command {
	var dir, ttl string
	cmd := &cobra.Command{
		Use:   "sign-bundle APP VERSION --dir D [--expires 2160h]",
		Short: "Check an uploaded kiosk bundle and sign it as a target",
		Long: `Download the bundle uploaded for APP VERSION, check it here (its hash is the one the hub reports,
it is a valid bundle, its manifest is of this app and version), add it to the targets list and
sign the next version with the targets key. The current targets list must carry this key's
signature: nothing the key did not sign is ever signed over. Then publish it on the kiosk channel
(fleetctl apps publish APP VERSION --channel kiosk).`,
		Args: args("APP", "VERSION"),
		RunE: func(c *cobra.Command, argv []string) error {
			var p problems
			dir = a.keyDir(&p, dir)
			key := p.key(dir, targetsKeyFile)
			d := p.duration("--expires", ttl, time.Hour)
			if err := a.setup(c, &p); err != nil {
				return err
			}
			ctx, cancel := a.call(c, time.Minute)
			defer cancel()
			v, err := a.client.AppVersion(ctx, argv[0], argv[1])
			if err != nil {
				return fmt.Errorf("get %s@%s: %w", argv[0], argv[1], err)
			}
			if v.Spec.Bundle == nil {
				return &commandError{fmt.Sprintf("%s@%s has no bundle uploaded", argv[0], argv[1])}
			}
			archive, err := a.client.Bundle(ctx, argv[0], argv[1])
			if err != nil {
				return fmt.Errorf("download the bundle: %w", err)
			}
			h := sha256.Sum256(archive)
			if hex.EncodeToString(h[:]) != v.Spec.Bundle.SHA256 {
				return &commandError{fmt.Sprintf("the bundle downloaded has sha256 %x, the hub says %s: not signed", h, v.Spec.Bundle.SHA256)}
			}
			b, err := bundle.Read(archive)
			if err != nil {
				return &commandError{err.Error()}
			}
			if b.Manifest.App != argv[0] || b.Manifest.Version != argv[1] {
				return &commandError{fmt.Sprintf("the bundle's manifest is of %s@%s", b.Manifest.App, b.Manifest.Version)}
			}
			tf, err := tufmeta.NewTarget(archive, tufmeta.Custom{Kind: tufmeta.KindBundle, App: argv[0], Version: argv[1], Manifest: &b.Manifest})
			if err != nil {
				return err
			}
			name := tufmeta.BundleTarget(argv[0], argv[1])
			n, err := a.signTargets(ctx, key, map[string]*metadata.TargetFiles{name: tf}, a.env.Now().Add(d))
			if err != nil {
				return err
			}
			return a.emitSigned(name, tf, n)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory of the keys (env KF_KEYS_DIR)")
	cmd.Flags().StringVar(&ttl, "expires", "2160h", "how long the new targets list is valid")
	return cmd
}

func (a *app) emitSigned(name string, tf *metadata.TargetFiles, version int64) error {
	if a.json {
		return a.emitJSON(api.TargetInfo{Name: name, SHA256: tufmeta.SHA256(tf), Length: tf.Length})
	}
	_, err := fmt.Fprintf(a.env.Stdout, "signed %s (sha256 %s, %s) in targets version %d\n", name, tufmeta.SHA256(tf), humanBytes(float64(tf.Length)), version)
	return err
}

func (a *app) keysSignAgentCmd() *cobra.Command {
	var dir, ttl, file, version, platform string
	cmd := &cobra.Command{
		Use:   "sign-agent --file F --version V [--platform linux-amd64] --dir D",
		Short: "Upload an agent binary and sign it as a target (kiosks switch to it on restart)",
		Args:  args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			dir = a.keyDir(&p, dir)
			key := p.key(dir, targetsKeyFile)
			d := p.duration("--expires", ttl, time.Hour)
			p.required([2]string{"--file", file}, [2]string{"--version", version})
			if version != "" && !semver.Valid(version) {
				p.add("--version %q: a semantic version such as 0.2.0", version)
			}
			var bin []byte
			if file != "" {
				var err error
				if bin, err = os.ReadFile(file); err != nil {
					p.add("--file: %v", err)
				} else if !bytes.HasPrefix(bin, []byte("\x7fELF")) && !bytes.HasPrefix(bin, []byte("#!")) {
					p.add("--file %s: not an executable (ELF or script)", file)
				}
			}
			if err := a.setup(c, &p); err != nil {
				return err
			}
			ctx, cancel := a.call(c, time.Minute)
			defer cancel()
			info, err := a.client.UploadFile(ctx, bytes.NewReader(bin))
			if err != nil {
				return fmt.Errorf("upload %s: %w", file, err)
			}
			tf, err := tufmeta.NewTarget(bin, tufmeta.Custom{Kind: tufmeta.KindAgent, Version: version})
			if err != nil {
				return err
			}
			if tufmeta.SHA256(tf) != info.SHA256 {
				return errors.New("the hub stored other bytes than those uploaded")
			}
			name := tufmeta.AgentTarget(version, platform)
			n, err := a.signTargets(ctx, key, map[string]*metadata.TargetFiles{name: tf}, a.env.Now().Add(d))
			if err != nil {
				return err
			}
			return a.emitSigned(name, tf, n)
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "directory of the keys (env KF_KEYS_DIR)")
	f.StringVar(&ttl, "expires", "2160h", "how long the new targets list is valid")
	f.StringVar(&file, "file", "", "the kiosk-agent binary (required)")
	f.StringVar(&version, "version", "", "its version (required)")
	f.StringVar(&platform, "platform", runtime.GOOS+"-"+runtime.GOARCH, "the platform it runs on (GOOS-GOARCH)")
	return cmd
}

func (a *app) keysStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the update repository: each role's version and expiry, the signed targets, what was served",
		Args:  args(),
		RunE: func(c *cobra.Command, _ []string) error {
			var p problems
			return callHub(a, c, &p, "update repository status", func(ctx context.Context, hub *api.Client) (api.UpdatesStatus, error) {
				return hub.UpdatesStatus(ctx)
			}, func(s api.UpdatesStatus) error {
				t := newTable(a.env.Stdout, "ROLE", "VERSION", "EXPIRES")
				for _, role := range []string{tufmeta.Root, tufmeta.Targets, tufmeta.Snapshot, tufmeta.Timestamp} {
					if r, ok := s.Roles[role]; ok {
						t.row(role, fmt.Sprint(r.Version), a.stamp(r.Expires))
					} else {
						t.row(role, "-", "-")
					}
				}
				t.flush()
				fmt.Fprintln(a.env.Stdout)
				t = newTable(a.env.Stdout, "TARGET", "KIND", "VERSION", "SIZE", "SHA256")
				for _, x := range s.Targets {
					t.row(x.Name, x.Kind, x.Version, humanBytes(float64(x.Length)), x.SHA256[:16]+"…")
				}
				t.flush()
				_, err := fmt.Fprintf(a.env.Stdout, "\nserved: %d target requests (%d from memory), %s, %d resumed, %d not modified\n",
					s.Served.TargetRequests, s.Served.CacheHits, humanBytes(float64(s.Served.TargetBytes)), s.Served.RangeRequests, s.Served.NotModified)
				return err
			})
		},
	}
}
